"""The ELBO with a KL warm-up: ``E_q[log p(x | z)] - beta KL(q || p)``, ``beta`` rising from
``1 / warmup_epochs`` to 1 over the first ``warmup_epochs`` epochs.

Sønderby et al., 2016, "Ladder Variational Autoencoders" (arXiv:1602.02282), Sect. 2.3 (and
Bowman et al., 2016): a model trained on the full ELBO from the start switches its upper latent
units off early; weighting the KL terms up from near zero lets them carry information first.
The weight multiplies every latent site's log-density in both programs (a Pyro scale on the
sites that are not observed), so the evaluation layer's ELBO — closed-form KL per site where
one is registered — is the warmed-up objective, with no second estimator. Validation (and so
early stopping) uses the unweighted importance-weighted NLL, as :class:`~ppgen.inference.ELBO`.
"""

from __future__ import annotations

from typing import Any

import torch
from pyro.poutine.messenger import Messenger

from ppgen.inference.variational import ELBO
from ppgen.objective import StepContext

__all__ = ["WarmupELBO", "latent_scale"]


class latent_scale(Messenger):  # noqa: N801 (a Pyro handler, named like poutine's)
    """Multiply the log-density of every sample site that is not observed by ``scale``.

    Example:
        >>> with latent_scale(0.5):  # doctest: +SKIP
        ...     ppgen.elbo(model, x, analytic_kl=True)   # reconstruction - 0.5 KL
    """

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def _process_message(self, msg: dict[str, Any]) -> None:
        if msg["type"] == "sample" and not msg["is_observed"]:
            msg["scale"] = msg["scale"] * self.scale


class WarmupELBO(ELBO):
    """Maximise ``E_q[log p(x | z)] - beta_t KL(q || p)`` with ``beta_t = min(1, epoch /
    warmup_epochs)`` (``objective="elbo-warmup"``).

    Args:
        num_particles: samples per datum in the training estimate.
        analytic_kl: closed-form KL divergences where registered.
        validation_particles: ``K`` of the importance-weighted validation NLL.
        warmup_epochs: epochs until the KL weight reaches 1 (Sønderby et al. used 200 on
            MNIST); ``0`` is the plain ELBO.

    Example:
        >>> objective = WarmupELBO(warmup_epochs=50)
        >>> objective.kl_weight(StepContext(step=0, epoch=10, update=("model",)))
        0.2
    """

    name = "elbo-warmup"

    def __init__(self, num_particles: int = 1, analytic_kl: bool = True,
                 validation_particles: int = 100, warmup_epochs: int = 100) -> None:
        super().__init__(num_particles, analytic_kl, validation_particles)
        if not (isinstance(warmup_epochs, int) and warmup_epochs >= 0):
            raise ValueError(f"warmup_epochs must be an integer >= 0, got {warmup_epochs!r}")
        self.warmup_epochs = warmup_epochs

    def kl_weight(self, context: StepContext) -> float:
        """``beta`` of a step: ``min(1, epoch / warmup_epochs)`` (1 without a warm-up)."""
        if self.warmup_epochs == 0:
            return 1.0
        return min(1.0, context.epoch / self.warmup_epochs)

    def losses(self, model, batch: torch.Tensor, context: StepContext, **kwargs: Any
               ) -> dict[str, torch.Tensor]:
        beta = self.kl_weight(context)
        if beta == 1.0:
            return {"loss": self.loss(model, batch, **kwargs)}
        with latent_scale(beta):
            return {"loss": self.loss(model, batch, **kwargs)}

    def get_config(self) -> dict:
        return {**super().get_config(), "warmup_epochs": self.warmup_epochs}


#: the objectives this module adds to :data:`ppgen.inference.OBJECTIVES`
WARMUP_OBJECTIVES = {WarmupELBO.name: WarmupELBO}
