"""Masked convolutions of the PixelCNN family: spatial causal masks and channel-group masks.

A :class:`MaskedConv2d` multiplies its kernel by a fixed 0/1 mask ``[out, in, kh, kw]`` and
pads the input explicitly (left, right, top, bottom), so a layer's receptive field is exactly
the set of kept kernel taps. The masks follow van den Oord, Kalchbrenner & Kavukcuoglu, 2016,
"Pixel Recurrent Neural Networks" (arXiv:1601.06759): a ``k x k`` kernel keeps the rows above
the centre and the taps left of it; at the centre tap, channels are split into ``C`` groups
(R, G, B, ...) and output group ``g`` sees input groups ``< g`` (mask ``"A"``, the first layer)
or ``<= g`` (mask ``"B"``, every later layer).

Example:
    >>> mask = causal_mask(3, 3, channel_mask(torch.zeros(2), torch.zeros(4), "A"))
    >>> mask.shape, int(mask.sum())
    (torch.Size([4, 2, 3, 3]), 32)
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["MaskedConv2d", "channel_groups", "channel_mask", "causal_mask", "center_mask"]


def channel_groups(num_channels: int, num_groups: int) -> torch.Tensor:
    """``[num_channels]``: contiguous group ids ``0..num_groups-1`` (as even as possible).

    Raises:
        ValueError: fewer channels than groups (a group would be empty).
    """
    if num_channels < num_groups:
        raise ValueError(f"{num_channels} channels cannot hold {num_groups} channel groups")
    return torch.arange(num_channels) * num_groups // num_channels


def channel_mask(groups_in: torch.Tensor, groups_out: torch.Tensor, kind: str) -> torch.Tensor:
    """``[out, in]`` 0/1: output group sees input group ``<`` (``"A"``) or ``<=`` (``"B"``)."""
    if kind not in ("A", "B"):
        raise ValueError(f"mask kind must be 'A' or 'B', got {kind!r}")
    later = groups_out.unsqueeze(1) > groups_in.unsqueeze(0)
    same = groups_out.unsqueeze(1) == groups_in.unsqueeze(0)
    return (later | same).float() if kind == "B" else later.float()


def causal_mask(kh: int, kw: int, center: torch.Tensor) -> torch.Tensor:
    """``[out, in, kh, kw]``: rows above the centre, taps left of it, ``center`` at the centre.

    The centre tap is ``(kh // 2, kw // 2)``; ``center: [out, in]`` is its channel mask.
    """
    out, inp = center.shape
    mask = torch.zeros(out, inp, kh, kw)
    mask[:, :, : kh // 2] = 1.0
    mask[:, :, kh // 2, : kw // 2] = 1.0
    mask[:, :, kh // 2, kw // 2] = center
    return mask


def center_mask(kh: int, kw: int, center: torch.Tensor) -> torch.Tensor:
    """``[out, in, kh, kw]``: every tap kept except the bottom-right one, which gets
    ``center: [out, in]`` (the current pixel of the gated stacks' one-sided kernels)."""
    mask = torch.ones(center.shape + (kh, kw))
    mask[:, :, -1, -1] = center
    return mask


class MaskedConv2d(nn.Conv2d):
    """``conv2d(pad(h), weight * mask)``: a convolution with a fixed connectivity mask.

    Masked weights are multiplied by exactly zero, so outputs have exactly zero gradient
    with respect to the inputs they must not see.

    Args:
        mask: ``[out, in, kh, kw]`` 0/1 (a non-persistent buffer: rebuilt from the
            configuration).
        padding: ``(left, right, top, bottom)`` zero padding of the input.

    Shapes: ``h: [n, in, H', W']`` -> ``[n, out, H' + top + bottom - kh + 1, W' + left +
    right - kw + 1]``.
    """

    def __init__(self, mask: torch.Tensor, padding: tuple[int, int, int, int]) -> None:
        out, inp, kh, kw = mask.shape
        super().__init__(inp, out, (kh, kw))
        self.register_buffer("mask", mask.to(self.weight.dtype), persistent=False)
        self.pad = padding
        with torch.no_grad():  # keep the fan-in scaling of the taps that remain
            fan = mask.sum((1, 2, 3)).clamp(min=1.0).reshape(-1, 1, 1, 1)
            self.weight.mul_((inp * kh * kw / fan).sqrt())

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(h, self.pad), self.weight * self.mask, self.bias)
