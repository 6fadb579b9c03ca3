"""Denoiser networks of the diffusion models: ``network(x_t, time) -> output``.

Both take a noisy datum ``x_t: [..., D]`` (flat) and its time ``t / T`` in ``(0, 1]`` (a scalar
or one per datum, broadcast against ``x_t``'s batch shape) and return ``[..., out_dims]``; the
time enters through a sinusoidal embedding (Vaswani et al., 2017, as in Ho et al., 2020) and
an MLP. The output layer starts at zero, so a new model predicts zero noise (and the middle of
a learned variance range). A class-conditional denoiser (``num_classes=C``) also takes labels
``y`` (``long``, broadcast against the batch shape; ``C`` is the null label of classifier-free
guidance, Ho & Salimans, 2022, and ``y=None`` means all null): their learned embedding is added
to the time embedding.

* :class:`MLPDenoiser` — residual MLP blocks (pre-norm, time added in each block) for flat data:
  2-D toys, tabular data, flattened images.
* :class:`UNetDenoiser` — a small U-Net (Ronneberger et al., 2015; the residual, GroupNorm,
  time-conditioned blocks of Ho et al., 2020) for small images such as the 8x8 digits: two
  resolutions, one skip connection per block.

:func:`build_denoiser` builds either from a JSON-able options dict (a model's ``denoiser``
argument).

Example:
    >>> net = build_denoiser(64, 64, (8, 8), {"kind": "unet", "channels": 16})
    >>> net(torch.zeros(3, 64), torch.tensor(0.5)).shape
    torch.Size([3, 64])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["DENOISERS", "HEADS", "build_denoiser", "MLPDenoiser", "UNetDenoiser",
           "TimeEmbedding", "LabelEmbedding", "LevelPosterior"]

#: the denoiser families by ``kind``
DENOISERS = ("mlp", "unet")
#: how a diffusion model reads ``x_0`` from the network: directly, or through the levels
HEADS = ("direct", "levels")


class LevelPosterior(nn.Module):
    """``E[x_0 | x_t]`` for data on ``K`` levels ``c_k``: a softmax over the levels whose logits
    are the exact Gaussian likelihood of ``x_t`` plus a learned per-pixel prior plus the
    network's correction::

        logit_k = log pi_dk + net_dk(x_t, t) - (x_t - sqrt(abar) c_k)^2 / (2 (1 - abar))

    With the network at zero this is the exact posterior mean under independent pixels with
    prior ``pi``, so at low noise it rounds ``x_t`` to the nearest level exactly (a plain
    network must learn that saw-tooth, and the first steps of the bound pay for every error);
    the network only has to model what the pixels share. A departure from the papers' direct
    networks, chosen for data of few levels (17 for the digits).

    Args:
        num_dims: ``D`` pixels.
        num_levels: ``K`` levels at ``c_k = -1 + 2 k / (K - 1)``.
    """

    def __init__(self, num_dims: int, num_levels: int) -> None:
        super().__init__()
        self.num_dims, self.num_levels = num_dims, num_levels
        self.prior_logits = nn.Parameter(torch.zeros(num_dims, num_levels))
        levels = 2 * torch.arange(num_levels) / (num_levels - 1) - 1
        self.register_buffer("levels", levels.to(torch.get_default_dtype()), persistent=False)

    def forward(self, x_t: torch.Tensor, net: torch.Tensor, sqrt_abar: torch.Tensor,
                one_minus_abar: torch.Tensor) -> torch.Tensor:
        """``x_0`` ``[..., D]`` from ``x_t: [..., D]``, the network's ``[..., K D]`` outputs
        (level-major) and the noise level (broadcastable to ``[..., D]``)."""
        net = net.reshape(*net.shape[:-1], self.num_levels, self.num_dims).transpose(-1, -2)
        centred = x_t.unsqueeze(-1) - sqrt_abar.unsqueeze(-1) * self.levels
        logits = self.prior_logits + net - centred**2 / (2 * one_minus_abar.unsqueeze(-1))
        return torch.softmax(logits, dim=-1) @ self.levels


class TimeEmbedding(nn.Module):
    """``time: [...]`` in ``(0, 1]`` -> ``[..., dim]``: sinusoids of ``1000 t`` then an MLP."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.net = nn.Sequential(nn.Linear(dim, 4 * dim), nn.SiLU(), nn.Linear(4 * dim, dim))

    def forward(self, time: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=time.device,
                                                            dtype=time.dtype) / half)
        angles = 1000.0 * time.unsqueeze(-1) * freqs
        return self.net(torch.cat([angles.sin(), angles.cos()], dim=-1))


