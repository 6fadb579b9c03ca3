"""``ppgen sample``: draw samples from a saved model into a picture (and .npy)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from ppgen.cli import options, runs
from ppgen.cli.checks import UsageError, check_output, parse_sets, refuse_inputs

#: what ``ppgen sample --out`` can draw into
_IMAGE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sample",
        help="draw samples from a saved model",
        description="Draw samples; writes a PNG (image grid or 2-D scatter) and optionally .npy. "
        "--set passes the model's declared sampler options (and conditioning inputs); an "
        "unknown one is an error that lists the valid ones.",
    )
    p.add_argument("dir", help="folder written by `ppgen fit` (or a model.pt file)")
    p.add_argument("-n", "--num-samples", type=int, default=64, help="number of samples (64)")
    p.add_argument("--out", default=None, help="PNG (or .pdf/.svg/.jpg) path (default "
                   "DIR/samples.png)")
    p.add_argument("--npy", default=None, help="also save the samples to this .npy file")
    p.add_argument("--label", type=int, default=None,
                   help="class to sample from a class-conditional model (default: every "
                   "class, one row of the grid each)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="sampler option, e.g. --set num_steps=50 (JSON values)")
    options.add_common(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ppgen.devices import resolve_device

    if args.num_samples < 1:
        raise UsageError("-n must be at least 1")
    out = Path(args.out) if args.out else runs.run_folder(args.dir) / "samples.png"
    npy = Path(args.npy) if args.npy else None
    check_output(out, "--out", _IMAGE_SUFFIXES)
    if npy is not None:
        check_output(npy, "--npy", (".npy",))
    refuse_inputs([out, npy], [runs.model_file(args.dir)])
    model, extra = runs.load_run(args.dir)
    model.to(resolve_device(args.device)).eval()
    torch.manual_seed(args.seed)
    options = parse_sets(args.set)
    if args.label is not None:
        if runs.class_condition(model) is None:
            raise UsageError(f"--label needs a class-conditional model; {model.name} is "
                         "unconditional")
        options.update(runs.label_kwargs(model, args.label))
    rows = _class_rows(model, args.num_samples, options)
    samples = model.sample(args.num_samples, **options).cpu()
    _plot_samples(samples, extra, out, model.name, model, rows)
    if npy is not None:
        runs.atomic(npy, lambda f: np.save(f, samples.numpy()))
    print(f"wrote {args.num_samples} samples to {out}" + (f" and {args.npy}" if args.npy else ""))
    if _is_energy(model):
        chains = out.with_name(f"{out.stem}-chains{out.suffix}")
        _plot_chains(model, extra, chains, options)
        print(f"wrote the sampling chains (a row of snapshots per chain) to {chains}")
    return 0


def _is_energy(model) -> bool:
    from ppgen.protocol import ModelKind

    return model.kind == ModelKind.ENERGY


def _plot_chains(model, extra: dict, out: Path, options: dict[str, Any]) -> None:
    """An energy model's Langevin chains evolving (:mod:`ppgen.langevin_chain`)."""
    from ppgen import plots
    from ppgen.langevin_chain import langevin_chain_figure

    info = extra.get("info") or {}
    shape = info.get("image_shape")
    if not shape and model.num_dims != 2:
        return  # no picture of a chain in D > 2 without images
    vmax = 1 if info.get("likelihood") == "continuous" else None
    plots.save(langevin_chain_figure(model, 6, 10, shape, vmax=vmax, **options), out)


def _class_rows(model, n: int, options: dict[str, Any]) -> tuple[int, list[str]] | None:
    """A class-conditional model sampled without a label: the classes in blocks, so that each
    row of the grid is one class; returns ``(images per row, row labels)`` (``options`` gets
    the labels). ``None`` for other models, or when a label was given."""
    import torch

    condition = runs.class_condition(model)
    if condition is None or options.get(condition.name) is not None:
        return None
    per_row = math.ceil(n / condition.num_classes)
    options[condition.name] = torch.arange(n) // per_row
    return per_row, [f"{condition.name}={c}" for c in range(math.ceil(n / per_row))]


def _plot_samples(samples, extra: dict, out: Path, name: str, model=None,
                  rows: tuple[int, list[str]] | None = None) -> None:
    from ppgen import plots

    info = extra.get("info") or {}
    shape = info.get("image_shape")
    if shape:
        top = (info.get("num_levels") or 2) - 1 if info.get("likelihood") != "continuous" else 1
        ncols, labels = rows or (None, None)
        fig = plots.image_grid(samples, tuple(shape), vmax=top, title=f"{name} samples",
                               ncols=ncols, row_labels=labels)
    elif samples.dim() == 2 and samples.shape[1] == 2 and _has_density(model, info):
        fig = plots.density_heatmap(model, runs.test_rows(extra), samples=samples, title=name)
    elif samples.dim() == 2 and samples.shape[1] == 2:
        fig = plots.points_scatter(samples, title=f"{name} samples")
    else:
        raise UsageError(f"samples of shape {tuple(samples.shape[1:])} have no picture; use --npy")
    plots.save(fig, out)


def _has_density(model, info: dict) -> bool:
    """A 2-D continuous model whose density the evaluation layer computes exactly."""
    from ppgen.protocol import ModelKind

    return (model is not None and model.kind == ModelKind.EXACT
            and info.get("likelihood") == "continuous" and not model.conditions)

