"""Figures people would rather look at than read: sample grids, training curves, latents.

Built on matplotlib's object-oriented API (``Figure`` + ``savefig``), so nothing here touches
pyplot's global state or needs a display; seaborn draws the statistical plots.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from ppgen.errors import ArgumentError
from ppgen.history import History

__all__ = [
    "image_grid",
    "stage_samples",
    "training_curves",
    "loss_names",
    "latent_scatter",
    "representation_scatters",
    "points_scatter",
    "density_heatmap",
    "save",
]


def save(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (parent folders are created) and return the path.

    The format follows the suffix (PNG without one); the file is written atomically, so a
    crash or a full disk never leaves a partial image.
    """
    from ppgen.checkpoint import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix.lstrip(".").lower() or "png"
    atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=dpi, bbox_inches="tight"))
    return path


def image_grid(
    images: torch.Tensor | np.ndarray,
    image_shape: tuple[int, ...],
    *,
    ncols: int | None = None,
    vmax: float | None = None,
    title: str | None = None,
    row_labels: Sequence[str] | None = None,
) -> Figure:
    """A grid of images, optionally with a label left of each row (e.g. the class).

    Args:
        images: ``[N, D]`` flattened images (``D = prod(image_shape)``) or ``[N, *image_shape]``.
        image_shape: ``(H, W)`` for grey images, ``(C, H, W)`` for colour ones.
        ncols: images per row (default: a square-ish grid).
        vmax: value of white (default: the largest value).
        title: figure title.
        row_labels: one label per row, from the top (e.g. ``["y=0", "y=1", ...]`` for a
            class-conditional model drawn a class per row); at most as many as rows.

    Raises:
        ArgumentError: more row labels than rows.
    """
    arr = _as_images(images, image_shape)
    n = arr.shape[0]
    ncols = ncols or max(1, math.ceil(math.sqrt(n)))
    nrows = math.ceil(n / ncols)
    labels = list(row_labels or [])
    if len(labels) > nrows:
        raise ArgumentError(f"{len(labels)} row labels for a grid of {nrows} rows")
    margin = 0.5 if labels else 0.0
    fig = Figure(figsize=(ncols * 0.6 + 0.4 + margin, nrows * 0.6 + (0.6 if title else 0.2)))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    top = float(vmax if vmax is not None else max(arr.max(), 1e-12))
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < n:
            ax.imshow(arr[i], cmap="gray_r" if arr.ndim == 3 else None, vmin=0, vmax=top)
    for ax, label in zip(axes[:, 0], labels):
        _label_row(ax, label)
    if title:
        fig.suptitle(title)
    return fig


def stage_samples(samples: Mapping[str, torch.Tensor | np.ndarray],
                  image_shape: tuple[int, ...], *, vmax: float | None = None,
                  title: str | None = None) -> Figure:
    """Samples of a growing model, a row per stage: ``{label: [n, D] images}`` in order (e.g.
    ``{"2x2": ..., "4x4": ..., "8x8": ...}``, drawn at the end of each stage of a progressive
    GAN, every row the same ``n``); draws only (see ``examples/progressive_gan_digits.py``)."""
    rows = [torch.as_tensor(images).detach().cpu() for images in samples.values()]
    return image_grid(torch.cat(rows), image_shape, ncols=len(rows[0]), vmax=vmax, title=title,
                      row_labels=list(samples))


def _label_row(ax: Any, label: str) -> None:
    """A row's label as the y-label of its first image (axis shown, frame and ticks not)."""
    ax.set_axis_on()
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize="small")


def _as_images(images: Any, image_shape: tuple[int, ...]) -> np.ndarray:
    arr = torch.as_tensor(images).detach().cpu().float().numpy()
    arr = arr.reshape((arr.shape[0], *image_shape))
    if arr.ndim == 4:  # [N, C, H, W] -> [N, H, W, C]
        arr = np.moveaxis(arr, 1, -1)
        arr = np.clip(arr / max(arr.max(), 1e-12), 0, 1)
    return arr


