"""StarGAN: translation between any number of domains by one generator conditioned on the target.

The generator ``G(x, c)`` reads an image and the target domain ``c`` (one-hot, broadcast as
constant channels); the critic ``D`` has a score head and an auxiliary domain classifier
``q(c | x)`` on one convolutional body. The ``"translation"`` objective
(:class:`ppgen.inference.translation.Translation`) trains them on every domain's images stacked
with their domain index, translating each row into a random other domain: WGAN-GP
(``λ_gp = 10``, five critic steps per generator step), the domain classification loss
``-log q(c | x)`` (the critic on real images with their own domain, the generator on
translations with their target; ``λ_cls = 1``) and the reconstruction loss
``λ_rec |G(G(x, c), c') - x|₁`` (``λ_rec = 10``).

Paper: Choi, Choi, Kim, Ha, Kim & Choo, 2018, "StarGAN: Unified Generative Adversarial
Networks for Multi-Domain Image-to-Image Translation" (arXiv:1711.09020): Adam (1e-4,
β = (0.5, 0.999)); the generator of CycleGAN with the domain as extra input channels.

Example:
    >>> model = StarGAN(("original", "bold", "thin"), (8, 8),
    ...                 network={"channels": 4, "num_blocks": 1})
    >>> model.translate(torch.rand(2, 64), target="thin").shape
    torch.Size([2, 64])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyro.distributions as dist
import torch
from torch import nn

from ppgen.errors import ModelError
from ppgen.models.gan_networks import HeadedCritic, critic_body
from ppgen.models.translation import ResnetGenerator, TranslationModel

__all__ = ["StarGAN", "DomainClassifierCritic"]

#: every digit domain (``ppgen.data.domains.DIGIT_DOMAINS``), StarGAN's default
_ALL_DIGIT_DOMAINS = ("original", "inverted", "bold", "thin", "rotated", "mirrored")


class DomainClassifierCritic(HeadedCritic):
    """A critic body with a score head and a domain classifier head; ``forward(x, domain)``
    is the score ``[N, 1]`` (it does not read the domain)."""

    def forward(self, x: torch.Tensor, domain: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(x)


class StarGAN(TranslationModel):
    """One generator for every pair of domains, a critic with a domain classifier.

    Paper: Choi et al., 2018 (arXiv:1711.09020).

    Args:
        domains: two or more domain names, in index order.
        image_shape: ``(H, W)`` or ``(C, H, W)``, ``H`` and ``W`` even.
        network: generator options (``channels``, ``num_blocks``).
        critic_channels: channels of the critic's first convolution.
        loss: the adversarial loss (``"wgan-gp"``, the paper's).
        n_critic: critic steps per generator step (default: 5 for WGAN-GP, else 1).
        class_weight: ``λ_cls`` of the domain classification loss.
        cycle_weight: ``λ_rec`` of the reconstruction loss.
        paired: the validation data are paired (see :class:`~ppgen.models.CycleGAN`).
        lr: Adam's rate for both players (the paper's 1e-4 over 200k iterations; 5e-4 for the
            digits' CPU budget).

    Example:
        >>> model = StarGAN(("a", "b", "c"), (8, 8), network={"channels": 4, "num_blocks": 1})
        >>> score, seen = model.critic_outputs(model.critic, torch.rand(5, 64))
        >>> score.shape, seen["domain"].probs.shape
        (torch.Size([5]), torch.Size([5, 3]))
    """

    name = "stargan"
    default_domains = _ALL_DIGIT_DOMAINS

    def __init__(
        self,
        domains: Sequence[str] = _ALL_DIGIT_DOMAINS,
        image_shape: Sequence[int] = (8, 8),
        network: dict[str, Any] | None = None,
        critic_channels: int = 16,
        loss: str = "wgan-gp",
        n_critic: int | None = None,
        class_weight: float = 1.0,
        cycle_weight: float = 10.0,
        paired: bool = False,
        lr: float = 5e-4,
    ) -> None:
        super().__init__()
        shape = self._setup(domains, image_shape, network, paired)
        if min(class_weight, cycle_weight) < 0 or lr <= 0:
            raise ModelError("class_weight >= 0, cycle_weight >= 0 and lr > 0 are required")
        self.critic_channels, self.loss, self.n_critic = critic_channels, loss, n_critic
        self.class_weight, self.cycle_weight = float(class_weight), float(cycle_weight)
        self.lr = float(lr)
        opts = self.options
        self.generator = ResnetGenerator(shape, self.num_domains, opts["channels"],
                                         opts["num_blocks"], opts["dense"])
        body, width = critic_body(0, {"channels": critic_channels, "num_stages": 1}, shape)
        self.critic = DomainClassifierCritic(body, width, None, self.num_domains)
        self.register_buffer("_one_hot", torch.eye(self.num_domains), persistent=False)

    @property
    def objective_defaults(self) -> dict[str, Any]:  # type: ignore[override]
        """The paper's recipe: this model's loss and weights, every row to a random other
        domain, no history buffer, no identity loss."""
        return {"loss": self.loss, "n_critic": self.n_critic, "class_weight": self.class_weight,
                "cycle_weight": self.cycle_weight, "identity_weight": 0.0, "pool_size": 0,
                "paired": self.paired}

    @property
    def fit_defaults(self) -> dict[str, Any]:  # type: ignore[override]
        """Adam (``lr``, β = (0.5, 0.999)) for both players, batches of 32, early stopping on
        the validation error."""
        group = {"name": "adam", "lr": self.lr, "betas": [0.5, 0.999]}
        return {"optimizer": {"generator": dict(group), "critic": dict(group)},
                "batch_size": 32, "epochs": 60, "patience": 10}

    def translate_rows(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``G(x, onehot(target))`` ``[N, D]``."""
        return self.generator(x, self._one_hot[target])

    def critic_outputs(self, critic: nn.Module, x: torch.Tensor, **conditions: Any
                       ) -> tuple[torch.Tensor, dict[str, Any]]:
        """The score ``[N]`` and ``{"domain": q(c | x)}`` (a categorical over the domains)."""
        score, logits = critic.heads(x)
        return score, {"domain": dist.Categorical(logits=logits, validate_args=False)}
