"""The evaluation layer: the single source of truth for likelihoods and bounds.

Built on ``poutine.trace`` / ``poutine.replay``; returns per-datum tensors; vectorised over
particles; chunked over data; runs on the data's device. Training objectives, anomaly scores
and ArviZ's ``log_likelihood`` group all call these functions. Discrete sites marked for
enumeration (``@config_enumerate``, e.g. mixture assignments) are summed out exactly in every
one of them (:mod:`ppgen.evaluate.enumeration`). Energy-based and implicit models are routed
by kind to the estimator registered for them (:mod:`ppgen.evaluate.routing`).
"""

from __future__ import annotations

from ppgen.evaluate.bounds import (
    bits_per_dim,
    dequantization_bound,
    headline_log_likelihood,
    nll_report,
)
from ppgen.evaluate.estimators import (
    ROWS_PER_CHUNK,
    elbo,
    log_likelihood,
    pointwise_log_likelihood,
    structure_of,
)
from ppgen.evaluate.program import DATA_PLATE, Structure, inspect_structure, resolve
from ppgen.evaluate.progress import showing_progress
from ppgen.evaluate.routing import (
    KindEstimator,
    evaluation_options,
    register_estimator,
    registered_estimator,
)

__all__ = [
    "showing_progress",
    "log_likelihood",
    "elbo",
    "pointwise_log_likelihood",
    "bits_per_dim",
    "dequantization_bound",
    "nll_report",
    "headline_log_likelihood",
    "inspect_structure",
    "structure_of",
    "resolve",
    "Structure",
    "DATA_PLATE",
    "ROWS_PER_CHUNK",
    "KindEstimator",
    "register_estimator",
    "registered_estimator",
    "evaluation_options",
]
