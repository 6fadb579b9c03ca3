"""Adversarially learned inference (ALI / BiGAN): a critic of joint pairs ``(x, z)``.

The model ``p(z) p(x | z)`` run generatively gives pairs ``(x̃, z)`` (``z`` from the prior, ``x̃``
decoded); the guide ``q(z | x)`` on data gives pairs ``(x, ẑ)`` (``ẑ`` encoded). A joint critic
``D([x, z])`` tells the two apart, and the generator and the encoder — one player,
``"generator"``, every parameter of the model and guide but the critic's — are trained to fool
it. At the optimum of the minimax game the two joint distributions agree, so the encoder
inverts the generator (Donahue, Krähenbühl & Darrell, 2017, "Adversarial Feature Learning",
arXiv:1605.09782, Theorem 2; Dumoulin et al., 2017, "Adversarially Learned Inference",
arXiv:1606.00704), and the optimal critic of the logistic losses is the log density ratio
``log q(x, z) - log p(x, z)`` of the encoder's joint (data × guide) over the model's.

The losses are :class:`~ppgen.inference.Adversarial`'s (``minimax``, ``non-saturating``,
``least-squares``, ``wgan-gp``, ``hinge``) with the encoder's pairs as the critic's "real" side:
the critic minimises ``critic_losses(d_enc, d_gen)``; the generator player minimises the
generator loss on the decoder's pairs plus its mirror image on the encoder's (labels swapped:
``generator_loss(-d_enc)``; for least squares ``½ d_enc²``), which for ``minimax`` is exactly
the negative of the critic's loss. Gradient penalties (``wgan-gp``) and R1 apply to the joint
inputs.

Pairs are flat: ``[x.flatten(1), z]`` with ``z`` the sites the model and the guide both sample,
each flattened per datum and concatenated (:func:`~ppgen.inference.program_pair.flat_values`),
so a critic for a user's program is ``mlp_critic(D + L)``; zoo models (``BiGAN``) carry a
joint critic of their own (``model.critic_network()``) that splits the pair.

Example:
    >>> from ppgen.models import BiGAN
    >>> model = BiGAN(2, latent_dim=2, network={"hidden_dims": (8,), "critic_dims": (8,)})
    >>> ALI().get_config()["loss"]
    'non-saturating'
    >>> history = ppgen.fit(model, x_train, objective=ALI())  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import torch
from pyro import poutine
from torch import nn

from ppgen.evaluate.program import validation_context
from ppgen.inference.adversarial import (
    Adversarial,
    AdversarialLoss,
    critic_losses,
    generator_loss,
    gradient_penalty,
    r1_penalty,
    simulate_sites,
)
from ppgen.inference.program_pair import flat_values, latent_names
from ppgen.objective import StepContext

__all__ = ["ALI", "encoder_loss", "joint_pairs"]


def encoder_loss(loss: AdversarialLoss, d_enc: torch.Tensor) -> torch.Tensor:
    """The generator player's loss on the encoder's pairs ``d_enc: [B]``: the generator loss
    with the labels swapped (the encoder wants its pairs taken for the decoder's)."""
    if loss == AdversarialLoss.LEAST_SQUARES:
        return 0.5 * d_enc.square().mean()  # the critic's target for the other side: 0
    return generator_loss(loss, -d_enc)


def joint_pairs(model: nn.Module, x: torch.Tensor, kwargs: dict[str, Any], check: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """One encoder pair and one decoder pair per row of ``x: [B, ...]``, each ``[B, D + L]``:
    ``[x, ẑ]`` with ``ẑ ~ q(z | x)`` and ``[x̃, z]`` with ``z ~ p(z)``, ``x̃ ~ p(x | z)``, both
    differentiable with respect to the programs' parameters.

    Args:
        model: a model with ``model``, ``guide`` and ``data_site``.
        x: data.
        kwargs: per-row conditioning values.
        check: refuse a model whose sites cannot carry gradients (the first step).
    """
    owner, n = type(model).__name__, len(x)
    p_tr = poutine.trace(simulate_sites).get_trace(model, x, kwargs, check)
    q_tr = poutine.trace(model.guide).get_trace(x, **kwargs)
    names = latent_names(p_tr.nodes, q_tr, model.data_site, owner)
    z_enc, z_gen = flat_values(q_tr, names, n, owner), flat_values(p_tr, names, n, owner)
    x_gen = p_tr.nodes[model.data_site]["value"].reshape(n, -1)
    return torch.cat([x.reshape(n, -1), z_enc], 1), torch.cat([x_gen, z_gen], 1)


class ALI(Adversarial):
    """Adversarially learned inference / BiGAN (two players: ``"generator"`` — the model's and
    the guide's parameters — and ``"critic"``).

    Args:
        loss, critic, n_critic, gradient_penalty, one_sided, r1, validation_rows,
        validation_seed, features: as for :class:`~ppgen.inference.Adversarial`; ``critic`` is
            a joint critic ``D([x, z]) -> [B]`` or ``[B, 1]`` (for a user's program pair, e.g.
            ``mlp_critic(D + L)``; ``None`` uses ``model.critic_network()``).

    The validation metric is :class:`~ppgen.inference.Adversarial`'s: the model's draws against
    validation rows (the Fréchet distance in the digits classifier's space for the digits).
    """

    name = "ali"

    def __init__(
        self,
        loss: str | None = None,
        critic: nn.Module | None = None,
        n_critic: int | None = None,
        gradient_penalty: float | None = None,
        one_sided: bool = False,
        r1: float = 0.0,
        validation_rows: int = 2048,
        validation_seed: int = 0,
        features: str | None = None,
    ) -> None:
        super().__init__(loss, critic, n_critic, gradient_penalty, one_sided, r1,
                         validation_rows=validation_rows, validation_seed=validation_seed,
                         features=features)
        self._validated = False

    def losses(self, model: nn.Module, batch: torch.Tensor, context: StepContext,
               **kwargs: Any) -> dict[str, torch.Tensor]:
        """The critic's loss (``("critic",)``) or the generator player's; Pyro checks the
        programs in the first step only."""
        with validation_context(self._validated):
            out = super().losses(model, batch, context, **kwargs)
        self._validated = True
        return out

    def _score(self, critic: nn.Module, pairs: torch.Tensor) -> torch.Tensor:
        return critic(pairs).reshape(len(pairs))

    def generator_step(self, model: nn.Module, batch: torch.Tensor,
                       kwargs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"loss": generator loss on decoder pairs + encoder loss on encoder pairs}``."""
        enc, gen = joint_pairs(model, batch, kwargs, check=not self._checked)
        self._checked = True
        critic = self.critic_of(model)
        d_enc, d_gen = self._score(critic, enc), self._score(critic, gen)
        loss_gen = generator_loss(self.loss_kind, d_gen)
        loss_enc = encoder_loss(self.loss_kind, d_enc)
        return {"loss": loss_gen + loss_enc, "loss_decoder": loss_gen.detach(),
                "loss_encoder": loss_enc.detach()}

    def critic_step(self, model: nn.Module, batch: torch.Tensor,
                    kwargs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"loss": critic loss + penalties, "gap": E d_enc - E d_gen, ...}``."""
        critic = self.critic_of(model)
        with torch.no_grad():
            enc, gen = joint_pairs(model, batch, kwargs)
        enc = enc.requires_grad_(self.r1 > 0)
        d_enc, d_gen = self._score(critic, enc), self._score(critic, gen)
        loss = critic_losses(self.loss_kind, d_enc, d_gen)
        out = {"gap": (d_enc.mean() - d_gen.mean()).detach()}
        if self.gp_weight > 0:
            penalty = gradient_penalty(critic, enc.detach(), gen, {}, self.one_sided)
            loss = loss + self.gp_weight * penalty
            out["penalty"] = penalty.detach()
        if self.r1 > 0:
            r1 = r1_penalty(d_enc, enc)
            loss = loss + 0.5 * self.r1 * r1
            out["r1"] = r1.detach()
        return {"loss": loss, **out}

    def get_config(self) -> dict:
        config = super().get_config()
        return {k: v for k, v in config.items() if k not in ("info_weight", "pack")}

