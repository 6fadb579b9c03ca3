"""Variational posteriors: a Pyro autoguide fitted with ``Trace_ELBO``, then sampled.

Parameter hygiene: the guide is built under ``pyro.settings.context(module_local_params=True)``,
so its parameters live in the guide module (an ordinary ``torch.optim.Adam`` trains them) and
never in Pyro's global parameter store; any ``pyro.param`` the user's model calls itself is
confined to a fresh, temporary store by ``pyro.get_param_store().scope()``. Nothing leaks
between calls, and the caller's own store is restored afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyro
import torch
from pyro.infer import Predictive, Trace_ELBO
from pyro.infer.autoguide import AutoIAFNormal, AutoMultivariateNormal, AutoNormal

from ppgen.errors import TrainingError

__all__ = ["GUIDES", "VIDraws", "fit_guide"]

#: The guide families ``posterior(..., method="svi", guide=...)`` accepts.
GUIDES: dict[str, Callable[[Any], Any]] = {
    "normal": AutoNormal,
    "mvn": AutoMultivariateNormal,
    "flow": lambda model: AutoIAFNormal(model, num_transforms=2),
}


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

    Raises:
        TrainingError: the ELBO became non-finite.
    """
    total = num_chains * num_samples
    with torch.random.fork_rng(devices=[]), pyro.get_param_store().scope(), \
            pyro.settings.context(module_local_params=True):
        torch.manual_seed(seed)
        q = GUIDES[guide](model)
        losses = _train(model, q, args, kwargs, num_steps, lr, num_particles)
        draws = _draw(q, args, kwargs, total)
    samples = {k: v.reshape((num_chains, num_samples) + v.shape[1:]) for k, v in draws.items()}
    return VIDraws(samples, losses)


def _train(model, q, args, kwargs, num_steps, lr, num_particles) -> np.ndarray:
    elbo = Trace_ELBO(num_particles=num_particles)
    q(*args, **kwargs)  # create the guide's parameters
    optim = torch.optim.Adam(q.parameters(), lr=lr)
    # Decay to lr/100 by the last step: the draws then reflect the optimum, not Adam's jitter.
    sched = torch.optim.lr_scheduler.ExponentialLR(optim, 0.01 ** (1 / max(num_steps, 1)))
    losses = np.empty(num_steps)
    for step in range(num_steps):
        optim.zero_grad()
        loss = elbo.differentiable_loss(model, q, *args, **kwargs)
        if not torch.isfinite(loss):
            raise TrainingError(
                f"the ELBO became {float(loss)} at step {step}: lower the learning rate, "
                "or check the model's priors and constraints"
            )
        loss.backward()
        optim.step()
        sched.step()
        losses[step] = float(loss)
    return losses


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
