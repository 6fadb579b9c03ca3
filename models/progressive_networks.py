"""The growing networks of the Progressive GAN and their layers (Karras et al., 2018).

* :class:`EqualizedLinear`, :class:`EqualizedConv2d` — the *equalised learning rate*: weights
  are drawn from ``N(0, 1)`` and scaled at run time by He's constant ``c = gain / sqrt(fan_in)``
  (``gain = sqrt 2`` before a leaky ReLU), so Adam's step is the same relative size for every
  layer.
* :func:`pixel_norm` — pixel-wise feature normalisation of the generator,
  ``b = a / sqrt(mean_c a² + 1e-8)`` over the channels of each pixel.
* :func:`minibatch_stddev` — the critic's last block reads one more channel: the standard
  deviation of each feature over a group of samples, averaged over features and pixels.
* :class:`GrowingGenerator`, :class:`GrowingCritic` — the networks at a *stage* ``k``
  (resolution ``base * 2^k``), fading a new stage in: ``torch.lerp(low, high, alpha)`` of the
  lower-resolution path (upsampled for the generator, average-pooled for the critic) and the new
  block. Both take and give flat full-size images ``[n, C*H*W]``: the generator's output is
  upsampled (nearest) to full size, the critic average-pools its input to the current stage.

Paper: Karras, Aila, Laine & Lehtinen, 2018, "Progressive Growing of GANs for Improved Quality,
Stability, and Variation" (arXiv:1710.10196), section 4 and appendix A.

Example:
    >>> g = GrowingGenerator((1, 8, 8), latent_dim=4, channels=8, output="sigmoid")
    >>> g.num_stages, g.resolution(0), g(torch.randn(3, 4)).shape
    (3, (2, 2), torch.Size([3, 64]))
    >>> _ = g.set_stage(1, fading=True); g.alpha = 0.5
    >>> g(torch.randn(3, 4)).shape
    torch.Size([3, 64])
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ppgen.errors import ModelError
from ppgen.models.gan_networks import ACTIVATIONS

__all__ = [
    "EqualizedLinear",
    "EqualizedConv2d",
    "pixel_norm",
    "minibatch_stddev",
    "progressive_shape",
    "GrowingGenerator",
    "GrowingCritic",
]

_SLOPE = 0.2
_ROOT2 = math.sqrt(2.0)


# ----------------------------------------------------------------------------- layers
class EqualizedLinear(nn.Module):
    """``y = x (c W)^T + b`` with ``W ~ N(0, 1)`` stored and ``c = gain / sqrt(in)`` applied at
    run time. ``x: [..., in] -> [..., out]``."""

    def __init__(self, n_in: int, n_out: int, gain: float = _ROOT2) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in))
        self.bias = nn.Parameter(torch.zeros(n_out))
        self.scale = gain / math.sqrt(n_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class EqualizedConv2d(nn.Module):
    """A ``k x k`` convolution (stride 1, same padding) with the equalised learning rate:
    ``W ~ N(0, 1)`` scaled by ``c = gain / sqrt(in * k * k)`` at run time.
    ``x: [n, in, H, W] -> [n, out, H, W]``."""

    def __init__(self, n_in: int, n_out: int, kernel: int, gain: float = _ROOT2) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(n_out))
        self.scale = gain / math.sqrt(n_in * kernel * kernel)
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``x / sqrt(mean over dim 1 of x² + eps)``: each pixel's (or row's) feature vector to unit
    root-mean-square. ``x: [n, C, ...]``."""
    return x * torch.rsqrt(x.square().mean(1, keepdim=True) + eps)