class LabelEmbedding(nn.Module):
    """Class labels ``y: [...]`` in ``0..C`` (``C``: the null label) -> ``[..., dim]``.

    Args:
        num_classes: ``C`` real classes; index ``C`` is the null (unconditional) label.
        dim: size of the embedding (the time embedding's, to which it is added).
    """

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.table = nn.Embedding(num_classes + 1, dim)

    def forward(self, y: torch.Tensor | None, batch: torch.Size,
                device: torch.device) -> torch.Tensor:
        """The embeddings of ``y`` broadcast to ``batch`` and flattened: ``[prod(batch), dim]``
        (``y=None``: the null label everywhere)."""
        if y is None:
            y = torch.full((), self.num_classes, dtype=torch.long, device=device)
        return self.table(y.long().expand(batch).reshape(-1))


def _embed(time_embed: TimeEmbedding, label_embed: LabelEmbedding | None, x: torch.Tensor,
           time: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """``[B, time_dim]``: the time embedding of each flat datum, plus its label's."""
    emb = time_embed(_flat_times(x, time, 1))
    if label_embed is None:
        return emb
    return emb + label_embed(y, x.shape[:-1], x.device)


def _zero(layer: nn.Module) -> nn.Module:
    for p in layer.parameters():
        nn.init.zeros_(p)
    return layer


def _flat_times(x: torch.Tensor, time: torch.Tensor, event_dims: int) -> torch.Tensor:
    """``time`` broadcast to ``x``'s batch shape and flattened: ``[B]``."""
    batch = x.shape[: x.dim() - event_dims]
    return time.to(x.dtype).expand(batch).reshape(-1)


class _ResidualBlock(nn.Module):
    """``h + f(h, t)``: LayerNorm, SiLU, Linear, + time, LayerNorm, SiLU, dropout, Linear."""

    def __init__(self, width: int, time_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.fc1, self.fc2 = nn.Linear(width, width), _zero(nn.Linear(width, width))
        self.time = nn.Linear(time_dim, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        z = self.fc1(F.silu(self.norm1(h))) + self.time(F.silu(emb))
        return h + self.fc2(self.dropout(F.silu(self.norm2(z))))


class MLPDenoiser(nn.Module):
    """A residual MLP with a time embedding, for flat data.

    Args:
        num_dims: ``D``, inputs.
        out_dims: outputs (``D``, or ``2 D`` with a learned variance).
        width: hidden width.
        blocks: residual blocks.
        dropout: dropout rate inside each block (training mode only).
        time_dim: size of the time embedding.
        num_classes: ``C`` for a class-conditional denoiser (labels ``0..C``, ``C`` null).
    """

    def __init__(self, num_dims: int, out_dims: int, width: int = 256, blocks: int = 4,
                 dropout: float = 0.0, time_dim: int = 128,
                 num_classes: int | None = None) -> None:
        super().__init__()
        self.embed = TimeEmbedding(time_dim)
        self.label = None if num_classes is None else LabelEmbedding(num_classes, time_dim)
        self.input = nn.Linear(num_dims, width)
        self.blocks = nn.ModuleList(_ResidualBlock(width, time_dim, dropout)
                                    for _ in range(blocks))
        self.norm = nn.LayerNorm(width)
        self.output = _zero(nn.Linear(width, out_dims))

    def forward(self, x: torch.Tensor, time: torch.Tensor,
                y: torch.Tensor | None = None) -> torch.Tensor:
        """``x: [..., D]``, ``time`` (and labels ``y``) broadcastable to ``[...]`` ->
        ``[..., out_dims]``."""
        emb = _embed(self.embed, self.label, x, time, y)
        h = self.input(x.reshape(-1, x.shape[-1]))
        for block in self.blocks:
            h = block(h, emb)
        return self.output(F.silu(self.norm(h))).reshape(*x.shape[:-1], -1)


def _groups(channels: int) -> int:
    return math.gcd(channels, 8)


class _ConvBlock(nn.Module):
    """A residual convolution block with the time added per channel (Ho et al., 2020)."""

    def __init__(self, c_in: int, c_out: int, time_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.GroupNorm(_groups(c_in), c_in), nn.GroupNorm(
            _groups(c_out), c_out)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = _zero(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.time = nn.Linear(time_dim, c_out)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        z = self.conv1(F.silu(self.norm1(h))) + self.time(F.silu(emb))[:, :, None, None]
        return self.skip(h) + self.conv2(self.dropout(F.silu(self.norm2(z))))


class UNetDenoiser(nn.Module):
    """A small U-Net for images ``[C, H, W]`` (even ``H``, ``W``) given flat ``[..., C H W]``.

    Two resolutions (``H x W`` with ``channels``, ``H/2 x W/2`` with ``2 channels``),
    ``blocks`` residual blocks on each on the way down and ``blocks`` on the way up, each
    up-block reading the skip of its down-block.

    Args:
        image_shape: ``(H, W)`` or ``(C, H, W)``.
        out_multiplier: output channels per input channel (2 with a learned variance).
        channels: width at full resolution.
        blocks: residual blocks per resolution and direction.
        dropout: dropout rate in the blocks.
        time_dim: size of the time embedding.
        num_classes: ``C`` for a class-conditional denoiser (labels ``0..C``, ``C`` null).
    """

    def __init__(self, image_shape: Sequence[int], out_multiplier: int = 1, channels: int = 32,
                 blocks: int = 1, dropout: float = 0.0, time_dim: int = 128,
                 num_classes: int | None = None) -> None:
        super().__init__()
        shape = tuple(image_shape)
        self.shape = (1, *shape) if len(shape) == 2 else shape
        c_img, c = self.shape[0], channels
        self.embed = TimeEmbedding(time_dim)
        self.label = None if num_classes is None else LabelEmbedding(num_classes, time_dim)
        self.input = nn.Conv2d(c_img, c, 3, padding=1)
        self.down_hi = nn.ModuleList(_ConvBlock(c, c, time_dim, dropout) for _ in range(blocks))
        self.downsample = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)
        self.down_lo = nn.ModuleList(_ConvBlock(2 * c, 2 * c, time_dim, dropout)
                                     for _ in range(blocks))
        self.middle = _ConvBlock(2 * c, 2 * c, time_dim, dropout)
        self.up_lo = nn.ModuleList(_ConvBlock(4 * c, 2 * c, time_dim, dropout)
                                   for _ in range(blocks))
        self.upsample = nn.Conv2d(2 * c, c, 3, padding=1)
        self.up_hi = nn.ModuleList(_ConvBlock(2 * c, c, time_dim, dropout) for _ in range(blocks))
        self.norm = nn.GroupNorm(_groups(c), c)
        self.output = _zero(nn.Conv2d(c, c_img * out_multiplier, 3, padding=1))

    def forward(self, x: torch.Tensor, time: torch.Tensor,
                y: torch.Tensor | None = None) -> torch.Tensor:
        """``x: [..., C H W]``, ``time`` (and labels ``y``) broadcastable to ``[...]`` ->
        ``[..., mult C H W]`` (channel-major: the first ``C H W`` outputs are the
        prediction)."""
        emb = _embed(self.embed, self.label, x, time, y)
        h = self.input(x.reshape(-1, *self.shape))
        h, skips = self._down(h, emb)
        h = self.middle(h, emb)
        h = self._up(h, emb, skips)
        out = self.output(F.silu(self.norm(h)))
        return out.reshape(*x.shape[:-1], -1)

    def _down(self, h, emb):
        skips = []
        for block in self.down_hi:
            h = block(h, emb)
            skips.append(h)
        h = self.downsample(h)
        for block in self.down_lo:
            h = block(h, emb)
            skips.append(h)
        return h, skips

    def _up(self, h, emb, skips):
        for block in self.up_lo:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        h = self.upsample(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        for block in self.up_hi:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return h


def build_denoiser(num_dims: int, out_dims: int, image_shape: Sequence[int] | None,
                   options: dict[str, Any] | None = None,
                   num_classes: int | None = None) -> nn.Module:
    """The denoiser ``options`` describe (``{"kind": "mlp" | "unet", **its arguments}``; a
    ``"head"`` entry is the model's, see :data:`HEADS`, and ignored here), class-conditional
    with ``num_classes`` (the model's, not an option).

    The default kind is ``"unet"`` for images (``image_shape`` given), ``"mlp"`` otherwise.

    Raises:
        ValueError: an unknown kind, a U-Net without an image shape, or unknown arguments.
    """
    options = {k: v for k, v in (options or {}).items() if k != "head"}
    kind = options.pop("kind", "unet" if image_shape else "mlp")
    if kind not in DENOISERS:
        raise ValueError(f"unknown denoiser kind {kind!r}: use one of {DENOISERS}")
    try:
        if kind == "mlp":
            return MLPDenoiser(num_dims, out_dims, num_classes=num_classes, **options)
        if not image_shape or math.prod(image_shape) != num_dims:
            raise ValueError(f"a U-Net denoiser needs image_shape with {num_dims} pixels, got "
                             f"{image_shape}: pass image_shape or use kind='mlp'")
        return UNetDenoiser(image_shape, out_dims // num_dims, num_classes=num_classes,
                            **options)
    except TypeError as err:
        raise ValueError(f"bad options for the {kind} denoiser: {err}") from err
