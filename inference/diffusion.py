"""The denoising objectives of diffusion models: ``L_simple`` and ``L_hybrid``.

Both read the model through :class:`~ppgen.diffusion.DenoisingModel` (its process, network,
data map and decoder), draw one step index per datum, and validate on a stratified unbiased
estimate of the variational bound in nats per datum (:func:`~ppgen.diffusion.strided_bound`:
about ``k`` network passes per datum instead of ``T``; the full sum is ``ppgen.elbo`` or
``model.bound_terms``). The default strata are geometric (widths 1, 1, 2, 4, ...): the bound
of levels data sits in the first steps, which a uniform stride of width ``T / k`` rarely
visits, so its estimate is heavy-tailed and, under fixed validation noise, optimistic. The
validation draws come from a generator seeded the same way every epoch, so epochs are compared
on the same noise (common random numbers).

* ``"diffusion-simple"`` (:class:`DiffusionSimple`) — Ho et al., 2020 (arXiv:2006.11239),
  eq. 14: ``E_{t, x_0, eps} ||eps - eps_theta(x_t, t)||^2`` (or the ``x_0`` / ``v`` target),
  ``t`` uniform.
* ``"diffusion-hybrid"`` (:class:`DiffusionHybrid`) — Nichol & Dhariwal, 2021
  (arXiv:2102.09672), section 3.1: ``L_simple + lambda L_vlb`` with ``lambda = 0.001``, the
  reverse mean's gradient stopped in ``L_vlb`` (so it trains only a learned variance), ``t``
  uniform or importance-sampled by the second moment of the bound's terms (section 3.3).

Both run with argument validation off (the engine validates the data once, up front), so a step
never waits on the host. ``L_vlb = T L_t`` is measured as in improved-diffusion: ``L_t`` in bits
per dimension, so one datum's loss is ``mse + lambda T L_t / (D ln 2)`` (mse: mean over
dimensions).
"""

from __future__ import annotations

import math
from typing import Any

import pyro
import torch

from ppgen.diffusion import (
    STRATA,
    DenoisingModel,
    hybrid_terms,
    simple_loss,
    strided_bound,
    uniform_steps,
)
from ppgen.errors import ModelError
from ppgen.objective import Objective

__all__ = ["DiffusionSimple", "DiffusionHybrid", "DIFFUSION_OBJECTIVES", "TIMESTEP_SAMPLERS"]

#: how ``L_hybrid`` draws the step of each datum
TIMESTEP_SAMPLERS = ("uniform", "importance")


def _denoising(model: Any) -> DenoisingModel:
    if not isinstance(model, DenoisingModel):
        raise ModelError(
            f"the diffusion objectives train diffusion models (DDPM, ImprovedDDPM); "
            f"{type(model).__name__} has no diffusion process and denoiser: choose its own "
            "objective (model.default_objective)"
        )
    return model


