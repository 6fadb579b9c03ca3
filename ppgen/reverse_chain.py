"""The reverse chain of a diffusion model on images, ``x_T -> ... -> x_1 -> x``, as a figure.

The chain is read off the Pyro trace of the model's own generative program (its reverse
process at every one of its ``T`` steps, not a respaced one): the latent sites ``x_T`` ..
``x_1`` in model space and the data site ``x`` drawn by the decoder. Any model with the
denoising-diffusion programs of :class:`~ppgen.models.DDPM` works (``process``,
``reverse_program(process, x, num_samples)``, latent sites named ``x_<t>``, levels data).

Example:
    >>> from ppgen.models import DDPM
    >>> model = DDPM(64, num_steps=20, num_levels=17, image_shape=(8, 8),
    ...              denoiser={"channels": 8})
    >>> reverse_chain(model, 3, columns=5).shape  # x_20, x_15, x_10, x_5, x_1 and x
    torch.Size([3, 6, 64])
"""

from __future__ import annotations

from typing import Any

import torch
from matplotlib.figure import Figure
from pyro import poutine

from ppgen import plots

__all__ = ["chain_steps", "reverse_chain", "reverse_chain_figure"]


def chain_steps(num_steps: int, columns: int) -> list[int]:
    """``columns`` steps ``t`` from ``T`` down to 1, evenly spaced (``T`` and 1 included).

    Example:
        >>> chain_steps(50, 6)
        [50, 40, 30, 21, 11, 1]
    """
    columns = max(1, min(columns, num_steps))
    if columns == 1:
        return [num_steps]
    grid = torch.linspace(num_steps, 1, columns).round().long().tolist()
    return list(dict.fromkeys(grid))


@torch.no_grad()
def reverse_chain(model: Any, n: int, columns: int = 10) -> torch.Tensor:
    """``n`` runs of the model's reverse program, each kept at ``columns`` steps and its end.

    Args:
        model: a denoising diffusion model of levels data (e.g. ``DDPM``, ``ImprovedDDPM``).
        n: chains (rows of the figure).
        columns: steps kept between ``x_T`` and ``x_1`` (:func:`chain_steps`).

    Returns:
        ``[n, columns + 1, D]`` images on the data's level scale ``0..K-1``: the latent states
        (clamped to the data range) at the kept steps, then the sample ``x``.
    """
    was_training = model.training
    model.eval()
    try:
        trace = poutine.trace(model.reverse_program).get_trace(model.process, None, n)
    finally:
        model.train(was_training)
    top = model.num_levels - 1
    states = [(trace.nodes[f"x_{t}"]["value"].clamp(-1, 1) + 1) * top / 2
              for t in chain_steps(model.process.num_timesteps, columns)]
    return torch.stack([*states, trace.nodes[model.data_site]["value"].to(states[0])], dim=1)


def reverse_chain_figure(model: Any, n: int = 6, columns: int = 10,
                         image_shape: tuple[int, ...] = (8, 8)) -> Figure:
    """:func:`reverse_chain` as an image grid: one chain per row, ``x_T`` left, ``x`` right."""
    chain = reverse_chain(model, n, columns)
    steps = chain_steps(model.process.num_timesteps, columns)
    title = (f"reverse chain of {type(model).__name__}, one run per row "
             f"({len(steps)} of its {model.process.num_timesteps} steps, then the sample)")
    fig = plots.image_grid(chain.reshape(-1, chain.shape[-1]), image_shape,
                           ncols=chain.shape[1], vmax=model.num_levels - 1, title=title)
    for ax, label in zip(fig.axes, [f"$x_{{{t}}}$" for t in steps] + ["x"]):
        ax.set_title(label, fontsize="small")
    return fig
