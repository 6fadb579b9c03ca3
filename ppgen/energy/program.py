"""A user's Pyro program with an unnormalised density, as an energy model (:class:`EnergyProgram`).

A program ``program(x)`` whose sites in the ``"data"`` plate carry ``exp(-E(x))`` — through
``pyro.factor`` terms, an unnormalised distribution as the observed site, or both — defines an
energy model: ``-E(x_n)`` is the sum of its sites' log-probabilities for row ``n``, read off one
trace. The evaluation layer's trace-based estimators would take that sum for a normalised
log-likelihood; wrapped as an :class:`EnergyProgram` (kind ``energy``), the program is routed to
annealed importance sampling instead, like a zoo energy model.

Example:
    >>> import pyro, pyro.distributions as dist
    >>> def ring(x):
    ...     with pyro.plate("data", x.shape[0]):
    ...         r = x.norm(dim=-1)
    ...         pyro.factor("ring", -((r - 2.0) ** 2) / (2 * 0.1**2))
    >>> model = EnergyProgram(ring, num_dims=2)
    >>> model.energy(torch.tensor([[2.0, 0.0], [0.0, 1.0]])).tolist()
    [0.0, 50.0]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from pyro import poutine
from pyro.poutine.subsample_messenger import _Subsample

from ppgen.energy.model import EnergyModel
from ppgen.errors import ModelError

__all__ = ["EnergyProgram"]

DATA_PLATE = "data"


class EnergyProgram(EnergyModel, register=False):
    """``program(x)`` as an energy model over flat data ``[N, D]`` (not saved by
    :meth:`save`: a checkpoint never holds code; keep the program in your script).

    Args:
        program: a Pyro program ``program(x)`` with every sample site observed (or a factor)
            inside ``pyro.plate("data", x.shape[0])``.
        num_dims: ``D``.
        ais: AIS settings (fields of :class:`~ppgen.energy.ais.AISSettings`).

    Fit the Gaussian base to data before estimating ``log Z`` (:meth:`fit_base`); it starts as
    ``N(0, I)``.
    """

    name = "energy-program"

    def __init__(self, program: Callable[[torch.Tensor], Any], num_dims: int,
                 ais: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.program = program
        self.setup_base(num_dims, ais)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """``E(x_n) = -`` the sum of the program's site log-probabilities of row ``n``, ``[N]``."""
        trace = poutine.trace(self.program).get_trace(x)
        total = torch.zeros(x.shape[0], device=x.device)
        for name, site in trace.nodes.items():
            if site["type"] != "sample" or isinstance(site["fn"], _Subsample):
                continue  # the plates' own sites
            if not site["is_observed"]:
                raise ModelError(f"energy program site {name!r} is latent: an energy program "
                                 "observes x and adds factors; latent variables need a "
                                 "latent-variable model and a guide")
            total = total + _per_datum(name, site, x.shape[0])
        return 0.0 - total  # not -total: no negative zeros

    def get_config(self) -> dict[str, Any]:
        raise ModelError("an EnergyProgram wraps your Python function and cannot be saved: keep "
                         "the program in your script and save its parameters yourself")

    def extra_repr(self) -> str:
        return f"program={getattr(self.program, '__name__', self.program)!r}, " \
            f"num_dims={self.num_dims}"


def _per_datum(name: str, site: dict, n: int) -> torch.Tensor:
    """The site's log-probability summed over every dimension but the data plate's, ``[n]``."""
    dims = [f.dim for f in site["cond_indep_stack"] if f.name == DATA_PLATE]
    if not dims:
        raise ModelError(f"energy program site {name!r} is outside pyro.plate('data', N): "
                         "every term of the energy must belong to a row")
    log_prob = site["fn"].log_prob(site["value"])
    missing = -dims[0] - log_prob.dim()  # a scalar or a term broadcast over the plate
    if missing > 0:
        log_prob = log_prob.reshape((1,) * missing + tuple(log_prob.shape))
    rows = log_prob.movedim(dims[0], 0)
    return rows.reshape(rows.shape[0], -1).sum(1).expand(n)
