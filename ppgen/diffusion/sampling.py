"""The DDIM sampler (Song, Meng & Ermon, 2021, "Denoising Diffusion Implicit Models",
arXiv:2010.02502) on any process, respaced or not.

The ancestral sampler is the model's own Pyro program run forwards (``model(x=None)``); DDIM is
the non-Markovian family with the same marginals ``q(x_t | x_0)``: ``eta = 0`` maps each ``x_T``
to one sample deterministically, and ``eta = 1`` with every step is the ancestral sampler with the
forward posterior's variance. The last step hands the predicted ``x_0`` to the model's decoder
over the data: its mode for ``eta = 0``, a draw with the decoder's scale times ``eta``
otherwise (so ``eta = 1`` ends exactly as the ancestral program does).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ppgen.diffusion.denoising import DenoisingModel, reverse_step
from ppgen.diffusion.process import GaussianDiffusion

__all__ = ["ddim_sample", "decode_last"]


@torch.no_grad()
def ddim_sample(model: DenoisingModel, process: GaussianDiffusion, x_T: torch.Tensor,
                eta: float = 0.0, **conditions: Any) -> torch.Tensor:
    """Run DDIM from ``x_T: [n, D]`` over every step of ``process``.

    Args:
        model: the diffusion model (:class:`~ppgen.diffusion.DenoisingModel`).
        process: its process or a respaced one (:meth:`GaussianDiffusion.respace`).
        x_T: ``[n, D]`` starting noise in model space.
        eta: ``>= 0``; 0 is deterministic, 1 the ancestral variance.
        **conditions: the network's conditioning inputs.

    Returns:
        ``[n, ...]`` samples in data units (levels, or reals).
    """
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    x = x_T
    for s in range(process.num_timesteps - 1, 0, -1):
        step = reverse_step(model, x, s, process, **conditions)
        x = process.ddim_step(step, s, eta)
    return decode_last(model, reverse_step(model, x, 0, process, **conditions), eta)


def decode_last(model: DenoisingModel, step: Any, eta: float) -> torch.Tensor:
    """The data from the last reverse step: the decoder's mode for ``eta = 0``, else a draw of
    the decoder with its scale multiplied by ``eta``."""
    if eta == 0:
        return model.decoder(step.mean, 0.5 * step.log_variance).mode
    log_scale = 0.5 * step.log_variance + math.log(eta)
    return model.decoder(step.mean, log_scale).sample()
