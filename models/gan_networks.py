"""The GAN zoo's networks: MLP and convolutional bodies, and a critic with heads.

One set of bodies serves every GAN of the zoo: :class:`~ppgen.models.GAN` and
:class:`~ppgen.models.DCGAN` use them as they are; the conditional and information-maximising
GANs feed the generator body a longer input (noise and a label or codes) and put heads on the
critic's body (:class:`HeadedCritic`):

* the score head ``ψ(φ(x))``, one output (every adversarial loss and gradient penalty reads it);
* a projection of a class embedding on the features, ``<e_y, φ(x)>`` (Miyato & Koyama, 2018,
  "cGANs with Projection Discriminator", arXiv:1802.05637);
* an auxiliary head whose outputs parameterise a distribution over labels or codes (AC-GAN's
  classifier, InfoGAN's ``Q`` network), sharing the body, as in the papers.

Example:
    >>> body, width = critic_body(2, {"critic_dims": (16,)})
    >>> critic = HeadedCritic(body, width, num_classes=3, aux_outputs=3)
    >>> x, y = torch.randn(4, 2), torch.tensor([0, 1, 2, 0])
    >>> critic(x, y).shape, [t.shape for t in critic.heads(x, y)]
    (torch.Size([4, 1]), [torch.Size([4]), torch.Size([4, 3])])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ppgen.errors import ModelError

__all__ = [
    "ACTIVATIONS",
    "mlp",
    "check_image",
    "ConvGenerator",
    "ConvCritic",
    "conv_features",
    "HeadedCritic",
    "MLP_NETWORK",
    "CONV_NETWORK",
    "network_options",
    "generator_body",
    "critic_body",
]

#: the generator's output activations by name
ACTIVATIONS = {"identity": nn.Identity, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}

#: the default options of the MLP bodies (flat data) and of the convolutional ones (images)
MLP_NETWORK: dict[str, Any] = {"hidden_dims": (256, 256), "critic_dims": (256, 256)}
CONV_NETWORK: dict[str, Any] = {"channels": 32, "num_stages": 2}


# ----------------------------------------------------------------------------- building blocks
def mlp(sizes: Sequence[int], activation: Any) -> nn.Sequential:
    """Linear layers ``sizes[0] -> ... -> sizes[-1]`` with ``activation()`` between them."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def check_image(image_shape: tuple[int, ...], num_stages: int) -> tuple[int, int, int]:
    """``(C, H, W)`` of a valid image shape for ``num_stages`` stages, or a clear error."""
    shape = (1, *image_shape) if len(image_shape) == 2 else image_shape
    if len(shape) != 3 or any(not isinstance(s, int) or s < 1 for s in shape):
        raise ModelError(f"image_shape must be (C, H, W) or (H, W), got {image_shape}")
    step = 2 ** num_stages
    if num_stages < 1 or shape[1] % step or shape[2] % step:
        raise ModelError(f"DCGAN with num_stages={num_stages} needs H and W divisible by "
                         f"{step}; image_shape {image_shape}: choose fewer stages")
    return shape  # type: ignore[return-value]


class ConvGenerator(nn.Module):
    """``[n, L] -> [n, C*H*W]``: project, upsample ``s`` times, convolve to ``C`` channels."""

    def __init__(self, shape: tuple[int, int, int], latent_dim: int, channels: int,
                 stages: int, output: str) -> None:
        super().__init__()
        C, H, W = shape
        self.base = (channels * 2 ** stages, H >> stages, W >> stages)
        self.project = nn.Linear(latent_dim, math.prod(self.base))
        ups: list[nn.Module] = [nn.BatchNorm2d(self.base[0]), nn.ReLU()]
        for i in range(stages, 0, -1):
            c_in, c_out = channels * 2 ** i, channels * 2 ** (i - 1)
            ups += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU()]
        self.up = nn.Sequential(*ups, nn.Conv2d(channels, C, 3, padding=1),
                                ACTIVATIONS[output]())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        batch = z.shape[:-1]
        h = self.project(z.reshape(-1, z.shape[-1])).reshape(-1, *self.base)
        return self.up(h).reshape(*batch, -1)


def conv_features(shape: tuple[int, int, int], channels: int, stages: int
                  ) -> tuple[nn.Sequential, int]:
    """The convolutional critic body ``[n, C, H, W] -> [n, F]`` and its width ``F``: a 3x3
    convolution, then ``stages`` stride-2 convolutions (kernel 4, LeakyReLU 0.2) that halve the
    size and double the channels."""
    C, H, W = shape
    layers: list[nn.Module] = [nn.Conv2d(C, channels, 3, padding=1), nn.LeakyReLU(0.2)]
    for i in range(stages):
        layers += [nn.Conv2d(channels * 2 ** i, channels * 2 ** (i + 1), 4, 2, 1),
                   nn.LeakyReLU(0.2)]
    width = channels * 2 ** stages * (H >> stages) * (W >> stages)
    return nn.Sequential(*layers, nn.Flatten()), width


