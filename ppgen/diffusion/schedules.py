"""Noise schedules: the variances ``beta_t`` of the forward process, ``t = 1..T``.

* ``linear`` — Ho, Jain & Abbeel, 2020, "Denoising Diffusion Probabilistic Models"
  (arXiv:2006.11239): ``beta`` rises linearly from ``1e-4`` to ``0.02`` over ``T = 1000`` steps
  (both ends scaled by ``1000 / T`` for other ``T``, as in improved-diffusion, so the process
  ends at the same noise level).
* ``cosine`` — Nichol & Dhariwal, 2021, "Improved Denoising Diffusion Probabilistic Models"
  (arXiv:2102.09672), eq. 17: ``alpha_bar(t) = f(t) / f(0)`` with
  ``f(t) = cos((t / T + s) / (1 + s) * pi / 2)^2``, ``s = 0.008``, and
  ``beta_t = min(1 - alpha_bar(t) / alpha_bar(t - 1), 0.999)``.

Example:
    >>> betas = make_betas("cosine", 100)
    >>> betas.shape, betas.dtype
    (torch.Size([100]), torch.float64)
"""

from __future__ import annotations

import math
from enum import Enum

import torch

__all__ = ["Schedule", "make_betas", "linear_betas", "cosine_betas"]

#: the cosine schedule's offset ``s`` (Nichol & Dhariwal, 2021, section 3.2)
COSINE_OFFSET = 0.008
#: the cosine schedule's largest ``beta`` (avoids a singularity at ``t = T``)
MAX_BETA = 0.999


class Schedule(str, Enum):
    """How the forward variances ``beta_1..beta_T`` are laid out."""

    LINEAR = "linear"  #: Ho et al., 2020
    COSINE = "cosine"  #: Nichol & Dhariwal, 2021


def linear_betas(num_steps: int) -> torch.Tensor:
    """Ho et al.'s linear schedule: ``[T]`` float64, from ``1e-4`` to ``0.02`` at ``T = 1000``
    (both scaled by ``1000 / T``; capped at ``0.999`` for ``T < 21``, where the scaled end
    would reach 1)."""
    scale = 1000.0 / num_steps
    betas = torch.linspace(scale * 1e-4, scale * 0.02, num_steps, dtype=torch.float64)
    return betas.clamp(max=MAX_BETA)


def cosine_betas(num_steps: int, offset: float = COSINE_OFFSET) -> torch.Tensor:
    """Nichol & Dhariwal's cosine schedule: ``[T]`` float64 (eq. 17)."""
    t = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    f = torch.cos((t + offset) / (1 + offset) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=MAX_BETA)


def make_betas(schedule: Schedule | str, num_steps: int) -> torch.Tensor:
    """The variances ``beta_1..beta_T`` of ``schedule``: ``[T]`` float64.

    Raises:
        ValueError: an unknown schedule or ``num_steps < 1``.
    """
    if num_steps < 1:
        raise ValueError(f"a diffusion needs num_steps >= 1, got {num_steps}")
    schedule = Schedule(schedule)
    return linear_betas(num_steps) if schedule is Schedule.LINEAR else cosine_betas(num_steps)
