"""What the commands share: a run folder (its model, its recorded data), the rows of a user
file, class labels, and writing files whole."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from ppgen.cli.checks import UsageError


def run_folder(path: str) -> Path:
    p = Path(path)
    return p.parent if p.suffix == ".pt" else p


def model_file(path: str) -> Path:
    """The model file of a run folder (or the ``.pt`` file given)."""
    return Path(path) if Path(path).suffix == ".pt" else Path(path) / "model.pt"


def load_run(path: str):
    import torch

    import ppgen.models  # noqa: F401  (registers the zoo's classes)
    from ppgen.checkpoint import model_from_checkpoint, read_checkpoint

    file = model_file(path)
    payload = read_checkpoint(file)  # read once: its extra and its model
    extra = payload.get("extra") or {}
    model = model_from_checkpoint(payload, file)
    broken = [name for name, t in model.state_dict().items()
              if t.is_floating_point() and bool(torch.isnan(t).any())]
    if broken:
        raise UsageError(f"{file} holds NaN weights ({', '.join(broken[:3])}"
                     f"{', ...' if len(broken) > 3 else ''}): the run that wrote it diverged or "
                     "the model was damaged before saving; train it again")
    return model, extra


def run_data(extra: dict, where: str, fix: str):
    """The splits of the run's recorded data (refused when its file changed since)."""
    from ppgen.data import load_record

    spec = extra.get("data")
    if not spec:
        raise UsageError(f"{where} records no data set (it was not written by `ppgen fit`): {fix}")
    return load_record(spec)


def test_rows(extra: dict):
    """The run's test rows for a picture, or ``None`` when they cannot be had."""
    from ppgen.errors import DataError

    if not extra.get("data"):
        return None
    try:
        return run_data(extra, "", "").test
    except DataError as err:
        logging.getLogger(__name__).warning("drawing without the run's data: %s", err)
        return None


def read_rows(model, extra: dict, path: str):
    """Rows of a user file for ``model``: read as the run's data were, checked by the model."""
    from ppgen.data import load_array

    info = extra.get("info") or {}
    x = load_array(path, info.get("likelihood", "continuous"),
                   num_levels=info.get("num_levels"), event_shape=tuple(model.event_shape))
    return model.check_data(x, Path(path).name)


def cluster():
    """The processes this command runs on (one, or those torchrun started)."""
    from ppgen.engine.distributed import Cluster

    return Cluster.from_env()


def class_condition(model):
    """The model's declared class-label input (``None`` for a model without one)."""
    from ppgen.conditions import ConditionKind

    return model.conditions.of_kind(ConditionKind.CLASS)


def split_labels(model, data, split: str):
    """The labels of ``split`` for a class-conditional model (``--set num_classes=C``), else
    ``None``."""
    if class_condition(model) is None:
        return None
    if not data.labels:
        raise UsageError(f"{model.name} is class-conditional and needs labelled data (e.g. --data "
                     "digits)")
    return data.labels[split]


def label_kwargs(model, labels) -> dict[str, Any]:
    """``{name: labels}`` under the model's class-label keyword (``{}`` without labels)."""
    return {} if labels is None else {class_condition(model).name: labels}


def score_labels(model, args: argparse.Namespace):
    """The rows' labels from ``--labels FILE`` (``[N]``), or ``None`` without the option; a
    class-conditional model refuses to score without them, an unconditional one with them."""
    from ppgen.data import load_array

    if args.labels is None:
        if class_condition(model) is not None:
            raise UsageError(f"{model.name} is class-conditional: pass --labels FILE with one "
                         "class label per row of --data")
        return None
    if class_condition(model) is None:
        raise UsageError(f"--labels needs a class-conditional model; {model.name} is unconditional")
    labels = load_array(args.labels, "categorical", name=Path(args.labels).name)
    return labels.reshape(-1) if labels.dim() == 2 and labels.shape[1] == 1 else labels


def atomic(path: Path, write) -> None:
    """Write ``path`` (its folder created) through a temporary file: never a partial file."""
    from ppgen.checkpoint import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, write)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    text = json.dumps(payload, indent=2, default=str) + "\n"
    atomic(path, lambda f: f.write(text.encode()))


def fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)

