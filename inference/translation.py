"""The translation objective: CycleGAN's and StarGAN's losses as one loss module.

The data are the images of every domain stacked, each row with its domain index ``d`` as the
conditioning input ``domain`` (the engine batches it with the images). Each step draws a target
``t ≠ d`` per row (with two domains: the other one) and translates every row at once, so a
batch is split by domain through per-row targets and per-domain critics, never by boolean
indexing (no data-dependent shapes, no host synchronisation in a step). With ``x̃ = G(x, t)``:

=====================  ============================================================================
player                 minimises
=====================  ============================================================================
critic                 ``adv_D(D_d(x), D_t(x̃'))`` (+ ``λ_gp`` gradient penalty)
                       (+ ``λ_cls · -log q(d | x)``)
generator              ``adv_G(D_t(x̃)) + λ_cyc |G(x̃, d) - x|₁ + λ_id |G(x, d) - x|₁``
                       (+ ``λ_cls · -log q(t | x̃)``)
=====================  ============================================================================

``adv`` is one of :class:`~ppgen.inference.AdversarialLoss` (the critic's and the generator's
losses of :mod:`ppgen.inference.adversarial`); ``x̃'`` are translations passed through the
history buffer (:class:`HistoryBuffer`, Shrivastava et al., 2017), which CycleGAN uses and
StarGAN does not. Every term is a mean over the batch's rows, so each domain's critic and each
direction weigh in by their share of the rows (the papers sum the two directions: the same
ratios between the terms).

The model side is the translation protocol of :mod:`ppgen.models.translation`
(``translate_rows``, ``critic_outputs(critic, x, domain=...)``, ``critic_network``,
``num_domains``); the objective never imports a model.

Validation (lower is better; early stopping and the best state use it): with ``paired`` data
(validation images in equal blocks per domain, row ``i`` of each block the same image) the mean
absolute error of the translations of every block into every other domain against that domain's
block; otherwise the cycle error ``|G(G(x, t), d) - x|₁`` with ``t = d + 1 mod K``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ppgen.errors import ModelError, TrainingError
from ppgen.inference.adversarial import (
    AdversarialLoss,
    critic_losses,
    generator_loss,
    gradient_penalty,
    recognition_loss,
)
from ppgen.objective import LossModule, Objective, StepContext
from ppgen.protocol import GenerativeModel

__all__ = ["Translation", "HistoryBuffer", "other_domains", "TRANSLATION_OBJECTIVES"]


def other_domains(domain: torch.Tensor, num_domains: int) -> torch.Tensor:
    """A uniformly random domain other than each row's, ``[N]`` (with two: the other one)."""
    shift = torch.randint(1, num_domains, domain.shape, device=domain.device)
    return (domain + shift) % num_domains