class ConvCritic(nn.Module):
    """``[n, C*H*W] -> [n, 1]``: the convolutional body, then one linear output."""

    def __init__(self, shape: tuple[int, int, int], channels: int, stages: int) -> None:
        super().__init__()
        self.shape = shape
        self.features, width = conv_features(shape, channels, stages)
        self.out = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x.reshape(-1, *self.shape)))


class _Images(nn.Module):
    """Flat images ``[n, C*H*W]`` through a body that takes ``[n, C, H, W]``."""

    def __init__(self, shape: tuple[int, int, int], body: nn.Module) -> None:
        super().__init__()
        self.shape, self.body = shape, body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.reshape(-1, *self.shape))


# ----------------------------------------------------------------------------- bodies by shape
def network_options(image_shape: tuple[int, ...] | None, network: dict[str, Any] | None
                    ) -> dict[str, Any]:
    """The body options for flat data (``image_shape=None``: :data:`MLP_NETWORK`) or images
    (:data:`CONV_NETWORK`), with ``network`` overriding them.

    Raises:
        ModelError: an option the body does not take.
    """
    defaults = MLP_NETWORK if image_shape is None else CONV_NETWORK
    unknown = sorted(set(network or {}) - set(defaults))
    if unknown:
        kind = "MLP" if image_shape is None else "convolutional"
        raise ModelError(f"unknown network option(s) {unknown} of the {kind} bodies; they "
                         f"take {sorted(defaults)}")
    return {**defaults, **(network or {})}


def generator_body(num_dims: int, image_shape: tuple[int, int, int] | None, input_dim: int,
                   network: dict[str, Any], output: str) -> nn.Module:
    """The generator ``[n, input_dim] -> [n, num_dims]``: GAN's MLP, or DCGAN's transposed
    convolutions for images ``(C, H, W)``."""
    if image_shape is None:
        sizes = [input_dim, *network["hidden_dims"], num_dims]
        return nn.Sequential(mlp(sizes, nn.ReLU), ACTIVATIONS[output]())
    return ConvGenerator(image_shape, input_dim, network["channels"], network["num_stages"],
                         output)


def critic_body(num_dims: int, network: dict[str, Any],
                image_shape: tuple[int, int, int] | None = None) -> tuple[nn.Module, int]:
    """The critic's body ``[n, num_dims] -> [n, F]`` and ``F``: GAN's LeakyReLU MLP up to its
    last hidden layer, or DCGAN's convolutions for images ``(C, H, W)``."""
    if image_shape is None:
        sizes = [num_dims, *network["critic_dims"]]
        return nn.Sequential(mlp(sizes, lambda: nn.LeakyReLU(0.2)), nn.LeakyReLU(0.2)), sizes[-1]
    body, width = conv_features(image_shape, network["channels"], network["num_stages"])
    return _Images(image_shape, body), width


# ----------------------------------------------------------------------------- the critic
class HeadedCritic(nn.Module):
    """A critic body ``φ`` with a score head, an optional class projection and an optional
    auxiliary head.

    Args:
        body: ``φ: [n, D] -> [n, F]``.
        num_features: ``F``.
        num_classes: ``C`` for a projection critic ``ψ(φ(x)) + <e_y, φ(x)>`` of labels
            ``0..C-1`` (``None``: the score ignores labels).
        aux_outputs: outputs of the auxiliary head on ``φ(x)`` (0: none).

    ``forward(x, y=None)`` is the score ``[n, 1]`` (what the losses and the gradient penalties
    read); :meth:`heads` returns the score and the auxiliary outputs from one pass of the body.
    """

    def __init__(self, body: nn.Module, num_features: int, num_classes: int | None = None,
                 aux_outputs: int = 0) -> None:
        super().__init__()
        self.body = body
        self.out = nn.Linear(num_features, 1)
        self.embed = None if num_classes is None else nn.Embedding(num_classes, num_features)
        self.aux = nn.Linear(num_features, aux_outputs) if aux_outputs else None

    def _score(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        score = self.out(h)
        if self.embed is not None and y is not None:
            score = score + (self.embed(y) * h).sum(-1, keepdim=True)
        return score

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The score ``[n, 1]`` of ``x: [n, D]`` (labels ``y: [n]`` for a projection critic)."""
        return self._score(self.body(x), y)

    def heads(self, x: torch.Tensor, y: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The score ``[n]`` and the auxiliary outputs ``[n, A]`` (``None`` without that head)."""
        h = self.body(x)
        aux = None if self.aux is None else self.aux(h)
        return self._score(h, y).reshape(len(x)), aux
