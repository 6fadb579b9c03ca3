"""Anomaly-detection figures: ROC curves, score histograms and per-pixel explanations.

Like :mod:`ppgen.plots`, built on matplotlib's ``Figure`` API (no pyplot state) with seaborn for
the statistical plots; save with :func:`ppgen.plots.save`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from ppgen.anomaly.metrics import anomaly_metrics

__all__ = ["roc_curves", "score_histogram", "plot_explanation"]


def roc_curves(
    is_anomaly: Any, scores: Mapping[str, Any], *, title: str | None = None
) -> Figure:
    """ROC curves of several detectors on the same data, AUROC in the legend.

    Args:
        is_anomaly: ``[N]`` truth, 1 for anomalies.
        scores: detector name -> ``[N]`` anomaly scores (higher = more abnormal).
        title: figure title.
    """
    fig = Figure(figsize=(4.8, 4.5))
    ax = fig.subplots()
    y = np.asarray(is_anomaly).astype(int)
    for name, s in scores.items():
        fpr, tpr, _ = roc_curve(y, np.asarray(s, dtype=np.float64))
        auroc = anomaly_metrics(y, s)["auroc"]
        ax.plot(fpr, tpr, lw=1.5, label=f"{name} (AUROC {auroc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate (recall)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right", fontsize="small")
    ax.set_title(title or "ROC")
    return fig


def score_histogram(
    is_anomaly: Any,
    anomaly_score: Any,
    *,
    threshold: float | None = None,
    title: str | None = None,
    names: tuple[str, str] = ("normal", "anomaly"),
) -> Figure:
    """Histograms of the anomaly scores of normal data and anomalies, threshold marked.

    Args:
        is_anomaly: ``[N]`` truth, 1 for anomalies (or the rows a threshold flagged).
        anomaly_score: ``[N]`` scores, higher = more abnormal (e.g. ``-log p(x)`` in nats).
        threshold: a decision threshold on the same scale (e.g. ``Detector.threshold_``).
        title: figure title.
        names: legend names of the two groups (0s, then 1s).
    """
    import seaborn as sns

    y = np.asarray(is_anomaly).astype(bool)
    s = np.asarray(anomaly_score, dtype=np.float64)
    fig = Figure(figsize=(5.5, 3.5))
    ax = fig.subplots()
    bins = np.histogram_bin_edges(s, bins=40)
    sns.histplot(s[~y], bins=bins, stat="density", color="tab:blue", alpha=0.5,
                 label=names[0], ax=ax)
    sns.histplot(s[y], bins=bins, stat="density", color="tab:red", alpha=0.5,
                 label=names[1], ax=ax)
    if threshold is not None:
        ax.axvline(threshold, color="black", ls="--", lw=1, label="threshold")
    ax.set_xlabel("anomaly score (higher = more abnormal)")
    ax.legend()
    ax.set_title(title or "anomaly scores")
    return fig


def plot_explanation(
    contributions: Any,
    image_shape: tuple[int, int],
    *,
    images: Any = None,
    ncols: int | None = None,
    title: str | None = None,
) -> Figure:
    """Per-pixel contributions to the anomaly score as heat-maps (one panel per row).

    Each panel shows ``-log p(x_d | x_<d)`` per pixel (from :meth:`Detector.explain`): bright
    pixels are the ones the model found unlikely. With ``images``, the images are drawn in a
    row above their heat-maps.

    Args:
        contributions: ``[N, H * W]`` log-probability contributions (``Detector.explain``).
        image_shape: ``(H, W)`` of one grey image.
        images: optional ``[N, H * W]`` images to show above the heat-maps.
        ncols: panels per row (default: all in one row, at most 8).
        title: figure title.
    """
    c = -np.asarray(contributions, dtype=np.float64)
    if len(image_shape) != 2 or c.shape[1] != image_shape[0] * image_shape[1]:
        raise ValueError(
            f"contributions [N, {c.shape[1]}] do not fit grey images of shape {image_shape}"
        )
    n = c.shape[0]
    ncols = ncols or min(n, 8)
    rows_per = 2 if images is not None else 1
    nrows = -(-n // ncols) * rows_per
    fig = Figure(figsize=(1.3 * ncols + 0.8, 1.3 * nrows + 0.4))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    top = max(float(c.max()), 1e-12)
    for ax in axes.flat:
        ax.set_axis_off()
    for i in range(n):
        r, col = divmod(i, ncols)
        if images is not None:
            img = np.asarray(images, dtype=np.float64)[i].reshape(image_shape)
            axes[r * 2, col].imshow(img, cmap="gray_r")
        heat = axes[r * rows_per + rows_per - 1, col].imshow(
            c[i].reshape(image_shape), cmap="magma", vmin=0, vmax=top
        )
    fig.colorbar(heat, ax=axes.ravel().tolist(), shrink=0.8, label="−log p(x_d | x_<d)")
    fig.suptitle(title or "what made these unusual")
    return fig
