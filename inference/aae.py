"""Adversarial autoencoding: reconstruction and regularisation phases as players of the engine.

Makhzani et al., 2016, "Adversarial Autoencoders" (arXiv:1511.05644), Sec. 2: every batch runs

1. the *reconstruction phase* — encoder and decoder minimise ``E -log p(x | z = enc(x))``;
2. the *regularisation phase* — the latent critic ``D`` learns to tell prior draws ``z ~ p(z)``
   (real) from codes ``enc(x)`` (fake), then the encoder, as ``D``'s generator, minimises
   ``λ_r`` times the generator loss on its codes;
3. for a semi-supervised model, the *semi-supervised classification phase* (Sec. 5) — the
   encoder minimises ``λ_s`` times the class loss ``-log q(y | x)`` on the rows with a label.

The players are the engine's parameter groups ``"autoencoder"`` (encoder and decoder),
``"critic"``, ``"encoder"`` and ``"classifier"`` (the encoder again);
:meth:`AdversarialAutoencoding.updates` schedules ``("autoencoder",)``, ``("critic",)``,
``("encoder",)`` and ``("classifier",)`` every step (the last only does something for a model
with partial labels), so the engine alone zeroes, back-propagates and steps. The encoder sits in
several groups on purpose: each phase has its own optimiser, as in the paper, so Adam's moments
of the reconstruction gradients (nats per image, large) do not shrink the other phases' steps to
nothing. The losses
are the adversarial objective's (:func:`~ppgen.inference.adversarial.critic_losses`,
:func:`~ppgen.inference.adversarial.generator_loss`, the optional gradient penalty).

The model is an autoencoder with a latent critic (:class:`ppgen.models.AAE`): this objective
reads ``codes(x)``, ``reconstruction_nll(x, **conditions)``, ``class_nll(x, y)`` (a model with
partial labels), ``critic_scores(code)`` (a list: one score ``[N]`` per critic),
``prior_codes(n)`` and the parameter lists ``encoder_parameters()``, ``decoder_parameters()``
and ``critic``.

Example:
    >>> from ppgen.models import AAE
    >>> aae = AAE(4, latent_dim=2, likelihood="gaussian",
    ...           network={"hidden_dims": (8,), "critic_dims": (8,)})
    >>> objective = AdversarialAutoencoding()
    >>> sorted(objective.param_groups(aae))
    ['autoencoder', 'classifier', 'critic', 'encoder']
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyro
import torch
from torch import nn

from ppgen.errors import TrainingError
from ppgen.inference.adversarial import (
    AdversarialLoss,
    critic_losses,
    generator_loss,
    gradient_penalty,
)
from ppgen.objective import Objective, StepContext

__all__ = ["AdversarialAutoencoding", "AAE_OBJECTIVES"]


class AdversarialAutoencoding(Objective):
    """The adversarial autoencoder's objective (three players: encoder, decoder, critic).

    Args:
        loss: the adversarial loss of the regularisation phase (an
            :class:`~ppgen.inference.adversarial.AdversarialLoss` name; default
            ``"non-saturating"``).
        regularization: ``λ_r``, the weight of the encoder's generator loss.
        supervision: ``λ_s``, the weight of the class loss on labelled rows (semi-supervised).
        gradient_penalty: ``λ`` of the critic's gradient penalty on interpolated codes (0:
            none; use it with ``"wgan-gp"``).

    The validation loss is the reconstruction NLL per datum with the encoder's mean code
    (lower is better); it does not see the prior matching, so the model's recipe trains for
    fixed epochs.
    """

    name = "aae"

    def __init__(self, loss: str = "non-saturating", regularization: float = 1.0,
                 supervision: float = 1.0, gradient_penalty: float = 0.0) -> None:
        super().__init__()
        try:
            self.loss_kind = AdversarialLoss(loss)
        except ValueError:
            known = ", ".join(v.value for v in AdversarialLoss)
            raise TrainingError(f"unknown adversarial loss {loss!r}; use one of {known}") from None
        self.regularization, self.supervision = float(regularization), float(supervision)
        self.gp_weight = float(gradient_penalty)
        if self.regularization < 0 or self.supervision < 0 or self.gp_weight < 0:
            raise TrainingError("regularization, supervision and gradient_penalty must be >= 0")

    # ----------------------------------------------------------------- players
    def param_groups(self, model: nn.Module) -> dict[str, Iterable[nn.Parameter]]:
        """``{"autoencoder": encoder + decoder, "critic": ..., "encoder": ..., "classifier":
        ...}`` (the encoder in three: one optimiser per phase)."""
        encoder = list(model.encoder_parameters())
        return {"autoencoder": [*encoder, *model.decoder_parameters()],
                "critic": list(model.critic.parameters()),
                "encoder": encoder, "classifier": list(encoder)}

    def updates(self, step: int, groups: tuple[str, ...]) -> list[tuple[str, ...]]:
        """Reconstruction, the critic, the encoder as the critic's generator, the classifier."""
        return [("autoencoder",), ("critic",), ("encoder",), ("classifier",)]

    def ema_parameters(self, model: nn.Module) -> Iterable[tuple[str, nn.Parameter]]:
        """The autoencoder's parameters (the critic is never averaged)."""
        ids = {id(p) for p in model.critic.parameters()}
        return [(n, p) for n, p in model.named_parameters() if id(p) not in ids]

    # ----------------------------------------------------------------- losses
    def losses(self, model: nn.Module, batch: torch.Tensor, context: StepContext,
               **kwargs: Any) -> dict[str, torch.Tensor]:
        """The loss of the update ``context.update`` names (argument validation off: the data
        were checked once up front, and a check would read a value on the host)."""
        with pyro.validation_enabled(False):
            if context.update == ("critic",):
                return self.critic_step(model, batch)
            if context.update == ("encoder",):
                return self.regularization_step(model, batch)
            if context.update == ("classifier",):
                return self.classification_step(model, batch, kwargs)
            return self.reconstruction_step(model, batch, kwargs)

    def reconstruction_step(self, model: nn.Module, batch: torch.Tensor,
                            kwargs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"loss": mean reconstruction NLL, "reconstruction": ...}``."""
        nll = model.reconstruction_nll(batch, **_decoder_kwargs(model, kwargs)).mean()
        return {"loss": nll, "reconstruction": nll.detach()}

    def classification_step(self, model: nn.Module, batch: torch.Tensor,
                            kwargs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"loss": λ_s × the class loss of the labelled rows}`` for a model with partial
        labels; otherwise a zero loss that still reaches the encoder (no step changes it: Adam
        moves nothing on a zero gradient)."""
        if "y" in kwargs and model.categorical:
            classes = model.class_nll(batch, kwargs["y"])
            return {"loss": self.supervision * classes, "classification": classes.detach()}
        return {"loss": 0.0 * model.codes(batch, sample=False)[0].sum()}

    def critic_step(self, model: nn.Module, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"loss": critic loss on prior draws (real) vs codes (fake), "gap": ...}``."""
        with torch.no_grad():
            fake = model.codes(batch)[0]
        real = model.prior_codes(len(batch)).to(fake.dtype)
        pairs = list(zip(model.critic_scores(real), model.critic_scores(fake)))
        loss = sum(critic_losses(self.loss_kind, r, f) for r, f in pairs)
        out = {"gap": sum((r.mean() - f.mean()).detach() for r, f in pairs) / len(pairs)}
        if self.gp_weight > 0:
            penalty = sum(self._penalty(model, net, real, fake) for net in model.critic)
            loss = loss + self.gp_weight * penalty
            out["penalty"] = penalty.detach()
        return {"loss": loss, **out}

    @staticmethod
    def _penalty(model: nn.Module, net: nn.Module, real: torch.Tensor, fake: torch.Tensor
                 ) -> torch.Tensor:
        """The gradient penalty of one critic on its columns of the codes."""
        index = list(model.critic).index(net)
        start, stop = model._critic_parts()[index]
        return gradient_penalty(net, real[:, start:stop], fake[:, start:stop], {})

    def regularization_step(self, model: nn.Module, batch: torch.Tensor
                            ) -> dict[str, torch.Tensor]:
        """``{"loss": λ_r × the generator loss of the codes}``."""
        scores = model.critic_scores(model.codes(batch)[0])
        loss = sum(generator_loss(self.loss_kind, d_fake) for d_fake in scores)
        return {"loss": self.regularization * loss}

    def validation_loss(self, model: nn.Module, batch: torch.Tensor, **kwargs: Any
                        ) -> torch.Tensor:
        """The reconstruction NLL ``[B]`` with the encoder's mean code."""
        with pyro.validation_enabled(False):
            return model.reconstruction_nll(batch, sample=False,
                                            **_decoder_kwargs(model, kwargs))

    def get_config(self) -> dict:
        return {"name": self.name, "loss": self.loss_kind.value,
                "regularization": self.regularization, "supervision": self.supervision,
                "gradient_penalty": self.gp_weight}


def _decoder_kwargs(model: nn.Module, kwargs: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The labels the decoder reads (supervised variant); partial labels only train q(y | x)."""
    return {} if model.categorical else dict(kwargs)


#: the objectives of this module by registered name
AAE_OBJECTIVES: dict[str, type[Objective]] = {AdversarialAutoencoding.name:
                                              AdversarialAutoencoding}
