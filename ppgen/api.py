"""The user-facing entry points ``ppgen.fit`` and ``ppgen.load`` (face layer).

``fit`` picks the model's default objective from ``ppgen.inference`` and runs the shared
training engine; ``load`` rebuilds any registered model from a checkpoint. The families are
imported inside the functions: the core never imports them, and importing ``ppgen`` stays cheap.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

import torch

from ppgen.errors import PpgenError
from ppgen.history import History
from ppgen.protocol import GenerativeModel

__all__ = ["fit", "load", "CLOSED_FORM"]

#: objective name of models fitted in closed form (``model.fit_closed_form``)
CLOSED_FORM = "closed-form"


def fit(
    model: GenerativeModel,
    train: Any,
    val: Any = None,
    *,
    objective: Any = None,
    objective_options: dict[str, Any] | None = None,
    labels: Any = None,
    val_labels: Any = None,
    **options: Any,
) -> History:
    """Train ``model`` on ``train`` (early stopping on ``val``) with its default objective.

    Args:
        model: a :class:`~ppgen.GenerativeModel`; trained in place.
        train: training data ``[N, *model.event_shape]`` (array-like; validated here).
        val: validation data, for early stopping and best-state restore.
        objective: an objective name (``"mle"``, ``"elbo"``, ``"iwae"``, ``"closed-form"``) or
            an :class:`~ppgen.objective.Objective`; default ``model.default_objective``.
        objective_options: keyword arguments of the objective (e.g. ``{"num_particles": 5}``).
        labels: class labels ``[N]`` of ``train`` for a class-conditional model (one whose
            :attr:`~ppgen.GenerativeModel.conditions` declare class labels, e.g. a flow built
            with ``num_classes``); checked by that declaration, batched with the data and
            passed to its programs under the declared name (``model(x, y=labels)``).
        val_labels: class labels ``[M]`` of ``val`` (required with ``labels`` and ``val``).
        **options: training-engine options (:func:`ppgen.engine.train`: ``epochs``,
            ``batch_size``, ``lr``, ``patience``, ``device``, ``seed``, ``out_dir``, ``resume``,
            ...) on top of ``model.fit_defaults``; ``None`` values are ignored (so a command
            line's unset options keep the recipe) and ``False`` switches off an option whose
            off state is ``None`` (:data:`SWITCHABLE`: ``ema=False`` trains without the weight
            average a model's recipe keeps, ``patience=False`` without early stopping).

    Returns:
        The training :class:`~ppgen.history.History`.

    Example:
        >>> from ppgen.data import load_digits
        >>> from ppgen.models import IndependentCategorical
        >>> digits = load_digits("categorical")
        >>> model = IndependentCategorical.for_data(digits.info)
        >>> history = fit(model, digits.train, digits.val)
    """
    if not isinstance(model, GenerativeModel):
        raise PpgenError(
            f"ppgen.fit trains GenerativeModel instances, not {type(model).__name__}; "
            "score your own Pyro programs with ppgen.log_likelihood / ppgen.elbo"
        )
    train = model.check_data(train, "training data")
    val = None if val is None else model.check_data(val, "validation data")
    train_kwargs, val_kwargs = _label_kwargs(model, train, val, labels, val_labels)
    options = _merged_options(model.fit_defaults, options)
    name = model.default_objective if objective is None else objective
    if name == CLOSED_FORM:
        if train_kwargs:
            raise PpgenError("closed-form fits take no labels")
        return _fit_closed_form(model, train, val, options)
    from ppgen.engine import train as run_engine
    from ppgen.inference import make_objective

    if name == model.default_objective:  # named or not, the model's recipe applies
        objective_options = {**model.objective_defaults, **(objective_options or {})}
    made = make_objective(name, **(objective_options or {}))
    if train_kwargs:
        options.update(train_kwargs=train_kwargs, val_kwargs=val_kwargs)
    return run_engine(model, made, train, val, **options)


#: engine options whose off state is ``None``: ``False`` given to :func:`fit` switches them off
SWITCHABLE = ("ema", "patience", "max_grad_norm")


def _merged_options(defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` with the given options on top: ``None`` keeps the default, ``False`` turns
    a :data:`SWITCHABLE` option off."""
    merged = {**defaults, **{k: v for k, v in given.items() if v is not None}}
    for key in SWITCHABLE:
        if merged.get(key) is False:
            merged[key] = None
    return merged


def _label_kwargs(
    model: GenerativeModel, train: torch.Tensor, val: torch.Tensor | None, labels, val_labels
) -> tuple[dict[str, torch.Tensor] | None, dict[str, torch.Tensor] | None]:
    """The engine's per-datum keyword arguments (``{"y": labels}``), checked by the model's
    declared conditions (:mod:`ppgen.conditions`); ``None`` for an unconditional model."""
    conditions = model.conditions
    if labels is None and val_labels is None and not conditions:
        return None, None
    if labels is not None and (val is None) != (val_labels is None):
        raise PpgenError(
            "pass labels for the training data and val_labels for the validation data "
            "together (one label per row of each)"
        )
    name = _label_name(conditions)
    train_kwargs = conditions.check({name: labels}, len(train), "training ")
    if val is None:
        return train_kwargs, None
    return train_kwargs, conditions.check({name: val_labels}, len(val), "validation ")


def _label_name(conditions) -> str:
    """The program keyword of the class labels (``"y"`` when the model declares none: the
    declaration then refuses them by that name)."""
    declared = conditions.of_kind("class")
    return "y" if declared is None else declared.name


def _fit_closed_form(model, train, val, options) -> History:
    """Closed-form (smoothed) maximum likelihood, recorded as a one-epoch history."""
    if not hasattr(model, "fit_closed_form"):
        raise PpgenError(f"{type(model).__name__} has no closed-form fit: choose an objective")
    from ppgen.checkpoint import save_model
    from ppgen.devices import resolve_device
    from ppgen.evaluate import log_likelihood

    device = resolve_device(options.get("device", "auto"))
    model.to(device)
    start = time.perf_counter()
    train = train.to(device)
    val = None if val is None else val.to(device)
    model.fit_closed_form(train, val=val)  # model selection on val where it applies
    record: dict[str, Any] = {"epoch": 1, "train_loss": _nll(log_likelihood, model, train, device)}
    if val is not None:
        record["val_loss"] = _nll(log_likelihood, model, val, device)
    record["seconds"] = time.perf_counter() - start
    history = History([record])
    if options.get("out_dir"):
        out = Path(options["out_dir"])
        out.mkdir(parents=True, exist_ok=True)
        history.to_csv(out / "history.csv")
        save_model(model, out / "model.pt", extra=options.get("extra"))
    return history


def _nll(log_likelihood, model, x: torch.Tensor, device: torch.device) -> float:
    return float(-log_likelihood(model, x.to(device)).mean())


def load(path: str | Path, map_location: str | torch.device = "cpu") -> GenerativeModel:
    """Load a model saved with ``model.save`` or written by ``ppgen fit``.

    Tensors are read with ``torch.load(weights_only=True)``: a checkpoint can never run code.
    Zoo classes are registered by importing ``ppgen.models``; import the module of your own
    ``GenerativeModel`` subclass before loading it.

    Raises:
        CheckpointError: missing, truncated, corrupt, foreign or unsafe file.
    """
    importlib.import_module("ppgen.models")
    from ppgen.checkpoint import load_model

    return load_model(path, map_location=map_location)
