"""Class-conditional GANs: ``p(x | y)`` by a generator and a critic that both read the label.

The program is ``z ~ N(0, I_L)``, ``x = G([z, onehot(y)])`` in the ``"data"`` plate, with the
labels ``y`` a declared conditioning input (:class:`~ppgen.conditions.Condition`): train with
``ppgen.fit(model, x, x_val, labels=y, val_labels=y_val)`` (``ppgen fit cgan --data digits``),
draw a class with ``model.sample(n, y=3)`` (without ``y`` the classes in turn). Bad labels are a
:class:`~ppgen.errors.DataError` naming the class range.

* :class:`CGAN` — the critic projects a class embedding on its features,
  ``D(x, y) = ψ(φ(x)) + <e_y, φ(x)>`` (Mirza & Osindero, 2014, "Conditional Generative
  Adversarial Nets", arXiv:1411.1784, with the projection critic of Miyato & Koyama, 2018,
  arXiv:1802.05637).
* :class:`ACGAN` — the critic is unconditional and has an auxiliary classifier ``q(y | x)`` on
  the same body; both players minimise its class loss on the draws, the critic on the data too
  (Odena, Olah & Shlens, 2017, "Conditional Image Synthesis with Auxiliary Classifier GANs",
  arXiv:1610.09585).

Both take GAN's MLP bodies for flat data (``CGAN(2)``: toys, tabular data) and DCGAN's
convolutional ones for images (``CGAN((8, 8))``: the digits).

Example:
    >>> gan = CGAN(2, num_classes=3, network={"hidden_dims": (16,), "critic_dims": (16,)})
    >>> gan.sample(4, y=2).shape
    torch.Size([4, 2])
    >>> ACGAN((8, 8), network={"channels": 4}).sample(3, y=[0, 1, 9]).shape
    torch.Size([3, 64])
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import pyro
import pyro.distributions as dist
import torch

from ppgen.conditions import Condition, Conditions
from ppgen.distributions import ImplicitDistribution
from ppgen.errors import ModelError
from ppgen.models.headed_gan import HeadedGAN

__all__ = ["CGAN", "ACGAN"]


class CGAN(HeadedGAN):
    """A class-conditional GAN with a projection critic.

    Paper: Mirza & Osindero, 2014 (arXiv:1411.1784); the critic of Miyato & Koyama, 2018
    (arXiv:1802.05637).

    Args:
        shape: ``D`` for flat data (MLP bodies) or ``(H, W)`` / ``(C, H, W)`` for flat images
            (convolutional bodies).
        num_classes: ``C``: labels ``0..C-1``.
        latent_dim: ``L``, the size of the noise ``z``.
        network: body options: ``hidden_dims``, ``critic_dims`` (MLP) or ``channels``,
            ``num_stages`` (convolutional); see :mod:`ppgen.models.gan_networks`.
        output: the generator's output activation (default: ``"identity"`` for flat data,
            ``"sigmoid"`` for images).
        num_levels: ``K`` when the data are integer levels dequantised to ``[0, 1)``.
        loss: the adversarial loss (``ppgen.models.gan.GAN_LOSSES``).
        n_critic: critic steps per generator step (default: 5 for WGAN-GP, 1 otherwise).
        r1: weight ``γ`` of the R1 penalty on the critic.
        features: the feature space of the validation metric: ``"digits"`` (the Fréchet
            distance in the digits classifier's space; set by ``for_data`` for the
            digits) or ``None`` (the MMD on the data).

    Example:
        >>> gan = CGAN((8, 8), num_classes=10, latent_dim=8, network={"channels": 4})
        >>> gan.critic(gan.sample(2, y=1), torch.tensor([1, 1])).shape
        torch.Size([2, 1])
    """

    def __init__(
        self,
        shape: int | Sequence[int],
        num_classes: int = 10,
        latent_dim: int = 32,
        network: dict[str, Any] | None = None,
        output: str | None = None,
        num_levels: int | None = None,
        loss: str = "non-saturating",
        n_critic: int | None = None,
        r1: float = 0.0,
        features: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ModelError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        self.num_classes = num_classes
        self._setup(latent_dim, self._default_output(shape, output), num_levels, loss,
                    n_critic, r1, features)
        self._build(shape, network, num_classes, *self._heads())
        self.register_buffer("_one_hot", torch.eye(num_classes), persistent=False)

    def _heads(self) -> tuple[int | None, int]:
        """The critic's projection classes and auxiliary outputs: a projection critic."""
        return self.num_classes, 0

    @property
    def conditions(self) -> Conditions:
        """``y``, class labels ``0..num_classes-1``."""
        return Conditions([Condition.classes("y", self.num_classes)], type(self).__name__)

    def model(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None,
              num_samples: int | None = None) -> torch.Tensor:
        """``x = G([z, onehot(y)])``, ``z ~ N(0, I)``, in the ``"data"`` plate.

        Args:
            x: observed data ``[N, *event_shape]`` (no density: scoring them is an error), or
                ``None`` to generate.
            y: ``long`` labels ``[N]``; when generating without them the classes in turn.
            num_samples: ``N`` when generating without labels (default 1).

        Returns:
            ``x`` (observed or generated).
        """
        device = self.noise_loc.device
        y = self.conditions.in_program({"y": y}, x, num_samples, device)["y"]
        n = x.shape[0] if x is not None else y.shape[0]
        generate = partial(self._generate, label=self._one_hot[y])
        implicit = ImplicitDistribution(generate, self.noise(n), self.event_shape)
        with pyro.plate("data", n, device=device):
            return pyro.sample(self.data_site, implicit, obs=x)

    def _generate(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.generator(torch.cat([z, label.to(z.dtype)], dim=-1))


class ACGAN(CGAN):
    """A class-conditional GAN whose critic also classifies (an auxiliary classifier GAN).

    The critic's score ignores the label; its auxiliary head ``q(y | x)`` (a softmax over the
    ``C`` classes, on the critic's body) gives the class loss ``-log q(y | x)``, weighted by
    ``class_weight``, that the critic minimises on data and draws and the generator on draws.

    Paper: Odena, Olah & Shlens, 2017 (arXiv:1610.09585).

    Args:
        shape, num_classes, latent_dim, network, output, num_levels, loss, n_critic, r1,
            features: as :class:`CGAN`.
        class_weight: ``λ`` of the class loss (the objective's ``info_weight``).

    Example:
        >>> gan = ACGAN(2, num_classes=3, network={"hidden_dims": (8,), "critic_dims": (8,)})
        >>> x = gan.sample(4)
        >>> score, recognized = gan.critic_outputs(gan.critic, x)
        >>> score.shape, recognized["y"].probs.shape
        (torch.Size([4]), torch.Size([4, 3]))
    """

    def __init__(
        self,
        shape: int | Sequence[int],
        num_classes: int = 10,
        latent_dim: int = 32,
        network: dict[str, Any] | None = None,
        output: str | None = None,
        num_levels: int | None = None,
        loss: str = "non-saturating",
        n_critic: int | None = None,
        r1: float = 0.0,
        class_weight: float = 1.0,
        features: str | None = None,
    ) -> None:
        super().__init__(shape, num_classes, latent_dim, network, output, num_levels, loss,
                         n_critic, r1, features)
        if class_weight < 0:
            raise ModelError(f"class_weight must be >= 0, got {class_weight}")
        self.class_weight = float(class_weight)

    def _heads(self) -> tuple[int | None, int]:
        """An unconditional score and a ``C``-way classifier."""
        return None, self.num_classes

    @property
    def objective_defaults(self) -> dict[str, Any]:  # type: ignore[override]
        """The GAN recipe and the class loss's weight."""
        return {**super().objective_defaults, "info_weight": self.class_weight}

    def recognize(self, aux: torch.Tensor) -> dict[str, Any]:
        """``{"y": q(y | x)}``: the classifier's softmax over the classes (batch ``[N]``)."""
        return {"y": dist.Categorical(logits=aux, validate_args=False)}

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """The auxiliary classifier's most likely class ``[N]`` of ``x: [N, *event_shape]``."""
        return self.critic.heads(x)[1].argmax(-1)