def training_curves(
    history: History, *, title: str | None = None, objective: Mapping[str, Any] | None = None
) -> Figure:
    """Training and validation loss per epoch, with the best epoch marked.

    Args:
        history: the run's :class:`~ppgen.history.History`.
        title: axes title.
        objective: the objective's config as the run recorded it (``{"name": "iwae",
            "num_particles": 5, "validation_particles": 100}``): the curves are then named
            after the losses they are ("training IWAE-5", "validation IWAE-100 NLL"), see
            :func:`loss_names`.
    """
    fig = Figure(figsize=(5.5, 3.5))
    ax = fig.subplots()
    epochs = history.column("epoch")
    marker = "o" if len(epochs) < 2 else None  # a one-epoch (closed-form) fit is a point
    names = loss_names(objective)
    for name in history.columns:
        if name.endswith("loss"):
            ax.plot(epochs, history.column(name), marker=marker,
                    label=names.get(name, name.replace("_", " ")))
    if history.best_epoch is not None:
        ax.axvline(history.best_epoch, color="grey", ls="--", lw=1, label="best epoch")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (nats per datum)")
    ax.legend()
    ax.set_title(title or "training curves")
    return fig


def loss_names(objective: Mapping[str, Any] | None) -> dict[str, str]:
    """What ``train_loss`` and ``val_loss`` are under the objective a run recorded.

    The variational objectives validate on the importance-weighted NLL estimate with
    ``validation_particles``; maximum likelihood and closed-form fits on the exact NLL; any
    other objective's losses are named after it.

    Example:
        >>> loss_names({"name": "iwae", "num_particles": 5, "validation_particles": 20})
        {'train_loss': 'training IWAE-5', 'val_loss': 'validation IWAE-20 NLL'}
    """
    if not objective or not objective.get("name"):
        return {}
    name, k = objective["name"], objective.get("num_particles")
    validation = objective.get("validation_particles")
    if name in ("mle", "closed-form"):
        return {"train_loss": "training NLL", "val_loss": "validation NLL"}
    if name == "iwae":
        train = f"training IWAE-{k}"
    elif name == "elbo":
        train = "training −ELBO" + (f" ({k} particles)" if k and k > 1 else "")
    else:
        train, validation = f"training {name} loss", None
    val = f"validation IWAE-{validation} NLL" if validation else f"validation {name} loss"
    return {"train_loss": train, "val_loss": val}


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


#: how :func:`representation_scatters` brings features with more than two columns to 2-D
PROJECTIONS = ("pca", "tsne")


