"""An energy model's sampling chains as a figure: a row of snapshots per chain.

``ppgen sample`` draws from an energy model by running Langevin-type chains from its Gaussian
base (:meth:`~ppgen.energy.EnergyModel.sample_chains`); this figure shows them evolving: for
images, one chain per row, the start (a draw of the base) left and the sample right; for 2-D
data, the chains' paths over the model's density.

Example:
    >>> from ppgen.models import EBM
    >>> ebm = EBM(4, hidden_dims=(8,))
    >>> langevin_chain(ebm, 3, columns=5, steps=8).shape
    torch.Size([3, 5, 4])
"""

from __future__ import annotations

import math
from typing import Any

import torch
from matplotlib.figure import Figure

from ppgen import plots

__all__ = ["langevin_chain", "langevin_chain_figure"]


def langevin_chain(model: Any, n: int, columns: int = 10, **options: Any) -> torch.Tensor:
    """``columns`` evenly spaced states ``[n, columns, D]`` of ``n`` chains of ``model``'s
    sampler (its declared options, overridden by ``options``), the start and the end included."""
    steps = model.sample_arguments(n, options)["steps"]
    every = max(1, math.ceil(steps / max(columns - 1, 1)))
    path = model.sample_chains(n, record_every=every, **options)  # [frames, n, D]
    keep = torch.linspace(0, path.shape[0] - 1, min(columns, path.shape[0])).round().long()
    return path[keep].transpose(0, 1).cpu()


def langevin_chain_figure(model: Any, n: int = 6, columns: int = 10,
                          image_shape: tuple[int, ...] | None = None,
                          vmax: float | None = None, **options: Any) -> Figure:
    """:func:`langevin_chain` as a figure: an image grid (one chain per row) for images, the
    paths over the data plane for 2-D data."""
    chain = langevin_chain(model, n, columns, **options)
    steps = model.sample_arguments(n, options)["steps"]
    title = (f"{type(model).__name__}: {n} sampling chains from the base ({steps} steps of "
             f"{model.sample_arguments(n, options)['transition']})")
    if image_shape:
        fig = plots.image_grid(chain.reshape(-1, chain.shape[-1]), tuple(image_shape),
                               ncols=chain.shape[1], vmax=vmax, title=title)
        marks = torch.linspace(0, steps, chain.shape[1]).round().long().tolist()
        for ax, step in zip(fig.axes, marks):
            ax.set_title(f"step {step}", fontsize="small")
        return fig
    if chain.shape[-1] != 2:
        raise ValueError("a chain figure needs images (image_shape) or 2-D data")
    fig = Figure(figsize=(5.5, 5), layout="constrained")
    ax = fig.subplots()
    for k in range(n):
        ax.plot(chain[k, :, 0], chain[k, :, 1], lw=0.8, marker=".", ms=3)
        ax.scatter(chain[k, 0, 0], chain[k, 0, 1], s=12, color="tab:red")
        ax.scatter(chain[k, -1, 0], chain[k, -1, 1], s=16, marker="x", color="black")
    ax.set(aspect="equal", title=title + "\n(red: start, x: end)")
    return fig
