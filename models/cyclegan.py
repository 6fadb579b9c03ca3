"""CycleGAN: unpaired translation between two domains by two generators and two critics.

``G_k`` translates into domain ``k`` (``G_1: A → B``, ``G_0: B → A``); critic ``D_k`` tells real
images of domain ``k`` from translations into it. The ``"translation"`` objective
(:class:`ppgen.inference.translation.Translation`) trains them on the domains' images stacked
with their domain index, translating every row into the other domain: adversarial loss
(least squares by default), cycle consistency ``λ |G_d(G_t(x)) - x|₁`` and identity
``λ_id |G_d(x) - x|₁``; the critics read a history buffer of earlier translations.

Paper: Zhu, Park, Isola & Efros, 2017, "Unpaired Image-to-Image Translation using
Cycle-Consistent Adversarial Networks" (arXiv:1703.10593): λ = 10, LSGAN, a buffer of 50
images, Adam (β₁ = 0.5); ResNet generators and small convolutional critics (the paper's
PatchGAN for 256x256 images shrinks to a one-stage critic for 8x8 digits). Deviations for the
8x8 digits on a CPU budget, each an option: a small generator with a skip from the input to
its last layer (:class:`~ppgen.models.translation.ResnetGenerator`), the identity loss off
(the paper uses it for painting → photo only), Adam at 1e-3.

Example:
    >>> model = CycleGAN(("original", "bold"), (8, 8), network={"channels": 4, "num_blocks": 1})
    >>> model.translate(torch.rand(3, 64), target="bold").shape
    torch.Size([3, 64])
    >>> model.objective_defaults["loss"], model.objective_defaults["pool_size"]
    ('least-squares', 50)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from ppgen.errors import ModelError
from ppgen.models.gan_networks import ConvCritic
from ppgen.models.translation import ResnetGenerator, TranslationModel

__all__ = ["CycleGAN", "DomainCritics"]


class DomainCritics(nn.Module):
    """One critic per domain; ``forward(x, domain)`` is each row's score by its domain's
    critic, ``[N, 1]`` (every critic runs on every row: no data-dependent shapes)."""

    def __init__(self, critics: Sequence[nn.Module]) -> None:
        super().__init__()
        self.critics = nn.ModuleList(critics)

    def forward(self, x: torch.Tensor, domain: torch.Tensor | None = None) -> torch.Tensor:
        if domain is None:
            raise ModelError("the domain critics score images of a domain: pass domain=[N]")
        scores = torch.cat([critic(x) for critic in self.critics], dim=-1)
        return scores.gather(-1, domain.reshape(-1, 1))


class CycleGAN(TranslationModel):
    """Two generators and two critics between two image domains.

    Paper: Zhu et al., 2017 (arXiv:1703.10593).

    Args:
        domains: the two domain names, index 0 and 1 (e.g. ``("original", "bold")``).
        image_shape: ``(H, W)`` or ``(C, H, W)``, ``H`` and ``W`` even.
        network: generator options (``channels``, ``num_blocks``, ``dense``; default
            :attr:`generator_defaults`; ``dense=True`` for geometric maps such as a rotation).
        critic_channels: channels of the critics' first convolution.
        loss: the adversarial loss (``"least-squares"``: LSGAN, the paper's; any of
            ``ppgen.inference.AdversarialLoss``).
        cycle_weight: ``λ`` of the cycle-consistency loss.
        identity_weight: ``λ_id`` of the identity loss (the paper's photo-from-painting
            setting: ``0.5 λ``; off by default, as in its other experiments: a translation
            that changes every pixel, such as an inversion, cannot also be the identity on
            its target domain when the generator cannot tell the domains apart).
        pool_size: images in the critics' history buffer (0: none).
        paired: the validation data are paired (the same images in every domain, in equal
            blocks): validate on the translation error instead of the cycle error.
        lr: Adam's rate for both players (the paper's 2e-4 over 200 epochs of single images;
            1e-3 reaches the digits benchmark in a few CPU minutes).

    Example:
        >>> model = CycleGAN(("a", "b"), (8, 8), network={"channels": 4, "num_blocks": 1})
        >>> x, d = torch.rand(4, 64), torch.tensor([0, 1, 0, 1])
        >>> model.critic_outputs(model.critic, x, domain=d)[0].shape
        torch.Size([4])
    """

    name = "cyclegan"
    default_domains = ("original", "bold")
    #: a small generator: 8 channels, no residual blocks (on the digits a larger one
    #: hallucinates other digits that the cycle still inverts, and content is lost)
    generator_defaults: ClassVar[dict[str, Any]] = {"channels": 8, "num_blocks": 0,
                                                    "dense": False}

    def __init__(
        self,
        domains: Sequence[str] = ("original", "bold"),
        image_shape: Sequence[int] = (8, 8),
        network: dict[str, Any] | None = None,
        critic_channels: int = 16,
        loss: str = "least-squares",
        cycle_weight: float = 10.0,
        identity_weight: float = 0.0,
        pool_size: int = 50,
        paired: bool = False,
        lr: float = 1e-3,
    ) -> None:
        super().__init__()
        shape = self._setup(domains, image_shape, network, paired)
        if self.num_domains != 2:
            raise ModelError(f"CycleGAN translates between two domains, got {len(self.domains)} "
                             f"({', '.join(self.domains)}): use StarGAN for more")
        if min(cycle_weight, identity_weight) < 0 or pool_size < 0 or lr <= 0:
            raise ModelError("cycle_weight >= 0, identity_weight >= 0, pool_size >= 0 and lr > 0 "
                             "are required")
        self.critic_channels, self.loss = critic_channels, loss
        self.cycle_weight, self.identity_weight = float(cycle_weight), float(identity_weight)
        self.pool_size, self.lr = int(pool_size), float(lr)
        opts = self.options
        self.generators = nn.ModuleList(
            ResnetGenerator(shape, 0, opts["channels"], opts["num_blocks"],
                            opts["dense"]) for _ in range(2))
        self.critic = DomainCritics([ConvCritic(shape, critic_channels, 1) for _ in range(2)])

    @property
    def objective_defaults(self) -> dict[str, Any]:  # type: ignore[override]
        """The paper's recipe: this model's loss and weights, every row to the other domain,
        a history buffer for the critics."""
        return {"loss": self.loss, "cycle_weight": self.cycle_weight,
                "identity_weight": self.identity_weight, "pool_size": self.pool_size,
                "paired": self.paired}

    @property
    def fit_defaults(self) -> dict[str, Any]:  # type: ignore[override]
        """Adam (``lr``, β = (0.5, 0.999)) for both players, batches of 32, early stopping on
        the validation error."""
        group = {"name": "adam", "lr": self.lr, "betas": [0.5, 0.999]}
        return {"optimizer": {"generator": dict(group), "critic": dict(group)},
                "batch_size": 32, "epochs": 30, "patience": 8}

    def translate_rows(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``G_{target}(x)`` per row, ``[N, D]`` (both generators run on every row)."""
        into_0, into_1 = (g(x) for g in self.generators)
        return torch.where(target.reshape(-1, 1) == 0, into_0, into_1)

    def critic_outputs(self, critic: nn.Module, x: torch.Tensor, **conditions: Any
                       ) -> tuple[torch.Tensor, dict[str, Any]]:
        """``D_domain(x)`` per row ``[N]``; nothing recognised."""
        return critic(x, conditions["domain"]).reshape(len(x)), {}