class HistoryBuffer(nn.Module):
    """A pool of earlier translations that the critics also see (Zhu et al.'s image pool).

    Each translation goes into a random slot; with probability ½ the critic sees the image that
    slot held before (when it held one) instead of the new one. The pool is a buffer of this
    module, so it is checkpointed with the objective and a resumed run continues exactly.

    Args:
        size: slots (0: no buffer, translations pass through).
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = int(size)
        self.register_buffer("images", torch.zeros(0))
        self.register_buffer("domains", torch.zeros(0, dtype=torch.long))
        self.register_buffer("filled", torch.zeros(0, dtype=torch.bool))

    def allocate(self, event_shape: tuple[int, ...], like: torch.Tensor) -> None:
        """Size the pool for images of ``event_shape`` (once, before training or resuming)."""
        if self.size and self.images.shape[1:] != tuple(event_shape):
            self.images = like.new_zeros(self.size, *event_shape)
            self.domains = torch.zeros(self.size, dtype=torch.long, device=like.device)
            self.filled = torch.zeros(self.size, dtype=torch.bool, device=like.device)

    @torch.no_grad()
    def query(self, images: torch.Tensor, domains: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """The images ``[B, ...]`` and their domains ``[B]`` the critic sees; stores the new."""
        if not self.size:
            return images, domains
        slot = torch.randint(self.size, (len(images),), device=images.device)
        old = self.filled[slot] & (torch.rand(len(images), device=images.device) < 0.5)
        shape = (-1,) + (1,) * (images.dim() - 1)
        out = torch.where(old.reshape(shape), self.images[slot], images)
        out_domains = torch.where(old, self.domains[slot], domains)
        self.images[slot] = images.detach()
        self.domains[slot] = domains
        self.filled[slot] = True
        return out, out_domains


class Translation(Objective):
    """Train a translation model (two players: ``"generator"`` and ``"critic"``).

    Args:
        loss: the adversarial loss (:class:`~ppgen.inference.AdversarialLoss` name):
            ``"least-squares"`` (CycleGAN's, the default) or ``"wgan-gp"`` (StarGAN's), ...
        n_critic: critic updates per generator update (default 5 for ``wgan-gp``, else 1).
        gradient_penalty: ``λ_gp`` (default 10 for ``wgan-gp``, else 0).
        cycle_weight: ``λ_cyc`` of the cycle-consistency (reconstruction) loss.
        identity_weight: ``λ_id`` of the identity loss ``|G(x, d) - x|₁``.
        class_weight: ``λ_cls`` of the domain classification loss, for critics that recognise
            the domain (StarGAN).
        pool_size: slots of the critics' :class:`HistoryBuffer` (0: none).
        paired: the validation data are paired (see the module docstring).

    Example:
        >>> objective = Translation("least-squares", pool_size=50)
        >>> objective.updates(0, ("generator", "critic"))
        [('critic',), ('generator',)]
    """

    name = "translation"

    def __init__(
        self,
        loss: str = "least-squares",
        n_critic: int | None = None,
        gradient_penalty: float | None = None,
        cycle_weight: float = 10.0,
        identity_weight: float = 0.0,
        class_weight: float = 0.0,
        pool_size: int = 0,
        paired: bool = False,
    ) -> None:
        super().__init__()
        try:
            self.loss_kind = AdversarialLoss(loss)
        except ValueError:
            known = ", ".join(v.value for v in AdversarialLoss)
            raise TrainingError(f"unknown adversarial loss {loss!r}; use one of {known}") from None
        wgan = self.loss_kind == AdversarialLoss.WGAN_GP
        self.n_critic = (5 if wgan else 1) if n_critic is None else int(n_critic)
        self.gp_weight = float((10.0 if wgan else 0.0) if gradient_penalty is None
                               else gradient_penalty)
        self.cycle_weight, self.identity_weight = float(cycle_weight), float(identity_weight)
        self.class_weight, self.paired = float(class_weight), bool(paired)
        if (self.n_critic < 1 or min(self.gp_weight, self.cycle_weight, self.identity_weight,
                                     self.class_weight) < 0 or pool_size < 0):
            raise TrainingError("n_critic >= 1 and non-negative weights and pool_size are "
                                "required")
        self.pool = HistoryBuffer(pool_size)

    def forward(self, model: nn.Module) -> LossModule:
        """Bind to ``model``, sizing the history buffer for its images."""
        if not isinstance(model, GenerativeModel) or model.num_domains < 2:
            raise ModelError(f"the translation objective trains translation models "
                             f"(CycleGAN, StarGAN); {type(model).__name__} has no domains")
        self.pool.allocate(tuple(model.event_shape), next(model.parameters()))
        return super().forward(model)

    # ----------------------------------------------------------------- players
    def param_groups(self, model: nn.Module) -> dict[str, Iterable[nn.Parameter]]:
        """``{"generator": every parameter but the critic's, "critic": the critic's}``."""
        critic = list(model.critic_network().parameters())
        ids = {id(p) for p in critic}
        return {"generator": [p for p in model.parameters() if id(p) not in ids],
                "critic": critic}

    def updates(self, step: int, groups: tuple[str, ...]) -> list[tuple[str, ...]]:
        """A critic update every step, a generator update every ``n_critic``-th step."""
        last = step % self.n_critic == self.n_critic - 1
        return [("critic",)] + ([("generator",)] if last else [])

    def ema_parameters(self, model: nn.Module) -> Iterable[tuple[str, nn.Parameter]]:
        """The generators' parameters (the critic is never averaged)."""
        ids = {id(p) for p in model.critic_network().parameters()}
        return [(n, p) for n, p in model.named_parameters() if id(p) not in ids]

    # ----------------------------------------------------------------- losses
    def losses(self, model: nn.Module, batch: torch.Tensor, context: StepContext,
               **kwargs: Any) -> dict[str, torch.Tensor]:
        """The critic's loss (``context.update == ("critic",)``) or the generators'."""
        domain = _domains_of(kwargs)
        if context.update == ("generator",):
            return self.generator_step(model, batch, domain)
        return self.critic_step(model, batch, domain)

    def critic_step(self, model: nn.Module, batch: torch.Tensor, domain: torch.Tensor
                    ) -> dict[str, torch.Tensor]:
        """``{"loss": critic loss (+ penalty, + λ_cls class loss), "gap": ...}``."""
        critic = model.critic_network()
        with torch.no_grad():
            target = other_domains(domain, model.num_domains)
            fake = model.translate_rows(batch, target)
        fake, fake_domain = self.pool.query(fake, target)
        d_real, seen_real = model.critic_outputs(critic, batch, domain=domain)
        d_fake, _ = model.critic_outputs(critic, fake, domain=fake_domain)
        loss = critic_losses(self.loss_kind, d_real, d_fake)
        out = {"gap": (d_real.mean() - d_fake.mean()).detach()}
        if self.class_weight and seen_real:
            cls = recognition_loss(seen_real, {"domain": domain})
            loss, out["class"] = loss + self.class_weight * cls, cls.detach()
        if self.gp_weight:
            penalty = gradient_penalty(critic, batch, fake, {"domain": domain})
            loss, out["penalty"] = loss + self.gp_weight * penalty, penalty.detach()
        return {"loss": loss, **out}

    def generator_step(self, model: nn.Module, batch: torch.Tensor, domain: torch.Tensor
                       ) -> dict[str, torch.Tensor]:
        """``{"loss": adversarial + λ_cyc cycle (+ λ_id identity, + λ_cls class), ...}``."""
        target = other_domains(domain, model.num_domains)
        fake = model.translate_rows(batch, target)
        d_fake, seen = model.critic_outputs(model.critic_network(), fake, domain=target)
        cycle = (model.translate_rows(fake, domain) - batch).abs().mean()
        loss = generator_loss(self.loss_kind, d_fake) + self.cycle_weight * cycle
        out = {"cycle": cycle.detach()}
        if self.identity_weight:
            identity = (model.translate_rows(batch, domain) - batch).abs().mean()
            loss, out["identity"] = loss + self.identity_weight * identity, identity.detach()
        if self.class_weight and seen:
            cls = recognition_loss(seen, {"domain": target})
            loss, out["class"] = loss + self.class_weight * cls, cls.detach()
        return {"loss": loss, **out}

    # ----------------------------------------------------------------- validation
    @torch.no_grad()
    def validation_metric(self, model: nn.Module, data: torch.Tensor, **kwargs: Any
                          ) -> torch.Tensor:
        """The translation error of paired data, else the cycle error (see the module
        docstring); a mean absolute error in the data's units."""
        domain = _domains_of(kwargs)
        if self.paired:
            return translation_error(model, data, domain)
        target = (domain + 1) % model.num_domains
        back = model.translate_rows(model.translate_rows(data, target), domain)
        return (back - data).abs().mean()

    def get_config(self) -> dict:
        return {"name": self.name, "loss": self.loss_kind.value, "n_critic": self.n_critic,
                "gradient_penalty": self.gp_weight, "cycle_weight": self.cycle_weight,
                "identity_weight": self.identity_weight, "class_weight": self.class_weight,
                "pool_size": self.pool.size, "paired": self.paired}


