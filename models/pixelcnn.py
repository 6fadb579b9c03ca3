"""PixelCNN: masked convolutions over images, one conditional per pixel and channel.

Two networks compute every conditional ``p(x_i | x_<i)`` of an image in one pass:

- the gated PixelCNN (``gated=True``; van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves &
  Kavukcuoglu, 2016, "Conditional Image Generation with PixelCNN Decoders",
  arXiv:1606.05328): a vertical stack that sees every row above the pixel and a horizontal
  stack that sees the pixels to its left in its row, joined by a link from the vertical to
  the horizontal stack, with gated activations ``tanh(a) * sigmoid(b)``. The receptive field
  is the whole region above and to the left, with no blind spot;
- the original PixelCNN (``gated=False``; van den Oord, Kalchbrenner & Kavukcuoglu, 2016,
  "Pixel Recurrent Neural Networks", arXiv:1601.06759): a ``k x k`` masked convolution of
  type A, then residual blocks of type-B masked convolutions (its receptive field has the
  well-known blind spot to the upper right).

Channels of a pixel are generated in turn (R, then G given R, then B given R and G): hidden
channels are split into ``C`` groups and the centre taps carry the A/B channel masks of
:mod:`ppgen.models.masked_conv`.

Flat layout and ordering: the zoo's data are flat, ``[N, D]`` with ``D = C H W``, laid out as
``image.reshape(D)`` of a ``[C, H, W]`` image (what ``DataInfo.image_shape`` and the plots
assume). The generation order is pixels in raster order and channels R -> G -> B inside each
pixel: ``order[t]`` for step ``t = (r W + c) C + ch`` is the flat index ``ch H W + r W + c``
(:attr:`PixelCNN.order`; the identity for grey images).

Example:
    >>> model = PixelCNN((1, 4, 4), hidden_channels=8, num_layers=2)
    >>> model.sample(3).shape
    torch.Size([3, 16])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from ppgen.distributions.autoregressive import AutoregressiveDistribution
from ppgen.distributions.heads import Head
from ppgen.errors import ModelError
from ppgen.models.autoregressive import AutoregressiveModel, ConditionalNet, TrainingDropout
from ppgen.models.masked_conv import (
    MaskedConv2d,
    causal_mask,
    center_mask,
    channel_groups,
    channel_mask,
)

if TYPE_CHECKING:
    from ppgen.data import DataInfo
    from ppgen.protocol import GenerativeModel

__all__ = [
    "PixelCNN",
    "PixelCNNNet",
    "ImageAutoregressiveModel",
    "GatedLayer",
    "pixel_order",
    "pointwise",
]


def pixel_order(channels: int, height: int, width: int) -> torch.Tensor:
    """``[C H W]`` long: the flat index generated at each step (raster pixels, then R, G, B)."""
    return torch.arange(channels * height * width).reshape(channels, -1).t().reshape(-1)


def pointwise(groups_in: torch.Tensor, groups_out: torch.Tensor) -> MaskedConv2d:
    """A ``1 x 1`` convolution with the type-B channel mask (output group sees groups ``<=``)."""
    return MaskedConv2d(center_mask(1, 1, channel_mask(groups_in, groups_out, "B")), (0,) * 4)


def _gate(a: torch.Tensor) -> torch.Tensor:
    """``tanh(a_1) * sigmoid(a_2)`` of the two channel halves: ``[n, 2p, H, W] -> [n, p, H, W]``."""
    tanh_part, sigmoid_part = a.chunk(2, dim=1)
    return torch.tanh(tanh_part) * torch.sigmoid(sigmoid_part)


class GatedLayer(nn.Module):
    """One gated layer: ``(v, h) -> (gate(V * v), h + W gate(H * h + U V * v))``.

    ``v: [n, p, H, W]`` at row ``r`` depends only on rows ``< r`` of the image, so its
    ``(k // 2 + 1) x k`` convolution (rows ``r - k // 2 .. r``) keeps that property and the
    ``1 x 1`` link ``U`` into the horizontal stack needs no mask. The horizontal stack's
    ``1 x (k // 2 + 1)`` convolution (the pixel and those to its left) and its output ``1 x 1``
    convolution carry the type-B channel mask at the current pixel.

    Args:
        groups: ``[p]`` channel group of every hidden channel.
        kernel_size: ``k`` (odd).
        dropout: dropout rate on the gated horizontal activations.
    """

    def __init__(self, groups: torch.Tensor, kernel_size: int, dropout: float) -> None:
        super().__init__()
        p, half = groups.numel(), kernel_size // 2
        twice = torch.cat([groups, groups])
        ones = torch.ones(2 * p, p, half + 1, kernel_size)
        self.vertical = MaskedConv2d(ones, (half, half, half, 0))
        self.link = nn.Conv2d(2 * p, 2 * p, 1)
        self.horizontal = MaskedConv2d(
            center_mask(1, half + 1, channel_mask(groups, twice, "B")), (half, 0, 0, 0)
        )
        self.out = pointwise(groups, groups)
        self.dropout = TrainingDropout(dropout)

    def forward(self, v: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v_pre = self.vertical(v)
        h_pre = self.horizontal(h) + self.link(v_pre)
        return _gate(v_pre), h + self.out(self.dropout(_gate(h_pre)))


class _ResidualBlock(nn.Module):
    """``h + W_1x1 relu(M_kxk relu(h))`` with type-B masks (the original PixelCNN)."""

    def __init__(self, groups: torch.Tensor, kernel_size: int, dropout: float) -> None:
        super().__init__()
        half, mask_b = kernel_size // 2, channel_mask(groups, groups, "B")
        self.conv = MaskedConv2d(causal_mask(kernel_size, kernel_size, mask_b), (half,) * 4)
        self.out = pointwise(groups, groups)
        self.dropout = TrainingDropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.out(self.dropout(torch.relu(self.conv(torch.relu(h)))))


class PixelCNNNet(ConditionalNet):
    """The PixelCNN network: features ``[n, D, F]`` -> parameters ``[n, D, P]``.

    Internally ``[n, D, F] -> [n, C F, H, W]`` (input channel ``c F + f`` in group ``c``),
    masked convolutions with ``p`` hidden channels and a learned position bias ``[p, H, W]``
    (the images are small: where a pixel sits matters), and a ``1 x 1`` type-B output head
    ``[n, C P, H, W]`` (output channel ``c P + j`` in group ``c``) -> ``[n, D, P]``.

    Args:
        image_shape: ``(C, H, W)``.
        head: the output head (``F`` features, ``P`` parameters per dimension).
        hidden_channels: ``p`` (at least ``C``).
        num_layers: gated layers or residual blocks after the input layer.
        kernel_size: ``k`` (odd).
        gated: gated vertical/horizontal stacks, else the original masked convolutions.
        dropout: dropout rate inside every layer.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        head: Head,
        hidden_channels: int,
        num_layers: int,
        kernel_size: int,
        gated: bool,
        dropout: float,
    ) -> None:
        C, H, W = image_shape
        super().__init__(C * H * W, head)
        self.image_shape = image_shape
        self.gated = gated
        hidden = channel_groups(hidden_channels, C)
        inputs = torch.arange(C).repeat_interleave(head.num_features)
        outputs = torch.arange(C).repeat_interleave(head.num_params)
        self.position = nn.Parameter(torch.zeros(hidden_channels, H, W))
        self._input_layer(inputs, hidden, kernel_size)
        block = GatedLayer if gated else _ResidualBlock
        self.layers = nn.ModuleList(block(hidden, kernel_size, dropout) for _ in range(num_layers))
        self.head_hidden = pointwise(hidden, hidden)
        self.head_out = pointwise(hidden, outputs)
        self.register_buffer("order", pixel_order(C, H, W), persistent=False)

    def _input_layer(self, inputs: torch.Tensor, hidden: torch.Tensor, k: int) -> None:
        """The type-A layer: a ``k x k`` masked convolution, or the two stacks' first
        convolutions (the vertical one shifted down a row so it sees only rows above)."""
        half, mask_a = k // 2, channel_mask(inputs, hidden, "A")
        if not self.gated:
            self.input = MaskedConv2d(causal_mask(k, k, mask_a), (half,) * 4)
            return
        ones = torch.ones(hidden.numel(), inputs.numel(), half + 1, k)
        self.input_vertical = MaskedConv2d(ones, (half, half, half + 1, -1))
        self.input = MaskedConv2d(center_mask(1, half + 1, mask_a), (half, 0, 0, 0))
        self.input_link = nn.Conv2d(hidden.numel(), hidden.numel(), 1)

    def to_image(self, f: torch.Tensor) -> torch.Tensor:
        """``[n, D, F] -> [n, C F, H, W]`` (flat index ``ch H W + r W + c``)."""
        C, H, W = self.image_shape
        return f.unflatten(1, (C, H, W)).permute(0, 1, 4, 2, 3).flatten(1, 2)

    def from_image(self, out: torch.Tensor) -> torch.Tensor:
        """``[n, C P, H, W] -> [n, D, P]``."""
        P = self.head.num_params
        return out.unflatten(1, (-1, P)).permute(0, 1, 3, 4, 2).flatten(1, 3)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Horizontal-stack (or residual) features ``[n, p, H, W]`` of ``x: [n, C F, H, W]``."""
        if not self.gated:
            h = self.input(x) + self.position
            for layer in self.layers:
                h = layer(h)
            return h
        v = self.input_vertical(x) + self.position
        h = self.input(x) + self.input_link(v) + self.position
        for layer in self.layers:
            v, h = layer(v, h)
        return h

    def forward_features(self, f: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.head_hidden(torch.relu(self.hidden(self.to_image(f)))))
        return self.from_image(self.head_out(h))


class ImageAutoregressiveModel(AutoregressiveModel, register=False):
    """What the pixel models (:class:`PixelCNN`, :class:`~ppgen.models.pixelrnn.PixelRNN`)
    share: flat ``[N, C H W]`` images in raster order with R -> G -> B inside a pixel, their
    heads, the digits recipe and ``for_data``. Subclasses build ``self.net`` (whose ``order``
    buffer is :func:`pixel_order`) and store ``image_shape``."""

    likelihoods = ("bernoulli", "categorical", "logistic-mixture")
    #: the digits recipe (dropout inside the network, cosine schedule);
    #: benchmark numbers: ``python benchmarks/digits.py`` (benchmarks/RESULTS.md)
    fit_defaults: ClassVar[dict[str, Any]] = {
        "epochs": 40,
        "batch_size": 100,
        "lr": 3e-3,
        "optimizer": "adamw",
        "weight_decay": 1e-2,
        "lr_schedule": "cosine",
        "patience": 15,
    }
    image_shape: tuple[int, ...]

    @property
    def order(self) -> torch.Tensor:
        """``[D]``: the flat index generated at each step (see the module docstring)."""
        return self.net.order

    def distribution(self) -> AutoregressiveDistribution:
        """The distribution of one flat image: batch ``[]``, event ``[D]``, pixel order."""
        return AutoregressiveDistribution(self.net, self.head, self.event_shape, self.order)

    @classmethod
    def for_data(cls, info: DataInfo, **kwargs: Any) -> GenerativeModel:
        """The model for flat images described by ``info`` (``info.image_shape``).

        Raises:
            ModelError: data that are not images, or not binary / integer levels.
        """
        name = cls.__name__
        if not info.image_shape:
            raise ModelError(
                f"{name} models images but {info.name!r} has no image_shape: use NADE or "
                "MADE for non-image data"
            )
        if math.prod(info.image_shape) != info.num_dims or len(info.event_shape) != 1:
            raise ModelError(
                f"{name} needs flat images [N, {math.prod(info.image_shape)}], but one "
                f"datum has shape {tuple(info.event_shape)}"
            )
        if info.likelihood not in cls.data_heads:
            raise ModelError(cls._unsupported_data_message(info.likelihood))
        args: dict[str, Any] = {"image_shape": tuple(info.image_shape)}
        args["likelihood"] = cls.data_heads[info.likelihood]
        if info.likelihood == "categorical":
            args["num_levels"] = info.num_levels
        return cls(**{**args, **kwargs})


class PixelCNN(ImageAutoregressiveModel):
    """PixelCNN over ``C x H x W`` images of integer levels or bits, flat data ``[N, C H W]``.

    ``p(x) = prod_pixels prod_channels p(x_{ch, r, c} | pixels before (r, c), channels < ch)``,
    each conditional a softmax over ``K`` levels (categorical), a discretised logistic mixture
    over the same levels, or a Bernoulli; the networks and the flat layout are described in
    the module docstring. ``log_prob`` is one pass; sampling runs the network ``D`` times.

    Papers: van den Oord, Kalchbrenner & Kavukcuoglu, 2016, "Pixel Recurrent Neural Networks"
    (ICML, arXiv:1601.06759); van den Oord et al., 2016, "Conditional Image Generation with
    PixelCNN Decoders" (NeurIPS, arXiv:1606.05328).

    Args:
        image_shape: ``(C, H, W)``, or ``(H, W)`` for grey images.
        likelihood: ``"bernoulli"``, ``"categorical"`` or ``"logistic-mixture"``.
        num_levels: ``K`` for the level heads (17 for the digits).
        num_components: ``C`` of the logistic-mixture head.
        hidden_channels: ``p``, channels of every hidden layer (at least the image's ``C``).
        num_layers: gated layers (or residual blocks) after the type-A input layer.
        kernel_size: ``k``, odd: the stacks' kernels are ``(k // 2 + 1) x k`` and
            ``1 x (k // 2 + 1)`` (``k x k`` without gating).
        gated: the gated PixelCNN (no blind spot), else the original masked convolutions.
        dropout: dropout rate inside every layer (only in training mode with gradients:
            see :class:`~ppgen.models.autoregressive.TrainingDropout`).

    Example:
        >>> model = PixelCNN((3, 2, 2), likelihood="categorical", num_levels=4,
        ...                  hidden_channels=6, num_layers=1)
        >>> model.log_prob_per_dim(model.sample(2)).shape
        torch.Size([2, 12])
    """

    name = "pixelcnn"

    def __init__(
        self,
        image_shape: Sequence[int],
        likelihood: str = "bernoulli",
        num_levels: int | None = None,
        num_components: int = 5,
        hidden_channels: int = 64,
        num_layers: int = 6,
        kernel_size: int = 3,
        gated: bool = True,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.likelihood = likelihood
        self.num_levels = num_levels
        self.num_components = num_components
        self.hidden_channels = hidden_channels
        self.num_layers = num_layers
        self.kernel_size = kernel_size
        self.gated = gated
        self.dropout = dropout
        chw = _check_image_shape(self.image_shape)
        self.num_dims = math.prod(chw)
        _check_network(chw[0], hidden_channels, num_layers, kernel_size, dropout)
        head = self._build_head()
        self.net = PixelCNNNet(chw, head, hidden_channels, num_layers, kernel_size, gated, dropout)


def _check_image_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``(C, H, W)`` from ``(C, H, W)`` or ``(H, W)``."""
    if len(shape) not in (2, 3) or any(int(s) < 1 for s in shape):
        raise ModelError(f"image_shape must be (C, H, W) or (H, W) of positive sizes, got {shape}")
    return (1, *shape) if len(shape) == 2 else shape  # type: ignore[return-value]


def _check_network(channels: int, hidden: int, layers: int, kernel: int, dropout: float) -> None:
    if hidden < channels:
        raise ModelError(f"hidden_channels must be >= the {channels} image channels, got {hidden}")
    if layers < 0 or kernel < 3 or kernel % 2 == 0:
        raise ModelError(f"need num_layers >= 0 and an odd kernel_size >= 3: {layers}, {kernel}")
    if not 0.0 <= dropout < 1.0:
        raise ModelError(f"dropout must be in [0, 1), got {dropout}")
