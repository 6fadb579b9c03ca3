"""The sample-based report of a model: every metric of this package on one pair of samples.

:func:`sample_metrics` compares real data with generated data; :func:`implicit_report` draws the
generated data from a model and is what the evaluation layer serves implicit models with
(``ppgen evaluate`` on a GAN; :mod:`ppgen.evaluate.routing`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ppgen.metrics.frechet import frechet_distance_of
from ppgen.metrics.kid import kid
from ppgen.metrics.manifold import density_coverage, precision_recall
from ppgen.metrics.mmd import mmd2
from ppgen.metrics.modes import ModeSet, mode_metrics

__all__ = ["sample_metrics", "implicit_report", "SAMPLE_METRICS"]

#: the keys :func:`sample_metrics` reports (``modes`` and ``high_quality`` too for a mode set)
SAMPLE_METRICS = ("mmd", "fd", "kid", "kid_std", "precision", "recall", "density", "coverage")


@torch.no_grad()
def sample_metrics(
    real: torch.Tensor,
    fake: torch.Tensor,
    features: Callable[[torch.Tensor], torch.Tensor] | None = None,
    modes: ModeSet | None = None,
    k_precision: int = 3,
    k_density: int = 5,
) -> dict[str, float]:
    """Compare generated samples with real ones (lower ``mmd``/``fd``/``kid`` is better; higher
    ``precision``/``recall``/``coverage`` is better; ``density`` near 1).

    Args:
        real: real data ``[N, *shape]`` (e.g. the test split).
        fake: generated data ``[M, *shape]`` (best ``M = N``: the Fréchet distance is biased
            by the sample size).
        features: a map to ``[N, D]`` features for the Fréchet distance, KID and the k-NN
            metrics (a classifier's penultimate layer); default the flattened data. MMD is
            always on the data, with the median-heuristic Gaussian kernel.
        modes: the mixture of a 2-D mode-coverage toy, to add :func:`mode_metrics`.
        k_precision: the neighbour of precision / recall (3, Kynkäänniemi et al.).
        k_density: the neighbour of density / coverage (5, Naeem et al.).

    Returns:
        JSON-able floats keyed by :data:`SAMPLE_METRICS` (and the mode keys).
    """
    real, fake = real.float().reshape(len(real), -1), fake.float().reshape(len(fake), -1)
    fr = real if features is None else features(real)
    ff = fake if features is None else features(fake)
    kid_mean, kid_std = kid(fr, ff)
    values: dict[str, Any] = {
        "mmd": mmd2(real, fake),
        "fd": frechet_distance_of(fr, ff),
        "kid": kid_mean,
        "kid_std": kid_std,
        **precision_recall(fr, ff, k_precision),
        **density_coverage(fr, ff, k_density),
    }
    report = {key: float(value) for key, value in values.items()}
    if modes is not None:
        report.update(mode_metrics(fake, modes))
    return report


def implicit_report(
    model: Any, x: torch.Tensor, *, num_particles: int | None = None,
    batch_size: int | None = None, **conditions: Any,
) -> dict[str, Any]:
    """The ``ppgen evaluate`` table of a model without a density: :func:`sample_metrics` of
    ``len(x)`` draws against ``x``, in the raw data space.

    Args:
        model: a :class:`~ppgen.GenerativeModel` (``model.sample(n, **conditions)``).
        x: real data ``[N, *event_shape]``.
        num_particles, batch_size: evaluation options of the layer (unused: no likelihood).
        **conditions: per-datum conditioning values ``[N]`` (e.g. ``y=labels``): each draw is
            conditioned on its row's value.

    Returns:
        ``{"n": N, "features": "raw", **sample_metrics}``.
    """
    fake = model.sample(len(x), **conditions)
    return {"n": int(len(x)), "features": "raw", **sample_metrics(x, fake.to(x.device))}
