"""The per-datum best diagonal Gaussian ``q*(z_n | x_n)`` of an amortisation-gap analysis.

``q*`` maximises each datum's ELBO (:func:`ppgen.elbo`) over ``N(loc_n, diag scale_n^2)``,
starting from the amortised guide's moments (Cremer, Li & Duvenaud, 2018, arXiv:1801.03558).
The fit is the training engine's (:func:`ppgen.analysis.fitting.fit_full_batch`): the free
Gaussians form a small :class:`~ppgen.GenerativeModel`, the negated ELBO summed over the data is
the :class:`~ppgen.objective.Objective`, and the engine's row shuffle carries each datum's
index (``rows``) so that every datum keeps its own Gaussian and keyword arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ppgen.analysis.fitting import fit_full_batch
from ppgen.evaluate import Structure, elbo
from ppgen.objective import Objective
from ppgen.protocol import GenerativeModel

__all__ = ["OptimalGaussians", "fit_optimal", "rows_of"]


class OptimalGaussians(GenerativeModel, register=False):
    """``q*(z_n | x_n) = N(loc_n, diag scale_n^2)``, one free Gaussian per datum.

    A :class:`~ppgen.GenerativeModel` only so that the training engine can fit it: its state is
    the two parameters ``loc_`` and ``log_scale_`` (``[N, L]``); it is no model of data, and
    stays out of the zoo's registry. Its :meth:`guide` is the guide program of all the data.

    Args:
        site: the latent site's name.
        loc: ``[N, L]`` initial means.
        scale: ``[N, L]`` initial standard deviations.
        data_dim: the ``"data"`` plate's dimension in the programs.
    """

    name = "optimal-diagonal-gaussians"

    def __init__(self, site: str, loc: torch.Tensor, scale: torch.Tensor, data_dim: int):
        super().__init__()
        self.site, self.data_dim = site, data_dim
        self.loc_ = nn.Parameter(loc.detach().clone())
        self.log_scale_ = nn.Parameter(scale.detach().log())

    @property
    def loc(self) -> torch.Tensor:
        """``[N, L]`` the means (detached)."""
        return self.loc_.detach()

    @property
    def scale(self) -> torch.Tensor:
        """``[N, L]`` the standard deviations (detached)."""
        return self.log_scale_.detach().exp()

    def guide(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """The guide program of all ``N`` data, in order (``x: [N, ...]``)."""
        return self._sample(x, self.loc_, self.log_scale_)

    def rows(self, index: torch.Tensor) -> Callable[..., torch.Tensor]:
        """The guide program of the data ``index`` (``[B]``), in that order."""
        return lambda x, **kwargs: self._sample(x, self.loc_[index], self.log_scale_[index])

    def _sample(self, x: torch.Tensor, loc: torch.Tensor, log_scale: torch.Tensor) -> Any:
        with pyro.plate("data", x.shape[0], dim=self.data_dim, device=x.device):
            return pyro.sample(self.site, dist.Normal(loc, log_scale.exp()).to_event(1))

    def distribution(self) -> dist.MultivariateNormal:
        """``q*`` as a batch ``[N]`` of multivariate normals (detached)."""
        return dist.MultivariateNormal(self.loc, scale_tril=torch.diag_embed(self.scale))

    def draws(self, S: int) -> torch.Tensor:
        """``[S, N, L]``."""
        return self.loc + self.scale * torch.randn((S, *self.loc.shape), dtype=self.loc.dtype,
                                                   device=self.loc.device)

    def get_config(self) -> dict[str, Any]:
        return {"site": self.site, "shape": list(self.loc_.shape)}


class _PerDatumELBO(Objective):
    """``loss = -sum_n ELBO_n[q*]`` (:func:`ppgen.elbo`), each datum with its own Gaussian.

    The engine passes ``rows`` (``[B]``, the data's original indices, shuffled with them): they
    pick each datum's Gaussian and its rows of the programs' per-datum keyword arguments.
    """

    name = "per-datum-elbo"
    loss_reduction = "sum"

    def __init__(
        self, program: Any, structure: Structure, num_particles: int, kwargs: dict[str, Any],
        N: int,
    ) -> None:
        self.source, self.structure = program.source, structure
        self.num_particles, self.kwargs, self.N = num_particles, kwargs, N
        self.check = True  # validate the data once, on the first step

    def loss(
        self, model: OptimalGaussians, batch: torch.Tensor, rows: torch.Tensor
    ) -> torch.Tensor:
        value = elbo(self.source, model.rows(rows), batch, num_particles=self.num_particles,
                     analytic_kl=True, differentiable=True, batch_size=batch.shape[0],
                     check=self.check, structure=self.structure,
                     **rows_of(self.kwargs, self.N, rows))
        self.check = False
        return -value.sum()


def fit_optimal(
    program: Any,
    x: torch.Tensor,
    kwargs: dict[str, Any],
    site: str,
    structure: Structure,
    amortized: torch.Tensor,
    num_steps: int,
    lr: float,
    particles: int,
) -> tuple[OptimalGaussians, np.ndarray]:
    """Maximise each datum's ELBO over a diagonal Gaussian, from the guide's moments.

    Args:
        program: the resolved model/guide pair (:func:`ppgen.evaluate.resolve`).
        x: data ``[N, ...]``.
        kwargs: keyword arguments of the programs (tensors with ``N`` rows are per datum).
        site: the latent site (event shape ``[L]``, in the ``"data"`` plate).
        structure: the program's structure (:func:`ppgen.evaluate.inspect_structure`).
        amortized: ``[S, N, L]`` draws of the amortised guide (the starting moments).
        num_steps: full-batch Adam steps (engine epochs).
        lr: initial learning rate (decays to ``lr / 100``).
        particles: ELBO particles per datum and step.

    Returns:
        The fitted ``q*`` and ``[num_steps]`` the negative ELBO summed over the data per step.

    Raises:
        TrainingError: the ELBO or a parameter became non-finite (the engine's guard).
    """
    q = OptimalGaussians(site, amortized.mean(0), amortized.std(0), structure.data_dim)
    objective = _PerDatumELBO(program, structure, particles, kwargs, x.shape[0])
    rows = torch.arange(x.shape[0], device=x.device)
    losses = fit_full_batch(q, objective, x, num_steps=num_steps, lr=lr,
                            train_kwargs={"rows": rows})
    return q, losses


def rows_of(kwargs: dict[str, Any], N: int, index: Any) -> dict[str, Any]:
    """The rows ``index`` of the per-datum keyword arguments (tensors with ``N`` rows, the
    evaluation layer's rule); the others unchanged."""
    return {k: v[index] if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == N
            else v for k, v in kwargs.items()}
