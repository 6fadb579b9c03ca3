"""Variational objectives: the ELBO and the importance-weighted bound (IWAE)."""

from __future__ import annotations

from typing import Any

import torch

from ppgen.evaluate import elbo, log_likelihood
from ppgen.inference.likelihood import StructureCache
from ppgen.objective import Objective

__all__ = ["ELBO", "IWAE"]


class _Variational(Objective, StructureCache):
    """Shared validation: the importance-weighted NLL estimate with ``validation_particles``."""

    def __init__(self, num_particles: int, validation_particles: int) -> None:
        StructureCache.__init__(self)
        if num_particles < 1 or validation_particles < 1:
            raise ValueError("num_particles and validation_particles must be >= 1")
        self.num_particles = num_particles
        self.validation_particles = validation_particles

    def validation_loss(self, model, batch: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return -log_likelihood(
            model,
            batch,
            num_particles=self.validation_particles,
            structure=self.structure(model, batch, kwargs),
            check=False,
            **kwargs,
        )

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "num_particles": self.num_particles,
            "validation_particles": self.validation_particles,
        }


class ELBO(_Variational):
    """Maximise the evidence lower bound (Kingma & Welling, 2014).

    ``loss = -mean_n ELBO(x_n)`` with ``num_particles`` Monte Carlo samples per datum and the
    closed-form KL wherever guide and prior have one (``analytic_kl``). Non-reparameterisable
    latent sites get score-function gradients.

    Args:
        num_particles: samples per datum in the training estimate.
        analytic_kl: use closed-form KL divergences where registered.
        validation_particles: ``K`` of the importance-weighted validation NLL.
    """

    name = "elbo"

    def __init__(
        self, num_particles: int = 1, analytic_kl: bool = True, validation_particles: int = 100
    ) -> None:
        super().__init__(num_particles, validation_particles)
        self.analytic_kl = analytic_kl

    def loss(self, model, batch: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        value = elbo(
            model,
            None,
            batch,
            num_particles=self.num_particles,
            analytic_kl=self.analytic_kl,
            differentiable=True,
            structure=self.structure(model, batch, kwargs),
            check=False,
            **kwargs,
        )
        return -value.mean()

    def get_config(self) -> dict:
        return {**super().get_config(), "analytic_kl": self.analytic_kl}


class IWAE(_Variational):
    """Maximise the importance-weighted bound with ``num_particles`` samples (Burda et al., 2016).

    ``loss = -mean_n log (1/K) sum_k p(x_n, z_k) / q(z_k | x_n)``; tighter than the ELBO for
    ``K > 1`` and equal to it for ``K = 1``.
    """

    name = "iwae"

    def __init__(self, num_particles: int = 5, validation_particles: int = 100) -> None:
        super().__init__(num_particles, validation_particles)

    def loss(self, model, batch: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        value = log_likelihood(
            model,
            batch,
            num_particles=self.num_particles,
            differentiable=True,
            structure=self.structure(model, batch, kwargs),
            check=False,
            **kwargs,
        )
        return -value.mean()
