"""Figures people would rather look at than read: sample grids, training curves, latents.

Built on matplotlib's object-oriented API (``Figure`` + ``savefig``), so nothing here touches
pyplot's global state or needs a display; seaborn draws the statistical plots.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from ppgen.history import History

__all__ = ["image_grid", "training_curves", "latent_scatter", "points_scatter", "save"]


def save(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (parent folders are created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def image_grid(
    images: torch.Tensor | np.ndarray,
    image_shape: tuple[int, ...],
    *,
    ncols: int | None = None,
    vmax: float | None = None,
    title: str | None = None,
) -> Figure:
    """A grid of images.

    Args:
        images: ``[N, D]`` flattened images (``D = prod(image_shape)``) or ``[N, *image_shape]``.
        image_shape: ``(H, W)`` for grey images, ``(C, H, W)`` for colour ones.
        ncols: images per row (default: a square-ish grid).
        vmax: value of white (default: the largest value).
        title: figure title.
    """
    arr = _as_images(images, image_shape)
    n = arr.shape[0]
    ncols = ncols or max(1, math.ceil(math.sqrt(n)))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(ncols * 0.6 + 0.4, nrows * 0.6 + (0.6 if title else 0.2)))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    top = float(vmax if vmax is not None else max(arr.max(), 1e-12))
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < n:
            ax.imshow(arr[i], cmap="gray_r" if arr.ndim == 3 else None, vmin=0, vmax=top)
    if title:
        fig.suptitle(title)
    return fig


def _as_images(images: Any, image_shape: tuple[int, ...]) -> np.ndarray:
    arr = torch.as_tensor(images).detach().cpu().float().numpy()
    arr = arr.reshape((arr.shape[0], *image_shape))
    if arr.ndim == 4:  # [N, C, H, W] -> [N, H, W, C]
        arr = np.moveaxis(arr, 1, -1)
        arr = np.clip(arr / max(arr.max(), 1e-12), 0, 1)
    return arr


def training_curves(history: History, *, title: str | None = None) -> Figure:
    """Training and validation loss per epoch, with the best epoch marked."""
    fig = Figure(figsize=(5.5, 3.5))
    ax = fig.subplots()
    epochs = history.column("epoch")
    for name in history.columns:
        if name.endswith("loss"):
            ax.plot(epochs, history.column(name), label=name.replace("_", " "))
    if history.best_epoch is not None:
        ax.axvline(history.best_epoch, color="grey", ls="--", lw=1, label="best epoch")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (nats per datum)")
    ax.legend()
    ax.set_title(title or "training curves")
    return fig


def latent_scatter(
    z: torch.Tensor | np.ndarray, labels: Any = None, *, title: str | None = None
) -> Figure:
    """Latent codes ``[N, L]`` in 2-D (first two principal components when ``L > 2``)."""
    import seaborn as sns

    pts = _to_2d(torch.as_tensor(z).detach().cpu().double())
    fig = Figure(figsize=(5, 4.5))
    ax = fig.subplots()
    hue = None if labels is None else np.asarray(torch.as_tensor(labels).cpu())
    sns.scatterplot(x=pts[:, 0], y=pts[:, 1], hue=hue, palette="tab10", s=12, ax=ax,
                    legend="full" if hue is not None else False)
    if hue is not None:
        sns.move_legend(ax, "center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    name = "z" if z.shape[1] <= 2 else "PC"
    ax.set_xlabel(f"{name} 1")
    ax.set_ylabel(f"{name} 2")
    ax.set_title(title or "latent codes")
    return fig


def _to_2d(z: torch.Tensor) -> np.ndarray:
    if z.shape[1] == 1:
        z = torch.cat([z, torch.zeros_like(z)], dim=1)
    if z.shape[1] > 2:
        centred = z - z.mean(0)
        _, _, v = torch.linalg.svd(centred, full_matrices=False)
        z = centred @ v[:2].T
    return z.numpy()


def points_scatter(
    x: torch.Tensor | np.ndarray, *, title: str | None = None, reference: Any = None
) -> Figure:
    """2-D points (e.g. samples of a toy density), optionally beside reference data."""
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.subplots()
    if reference is not None:
        ref = torch.as_tensor(reference).cpu().numpy()
        ax.scatter(ref[:, 0], ref[:, 1], s=3, alpha=0.3, color="grey", label="data")
    pts = torch.as_tensor(x).cpu().numpy()
    ax.scatter(pts[:, 0], pts[:, 1], s=3, alpha=0.6, label="samples")
    ax.set_aspect("equal")
    ax.legend()
    ax.set_title(title or "samples")
    return fig
