"""How well anomaly scores separate anomalies from normal data: AUROC, AUPRC, FPR at a recall."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

__all__ = ["anomaly_metrics", "fpr_at_recall", "threshold_at_fpr"]


def anomaly_metrics(is_anomaly: Any, anomaly_score: Any, *, recall: float = 0.95) -> dict:
    """Ranking quality of anomaly scores (higher score = more abnormal).

    Args:
        is_anomaly: ``[N]`` truth, 1 (or True) for anomalies, 0 for normal data.
        anomaly_score: ``[N]`` scores, higher = more abnormal (e.g. ``-score_samples(X)``).
        recall: the share of anomalies that must be caught for ``fpr_at_recall``.

    Returns:
        ``{"auroc", "auprc", "fpr_at_recall", "recall", "num_anomalies", "num_normal"}``:
        areas under the ROC and precision-recall curves (AUPRC with anomalies as the positive
        class; its chance level is the share of anomalies) and the false-positive rate at the
        first threshold that reaches ``recall``.

    Raises:
        ValueError: both classes must be present, no score NaN, lengths equal (infinite
            scores rank at the ends).

    Example:
        >>> anomaly_metrics([0, 0, 1, 1], [0.1, 0.2, 0.9, 0.3])["auroc"]
        1.0
    """
    y, s = _check(is_anomaly, anomaly_score)
    return {
        "auroc": float(roc_auc_score(y, s)),
        "auprc": float(average_precision_score(y, s)),
        "fpr_at_recall": fpr_at_recall(y, s, recall),
        "recall": recall,
        "num_anomalies": int(y.sum()),
        "num_normal": int((1 - y).sum()),
    }


def fpr_at_recall(is_anomaly: Any, anomaly_score: Any, recall: float = 0.95) -> float:
    """False-positive rate of the threshold that first catches ``recall`` of the anomalies."""
    if not 0 < recall <= 1:
        raise ValueError(f"recall must be in (0, 1], got {recall!r}")
    y, s = _check(is_anomaly, anomaly_score)
    fpr, tpr, _ = roc_curve(y, s)
    return float(fpr[np.searchsorted(tpr, recall - 1e-12, side="left")])


def _check(is_anomaly: Any, anomaly_score: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(is_anomaly).astype(int).ravel()
    s = np.asarray(anomaly_score, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels but {s.size} scores")
    if np.isnan(s).any():
        raise ValueError("anomaly scores contain NaN: the model could not score some rows")
    if not set(np.unique(y)) == {0, 1}:
        raise ValueError("is_anomaly must contain both anomalies (1) and normal data (0)")
    return y, _finite_ranks(s)


def _finite_ranks(s: np.ndarray) -> np.ndarray:
    """``s`` with ``+inf`` / ``-inf`` moved just past the finite extremes, ranks unchanged.

    A row whose log-likelihood underflows to ``-inf`` (far outside the training data) is the
    most anomalous there is; the metrics are rank statistics, so placing it above every finite
    score keeps them exact (scikit-learn refuses infinite scores).
    """
    inf = np.isinf(s)
    if not inf.any():
        return s
    finite = s[~inf]
    lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
    return np.where(s == np.inf, hi + 1.0, np.where(s == -np.inf, lo - 1.0, s))


def threshold_at_fpr(normal_log_likelihood: Any, fpr: float) -> float:
    """The log-likelihood below which a share ``fpr`` of normal data falls.

    Flagging rows with ``log p(x)`` below it flags about ``fpr`` of normal data: pass the
    scores of held-out normal data (what :class:`~ppgen.anomaly.Detector` does with ``fpr=``
    and ``contamination=``, and ``ppgen score --fpr``).

    Args:
        normal_log_likelihood: ``[N]`` log-likelihoods of normal data (higher = more normal).
        fpr: the target false-positive rate in ``(0, 1)``.
    """
    if not 0 < fpr < 1:
        raise ValueError(f"fpr must be in (0, 1), got {fpr!r}")
    scores = np.asarray(normal_log_likelihood, dtype=np.float64).ravel()
    if scores.size == 0 or not np.isfinite(scores).all():
        raise ValueError("need finite log-likelihoods of at least one normal datum")
    return float(np.quantile(scores, fpr))
