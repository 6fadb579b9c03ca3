"""Anomaly detection with explicit generative models (scikit-learn and PyOD conventions).

- :class:`Detector`: ``fit`` / ``score_samples`` (the log-likelihood from the shared evaluation
  layer, higher = more normal) / ``decision_function`` / ``predict`` in {-1, +1}; a PyOD view
  (``decision_scores_``, ``threshold_``, ``labels_``); per-feature explanations.
- :func:`anomaly_metrics`: AUROC, AUPRC and the false-positive rate at a chosen recall.
- Figures: :func:`roc_curves`, :func:`score_histogram`, :func:`plot_explanation`.

Example:
    >>> from ppgen.anomaly import Detector, anomaly_metrics  # doctest: +SKIP
    >>> det = Detector("made", likelihood="categorical", num_levels=17).fit(X_normal)
    >>> anomaly_metrics(is_anomaly, -det.score_samples(X_test))["auroc"]
"""

from __future__ import annotations

from ppgen.anomaly.detector import LIKELIHOODS, Detector, PyODView
from ppgen.anomaly.metrics import anomaly_metrics, fpr_at_recall, threshold_at_fpr
from ppgen.anomaly.plots import plot_explanation, roc_curves, score_histogram

__all__ = [
    "Detector",
    "PyODView",
    "LIKELIHOODS",
    "anomaly_metrics",
    "fpr_at_recall",
    "threshold_at_fpr",
    "roc_curves",
    "score_histogram",
    "plot_explanation",
]