@torch.no_grad()
def translation_error(model: nn.Module, data: torch.Tensor, domain: torch.Tensor
                      ) -> torch.Tensor:
    """Mean ``|G(x_s, t) - x_t|`` over every ordered pair of domains ``s ≠ t`` of paired data
    (equal blocks, domain by domain, row ``i`` of each block the same image).

    Raises:
        TrainingError: data that are not laid out as paired blocks.
    """
    k = model.num_domains
    n = len(data) // k
    expected = torch.arange(k, device=domain.device).repeat_interleave(n)
    if n * k != len(data) or not torch.equal(domain, expected):
        raise TrainingError("paired validation needs the same number of images per domain, "
                            "stacked domain by domain (DomainSplits.val); build the model with "
                            "paired=False to validate on the cycle error")
    blocks = data.reshape(k, n, *data.shape[1:])
    errors = []
    for t in range(k):
        target = torch.full((len(data),), t, dtype=torch.long, device=data.device)
        fake = model.translate_rows(data, target).reshape(k, n, *data.shape[1:])
        errors += [(fake[s] - blocks[t]).abs().mean() for s in range(k) if s != t]
    return torch.stack(errors).mean()


def _domains_of(kwargs: dict[str, Any]) -> torch.Tensor:
    if "domain" not in kwargs:
        raise TrainingError("the translation objective needs each row's domain: pass the "
                            "domain indices as labels (ppgen.fit(model, x, x_val, labels=domain, "
                            "val_labels=domain_val))")
    return kwargs["domain"]


#: the translation objective by registered name
TRANSLATION_OBJECTIVES: dict[str, type[Objective]] = {Translation.name: Translation}