def minibatch_stddev(x: torch.Tensor, group_size: int = 4) -> torch.Tensor:
    """``x: [n, C, H, W] -> [n, C + 1, H, W]``: one more channel, constant over the pixels, the
    standard deviation (population, ``+1e-8`` under the root) of each feature over the group,
    averaged over ``C, H, W``.

    Groups as in the reference implementation: ``G = min(group_size, n)`` (lowered until it
    divides ``n``), and row ``i`` belongs to group ``i mod (n / G)``.
    """
    n, c, h, w = x.shape
    g = min(group_size, n)
    while n % g:
        g -= 1
    y = x.reshape(g, n // g, c, h, w)
    y = (y - y.mean(0, keepdim=True)).square().mean(0)
    y = (y + 1e-8).sqrt().mean((1, 2, 3))  # [n / G]
    y = y.reshape(1, n // g, 1, 1, 1).expand(g, n // g, 1, h, w).reshape(n, 1, h, w)
    return torch.cat([x, y], 1)


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, _SLOPE)


def progressive_shape(image_shape: tuple[int, ...]) -> tuple[tuple[int, int, int], int]:
    """``(C, H, W)`` and the number of stages of an image shape with power-of-two sides: the
    first stage's smaller side is 2, each stage doubles both sides.

    Raises:
        ModelError: not ``(H, W)`` / ``(C, H, W)``, a side that is not a power of two, or a
            side below 2.
    """
    shape = (1, *image_shape) if len(image_shape) == 2 else tuple(image_shape)
    if len(shape) != 3 or any(not isinstance(s, int) or s < 1 for s in shape):
        raise ModelError(f"image_shape must be (C, H, W) or (H, W), got {image_shape}")
    _, h, w = shape
    if min(h, w) < 2 or h & (h - 1) or w & (w - 1):
        raise ModelError(f"ProgressiveGAN grows images whose sides are powers of two (>= 2); "
                         f"got {h}x{w}: pad or resize the images")
    return shape, int(math.log2(min(h, w)))  # type: ignore[return-value]


# ----------------------------------------------------------------------------- networks
class _Growing(nn.Module):
    """What both growing networks share: the stage, the fade and the resolutions."""

    def __init__(self, shape: tuple[int, int, int], channels: int) -> None:
        super().__init__()
        self.shape, self.channels = shape, channels
        self.num_stages = int(math.log2(min(shape[1:])))
        self.stage, self.alpha = 0, 1.0  # set by the model's schedule

    def resolution(self, stage: int) -> tuple[int, int]:
        """``(H_k, W_k)`` of stage ``k``."""
        down = self.num_stages - 1 - stage
        return self.shape[1] >> down, self.shape[2] >> down

    @property
    def fading(self) -> bool:
        """Whether the current stage is fading in (the lower stage's RGB layer is present)."""
        return self.stage > 0 and str(self.stage - 1) in self._rgb

    def set_stage(self, stage: int, fading: bool) -> bool:
        """Build exactly the layers of ``stage`` (and of a fade into it); ``True`` when any
        layer was added or removed. New layers draw their weights from the global RNG."""
        if not 0 <= stage < self.num_stages:
            raise ModelError(f"stage must be in 0..{self.num_stages - 1}, got {stage}")
        device = next(iter(self.parameters())).device
        changed = False
        while len(self.blocks) < stage:
            self.blocks.append(self._block(len(self.blocks) + 1).to(device))
            changed = True
        while len(self.blocks) > stage:
            del self.blocks[-1]
            changed = True
        wanted = {str(stage)} | ({str(stage - 1)} if fading and stage > 0 else set())
        for key in sorted(set(self._rgb) - wanted):
            del self._rgb[key]
            changed = True
        for key in sorted(wanted - set(self._rgb)):
            self._rgb[key] = self._rgb_layer().to(device)
            changed = True
        self.stage = stage
        return changed

    @property
    def _rgb(self) -> nn.ModuleDict:
        raise NotImplementedError

    def _block(self, stage: int) -> nn.Module:
        raise NotImplementedError

    def _rgb_layer(self) -> nn.Module:
        raise NotImplementedError


class _GeneratorBlock(nn.Module):
    """Upsample x2 (nearest), then two 3x3 equalised convolutions, each with a leaky ReLU and
    pixel normalisation."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = EqualizedConv2d(channels, channels, 3)
        self.conv2 = EqualizedConv2d(channels, channels, 3)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(h, scale_factor=2, mode="nearest")
        h = pixel_norm(_lrelu(self.conv1(h)))
        return pixel_norm(_lrelu(self.conv2(h)))


class GrowingGenerator(_Growing):
    """``[..., L] -> [..., C*H*W]``: the generator at its stage ``k`` (and fade ``alpha``).

    The first stage: the latent, pixel-normalised, through an equalised linear layer to
    ``channels`` maps of the first resolution, then a 3x3 convolution (leaky ReLU and pixel norm
    after each). Each later stage adds a :class:`_GeneratorBlock`. A 1x1 ``to_rgb`` layer maps
    the features of the current stage to ``C`` channels; while stage ``k`` fades in, the output
    is ``lerp(up(to_rgb_{k-1}(h_{k-1})), to_rgb_k(h_k), alpha)``; then nearest upsampling to
    full size and the output activation (elementwise, so it commutes with the upsampling; applied
    at full size, the same kernel sees the same values on every path, which keeps the fade's
    endpoints bit-identical to the paths).

    Args:
        shape: ``(C, H, W)`` with power-of-two sides.
        latent_dim: ``L``.
        channels: feature maps at every resolution.
        output: the output activation (``"sigmoid"``, ``"tanh"``, ``"identity"``).
    """

    def __init__(self, shape: tuple[int, int, int], latent_dim: int, channels: int,
                 output: str) -> None:
        super().__init__(shape, channels)
        base = self.resolution(0)
        self.base = (channels, *base)
        gain = _ROOT2 / math.sqrt(math.prod(base))  # Karras: sqrt(2)/4 for a 4x4 start
        self.input = EqualizedLinear(latent_dim, math.prod(self.base), gain)
        self.base_conv = EqualizedConv2d(channels, channels, 3)
        self.blocks = nn.ModuleList()
        self.to_rgb = nn.ModuleDict({"0": self._rgb_layer()})
        self.activation = ACTIVATIONS[output]()

    @property
    def _rgb(self) -> nn.ModuleDict:
        return self.to_rgb

    def _block(self, stage: int) -> nn.Module:
        return _GeneratorBlock(self.channels)

    def _rgb_layer(self) -> nn.Module:
        return EqualizedConv2d(self.channels, self.shape[0], 1, gain=1.0)

    def features(self, z: torch.Tensor, stage: int) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The features ``[n, channels, H_k, W_k]`` of stage ``stage`` and those of the stage
        below it (``None`` at stage 0), of noise ``z: [n, L]``."""
        h = _lrelu(self.input(pixel_norm(z))).reshape(-1, *self.base)
        h = pixel_norm(_lrelu(self.base_conv(pixel_norm(h))))
        low = None
        for block in self.blocks[:stage]:
            low, h = h, block(h)
        return low, h

    def at_stage(self, z: torch.Tensor, stage: int) -> torch.Tensor:
        """The images ``[n, C, H, W]`` of the path of ``stage`` alone (no fade), upsampled to
        full size: what the generator gives once that stage is fully grown."""
        _, h = self.features(z, stage)
        return self.activation(self._full(self.to_rgb[str(stage)](h)))

    def _full(self, images: torch.Tensor) -> torch.Tensor:
        factor = self.shape[1] // images.shape[-2]
        return images if factor == 1 else F.interpolate(images, scale_factor=factor,
                                                        mode="nearest")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        batch = z.shape[:-1]
        low, h = self.features(z.reshape(-1, z.shape[-1]), self.stage)
        rgb = self.to_rgb[str(self.stage)](h)
        if self.fading:
            below = F.interpolate(self.to_rgb[str(self.stage - 1)](low), scale_factor=2,
                                  mode="nearest")
            rgb = torch.lerp(below, rgb, self.alpha)
        return self.activation(self._full(rgb)).reshape(*batch, -1)


class _CriticBlock(nn.Module):
    """Two 3x3 equalised convolutions with leaky ReLUs, then 2x2 average pooling."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = EqualizedConv2d(channels, channels, 3)
        self.conv2 = EqualizedConv2d(channels, channels, 3)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(_lrelu(self.conv2(_lrelu(self.conv1(h)))), 2)


class GrowingCritic(_Growing):
    """``[n, C*H*W] -> [n, 1]``: the critic at its stage ``k`` (and fade ``alpha``).

    The input is average-pooled (2x2, repeatedly) to the resolution of stage ``k``, read by a 1x1
    ``from_rgb`` layer (leaky ReLU), then by the blocks of stages ``k..1`` (:class:`_CriticBlock`)
    and the last block: minibatch standard deviation, a 3x3 convolution, a linear layer and the
    linear output. While stage ``k`` fades in, the features entering block ``k-1`` are
    ``lerp(from_rgb_{k-1}(pool(x_k)), block_k(from_rgb_k(x_k)), alpha)``.

    Args:
        shape: ``(C, H, W)`` with power-of-two sides.
        channels: feature maps at every resolution.
        group_size: the minibatch standard deviation's group size.
    """

    def __init__(self, shape: tuple[int, int, int], channels: int, group_size: int = 4) -> None:
        super().__init__(shape, channels)
        self.group_size = group_size
        base = self.resolution(0)
        self.from_rgb = nn.ModuleDict({"0": self._rgb_layer()})
        self.blocks = nn.ModuleList()
        self.last_conv = EqualizedConv2d(channels + 1, channels, 3)
        self.dense = EqualizedLinear(channels * math.prod(base), channels)
        self.out = EqualizedLinear(channels, 1, gain=1.0)

    @property
    def _rgb(self) -> nn.ModuleDict:
        return self.from_rgb

    def _block(self, stage: int) -> nn.Module:
        return _CriticBlock(self.channels)

    def _rgb_layer(self) -> nn.Module:
        return EqualizedConv2d(self.shape[0], self.channels, 1)

    def pooled(self, x: torch.Tensor, stage: int) -> torch.Tensor:
        """Flat full-size images ``[n, C*H*W]`` average-pooled to stage ``stage``,
        ``[n, C, H_k, W_k]`` (2x2 pooling repeated, so one stage down is one more pooling)."""
        images = x.reshape(-1, *self.shape)
        for _ in range(self.num_stages - 1 - stage):
            images = F.avg_pool2d(images, 2)
        return images

    def at_stage(self, images: torch.Tensor, stage: int) -> torch.Tensor:
        """The scores ``[n, 1]`` of the path of ``stage`` alone (no fade) on images
        ``[n, C, H_k, W_k]`` of that stage's resolution."""
        return self._tail(_lrelu(self.from_rgb[str(stage)](images)), stage)

    def _tail(self, h: torch.Tensor, stage: int) -> torch.Tensor:
        for block in reversed(self.blocks[:stage]):
            h = block(h)
        h = _lrelu(self.last_conv(minibatch_stddev(h, self.group_size)))
        return self.out(_lrelu(self.dense(h.flatten(1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = self.pooled(x, self.stage)
        if not self.fading:
            return self.at_stage(images, self.stage)
        high = self.blocks[self.stage - 1](_lrelu(self.from_rgb[str(self.stage)](images)))
        low = _lrelu(self.from_rgb[str(self.stage - 1)](F.avg_pool2d(images, 2)))
        return self._tail(torch.lerp(low, high, self.alpha), self.stage - 1)
