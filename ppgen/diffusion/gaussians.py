"""Gaussian pieces of the diffusion bound: the KL between diagonal Gaussians, a diagonal
Gaussian as one event (a latent site of the programs) and the discretised Gaussian decoder over a
data set's levels.

The decoder ``p(x_0 | x_1)`` of Ho et al., 2020 (arXiv:2006.11239, eq. 13) puts the mass of a
Gaussian ``N(mu, sigma^2)`` in model space on the data's ``K`` levels: level ``k`` sits at
``c_k = -1 + 2 k / (K - 1)`` and owns the bin ``[c_k - h, c_k + h)`` of half-width
``h = 1 / (K - 1)``, except that the first bin reaches down to ``-inf`` and the last up to
``+inf``, so the probabilities of the ``K`` levels sum to one (17 levels for the digits: bins
of half-width 1/16 on [-1, 1]; 256 levels and 1/255 for 8-bit images).
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

__all__ = ["normal_kl", "diagonal_normal", "DiscretizedGaussian", "level_values"]

#: floor of a bin's probability inside the log (keeps gradients finite far in the tails)
MIN_PROB = 1e-12


def normal_kl(
    mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor
) -> torch.Tensor:
    """Elementwise ``KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2)))`` in nats.

    All arguments broadcast; the result has their broadcast shape.
    """
    return 0.5 * (
        logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
        + (mean1 - mean2) ** 2 * torch.exp(-logvar2) - 1.0
    )


def diagonal_normal(mean: torch.Tensor, log_var: torch.Tensor) -> TorchDistribution:
    """``N(mean, exp(log_var))`` with independent dimensions: batch ``mean.shape[:-1]``, event
    ``[D]`` (the latent sites ``x_t`` / ``z_t`` of the diffusion programs)."""
    return dist.Normal(mean, torch.exp(0.5 * log_var)).to_event(1)


def level_values(num_levels: int, like: torch.Tensor) -> torch.Tensor:
    """``[K]`` positions ``c_k = -1 + 2 k / (K - 1)`` of the levels, in ``like``'s dtype and
    device."""
    k = torch.arange(num_levels, device=like.device, dtype=like.dtype)
    return 2 * k / (num_levels - 1) - 1


def _log_bin(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """``log(Phi(hi) - Phi(lo))`` for standardised bin edges ``lo < hi`` (``+-inf`` allowed),
    computed on the side of the mean where both tails are small, so neither cancels."""
    flip = lo > 0  # both edges above the mean: use Phi(-lo) - Phi(-hi)
    a = torch.where(flip, -hi, lo)
    b = torch.where(flip, -lo, hi)
    log_b = torch.special.log_ndtr(b)
    log_a = torch.special.log_ndtr(a)
    gap = -torch.expm1(log_a - log_b)
    return log_b + torch.log(gap.clamp(min=MIN_PROB))


class DiscretizedGaussian(TorchDistribution):
    """A Gaussian in model space discretised onto ``K`` levels (``0..K-1``).

    ``P(k) = Phi((c_k + h - mu) / sigma) - Phi((c_k - h - mu) / sigma)`` with the edge bins
    open to ``+-inf`` (see the module docstring). Values are the integer levels.

    Args:
        loc: ``mu`` in model space ``[-1, 1]``, any shape (the batch shape).
        scale: ``sigma > 0``, broadcastable to ``loc``.
        num_levels: ``K >= 2``.

    Example:
        >>> d = DiscretizedGaussian(torch.zeros(3), torch.ones(3), 17)
        >>> total = d.log_prob(torch.arange(17)[:, None]).exp().sum(0)
        >>> torch.allclose(total, torch.ones(3))
        True
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    has_rsample = False

    def __init__(
        self, loc: torch.Tensor, scale: torch.Tensor, num_levels: int,
        validate_args: bool | None = None,
    ) -> None:
        if num_levels < 2:
            raise ValueError(f"a discretised Gaussian needs num_levels >= 2, got {num_levels}")
        self.loc, self.scale = broadcast_all(loc, scale)
        self.num_levels = num_levels
        super().__init__(self.loc.shape, torch.Size(), validate_args=validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self) -> constraints.Constraint:
        return constraints.integer_interval(0, self.num_levels - 1)

    @property
    def half_width(self) -> float:
        """``h = 1 / (K - 1)``: half the distance between neighbouring levels."""
        return 1.0 / (self.num_levels - 1)

    def expand(self, batch_shape, _instance=None) -> DiscretizedGaussian:
        batch_shape = torch.Size(batch_shape)
        return DiscretizedGaussian(self.loc.expand(batch_shape), self.scale.expand(batch_shape),
                                   self.num_levels)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``log P(k)`` for integer levels ``value`` (broadcast against the batch shape)."""
        if self._validate_args:
            self._validate_sample(value)
        k = value.to(self.loc.dtype)
        centre = 2 * k * self.half_width - 1
        inf = torch.full_like(centre, math.inf)
        lo = torch.where(value <= 0, -inf, (centre - self.half_width - self.loc) / self.scale)
        hi = torch.where(value >= self.num_levels - 1, inf,
                         (centre + self.half_width - self.loc) / self.scale)
        return _log_bin(lo, hi)

    @torch.no_grad()
    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        """Levels ``[*sample_shape, *batch_shape]`` (``long``): a Gaussian draw rounded to the
        nearest level (which is exactly a draw from the bins)."""
        shape = self._extended_shape(sample_shape)
        y = self.loc.expand(shape) + self.scale.expand(shape) * torch.randn(
            shape, dtype=self.loc.dtype, device=self.loc.device)
        return self._nearest(y)

    @property
    def mode(self) -> torch.Tensor:
        """The most probable level: the one nearest ``loc``."""
        return self._nearest(self.loc)

    @property
    def mean(self) -> torch.Tensor:
        """``E[k]`` (a float level), summed over the ``K`` levels."""
        levels = torch.arange(self.num_levels, device=self.loc.device)
        probs = self.log_prob(levels.reshape(-1, *([1] * self.loc.dim()))).exp()
        return (probs * levels.reshape(-1, *([1] * self.loc.dim())).to(probs.dtype)).sum(0)

    def _nearest(self, y: torch.Tensor) -> torch.Tensor:
        k = torch.round((y + 1) / (2 * self.half_width))
        return k.clamp(0, self.num_levels - 1).long()
