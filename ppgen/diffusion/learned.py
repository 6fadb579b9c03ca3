"""A learned monotone noise schedule: the log signal-to-noise ratio of a continuous-time
diffusion (Kingma, Salimans, Poole & Ho, 2021, "Variational Diffusion Models",
arXiv:2107.00630, section 5.1 and appendix H).

The forward process of a variance-preserving diffusion at time ``t in [0, 1]`` is ``q(z_t | x) =
N(alpha_t x, sigma_t^2 I)`` with ``alpha_t^2 = sigmoid(-gamma(t))`` and ``sigma_t^2 =
sigmoid(gamma(t))``, so ``gamma(t) = -log SNR(t)`` must increase with ``t``. Here::

    gamma(t) = gamma_0 + (gamma_1 - gamma_0) g(t),   g(t) = (f(t) - f(0)) / (f(1) - f(0))
    f(t) = w_1 t + (1 / F) sum_j w_3j (2 sigmoid(w_2j (2 t - 1) + b_2j) - 1)

with every ``w`` positive (the paper's monotone MLP: ``|w|``, one linear unit plus ``F``
sigmoid units), so ``g`` rises from 0 to 1 and the endpoints ``gamma_0 < gamma_1`` are
parameters of their own (``gamma_1 = gamma_0 + softplus(.)``). The continuous-time bound depends
on the schedule only through its endpoints; the shape ``g`` sets the variance of the bound's
Monte Carlo estimate, which VDM minimises: :meth:`LearnedSchedule.gamma_and_slope` can route to
the shape the gradient of the *squared* loss (``2 L dL/deta``, the gradient of ``E[L^2]``, and
so of the variance, since ``E[L]`` does not depend on the shape) while the endpoints and every
other parameter get the gradient of ``L`` itself.

Example:
    >>> schedule = LearnedSchedule(-10.0, 6.0)
    >>> gamma = schedule(torch.linspace(0, 1, 5))
    >>> bool((gamma.diff() > 0).all()), round(float(gamma[0]), 4), round(float(gamma[-1]), 4)
    (True, -10.0, 6.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["LearnedSchedule", "scale_gradient"]


def scale_gradient(value: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``value`` unchanged, its gradient multiplied by ``scale`` (broadcast) on the way back."""
    frozen = value.detach()
    return frozen + scale * (value - frozen)


def _inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


class LearnedSchedule(nn.Module):
    """``gamma(t) = -log SNR(t)``, monotone in ``t``, learned (VDM's ``NoiseSchedule_NNet``).

    Args:
        gamma_min: initial ``gamma_0`` (the least noise, at ``t = 0``).
        gamma_max: initial ``gamma_1`` (the most noise, at ``t = 1``); ``> gamma_min``.
        features: ``F``, the sigmoid units of the shape (1024 in the paper).
        learned_shape: ``False`` keeps ``g(t) = t`` (a learned linear schedule: only the
            endpoints are parameters).

    Every output is in the dtype and on the device of ``t``'s parameters; ``t`` is any shape.
    """

    def __init__(self, gamma_min: float = -13.3, gamma_max: float = 5.0, features: int = 1024,
                 learned_shape: bool = True) -> None:
        super().__init__()
        if not gamma_max > gamma_min:
            raise ValueError(f"a noise schedule needs gamma_max > gamma_min, got {gamma_min} "
                             f"and {gamma_max}")
        if features < 1:
            raise ValueError(f"features must be >= 1, got {features}")
        self.features, self.learned_shape = features, learned_shape
        self.gamma_0 = nn.Parameter(torch.tensor(float(gamma_min)))
        self.width = nn.Parameter(torch.tensor(_inverse_softplus(gamma_max - gamma_min)))
        if learned_shape:  # initialised as in the paper: nearly linear
            self.w1 = nn.Parameter(torch.tensor(float(gamma_max - gamma_min)))
            self.w2 = nn.Parameter(torch.randn(features))
            self.b2 = nn.Parameter(torch.zeros(features))
            self.w3 = nn.Parameter(torch.randn(features))

    @property
    def gamma_1(self) -> torch.Tensor:
        """``gamma(1)``: a scalar tensor above ``gamma_0``."""
        return self.gamma_0 + F.softplus(self.width)

    def endpoints(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(gamma(0), gamma(1))`` as scalar tensors."""
        return self.gamma_0, self.gamma_1

    def _unnormalised(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``f(t)`` and ``f'(t)`` of the monotone MLP."""
        h = torch.sigmoid((2 * t.unsqueeze(-1) - 1) * self.w2.abs() + self.b2)
        w3 = self.w3.abs() / self.features
        f = self.w1.abs() * t + ((2 * h - 1) * w3).sum(-1)
        slope = self.w1.abs() + (4 * h * (1 - h) * self.w2.abs() * w3).sum(-1)
        return f, slope

    def shape(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``g(t)`` in ``[0, 1]`` and ``g'(t) > 0``, both of ``t``'s shape."""
        if not self.learned_shape:
            return t, torch.ones_like(t)
        f, slope = self._unnormalised(t)
        ends, _ = self._unnormalised(torch.stack([t.new_zeros(()), t.new_ones(())]))
        span = ends[1] - ends[0]
        return (f - ends[0]) / span, slope / span

    def gamma_and_slope(
        self, t: torch.Tensor,
        shape_gradient: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``gamma(t)`` and ``gamma'(t)`` for times ``t`` (any shape).

        Args:
            t: times in ``[0, 1]``.
            shape_gradient: applied to ``g(t)`` and ``g'(t)``: a map that keeps their values and
                changes the gradient reaching the shape's parameters (e.g. multiplies it by
                ``2 L``, turning the gradient of a loss ``L`` into that of ``L^2``; see
                :func:`scale_gradient`). ``None``: unchanged.
        """
        g, slope = self.shape(t)
        if shape_gradient is not None and self.learned_shape:
            g, slope = shape_gradient(g), shape_gradient(slope)
        gamma_0, gamma_1 = self.endpoints()
        return gamma_0 + (gamma_1 - gamma_0) * g, (gamma_1 - gamma_0) * slope

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """``gamma(t)``, of ``t``'s shape."""
        return self.gamma_and_slope(t)[0]

    def extra_repr(self) -> str:
        return f"features={self.features}, learned_shape={self.learned_shape}"