class _Denoising(Objective):
    """Shared validation: the strided bound with ``validation_steps`` passes per datum."""

    def __init__(self, validation_steps: int = 10, validation_seed: int | None = 0,
                 validation_strata: str = "geometric") -> None:
        super().__init__()
        if validation_steps < 1:
            raise ValueError(f"validation_steps must be >= 1, got {validation_steps}")
        if validation_strata not in STRATA:
            raise ValueError(f"unknown validation_strata {validation_strata!r}: use one of "
                             f"{STRATA}")
        self.validation_steps = validation_steps
        self.validation_seed = validation_seed
        self.validation_strata = validation_strata

    def validation_loss(self, model, batch: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """``[B]``: an unbiased estimate of the bound (nats per datum)."""
        generator = None
        if self.validation_seed is not None:
            generator = torch.Generator(device=batch.device).manual_seed(self.validation_seed)
        with pyro.validation_enabled(False):  # the engine checked the data once, up front
            return strided_bound(_denoising(model), batch, self.validation_steps, generator,
                                 self.validation_strata, **kwargs)

    def get_config(self) -> dict:
        return {"name": self.name, "validation_steps": self.validation_steps,
                "validation_seed": self.validation_seed,
                "validation_strata": self.validation_strata}


class DiffusionSimple(_Denoising):
    """Ho et al.'s ``L_simple``: the mean squared error of the network's prediction at a
    uniformly drawn step, averaged over the batch.

    Args:
        validation_steps: about this many network passes per datum in the validation bound.
        validation_seed: seed of the validation draws (``None``: the run's random state).
        validation_strata: ``"geometric"`` or ``"uniform"``
            (:func:`~ppgen.diffusion.strata_edges`).
    """

    name = "diffusion-simple"

    def loss(self, model, batch: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        model = _denoising(model)
        x0 = model.to_model_space(batch)
        s = uniform_steps(model.process.num_timesteps, (x0.shape[0],), x0.device)
        return simple_loss(model, x0, s, **kwargs).mean()


class DiffusionHybrid(_Denoising):
    """Nichol & Dhariwal's ``L_hybrid = L_simple + lambda L_vlb``.

    Args:
        vlb_weight: ``lambda`` (0.001 in the paper).
        timesteps: ``"uniform"`` or ``"importance"`` (``p_t`` proportional to
            ``sqrt(E[L_t^2])``, kept per step as a moving average of the last ~10 values,
            uniform until every step has been seen ``warmup_count`` times, mixed with 0.1%
            uniform; each datum's loss weighted by ``1 / (T p_t)``).
        validation_steps: about this many network passes per datum in the validation bound.
        validation_seed: seed of the validation draws (``None``: the run's random state).
        validation_strata: ``"geometric"`` or ``"uniform"`` strata of the validation bound.
        warmup_count: draws of every step before importance sampling starts.

    The importance sampler's statistics are buffers of this objective, checkpointed with the
    run (on several processes each keeps its own).
    """

    name = "diffusion-hybrid"
    #: weight of the uniform distribution in the importance sampler
    UNIFORM_MIX = 0.001
    #: decay of the per-step second moments (about the last 10 values)
    DECAY = 0.9

    def __init__(self, vlb_weight: float = 0.001, timesteps: str = "uniform",
                 validation_steps: int = 10, validation_seed: int | None = 0,
                 validation_strata: str = "geometric", warmup_count: int = 10) -> None:
        super().__init__(validation_steps, validation_seed, validation_strata)
        if timesteps not in TIMESTEP_SAMPLERS:
            raise ValueError(f"unknown timesteps {timesteps!r}: use one of {TIMESTEP_SAMPLERS}")
        self.vlb_weight, self.timesteps, self.warmup_count = vlb_weight, timesteps, warmup_count
        self.register_buffer("second_moment", torch.zeros(0))
        self.register_buffer("counts", torch.zeros(0, dtype=torch.long))

    def forward(self, model):
        """Bind to ``model``, sizing the sampler's statistics to its ``T`` steps."""
        T = _denoising(model).process.num_timesteps
        if self.second_moment.numel() != T:
            device = model.process.betas.device
            self.second_moment = torch.zeros(T, device=device)
            self.counts = torch.zeros(T, dtype=torch.long, device=device)
        return super().forward(model)

    def loss(self, model, batch: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        model = _denoising(model)
        T, n = model.process.num_timesteps, batch.shape[0]
        s, weights = self._draw(T, n, batch.device)
        with pyro.validation_enabled(False):  # no host checks of the decoder's arguments
            mse, term = hybrid_terms(model, batch, s, **kwargs)
        if self.timesteps == "importance":
            self._update(s, term.detach())
        D = math.prod(batch.shape[1:])
        vlb = term * (T / (D * math.log(2.0)))
        return ((mse + self.vlb_weight * vlb) * weights).mean()

    def _draw(self, T: int, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``(s [n], importance weights [n])``."""
        if self.timesteps == "uniform" or self.second_moment.numel() != T:
            return uniform_steps(T, (n,), device), torch.ones(n, device=device)
        warm = (self.counts >= self.warmup_count).all()
        weights = torch.where(warm, self.second_moment.sqrt(),
                              torch.ones_like(self.second_moment))
        probs = weights / weights.sum()
        probs = probs * (1 - self.UNIFORM_MIX) + self.UNIFORM_MIX / T
        s = torch.multinomial(probs, n, replacement=True)
        return s, 1.0 / (T * probs[s])

    @torch.no_grad()
    def _update(self, s: torch.Tensor, term: torch.Tensor) -> None:
        """Fold this batch's squared terms into the per-step second moments (on device)."""
        sums = torch.zeros_like(self.second_moment).index_add_(0, s, term.to(
            self.second_moment.dtype) ** 2)
        seen = torch.zeros_like(self.counts).index_add_(0, s, torch.ones_like(s))
        mean = sums / seen.clamp(min=1)
        blended = torch.where(self.counts == 0, mean,
                              self.DECAY * self.second_moment + (1 - self.DECAY) * mean)
        self.second_moment.copy_(torch.where(seen > 0, blended, self.second_moment))
        self.counts.add_(seen)

    def get_config(self) -> dict:
        return {**super().get_config(), "vlb_weight": self.vlb_weight,
                "timesteps": self.timesteps, "warmup_count": self.warmup_count}


#: the registry entries of this module
DIFFUSION_OBJECTIVES = {DiffusionSimple.name: DiffusionSimple,
                        DiffusionHybrid.name: DiffusionHybrid}
