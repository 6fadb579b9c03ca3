"""Contrastive divergence for energy models, persistent by default (``"contrastive-divergence"``).

The gradient of the log-likelihood of an energy model is
``∇_θ log p(x) = -∇_θ E(x) + E_{p_θ}[∇_θ E(x')]``: data push the energy down, model samples push
it up. Contrastive divergence (Hinton 2002) estimates the second term with short MCMC chains;
persistent CD (Tieleman 2008) keeps the chains between steps, and Du & Mordatch (2019,
arXiv:1903.08689) keep them in a replay buffer, restarting a few per step from noise. Here the
chains are Langevin chains (:mod:`ppgen.energy.samplers`) in the whitened coordinates of the
model's Gaussian base, restarted from the base, and the buffer (:class:`~ppgen.energy.
ReplayBuffer`) is this objective's state, checkpointed with the run.

The loss of a batch, with ``h = -E - log q_0`` the model's log-ratio to its base
(:meth:`~ppgen.energy.EnergyModel.log_ratio`, whose gradient is ``-∇_θ E``):

    ``mean h(x⁻) - mean h(x⁺) + α (mean h(x⁺)² + mean h(x⁻)²)``,

``x⁺`` the data, ``x⁻`` the chains' states (no gradient through the chains), ``α`` the
energy-magnitude regulariser of Du & Mordatch (it keeps ``h`` near zero, i.e. the model near its
base, where the data do not say otherwise).

Validation: the model has no normaliser, so an epoch is scored by a short forward AIS run
(``validation_distributions`` steps, ``validation_chains`` chains, the same seed every epoch:
common random numbers) — an optimistic NLL estimate in nats per datum, lower is better.
"""

from __future__ import annotations

from typing import Any

import torch

from ppgen.energy import EnergyModel, ReplayBuffer, energies, log_partition, run_chain
from ppgen.energy.samplers import SAMPLERS
from ppgen.errors import ModelError
from ppgen.objective import Objective

__all__ = ["ContrastiveDivergence", "CONTRASTIVE_OBJECTIVES", "validation_log_z"]


def _energy_model(model: Any) -> EnergyModel:
    if not isinstance(model, EnergyModel):
        raise ModelError(f"contrastive divergence trains energy models (ppgen.energy."
                         f"EnergyModel, e.g. EBM); {type(model).__name__} is not one: choose "
                         "its own objective (model.default_objective)")
    return model


def validation_log_z(model: EnergyModel, device: torch.device, distributions: int, chains: int,
                     seed: int | None) -> torch.Tensor:
    """``log Ẑ`` of a short forward AIS run (``distributions`` steps, ``chains`` chains, the
    same ``seed`` every epoch: common random numbers), the validation NLL's normaliser."""
    generator = None
    if seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)
    settings = model.ais_settings().with_(num_distributions=distributions)
    return log_partition(model, chains, settings=settings, generator=generator).log_z


