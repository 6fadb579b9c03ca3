"""Kinds route, they do not refuse: which estimator serves a model of each kind.

Exact and latent models are served by the trace-based estimators of this layer
(:mod:`ppgen.evaluate.estimators`). The other kinds need estimators of their own:

* ``energy`` models (unnormalised density) need the partition function, estimated by annealed
  importance sampling with an interval;
* ``implicit`` models (samples only) are compared by sample-based metrics.

Those estimators are registered here, keyed by :class:`~ppgen.protocol.ModelKind`, as a
:class:`KindEstimator`. The layer's entry points (:func:`~ppgen.evaluate.log_likelihood`,
:func:`~ppgen.evaluate.nll_report`, so ``ppgen evaluate`` and ``ppgen score``) ask
:func:`routed` and hand the model over; until an estimator is registered they raise an error that
names what the kind needs (:class:`~ppgen.errors.ImplicitModelError` naming the sample-based
metrics; a :class:`~ppgen.errors.ModelError` saying that AIS is needed).

Registration is explicit (no import-time side effects): the module that provides an estimator
is listed in :func:`builtin_estimators`, and tests or user code scope one with
:func:`registered_estimator`.

Example:
    >>> import torch
    >>> from ppgen.protocol import ModelKind
    >>> ais = KindEstimator("my AIS", log_likelihood=lambda model, x, **kw: torch.zeros(len(x)))
    >>> with registered_estimator(ModelKind.ENERGY, ais):
    ...     pass  # ppgen.log_likelihood(energy_model, x) now runs ``ais.log_likelihood``
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ppgen.errors import ImplicitModelError, ModelError
from ppgen.evaluate.arguments import check_counts, guide_and_data
from ppgen.protocol import DEFAULT_NUM_PARTICLES, GenerativeModel, ModelKind

__all__ = [
    "KindEstimator",
    "ROUTED_KINDS",
    "SAMPLE_METRICS_HINT",
    "register_estimator",
    "unregister_estimator",
    "registered_estimator",
    "estimator_for",
    "routed",
    "refusal",
    "evaluation_options",
    "resolve_call",
]

#: kinds the trace-based estimators cannot serve: they route to a registered estimator
ROUTED_KINDS = (ModelKind.ENERGY, ModelKind.IMPLICIT)

#: what an implicit model is compared with instead of a likelihood
SAMPLE_METRICS_HINT = (
    "implicit models (GANs) define no density: compare samples instead with sample-based "
    "metrics (ppgen.metrics: FID / KID, precision-recall, density-coverage, MMD, mode "
    "coverage; ppgen evaluate reports them)"
)

#: the tasks an entry point routes: a per-datum estimate, or the ``ppgen evaluate`` table
TASKS = ("log_likelihood", "report")


@dataclass(frozen=True)
class KindEstimator:
    """The estimators that serve models of one kind.

    Both callables take ``(model, x, *, num_particles, batch_size, **conditions)``, with
    ``x: [N, *event_shape]`` and the model's conditioning values (e.g. ``y: [N]``).

    Attributes:
        name: what the estimator is, for messages (``"annealed importance sampling"``).
        log_likelihood: per-datum estimates ``[N]`` of ``log p(x_n)`` (e.g. AIS for an energy
            model); ``None`` for a kind without a density (implicit).
        report: the JSON-able table ``ppgen evaluate`` writes (sample metrics, or an estimate
            with its interval); ``None``: built from ``log_likelihood`` like an exact model's.
    """

    name: str
    log_likelihood: Callable[..., torch.Tensor] | None = None
    report: Callable[..., dict[str, Any]] | None = None

    def serving(self, task: str) -> Callable[..., Any] | None:
        """The callable for ``task`` (``"log_likelihood"`` or ``"report"``), or ``None``."""
        return {"log_likelihood": self.log_likelihood, "report": self.report}[task]


_ESTIMATORS: dict[ModelKind, KindEstimator] = {}


def builtin_estimators() -> dict[ModelKind, KindEstimator]:
    """The estimators ppgen itself provides per routed kind: sample-based metrics for implicit
    models (:func:`ppgen.metrics.implicit_report`); annealed importance sampling for energy
    models (:func:`ppgen.energy.energy_log_likelihood`, and :func:`ppgen.energy.energy_report`
    with the reverse-AIS bracket)."""
    from ppgen.energy.estimate import energy_log_likelihood, energy_report
    from ppgen.metrics.report import implicit_report

    ais = KindEstimator("annealed importance sampling", log_likelihood=energy_log_likelihood,
                        report=energy_report)
    return {ModelKind.IMPLICIT: KindEstimator("sample-based metrics", report=implicit_report),
            ModelKind.ENERGY: ais}


def register_estimator(kind: ModelKind | str, estimator: KindEstimator) -> None:
    """Serve every model of ``kind`` with ``estimator`` (replacing any earlier one).

    Raises:
        ModelError: a kind the trace-based estimators serve themselves (exact, latent).
    """
    kind = ModelKind(kind)
    if kind not in ROUTED_KINDS:
        raise ModelError(f"{kind.value} models are served by the trace-based estimators; only "
                         f"{[k.value for k in ROUTED_KINDS]} route to a registered estimator")
    _ESTIMATORS[kind] = estimator


def unregister_estimator(kind: ModelKind | str) -> KindEstimator | None:
    """Remove the estimator registered for ``kind``; returns it (``None`` if there was none)."""
    return _ESTIMATORS.pop(ModelKind(kind), None)


@contextlib.contextmanager
def registered_estimator(kind: ModelKind | str, estimator: KindEstimator) -> Iterator[None]:
    """Serve ``kind`` with ``estimator`` inside a ``with`` block, then restore the previous one."""
    kind = ModelKind(kind)
    previous = _ESTIMATORS.get(kind)
    register_estimator(kind, estimator)
    try:
        yield
    finally:
        if previous is None:
            _ESTIMATORS.pop(kind, None)
        else:
            _ESTIMATORS[kind] = previous


def estimator_for(kind: ModelKind | str) -> KindEstimator | None:
    """The estimator serving ``kind``: registered, else built in, else ``None``."""
    kind = ModelKind(kind)
    return _ESTIMATORS.get(kind) or builtin_estimators().get(kind)


def routed(model: Any, task: str) -> Callable[..., Any] | None:
    """The estimator an entry point hands ``model`` to for ``task``, or ``None`` when the
    trace-based estimators serve it (exact and latent zoo models, users' own programs).

    Args:
        model: what the entry point was given.
        task: ``"log_likelihood"`` (per-datum estimates) or ``"report"`` (the ``ppgen evaluate``
            table; ``None`` when the kind has a registered ``log_likelihood`` to build it from).

    Raises:
        ImplicitModelError: an implicit model asked for a likelihood, or for a report with no
            sample-based metric registered.
        ModelError: an energy model with no AIS estimator registered.
    """
    if task not in TASKS:
        raise ModelError(f"unknown evaluation task {task!r}: use one of {TASKS}")
    if not isinstance(model, GenerativeModel) or model.kind not in ROUTED_KINDS:
        return None
    estimator = estimator_for(model.kind)
    if estimator is not None and estimator.serving(task) is not None:
        return estimator.serving(task)
    if task == "report" and estimator is not None and estimator.log_likelihood is not None:
        return None  # the report is the generic one, built on the routed log-likelihood
    raise refusal(model, task)


def refusal(model: GenerativeModel, task: str = "log_likelihood") -> ModelError:
    """The error for a routed kind that no registered estimator serves for ``task``."""
    name = type(model).__name__
    if model.kind == ModelKind.IMPLICIT:
        if task == "log_likelihood":
            return ImplicitModelError(
                f"{name} is implicit: it has no log-likelihood or bound; {SAMPLE_METRICS_HINT}"
            )
        return ImplicitModelError(
            f"{name} is implicit; {SAMPLE_METRICS_HINT}. No sample-based metric is registered "
            "for implicit models yet (ppgen.evaluate.routing.register_estimator)"
        )
    return ModelError(
        f"{name} is energy-based: its density is unnormalised, so a log-likelihood needs an "
        "estimate of the partition function by annealed importance sampling (AIS), and no AIS "
        "estimator is registered for energy models yet (ppgen.evaluate.routing."
        "register_estimator); bounds and the trace-based estimators do not apply"
    )


def evaluation_options(
    model: Any, num_particles: int | None = None, batch_size: int | None = None
) -> dict[str, Any]:
    """The particles and chunk size of an evaluation pass: explicit values win, then the zoo
    model's declaration (:meth:`~ppgen.GenerativeModel.evaluation_options`), then the layer's
    defaults for users' own programs (:data:`~ppgen.protocol.DEFAULT_NUM_PARTICLES`
    particles, automatic chunks).

    Returns:
        ``{"num_particles": K, "batch_size": B or None}``.
    """
    if isinstance(model, GenerativeModel):
        return model.evaluation_options(num_particles, batch_size)
    return {"num_particles": num_particles or DEFAULT_NUM_PARTICLES, "batch_size": batch_size}


def resolve_call(entry: str, task: str, model: Any, args: tuple, guide: Any, x: Any,
                 num_particles: Any, batch_size: Any
                 ) -> tuple[Any, Any, dict[str, Any], Callable[..., Any] | None]:
    """What every evaluation entry point does first: read ``(guide, x)`` in either order,
    check the counts, settle the evaluation options and find the estimator of ``task`` for
    the model's kind. Returns ``(guide, x, options, estimator or None)``."""
    guide, x = guide_and_data(entry, args, guide, x)
    num_particles, batch_size = check_counts(num_particles=num_particles, batch_size=batch_size)
    options = evaluation_options(model, num_particles, batch_size)
    return guide, x, options, routed(model, task)
