"""The tractable base of an energy model: a Gaussian fitted to the data (:class:`GaussianBase`).

Annealed importance sampling starts from it, Langevin chains are initialised from it and run in
its whitened coordinates ``z = L^{-1} (x - mu)`` (``x = mu + L z``, ``L`` the Cholesky factor of
its covariance), so step sizes are free of the data's scale and correlations: a target
``p(x) ∝ q_0(x) exp(h(x))`` becomes ``π(z) ∝ N(z; 0, I) exp(h(mu + L z))``.

Example:
    >>> x = torch.randn(500, 2) * torch.tensor([3.0, 0.5]) + 1.0
    >>> base = GaussianBase.fit(x)
    >>> z = base.whiten(x)
    >>> bool(torch.allclose(base.to_data(z), x, atol=1e-4))
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["GaussianBase", "fit_gaussian"]

#: weight of the diagonal in the fitted covariance (shrinkage towards a diagonal: a batch of
#: fewer rows than dimensions still gives a proper, well-conditioned Gaussian)
SHRINKAGE = 0.05
#: floor of the fitted variances, relative to their mean
MIN_VARIANCE = 1e-4


def fit_gaussian(x: torch.Tensor, shrinkage: float = SHRINKAGE) -> tuple[torch.Tensor,
                                                                         torch.Tensor]:
    """Mean ``[D]`` and Cholesky factor ``[D, D]`` of the covariance of ``x: [N, D]``, shrunk
    towards its diagonal by ``shrinkage`` and floored, computed on ``x``'s device without host
    checks (``cholesky_ex``)."""
    x = x.reshape(x.shape[0], -1).to(torch.float32)
    loc = x.mean(0)
    centred = x - loc
    cov = centred.T @ centred / max(x.shape[0] - 1, 1)
    diag = torch.diagonal(cov)
    floor = MIN_VARIANCE * diag.mean().clamp_min(1e-12)
    cov = (1 - shrinkage) * cov + torch.diag_embed(shrinkage * diag + floor)
    return loc, torch.linalg.cholesky_ex(cov)[0]


@dataclass(frozen=True)
class GaussianBase:
    """``q_0 = N(loc, L L^T)`` over flat data ``[D]``, with its whitening map.

    Attributes:
        loc: ``[D]`` mean.
        scale_tril: ``[D, D]`` lower-triangular ``L``.
    """

    loc: torch.Tensor
    scale_tril: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor, shrinkage: float = SHRINKAGE) -> GaussianBase:
        """The base fitted to ``x: [N, D]`` (:func:`fit_gaussian`)."""
        return cls(*fit_gaussian(x, shrinkage))

    @property
    def num_dims(self) -> int:
        return self.loc.shape[-1]

    def to_data(self, z: torch.Tensor) -> torch.Tensor:
        """``x = loc + L z`` for whitened ``z: [N, D]``."""
        return self.loc + z @ self.scale_tril.T

    def whiten(self, x: torch.Tensor) -> torch.Tensor:
        """``z = L^{-1} (x - loc)`` for ``x: [N, D]``."""
        centred = (x - self.loc).T
        return torch.linalg.solve_triangular(self.scale_tril, centred, upper=False).T

    def log_det(self) -> torch.Tensor:
        """``log |det L|`` (0-d)."""
        return torch.diagonal(self.scale_tril).abs().log().sum()

    def white_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """``log q_0(x)`` at ``x = loc + L z``, from the whitened ``z: [N, D]`` -> ``[N]``."""
        norm = 0.5 * self.num_dims * math.log(2 * math.pi)
        return -0.5 * (z * z).sum(-1) - norm - self.log_det()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log q_0(x)`` for ``x: [N, D]`` -> ``[N]``."""
        return self.white_log_prob(self.whiten(x))

    def sample_white(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` whitened draws ``[n, D]`` (standard normal) on the base's device."""
        return torch.randn(n, self.num_dims, device=self.loc.device, dtype=self.loc.dtype,
                           generator=generator)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws ``[n, D]`` of ``q_0``."""
        return self.to_data(self.sample_white(n, generator))
