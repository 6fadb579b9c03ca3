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

Class-conditional Glow (``num_classes=C``) models ``p(x | y)`` as in Kingma & Dhariwal (2018),
Sect. 5: the one-hot label is the nflows context of

* the prior: the base Gaussian of every latent (the ones factored out at each scale and the
  final one) has a mean and a log-scale that are a learned linear function of the one-hot label
  (zero-initialised, so training starts from the standard normal), and
* every affine coupling: the label is broadcast over the image as ``C`` extra input channels of
  the coupling network (and gates its residual blocks), so the first 1x1 convolution learns a
  per-class embedding.

The program, labels, sampling and training are those of every conditional zoo flow
(:class:`~ppgen.models.flows.FlowModel`): ``Glow(..., num_classes=10)``, ``ppgen.fit(glow, x,
x_val, labels=y, val_labels=y_val)``, ``ppgen.log_likelihood(glow, x, y=y)``,
``glow.sample(n, y=3)``. An unconditional Glow is unchanged by the option.

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
from nflows.distributions import ConditionalDiagonalNormal
from nflows.flows import Flow
from nflows.nn.nets import ConvResidualNet
from nflows.transforms import Transform
from torch import nn

from ppgen.errors import ModelError
from ppgen.models.flows import ActNorm, FlowModel

if TYPE_CHECKING:
    from ppgen.data import DataInfo
    from ppgen.protocol import GenerativeModel

__all__ = [
    "Glow",
    "Unflatten",
    "OneByOneConvolution",
    "LabelConvResidualNet",
    "class_conditional_prior",
]


class Unflatten(Transform):
    """``[N, prod(shape)] <-> [N, *shape]`` (volume-preserving: log-determinant 0)."""

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, inputs: torch.Tensor, context: Any = None):
        return inputs.reshape(inputs.shape[0], *self.shape), inputs.new_zeros(inputs.shape[0])

    def inverse(self, inputs: torch.Tensor, context: Any = None):
        return inputs.reshape(inputs.shape[0], -1), inputs.new_zeros(inputs.shape[0])


