"""The sample-based report of a model: every metric of this package on one pair of samples.

:func:`sample_metrics` compares real data with generated data in a feature space
(:mod:`ppgen.metrics.features`: the digits classifier's, the raw data, a mode toy's);
:func:`model_sample_metrics` draws the generated data from a model first (with a cheap sampler
when the model declares one); :func:`implicit_report` is what the evaluation layer serves
implicit models with (``ppgen evaluate`` on a GAN; :mod:`ppgen.evaluate.routing`), and
:func:`~ppgen.evaluate.nll_report` adds :func:`model_sample_metrics` next to the likelihood of
any other model with ``samples=True``.

The report's keys: ``mmd`` (on the canonical data), ``fd``, ``kid`` (``kid_std``),
``precision``, ``recall``, ``density``, ``coverage`` (in the features); ``fd_floor`` where the
space has a real-vs-real pair (digits: val vs. test); ``classes_hit``, ``class_kl``,
``class_counts`` where it has a classifier (and ``class_accuracy`` for class-conditional
draws); ``modes``, ``num_modes``, ``high_quality``, ``mode_kl`` for a mode toy; ``features``
names the space.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import torch

from ppgen.errors import ArgumentError
from ppgen.metrics.classes import class_accuracy, class_histogram
from ppgen.metrics.features import FeatureSpace, feature_space
from ppgen.metrics.frechet import frechet_distance_of
from ppgen.metrics.kid import kid
from ppgen.metrics.manifold import density_coverage, precision_recall
from ppgen.metrics.mmd import mmd2
from ppgen.metrics.modes import ModeSet, mode_metrics
from ppgen.protocol import GenerativeModel

__all__ = [
    "sample_metrics",
    "model_sample_metrics",
    "implicit_report",
    "fd_floor",
    "evaluation_sampler",
    "SAMPLE_METRICS",
    "CHEAP_SAMPLER",
]

#: the keys :func:`sample_metrics` reports in every space (see the module docstring for more)
SAMPLE_METRICS = ("mmd", "fd", "kid", "kid_std", "precision", "recall", "density", "coverage")

#: the sampler of a sample-metrics pass for a model that declares ``sampler`` and ``steps``
#: sample options (diffusion models): DDIM with 50 steps instead of all ``T`` ancestral ones
CHEAP_SAMPLER = {"sampler": "ddim", "steps": 50}


@torch.no_grad()
def sample_metrics(
    real: torch.Tensor,
    fake: torch.Tensor,
    features: Any = None,
    modes: ModeSet | None = None,
    k_precision: int = 3,
    k_density: int = 5,
    labels: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Compare generated samples with real ones (lower ``mmd``/``fd``/``kid`` is better; higher
    ``precision``/``recall``/``coverage`` is better; ``density`` near 1).

    Args:
        real: real data ``[N, *shape]`` (e.g. the test split).
        fake: generated data ``[M, *shape]`` (best ``M = N``: the Fréchet distance is biased
            by the sample size), in any representation the space reads (the digits space reads
            integer levels and unit-scale floats alike).
        features: the feature space (:func:`~ppgen.metrics.features.feature_space`:
            ``"digits"``, ``"raw"``/``None``, a mode toy's name, a ``FeatureSpace`` or a map to
            ``[N, D]`` features of the flattened data). MMD is on the space's canonical data
            with the median-heuristic Gaussian kernel; the rest on the features.
        modes: the mixture of a 2-D mode-coverage toy, to add :func:`mode_metrics` (or name
            it as ``features``).
        k_precision: the neighbour of precision / recall (3, Kynkäänniemi et al.).
        k_density: the neighbour of density / coverage (5, Naeem et al.).
        labels: ``[M]`` classes the fakes were drawn for, to add ``class_accuracy`` (a space
            with a classifier only).

    Returns:
        JSON-able values keyed by :data:`SAMPLE_METRICS` and, as the space allows,
        ``fd_floor``, the class keys and the mode keys.

    Example:
        >>> from ppgen.data import load_digits
        >>> digits = load_digits("categorical")
        >>> floor = sample_metrics(digits.test, digits.val, features="digits")
        >>> floor["classes_hit"], floor["fd"] == floor["fd_floor"]
        (10, True)
    """
    space = feature_space(features)
    fr = space.embed(real)
    ff = space.embed(fake).to(fr.device)
    kid_mean, kid_std = kid(fr, ff)
    values: dict[str, Any] = {
        "mmd": mmd2(space.canonical(real), space.canonical(fake).to(real.device)),
        "fd": frechet_distance_of(fr, ff),
        "kid": kid_mean,
        "kid_std": kid_std,
        **precision_recall(fr, ff, k_precision),
        **density_coverage(fr, ff, k_density),
    }
    report: dict[str, Any] = {key: float(value) for key, value in values.items()}
    if space.floor is not None:
        report["fd_floor"] = fd_floor(space)
    if space.classify is not None:
        report.update(class_histogram(fake, space))
        if labels is not None:
            report["class_accuracy"] = class_accuracy(fake, labels, space)
    modes = modes or space.modes
    if modes is not None:
        report.update(mode_metrics(fake.reshape(len(fake), -1).float(), modes))
    return report


