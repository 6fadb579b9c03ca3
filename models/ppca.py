"""Probabilistic PCA: the linear-Gaussian latent-variable model, fitted in closed form.

``z ~ N(0, I_L)``, ``x | z ~ N(W z + mu, sigma^2 I_D)``: a VAE whose decoder is linear. Its
marginal ``p(x) = N(mu, W W^T + sigma^2 I)`` and its posterior ``p(z | x)`` are Gaussian in
closed form, and so is the maximum-likelihood fit (Tipping & Bishop, 1999, "Probabilistic
Principal Component Analysis", JRSS B 61(3)): the leading eigenvectors of the data covariance,
with ``sigma^2`` the mean of the discarded eigenvalues. The guide is the exact posterior, so
every importance weight equals ``p(x)`` and ``ppgen.log_likelihood`` is exact for any number of
particles — the model is also the closed-form reference of the evaluation layer's tests.

It is a strong density on little data: as an anomaly detector on the one-class digits it
matches the best classic detectors (``benchmarks/anomaly.py``).

Example:
    >>> import torch
    >>> model = PPCA(5, latent_dim=2).fit_closed_form(torch.randn(100, 5))
    >>> model.sample(3).shape
    torch.Size([3, 5])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ppgen.errors import ModelError
from ppgen.protocol import GenerativeModel, ModelKind

if TYPE_CHECKING:
    from ppgen.data import DataInfo

__all__ = ["PPCA", "LATENT_GRID"]

#: latent sizes tried by ``latent_dim="auto"`` (those below the data dimension)
LATENT_GRID = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)


class PPCA(GenerativeModel):
    """Probabilistic PCA over flat real data ``[N, D]``.

    Args:
        num_dims: ``D``.
        latent_dim: ``L < D``, or ``"auto"``: chosen by validation log-likelihood over
            :data:`LATENT_GRID` when fitted with validation data (else ``min(D - 1, 8)``).
        min_variance: floor of the noise variance ``sigma^2`` (and of the posterior's).

    Attributes:
        loc: ``mu [D]``; weight: ``W [D, L]``; log_variance: ``log sigma^2 []``.
    """

    kind = ModelKind.LATENT
    default_objective = "closed-form"

    def __init__(
        self, num_dims: int, latent_dim: int | str = "auto", min_variance: float = 1e-6
    ) -> None:
        super().__init__()
        if num_dims < 2:
            raise ModelError(f"PPCA needs at least 2 dimensions, got num_dims={num_dims}")
        if not min_variance > 0:
            raise ModelError(f"min_variance must be > 0, got {min_variance}")
        self.num_dims = num_dims
        self.latent_dim = latent_dim
        self.min_variance = min_variance
        L = min(num_dims - 1, 8) if latent_dim == "auto" else _check_latent(latent_dim, num_dims)
        self.loc = nn.Parameter(torch.zeros(num_dims))
        self.weight = nn.Parameter(torch.randn(num_dims, L) * 0.1)
        self.log_variance = nn.Parameter(torch.zeros(()))

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size([self.num_dims])

    @property
    def num_latent(self) -> int:
        """``L``, the latent dimension in use."""
        return self.weight.shape[1]

    # ----------------------------------------------------------------- the programs
    def variance(self) -> torch.Tensor:
        """``sigma^2``, floored at ``min_variance``."""
        return self.log_variance.exp().clamp_min(self.min_variance)

    def model(self, x: torch.Tensor | None = None, num_samples: int | None = None) -> torch.Tensor:
        """``z ~ N(0, I)``, ``x ~ N(W z + mu, sigma^2 I)`` for every row of the ``"data"`` plate."""
        n = x.shape[0] if x is not None else (num_samples or 1)
        zeros = self.loc.new_zeros(self.num_latent)
        with pyro.plate("data", n, device=self.loc.device):
            z = pyro.sample("z", dist.Normal(zeros, torch.ones_like(zeros)).to_event(1))
            mean = z @ self.weight.T + self.loc
            scale = self.variance().sqrt().expand(mean.shape)
            return pyro.sample("x", dist.Normal(mean, scale).to_event(1), obs=x)

    def guide(self, x: torch.Tensor) -> torch.Tensor:
        """The exact posterior ``p(z | x) = N(M^-1 W^T (x - mu), sigma^2 M^-1)``,
        ``M = W^T W + sigma^2 I``."""
        with pyro.plate("data", x.shape[0], device=x.device):
            return pyro.sample("z", self.posterior(x))

    def posterior(self, x: torch.Tensor) -> dist.MultivariateNormal:
        """``p(z | x)``: batch ``[N]``, event ``[L]``."""
        var = self.variance()
        M = self.weight.T @ self.weight + var * self._eye(self.num_latent)
        chol = _cholesky(M)
        mean = torch.cholesky_solve(((x - self.loc) @ self.weight).T, chol).T
        cov = var * torch.cholesky_inverse(chol)
        return dist.MultivariateNormal(mean, scale_tril=_cholesky(cov))

    @torch.no_grad()
    def encode(self, x: Any) -> torch.Tensor:
        """Posterior means ``E[z | x] = M^-1 W^T (x - mu)`` ``[N, L]`` of data ``x: [N, D]``
        (validated with :meth:`check_data`): what :func:`ppgen.represent` returns."""
        x = self.check_data(x).to(self.loc.device)
        return self.posterior(x).mean

    def marginal(self) -> dist.MultivariateNormal:
        """``p(x) = N(mu, W W^T + sigma^2 I)``: batch ``[]``, event ``[D]``."""
        cov = self.weight @ self.weight.T + self.variance() * self._eye(self.num_dims)
        return dist.MultivariateNormal(self.loc, scale_tril=_cholesky(cov))

    def _eye(self, n: int) -> torch.Tensor:
        return torch.eye(n, dtype=self.loc.dtype, device=self.loc.device)

    # ----------------------------------------------------------------- closed form
    @torch.no_grad()
    def fit_closed_form(self, x: Any, val: Any = None) -> PPCA:
        """Maximum likelihood (Tipping & Bishop, 1999) from the eigendecomposition of the
        data covariance; with ``latent_dim="auto"`` and ``val``, the latent size of
        :data:`LATENT_GRID` with the best validation log-likelihood.

        Args:
            x: training data ``[N, D]``.
            val: validation data ``[M, D]`` (for ``latent_dim="auto"``).

        Returns:
            ``self``; ``latent_scores_`` holds the validation NLL per latent size after a
            search.
        """
        x = self.check_data(x, "training data").to(self.loc.device, torch.float64)
        mean = x.mean(0)
        evals, evecs = torch.linalg.eigh((x - mean).T @ (x - mean) / x.shape[0])
        evals, evecs = evals.flip(0).clamp_min(0), evecs.flip(1)
        if self.latent_dim == "auto" and val is not None:
            val = self.check_data(val, "validation data").to(self.loc.device)
            scores = {}
            for L in (L for L in LATENT_GRID if L < self.num_dims):
                self._load(mean, evals, evecs, L)
                scores[L] = float(-self.marginal().log_prob(val).mean())
            self.latent_scores_ = scores
            L = min(scores, key=scores.__getitem__)
        else:
            L = self.num_latent if self.latent_dim == "auto" else int(self.latent_dim)
        self._load(mean, evals, evecs, L)
        return self

    def _load(self, mean, evals, evecs, L: int) -> None:
        var = evals[L:].mean().clamp_min(self.min_variance)
        weight = evecs[:, :L] * (evals[:L] - var).clamp_min(0).sqrt()
        dtype = self.loc.dtype
        self.loc.data = mean.to(dtype)
        self.weight = nn.Parameter(weight.to(dtype))
        self.log_variance.data = var.log().to(dtype)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments; an ``"auto"`` model that was fitted records its chosen ``L``."""
        return {"num_dims": self.num_dims, "latent_dim": self.num_latent,
                "min_variance": self.min_variance}

    @classmethod
    def for_data(cls, info: DataInfo, **kwargs: Any) -> GenerativeModel:
        """PPCA for flat real data (``"continuous"``; levels and bits are read as reals)."""
        if len(info.event_shape) != 1:
            raise ModelError(
                f"PPCA models flat data but one datum has shape {tuple(info.event_shape)}: "
                "flatten the data to [N, D] first"
            )
        return cls(info.num_dims, **kwargs)


def _cholesky(matrix: torch.Tensor) -> torch.Tensor:
    """The Cholesky factor of a covariance that is positive definite by construction (its noise
    variance is floored at ``min_variance > 0``): ``torch.linalg.cholesky`` would check that on
    the host, a host synchronisation per call on a GPU."""
    return torch.linalg.cholesky_ex(matrix).L


def _check_latent(latent_dim: Any, num_dims: int) -> int:
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or not 1 <= latent_dim:
        raise ModelError(f"latent_dim must be a positive int or 'auto', got {latent_dim!r}")
    if latent_dim >= num_dims:
        raise ModelError(f"latent_dim must be below num_dims={num_dims}, got {latent_dim}")
    return latent_dim
