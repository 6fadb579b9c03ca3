"""Glow: a multi-scale image flow of ActNorm, invertible 1x1 convolutions and affine couplings.

Data are flat ``[N, C H W]`` images (``image.reshape(D)`` of ``[C, H, W]``, as for PixelCNN
and ``DataInfo.image_shape``). The data -> noise transform is, after the optional logit
pre-transform of :class:`~ppgen.models.flows.FlowModel`: unflatten to ``[C, H, W]``, then
``num_scales`` levels of

    squeeze (space to channels, ``[4C, H/2, W/2]``) -> ``steps_per_scale`` x (ActNorm ->
    invertible 1x1 convolution (LU-parameterised, with a fixed channel permutation) ->
    affine coupling with a convolutional residual network)

with half of the channels factored out to the base after every level but the last (nflows
``MultiscaleCompositeTransform``). Both directions take one pass.

Paper: Kingma & Dhariwal, 2018, "Glow: Generative Flow with Invertible 1x1 Convolutions"
(NeurIPS, arXiv:1807.03039); the multi-scale architecture and squeeze: Dinh et al., 2017,
"Density estimation using Real NVP" (arXiv:1605.08803).

Example:
    >>> glow = Glow((1, 4, 4), num_scales=2, steps_per_scale=1, hidden_channels=8)
    >>> glow.sample(3).shape
    torch.Size([3, 16])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from nflows import transforms
from nflows.nn.nets import ConvResidualNet
from nflows.transforms import Transform

from ppgen.errors import ModelError
from ppgen.models.flows import ActNorm, FlowModel

if TYPE_CHECKING:
    from ppgen.data import DataInfo
    from ppgen.protocol import GenerativeModel

__all__ = ["Glow", "Unflatten"]


class Unflatten(Transform):
    """``[N, prod(shape)] <-> [N, *shape]`` (volume-preserving: log-determinant 0)."""

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, inputs: torch.Tensor, context: Any = None):
        return inputs.reshape(inputs.shape[0], *self.shape), inputs.new_zeros(inputs.shape[0])

    def inverse(self, inputs: torch.Tensor, context: Any = None):
        return inputs.reshape(inputs.shape[0], -1), inputs.new_zeros(inputs.shape[0])


class Glow(FlowModel):
    """Glow for flat image data ``[N, C H W]`` (see the module docstring).

    Args:
        image_shape: ``(C, H, W)`` or ``(H, W)``; ``H`` and ``W`` divisible by
            ``2 ** num_scales``.
        num_scales: levels of squeeze + steps (half the channels leave after each but the
            last).
        steps_per_scale: ActNorm / 1x1 convolution / coupling steps per level.
        hidden_channels: channels of the coupling networks.
        num_blocks: residual blocks per coupling network.
        dropout: dropout rate inside the coupling networks.
        logit_alpha: ``None`` for data on the real line, or the margin of the logit
            pre-transform for data in ``[0, 1]`` (what ``for_data`` uses for the digits).

    Example:
        >>> Glow((8, 8), hidden_channels=16).num_dims
        64
    """

    name = "glow"

    def __init__(
        self,
        image_shape: Sequence[int],
        num_scales: int = 2,
        steps_per_scale: int = 4,
        hidden_channels: int = 64,
        num_blocks: int = 1,
        dropout: float = 0.0,
        logit_alpha: float | None = None,
    ) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.num_scales = num_scales
        self.steps_per_scale = steps_per_scale
        self.hidden_channels = hidden_channels
        self.num_blocks = num_blocks
        self.dropout = dropout
        self.logit_alpha = logit_alpha
        self.num_classes = None
        self.normalization = "actnorm"
        self._chw = _check_image(self.image_shape, num_scales)
        self.num_dims = math.prod(self._chw)
        self._check_network(num_scales, hidden_channels, num_blocks, dropout)
        if steps_per_scale < 1:
            raise ModelError(f"steps_per_scale must be >= 1, got {steps_per_scale}")
        self._build()

    def _layers(self) -> list[Transform]:
        multiscale = transforms.MultiscaleCompositeTransform(self.num_scales, split_dim=1)
        shape = self._chw
        for _ in range(self.num_scales):
            c, h, w = shape
            squeezed = (4 * c, h // 2, w // 2)
            level = [transforms.SqueezeTransform()] + self._steps(squeezed[0])
            shape = multiscale.add_transform(transforms.CompositeTransform(level), squeezed)
        return [Unflatten(self._chw), multiscale]

    def _steps(self, channels: int) -> list[Transform]:
        steps: list[Transform] = []
        for i in range(self.steps_per_scale):
            mask = (torch.arange(channels) >= channels // 2) == (i % 2 == 0)
            steps += [
                ActNorm(channels),
                transforms.OneByOneConvolution(channels),
                transforms.AffineCouplingTransform(mask.to(torch.uint8), self._conv_net),
            ]
        return steps

    def _conv_net(self, in_channels: int, out_channels: int) -> ConvResidualNet:
        return ConvResidualNet(
            in_channels,
            out_channels,
            self.hidden_channels,
            num_blocks=self.num_blocks,
            dropout_probability=self.dropout,
        )

    @classmethod
    def for_data(cls, info: DataInfo, **kwargs: Any) -> GenerativeModel:
        """Glow for flat images described by ``info`` (``info.image_shape``); dequantised for
        integer levels, with the logit pre-transform for data in ``[0, 1)``.

        Raises:
            ModelError: data that are not flat images.
        """
        if not info.image_shape or len(info.event_shape) != 1:
            raise ModelError(
                "Glow models flat images [N, C*H*W] with DataInfo.image_shape set; these data "
                f"have event shape {tuple(info.event_shape)} and image_shape "
                f"{info.image_shape}: use RealNVP, MAF or NSF for other data"
            )
        return cls._build_for(info, tuple(info.image_shape), kwargs)


def _check_image(image_shape: tuple[int, ...], num_scales: int) -> tuple[int, int, int]:
    """``(C, H, W)`` of a valid image shape, or a :class:`ModelError` naming the fix."""
    if len(image_shape) == 2:
        image_shape = (1, *image_shape)
    if len(image_shape) != 3 or any(not isinstance(s, int) or s < 1 for s in image_shape):
        raise ModelError(f"image_shape must be (C, H, W) or (H, W), got {image_shape}")
    if not isinstance(num_scales, int) or num_scales < 1:
        raise ModelError(f"num_scales must be an integer >= 1, got {num_scales!r}")
    c, h, w = image_shape
    factor = 2**num_scales
    if h % factor or w % factor:
        raise ModelError(
            f"an image of {h}x{w} cannot be squeezed {num_scales} times: H and W must be "
            f"divisible by 2**num_scales = {factor}; lower num_scales"
        )
    return c, h, w