@functools.lru_cache(maxsize=8)
def fd_floor(space: FeatureSpace) -> float:
    """The Fréchet distance between the space's two real samples (digits: the 350 val images
    against the 447 test images), what a perfect generator's ``fd`` is compared with.

    Raises:
        ArgumentError: a space without a real-vs-real pair.
    """
    if space.floor is None:
        raise ArgumentError(f"the {space.name!r} feature space has no real-vs-real floor")
    real, other = space.floor()
    return float(frechet_distance_of(space.embed(real), space.embed(other)))


def evaluation_sampler(model: Any, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The sampler options of a sample-metrics pass: ``options`` when given, else
    :data:`CHEAP_SAMPLER` for a model that declares ``sampler`` and ``steps`` (a diffusion
    model: DDIM-50, or DDIM over all its ``num_steps`` when it has fewer), else none (the
    model's own sampler)."""
    if options is not None:
        return dict(options)
    if not {"sampler", "steps"} <= set(model.sample_options):
        return {}
    cheap = dict(CHEAP_SAMPLER)
    num_steps = getattr(model, "num_steps", None)
    if isinstance(num_steps, int):
        cheap["steps"] = min(cheap["steps"], num_steps)
    return cheap


@torch.no_grad()
def model_sample_metrics(
    model: Any,
    x: torch.Tensor,
    *,
    features: Any = None,
    sample_options: Mapping[str, Any] | None = None,
    **conditions: Any,
) -> dict[str, Any]:
    """:func:`sample_metrics` of ``len(x)`` draws of ``model`` against ``x``.

    Args:
        model: a :class:`~ppgen.GenerativeModel` (``model.sample(n, **options)``).
        x: real data ``[N, *event_shape]``.
        features: the feature space (see :func:`sample_metrics`; default raw).
        sample_options: sampler options of the draws (default :func:`evaluation_sampler`).
        **conditions: per-datum conditioning values ``[N]`` (e.g. ``y=labels``): each draw is
            conditioned on its row's value; the model's class labels also give
            ``class_accuracy`` when the space classifies as many classes.

    Returns:
        ``{"features": name, "sample_options": {...} (when any), **sample_metrics}``.

    Raises:
        ArgumentError: ``model`` cannot sample (a user's program: score its draws with
            :func:`sample_metrics`).
    """
    if not isinstance(model, GenerativeModel):
        raise ArgumentError(f"sample metrics draw from a zoo model (model.sample(n)), got "
                            f"{type(model).__name__}: draw samples of your program yourself and "
                            "call ppgen.metrics.sample_metrics")
    x = model.check_data(x)
    space = feature_space(features)
    options = evaluation_sampler(model, sample_options)
    fake = model.sample(len(x), **conditions, **options).to(x.device)
    labels = _class_labels(model, space, conditions)
    report: dict[str, Any] = {"features": space.name}
    if options:
        report["sample_options"] = options
    return {**report, **sample_metrics(x, fake, space, labels=labels)}


def _class_labels(model: Any, space: FeatureSpace, conditions: Mapping[str, Any]
                  ) -> torch.Tensor | None:
    """The class labels the draws were conditioned on, when the model declares a class
    condition with as many classes as the space's classifier."""
    condition = model.conditions.of_kind("class")
    if condition is None or condition.name not in conditions:
        return None
    return conditions[condition.name] if condition.num_classes == space.num_classes else None


def implicit_report(
    model: Any, x: torch.Tensor, *, num_particles: int | None = None,
    batch_size: int | None = None, features: Any = None,
    sample_options: Mapping[str, Any] | None = None, **conditions: Any,
) -> dict[str, Any]:
    """The ``ppgen evaluate`` table of a model without a density: :func:`model_sample_metrics`.

    Args:
        model: a :class:`~ppgen.GenerativeModel` (``model.sample(n, **conditions)``).
        x: real data ``[N, *event_shape]``.
        num_particles, batch_size: evaluation options of the layer (unused: no likelihood).
        features: the feature space (``"digits"`` for the bundled digits; default raw; the
            CLI passes :func:`~ppgen.metrics.features.features_for` of the run's data).
        sample_options: sampler options of the draws.
        **conditions: per-datum conditioning values ``[N]`` (e.g. ``y=labels``).

    Returns:
        ``{"n": N, "features": name, **sample_metrics}``.
    """
    return {"n": int(len(x)), **model_sample_metrics(
        model, x, features=features, sample_options=sample_options, **conditions)}
