"""Denoising score matching for energy models (``"denoising-score-matching"``).

Score matching fits the model's score ``∇_x log p̃(x) = -∇_x E(x)``, which needs no normaliser
and no sampler. Its denoising form (Vincent 2011, "A connection between score matching and
denoising autoencoders", Neural Computation 23) perturbs the data, ``x̃ = x + σ ε`` with
``ε ~ N(0, I)``, and regresses the model's score at ``x̃`` on the score of the perturbation
kernel, ``∇_x̃ log N(x̃; x, σ² I) = -ε / σ``:

    ``L(θ) = E_{x, ε} σ² / 2 ‖ -∇_x̃ E_θ(x̃) + ε / σ ‖²``

(weighted by ``σ²`` so its scale does not depend on ``σ``; Song & Ermon 2019). Its minimiser is
the score of the *perturbed* data law ``p_σ = p * N(0, σ² I)``: on Gaussian data ``N(m, S)``
with a Gaussian energy it is ``N(m, S + σ² I)`` — small ``σ``, small bias.

Validation is the energy family's: a short forward AIS run's NLL (nats per datum, the same seed
every epoch), as in :class:`~ppgen.inference.ContrastiveDivergence`.

Example:
    >>> ppgen.fit(ebm, train, val, objective="denoising-score-matching",  # doctest: +SKIP
    ...           objective_options={"noise_scale": 0.05})
"""

from __future__ import annotations

from typing import Any

import torch

from ppgen.energy import EnergyModel, energies
from ppgen.errors import ModelError
from ppgen.inference.contrastive import validation_log_z
from ppgen.objective import Objective

__all__ = ["DenoisingScoreMatching", "SCORE_MATCHING_OBJECTIVES"]


class DenoisingScoreMatching(Objective):
    """Denoising score matching with Gaussian noise of scale ``noise_scale`` (data units).

    Args:
        noise_scale: ``σ``.
        validation_distributions, validation_chains, validation_seed: the validation AIS run.
    """

    name = "denoising-score-matching"

    def __init__(self, noise_scale: float = 0.1, validation_distributions: int = 100,
                 validation_chains: int = 64, validation_seed: int | None = 0) -> None:
        super().__init__()
        if not noise_scale > 0:
            raise ValueError(f"noise_scale must be > 0, got {noise_scale}")
        self.noise_scale = noise_scale
        self.validation_distributions = validation_distributions
        self.validation_chains, self.validation_seed = validation_chains, validation_seed

    def loss(self, model, batch: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """``σ²/2 ‖s_θ(x̃) + ε/σ‖²`` averaged over the batch (one ``ε`` per row)."""
        model = _energy_model(model)
        sigma = self.noise_scale
        eps = torch.randn_like(batch)
        noisy = (batch + sigma * eps).requires_grad_(True)
        energy = model.energy(noisy).float()
        (grad,) = torch.autograd.grad(energy.sum(), noisy, create_graph=True)
        return 0.5 * ((sigma * -grad + eps) ** 2).reshape(len(batch), -1).sum(-1).mean()

    def validation_loss(self, model, batch: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """``[B]``: ``E(x) + log Ẑ`` with the validation AIS run's ``log Ẑ``."""
        model = _energy_model(model)
        log_z = validation_log_z(model, batch.device, self.validation_distributions,
                                 self.validation_chains, self.validation_seed)
        return energies(model, batch) + log_z

    def validation_metric(self, model, data: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self.validation_loss(model, data).mean()

    def get_config(self) -> dict:
        return {"name": self.name, "noise_scale": self.noise_scale,
                "validation_distributions": self.validation_distributions,
                "validation_chains": self.validation_chains,
                "validation_seed": self.validation_seed}


def _energy_model(model: Any) -> EnergyModel:
    if not isinstance(model, EnergyModel):
        raise ModelError(f"denoising score matching trains energy models (ppgen.energy."
                         f"EnergyModel); {type(model).__name__} is not one")
    return model


#: the registry entries of this module
SCORE_MATCHING_OBJECTIVES = {DenoisingScoreMatching.name: DenoisingScoreMatching}