def representation_scatters(
    features: Mapping[str, torch.Tensor | np.ndarray], labels: Any, *, method: str = "tsne",
    seed: int = 0, title: str | None = None,
) -> Figure:
    """One 2-D scatter per model of its features ``[N, F]``, coloured by ``labels`` ``[N]``.

    Features with ``F > 2`` are projected by scikit-learn: ``"tsne"`` (t-SNE, PCA-initialised,
    seeded) or ``"pca"`` (the first two principal components); ``F <= 2`` is drawn as it is.

    Args:
        features: ``{model name: [N, F] features}`` (e.g. :func:`ppgen.represent` outputs).
        labels: ``[N]`` classes (the digit) shared by every panel.
        method: ``"tsne"`` or ``"pca"``.
        seed: t-SNE's random state.
        title: the figure's title.

    Raises:
        ArgumentError: an unknown method, no features, or features and labels of other lengths.
    """
    if method not in PROJECTIONS:
        raise ArgumentError(f"unknown projection {method!r}: use one of {PROJECTIONS}")
    if not features:
        raise ArgumentError("no features to draw: pass {name: [N, F] features}")
    hue = np.asarray(torch.as_tensor(labels).cpu())
    cols = min(3, len(features))
    rows = math.ceil(len(features) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.8 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, (name, z) in zip(axes, features.items()):
        z = np.asarray(torch.as_tensor(z).detach().cpu().double())
        if len(z) != len(hue):
            raise ArgumentError(f"{name}: {len(z)} feature rows but {len(hue)} labels")
        pts, how = _project(z, method, seed)
        ax.scatter(pts[:, 0], pts[:, 1], c=hue, cmap="tab10", s=5, vmin=-0.5, vmax=9.5)
        ax.set_title(f"{name} ({z.shape[1]}-d{how})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(features):]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig


def _project(z: np.ndarray, method: str, seed: int) -> tuple[np.ndarray, str]:
    """``z: [N, F]`` in 2-D, and how it got there (for the panel's title)."""
    if z.shape[1] <= 2:
        return _to_2d(torch.as_tensor(z)), ""
    from sklearn.decomposition import PCA

    if method == "pca":
        return PCA(2).fit_transform(z), ", PCA"
    from sklearn.manifold import TSNE

    perplexity = min(30.0, (len(z) - 1) / 3)
    tsne = TSNE(2, perplexity=perplexity, init="pca", random_state=seed)
    return tsne.fit_transform(z), ", t-SNE"


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


def density_heatmap(
    model: Any,
    data: Any = None,
    *,
    samples: Any = None,
    num_samples: int = 2000,
    bounds: tuple[float, float, float, float] | None = None,
    resolution: int = 200,
    title: str | None = None,
    **kwargs: Any,
) -> Figure:
    """A 2-D model's density as a heat map, beside the data and the model's samples.

    The density is ``exp(ppgen.log_likelihood(model, grid))`` on a ``resolution^2`` grid (the
    shared evaluation layer: exact for flows, the importance-weighted estimate for latent
    models). Three panels on the same axes ``x1``, ``x2``: the density with its colour bar, a
    scatter of ``data``, a scatter of ``samples``.

    Args:
        model: a :class:`~ppgen.GenerativeModel` (or Pyro program) of 2-D points.
        data: points ``[N, 2]`` to show (and to set the bounds), or ``None``.
        samples: model samples ``[M, 2]``; default ``model.sample(num_samples)``.
        num_samples: how many samples to draw when ``samples`` is not given.
        bounds: ``(x_min, x_max, y_min, y_max)``; default the data's (or samples') range
            widened by 10%.
        resolution: grid points per axis.
        title: figure title.
        **kwargs: passed to :func:`ppgen.log_likelihood` (e.g. ``num_particles``).

    Example:
        >>> fig = density_heatmap(model, toy.test)  # doctest: +SKIP
        >>> save(fig, "density.png")  # doctest: +SKIP
    """
    import seaborn as sns

    from ppgen.evaluate import log_likelihood

    if samples is None:
        samples = model.sample(num_samples)
    pts = torch.as_tensor(samples).detach().cpu().double()
    ref = None if data is None else torch.as_tensor(data).detach().cpu().double()
    box = bounds or _bounds(ref if ref is not None else pts)
    xs, ys, grid = _grid(box, resolution)
    device = getattr(model, "device", torch.device("cpu"))
    log_p = log_likelihood(model, grid.to(device=device, dtype=torch.get_default_dtype()),
                           **kwargs)
    fig = Figure(figsize=(12.5, 4), layout="constrained")
    ax_density, ax_data, ax_samples = fig.subplots(1, 3, sharex=True, sharey=True)
    density = log_p.exp().reshape(resolution, resolution).cpu().numpy()
    mesh = ax_density.pcolormesh(xs, ys, density, shading="auto", cmap="viridis")
    fig.colorbar(mesh, ax=ax_density, label="density p(x)", shrink=0.85)
    ax_density.set_title("model density")
    ax_density.set_ylabel("x2")
    for ax, points, name in [(ax_data, ref, "data"), (ax_samples, pts, "samples")]:
        if points is not None:
            sns.scatterplot(x=points[:, 0].numpy(), y=points[:, 1].numpy(), s=4, alpha=0.4,
                            linewidth=0, ax=ax)
        ax.set_title(name)
    for ax in (ax_density, ax_data, ax_samples):
        ax.set_xlabel("x1")
        ax.set_xlim(box[0], box[1])
        ax.set_ylim(box[2], box[3])
        ax.set_aspect("equal")
    if title:
        fig.suptitle(title)
    return fig


def _bounds(points: torch.Tensor) -> tuple[float, float, float, float]:
    lo, hi = points.min(0).values, points.max(0).values
    pad = 0.1 * (hi - lo).clamp_min(1e-6)
    lo, hi = lo - pad, hi + pad
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def _grid(box: tuple[float, float, float, float], n: int):
    """Axis values ``[n]`` and the grid points ``[n*n, 2]`` (rows: y, columns: x)."""
    xs = torch.linspace(box[0], box[1], n, dtype=torch.float64)
    ys = torch.linspace(box[2], box[3], n, dtype=torch.float64)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return xs.numpy(), ys.numpy(), torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1)
