"""Variational posteriors: a Pyro autoguide fitted with ``Trace_ELBO``, then sampled.

Sites marked for enumeration (``@config_enumerate`` mixtures) are hidden from the autoguide and
summed out of the ELBO (``TraceEnum_ELBO``), as NUTS sums them out of its potential.

Parameter hygiene: the guide is built under ``pyro.settings.context(module_local_params=True)``,
so its parameters live in the guide module and never in Pyro's global parameter store; any
``pyro.param`` the user's model calls itself is confined to a fresh, temporary store by
``pyro.get_param_store().scope()``. Nothing leaks between calls, and the caller's own store is
restored afterwards.

Training is the one training engine's (:func:`ppgen.analysis.fitting.fit_full_batch`): full-data
Adam steps on ``Trace_ELBO().differentiable_loss`` with the rate decaying to ``lr / 100``, its
NaN/inf guard and history. The latents are global, so the engine sees the data set as one row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.infer import Predictive, Trace_ELBO, TraceEnum_ELBO
from pyro.infer.autoguide import AutoIAFNormal, AutoMultivariateNormal, AutoNormal

from ppgen.analysis.fitting import fit_full_batch
from ppgen.evaluate.enumeration import is_enumerated
from ppgen.objective import Objective
from ppgen.protocol import GenerativeModel

__all__ = ["GUIDES", "VIDraws", "fit_guide"]

#: The guide families ``posterior(..., method="svi", guide=...)`` accepts.
GUIDES: dict[str, Callable[[Any], Any]] = {
    "normal": AutoNormal,
    "mvn": AutoMultivariateNormal,
    "flow": lambda model: AutoIAFNormal(model, num_transforms=2),
}


#: The engine's training data: the whole data set as a single (placeholder) row.
_ONE_ROW = (1,)


@dataclass
class VIDraws:
    """Draws from a fitted guide.

    Attributes:
        samples: ``{site: [C, D, *shape]}`` (independent draws, split into ``C`` rows so the
            layout matches MCMC's).
        losses: ``[num_steps]`` negative ELBO per step.
    """

    samples: dict[str, np.ndarray]
    losses: np.ndarray


def fit_guide(
    model: Any,
    args: tuple,
    kwargs: dict[str, Any],
    *,
    guide: str,
    num_samples: int,
    num_chains: int,
    seed: int,
    num_steps: int = 2000,
    lr: float = 0.02,
    num_particles: int = 1,
    progress: bool = False,
) -> VIDraws:
    """Fit an autoguide to ``model(*args, **kwargs)`` and draw ``num_chains * num_samples``.

    Args:
        model: the Pyro program.
        args: positional arguments of the program.
        kwargs: keyword arguments of the program.
        guide: ``"normal"`` (mean-field), ``"mvn"`` (full covariance) or ``"flow"`` (inverse
            autoregressive flow).
        num_samples: draws per row ``D``.
        num_chains: rows ``C``.
        seed: the seed of the fit and of the draws.
        num_steps: Adam steps.
        lr: Adam learning rate.
        num_particles: ELBO particles per step.
        progress: a progress bar of the steps on a terminal.

    Raises:
        TrainingError: the ELBO or a parameter became non-finite (the engine's NaN/inf guard).
    """
    total = num_chains * num_samples
    with torch.random.fork_rng(devices=[]), pyro.get_param_store().scope(), \
            pyro.settings.context(module_local_params=True):
        torch.manual_seed(seed)
        hidden, nesting = _enumerated(model, args, kwargs)
        q = GUIDES[guide](poutine.block(model, hide=hidden) if hidden else model)
        losses = _train(model, q, args, kwargs, num_steps, lr, num_particles,
                        nesting if hidden else None, progress)
        draws = _draw(q, args, kwargs, total)
    samples = {k: v.reshape((num_chains, num_samples) + v.shape[1:]) for k, v in draws.items()}
    return VIDraws(samples, losses)


class _Autoguide(GenerativeModel, register=False):
    """An autoguide as the training engine's model: its parameters are all the state.

    It sits in a plain container: assigned directly, the ``PyroModule`` would become a Pyro
    submodule of this one (sharing its Pyro context and renaming its parameters).
    """

    name = "autoguide"

    def __init__(self, guide: Any) -> None:
        super().__init__()
        self.held = torch.nn.ModuleList([guide])

    @property
    def autoguide(self) -> Any:
        return self.held[0]

    def get_config(self) -> dict[str, Any]:
        return {"autoguide": type(self.autoguide).__name__}


class _GlobalELBO(Objective):
    """``loss = -ELBO`` of the whole data set (Pyro's ``Trace_ELBO``), whatever the batch.

    The latents are global parameters of a Bayesian model, so every step needs all the data:
    the engine sees the data set as one row (:data:`_ONE_ROW`), and one epoch is one step.
    A program with enumerated sites gets ``TraceEnum_ELBO``, which sums them out.
    """

    name = "trace-elbo"

    def __init__(self, model: Any, args: tuple, kwargs: dict[str, Any], num_particles: int,
                 max_plate_nesting: int | None = None):
        self.program, self.args, self.kwargs = model, args, kwargs
        self.elbo = Trace_ELBO(num_particles=num_particles) if max_plate_nesting is None else \
            TraceEnum_ELBO(num_particles=num_particles, max_plate_nesting=max_plate_nesting)

    def loss(self, model: _Autoguide, batch: torch.Tensor) -> torch.Tensor:
        return self.elbo.differentiable_loss(self.program, model.autoguide, *self.args,
                                             **self.kwargs)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "num_particles": self.elbo.num_particles}


def _enumerated(model, args: tuple, kwargs: dict[str, Any]) -> tuple[list[str], int]:
    """The sites marked for enumeration (``@config_enumerate``), which the autoguide must not
    cover (the ELBO sums them out), and the program's plate nesting."""
    with torch.random.fork_rng(devices=[]), torch.no_grad(), poutine.block():
        trace = poutine.trace(model).get_trace(*args, **kwargs)
    hidden = [name for name, site in trace.nodes.items() if is_enumerated(site)]
    nesting = max((sum(f.vectorized for f in site["cond_indep_stack"])
                   for site in trace.nodes.values() if site["type"] == "sample"), default=0)
    return hidden, nesting


def _train(model, q, args, kwargs, num_steps, lr, num_particles,
           max_plate_nesting: int | None, progress: bool) -> np.ndarray:
    q(*args, **kwargs)  # create the guide's parameters
    device = next((p.device for p in q.parameters()), torch.device("cpu"))
    objective = _GlobalELBO(model, args, kwargs, num_particles, max_plate_nesting)
    return fit_full_batch(_Autoguide(q), objective, torch.zeros(_ONE_ROW, device=device),
                          num_steps=num_steps, lr=lr, progress=progress)


def _draw(q, args, kwargs, total: int) -> dict[str, np.ndarray]:
    """``total`` draws of every latent site, ``[total, *site_shape]`` (vectorised if possible)."""
    proto = q.prototype_trace.nodes
    names = [n for n, site in proto.items() if _is_latent(site)]
    with torch.no_grad():
        try:
            draws = Predictive(q, num_samples=total, return_sites=names, parallel=True)(
                *args, **kwargs)
        except (RuntimeError, ValueError, IndexError):
            draws = Predictive(q, num_samples=total, return_sites=names)(*args, **kwargs)
    shapes = {n: tuple(proto[n]["value"].shape) for n in names}
    return {n: draws[n].reshape((total,) + shapes[n]).cpu().numpy() for n in names}


def _is_latent(site: dict) -> bool:
    return site["type"] == "sample" and not site["is_observed"] and \
        not site["infer"].get("is_auxiliary", False)