class ContrastiveDivergence(Objective):
    """(Persistent) contrastive divergence with Langevin chains and a replay buffer.

    Args:
        steps: Langevin transitions per training step.
        step_size: the sampler's ``ε`` (whitened units).
        noise_scale: the Langevin noise ``σ`` (default ``sqrt(2 ε)``; short-run EBMs often use
            less).
        sampler: ``"mala"`` (exact for the current model, so the chains' stationary law is
            the model's, not a step-size-biased one), ``"langevin"`` (unadjusted) or
            ``"hmc"``.
        persistent: start the chains from the replay buffer (PCD); ``False``: from the data
            batch (CD-k).
        buffer_size: chains kept in the replay buffer.
        reinit: share of chains restarted from the base each step.
        regularization: ``α``, the weight of the energy-magnitude penalty.
        validation_distributions: AIS steps of the validation estimate.
        validation_chains: AIS chains of the validation estimate.
        validation_seed: seed of the validation run (``None``: the run's random state).

    Example:
        >>> objective = ContrastiveDivergence(steps=10)  # doctest: +SKIP
        >>> ppgen.fit(ebm, train, val, objective=objective)  # doctest: +SKIP
    """

    name = "contrastive-divergence"

    def __init__(self, steps: int = 10, step_size: float = 0.02,
                 noise_scale: float | None = None, sampler: str = "mala",
                 persistent: bool = True, buffer_size: int = 10_000, reinit: float = 0.05,
                 regularization: float = 0.01, validation_distributions: int = 100,
                 validation_chains: int = 64, validation_seed: int | None = 0) -> None:
        super().__init__()
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}: use one of {SAMPLERS}")
        if steps < 1 or validation_distributions < 1 or validation_chains < 1:
            raise ValueError("steps, validation_distributions and validation_chains must be >= 1")
        self.steps, self.step_size, self.noise_scale = steps, step_size, noise_scale
        self.sampler, self.persistent, self.regularization = sampler, persistent, regularization
        self.validation_distributions = validation_distributions
        self.validation_chains, self.validation_seed = validation_chains, validation_seed
        self.buffer = ReplayBuffer(buffer_size, reinit)

    def forward(self, model):
        """Bind to ``model``, sizing the replay buffer to its data on its device."""
        model = _energy_model(model)
        self.buffer.resize(tuple(model.event_shape), model.base_loc.device,
                           model.base_loc.dtype)
        return super().forward(model)

    def negatives(self, model: EnergyModel, batch: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """The chains' states ``x⁻ [B, D]`` after this step's transitions (written back to the
        buffer) and their mean acceptance (1 for the unadjusted sampler)."""
        base = model.base()
        if self.persistent:
            start, slots = self.buffer.draw(base.sample(batch.shape[0]))
        else:
            start, slots = batch, None
        run = run_chain(model.white_log_ratio, base.whiten(start), self.steps, self.sampler,
                        self.step_size, self.noise_scale)
        negatives = base.to_data(run.state.z)
        if slots is not None:
            self.buffer.push(slots, negatives)
        return negatives, run.acceptance.mean()

    def losses(self, model, batch: torch.Tensor, context, **kwargs: Any
               ) -> dict[str, torch.Tensor]:
        """``{"loss", "energy_gap" (mean h(x⁺) - mean h(x⁻)), "acceptance"}``."""
        model = _energy_model(model)
        negatives, acceptance = self.negatives(model, batch)
        h_pos = model.log_ratio(batch).float()
        h_neg = model.log_ratio(negatives).float()
        gap = h_pos.mean() - h_neg.mean()
        penalty = (h_pos.pow(2).mean() + h_neg.pow(2).mean()) * self.regularization
        return {"loss": penalty - gap, "energy_gap": gap.detach(), "acceptance": acceptance}

    def loss(self, model, batch: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self.losses(model, batch, None, **kwargs)["loss"]

    def validation_loss(self, model, batch: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """``[B]``: ``E(x) + log Ẑ`` with the validation AIS run's ``log Ẑ``."""
        return energies(model, batch) + self._log_z(_energy_model(model), batch.device)

    def validation_metric(self, model, data: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """The mean validation NLL (nats per datum; one AIS run for the whole set)."""
        return self.validation_loss(model, data).mean()

    def _log_z(self, model: EnergyModel, device: torch.device) -> torch.Tensor:
        return validation_log_z(model, device, self.validation_distributions,
                                self.validation_chains, self.validation_seed)

    def get_config(self) -> dict:
        return {"name": self.name, "steps": self.steps, "step_size": self.step_size,
                "noise_scale": self.noise_scale, "sampler": self.sampler,
                "persistent": self.persistent, "buffer_size": self.buffer.size,
                "reinit": self.buffer.reinit, "regularization": self.regularization,
                "validation_distributions": self.validation_distributions,
                "validation_chains": self.validation_chains,
                "validation_seed": self.validation_seed}


#: the registry entries of this module
CONTRASTIVE_OBJECTIVES = {ContrastiveDivergence.name: ContrastiveDivergence}
