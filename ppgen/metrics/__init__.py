"""Sample-based metrics: how close generated samples are to real ones, for any family.

The only measure of implicit models (GANs), and a comparison by samples for every other family.
One concept per module:

* :mod:`~ppgen.metrics.mmd` — maximum mean discrepancy, median-heuristic Gaussian kernel;
* :mod:`~ppgen.metrics.frechet` — Fréchet distance between Gaussians in a feature space (FID);
* :mod:`~ppgen.metrics.kid` — kernel inception distance (unbiased, cubic kernel, subsets);
* :mod:`~ppgen.metrics.manifold` — precision / recall (Kynkäänniemi et al., 2019) and density /
  coverage (Naeem et al., 2020) from k-nearest-neighbour balls;
* :mod:`~ppgen.metrics.modes` — mode coverage on 2-D mixtures (VEEGAN / PacGAN);
* :mod:`~ppgen.metrics.digits_classifier` — the digits feature classifier and its canonical
  input; :mod:`~ppgen.metrics.digits_training` — its deterministic recipe;
* :mod:`~ppgen.metrics.features` — feature spaces (``"digits"``: the shipped classifier's
  penultimate layer; ``"raw"``; mode toys), named by the data (:func:`features_for`);
* :mod:`~ppgen.metrics.classes` — the class histogram of samples and the accuracy of
  class-conditional samples;
* :mod:`~ppgen.metrics.report` — all of them at once, a model's draws scored, and the implicit
  models' evaluation table.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> real, fake = torch.randn(300, 2, generator=g), torch.randn(300, 2, generator=g)
    >>> scores = sample_metrics(real, fake)
    >>> sorted(scores)[:4]
    ['coverage', 'density', 'fd', 'kid']
"""

from __future__ import annotations

from ppgen.metrics.classes import class_accuracy, class_histogram
from ppgen.metrics.digits_classifier import DigitsClassifier, digits_intensity
from ppgen.metrics.features import (
    FeatureSpace,
    feature_space,
    features_for,
    load_digits_classifier,
)
from ppgen.metrics.frechet import frechet_distance, frechet_distance_of, gaussian_statistics
from ppgen.metrics.kid import kid
from ppgen.metrics.manifold import density_coverage, knn_radii, precision_recall
from ppgen.metrics.mmd import gaussian_kernel, median_bandwidth, mmd2
from ppgen.metrics.modes import ModeSet, mode_metrics
from ppgen.metrics.report import (
    SAMPLE_METRICS,
    fd_floor,
    implicit_report,
    model_sample_metrics,
    sample_metrics,
)

__all__ = [
    "mmd2",
    "median_bandwidth",
    "gaussian_kernel",
    "gaussian_statistics",
    "frechet_distance",
    "frechet_distance_of",
    "kid",
    "knn_radii",
    "precision_recall",
    "density_coverage",
    "ModeSet",
    "mode_metrics",
    "sample_metrics",
    "model_sample_metrics",
    "implicit_report",
    "fd_floor",
    "SAMPLE_METRICS",
    "class_histogram",
    "class_accuracy",
    "DigitsClassifier",
    "digits_intensity",
    "load_digits_classifier",
    "FeatureSpace",
    "feature_space",
    "features_for",
]