class LabelConvResidualNet(ConvResidualNet):
    """nflows' ``ConvResidualNet`` whose context is a flat label vector, broadcast over the image.

    ``forward(inputs [N, C_in, H, W], context [N, C_ctx] or None) -> [N, C_out, H, W]``: the
    context (the one-hot class label) is repeated at every pixel, ``[N, C_ctx, H, W]``, and
    enters as extra input channels of the first 1x1 convolution and as the gates of the
    residual blocks. Without context (``context_channels=None``) this is ``ConvResidualNet``
    itself: the same parameters and the same numbers.
    """

    def forward(self, inputs: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if context is not None:
            context = context[:, :, None, None].expand(-1, -1, *inputs.shape[2:])
        return super().forward(inputs, context)


class OneByOneConvolution(transforms.OneByOneConvolution):
    """nflows' invertible 1x1 convolution (LU-parameterised, fixed channel permutation) whose
    LU positions are device tensors.

    nflows keeps the positions of the entries of ``L`` and ``U`` as NumPy index arrays, so
    every step copies them from the host to the device before writing the entries. Here they
    are non-persistent buffers that move with the module: the same parameters, the same
    ``state_dict`` keys and the same numbers.

    Args:
        num_channels: ``C``.
        using_cache: nflows' weight cache in evaluation mode.
        identity_init: start as the identity (after the permutation).
    """

    def __init__(
        self, num_channels: int, using_cache: bool = False, identity_init: bool = True
    ) -> None:
        super().__init__(num_channels, using_cache, identity_init)
        c = num_channels
        self.register_buffer("_lower_index", torch.tril_indices(c, c, -1), persistent=False)
        self.register_buffer("_upper_index", torch.triu_indices(c, c, 1), persistent=False)
        self.register_buffer("_diag_index", torch.arange(c), persistent=False)

    def _create_lower_upper(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(L, U)``: unit lower-triangular ``L`` and upper-triangular ``U``, ``[C, C]``."""
        diag = self._diag_index
        lower = self.lower_entries.new_zeros(self.features, self.features)
        lower[self._lower_index[0], self._lower_index[1]] = self.lower_entries
        lower[diag, diag] = 1.0
        upper = self.upper_entries.new_zeros(self.features, self.features)
        upper[self._upper_index[0], self._upper_index[1]] = self.upper_entries
        upper[diag, diag] = self.upper_diag
        return lower, upper

    def weight_inverse(self) -> torch.Tensor:
        """``(L U)^-1`` (nflows' evaluation cache), built on the parameters' device."""
        lower, upper = self._create_lower_upper()
        identity = torch.eye(self.features, dtype=lower.dtype, device=lower.device)
        lower_inverse = torch.linalg.solve_triangular(
            lower, identity, upper=False, unitriangular=True
        )
        return torch.linalg.solve_triangular(upper, lower_inverse, upper=True)


def class_conditional_prior(num_dims: int, num_classes: int) -> ConditionalDiagonalNormal:
    """The learned class-conditional base ``N(z; mu(y), diag(exp(log_sigma(y))^2))`` over ``[D]``.

    ``(mu, log_sigma) = W onehot(y) + b``: a mean and a log-scale per latent dimension and class
    (Kingma & Dhariwal, 2018, Sect. 5), zero-initialised so that the prior starts as the
    standard normal. ``D`` covers every latent of a multi-scale flow (all scales'
    factored-out halves and the final one, in the flow's flat output order).
    """
    encoder = nn.Linear(num_classes, 2 * num_dims)
    nn.init.zeros_(encoder.weight)
    nn.init.zeros_(encoder.bias)
    return ConditionalDiagonalNormal([num_dims], context_encoder=encoder)


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
        num_classes: ``C`` for a class-conditional Glow ``p(x | y)`` (class-conditional prior
            and coupling networks, see the module docstring), else ``None``.

    Example:
        >>> Glow((8, 8), hidden_channels=16).num_dims
        64
        >>> cglow = Glow((1, 4, 4), num_scales=2, steps_per_scale=1, hidden_channels=8,
        ...              num_classes=3)
        >>> cglow.sample(4, y=2).shape
        torch.Size([4, 16])
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
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.num_scales = num_scales
        self.steps_per_scale = steps_per_scale
        self.hidden_channels = hidden_channels
        self.num_blocks = num_blocks
        self.dropout = dropout
        self.logit_alpha = logit_alpha
        self.num_classes = num_classes
        self.normalization = "actnorm"
        self._chw = _check_image(self.image_shape, num_scales)
        self.num_dims = math.prod(self._chw)
        self._check_network(num_scales, hidden_channels, num_blocks, dropout)
        if steps_per_scale < 1:
            raise ModelError(f"steps_per_scale must be >= 1, got {steps_per_scale}")
        self._build()

    def _build(self) -> None:
        """The flow of :class:`FlowModel`, with the class-conditional prior when conditional."""
        super()._build()
        if self.num_classes is not None:
            prior = class_conditional_prior(self.num_dims, self.num_classes)
            self.flow = Flow(self.flow._transform, prior)

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
                OneByOneConvolution(channels),
                transforms.AffineCouplingTransform(mask.to(torch.uint8), self._conv_net),
            ]
        return steps

    def _conv_net(self, in_channels: int, out_channels: int) -> LabelConvResidualNet:
        return LabelConvResidualNet(
            in_channels,
            out_channels,
            self.hidden_channels,
            context_channels=self.context_features,
            num_blocks=self.num_blocks,
            dropout_probability=self.dropout,
        )

    @classmethod
    def for_data(cls, info: DataInfo, **kwargs: Any) -> GenerativeModel:
        """Glow for flat images described by ``info`` (``info.image_shape``); dequantised for
        integer levels, with the logit pre-transform for data in ``[0, 1)``. ``num_classes=C``
        in ``kwargs`` (``ppgen fit glow --set num_classes=10``) builds the class-conditional
        Glow, wrapped in a class-conditional ``Dequantized`` for integer levels.

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
