"""Representations of integer data: which likelihood models them, and dequantisation to [0, 1).

Uniform dequantisation turns integer levels ``x ∈ {0..K-1}`` into reals ``y = (x + u) / K`` with
``u ~ U[0, 1)``, so a continuous density ``p(y)`` on ``[0, 1)^D`` bounds the discrete likelihood:
``-log P(x) ≤ E_u[-log p(y)] + D·log K`` (Theis et al., 2016, "A note on the evaluation of
generative models"). :func:`quantize` is the inverse, ``x = floor(K·y)``.
"""

from __future__ import annotations

import math

import torch

from ppgen.data.validate import validate
from ppgen.errors import DataError

__all__ = ["REPRESENTATIONS", "likelihood_of", "dequantize", "quantize"]

_LIKELIHOOD_OF = {"categorical": "categorical", "binary": "bernoulli", "continuous": "continuous"}

#: Representations a data set can be loaded in (the CLI's ``--representation`` choices).
REPRESENTATIONS = tuple(_LIKELIHOOD_OF)


def likelihood_of(representation: str) -> str:
    """The likelihood family that models ``representation``.

    ``"categorical"`` → ``"categorical"``, ``"binary"`` → ``"bernoulli"``,
    ``"continuous"`` → ``"continuous"``.

    Raises:
        DataError: an unknown representation.
    """
    if representation not in _LIKELIHOOD_OF:
        raise DataError(
            f"unknown representation {representation!r}: use one of {', '.join(REPRESENTATIONS)}"
        )
    return _LIKELIHOOD_OF[representation]


def dequantize(
    x: torch.Tensor, num_levels: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Uniform dequantisation ``y = (x + u) / K``, ``u ~ U[0, 1)``, of integer levels.

    The noise is drawn in float64 and the result rounded to float32; values that rounding would
    push across a bin edge are clamped back into their bin, so ``floor(K * y) == x`` holds
    exactly, both for the real number ``y`` and when ``K * y`` is computed in float32 (the
    clamp moves a fraction of about ``1e-7`` of the values by one float32 ulp).

    Args:
        x: integer levels ``[N, *event_shape]`` in ``0..num_levels-1`` (any integer dtype, or
            floats with integral values).
        num_levels: the number of levels ``K``.
        generator: a :class:`torch.Generator` on ``x``'s device for reproducible noise; ``None``
            uses torch's global generator.

    Returns:
        float32 ``[N, *event_shape]`` on ``x``'s device, values in ``[0, 1)``.

    Raises:
        DataError: ``x`` is empty, non-finite, non-integer or outside ``0..num_levels-1``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> y = dequantize(torch.tensor([[0, 16]]), 17, generator=g)
        >>> quantize(y, 17).tolist()
        [[0, 16]]
    """
    levels = validate(x, "categorical", num_levels=num_levels, name="x")
    u = torch.rand(levels.shape, generator=generator, dtype=torch.float64, device=levels.device)
    y = ((levels + u) / num_levels).to(torch.float32)
    lo, hi = _bin_bounds(num_levels, levels.device)
    return torch.clamp(y, lo[levels], hi[levels])


def quantize(y: torch.Tensor, num_levels: int) -> torch.Tensor:
    """Inverse of :func:`dequantize`: ``x = floor(K * y)``, clamped to ``0..K-1``.

    Args:
        y: reals ``[N, *event_shape]``, normally in ``[0, 1)``.
        num_levels: the number of levels ``K``.

    Returns:
        ``torch.long`` levels ``[N, *event_shape]`` on ``y``'s device.
    """
    y = validate(y, "continuous", name="y")
    return torch.floor(y * num_levels).clamp_(0, num_levels - 1).long()


def _bin_bounds(num_levels: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 ``lo, hi`` ``[K]``: every float32 ``y`` in ``[lo[k], hi[k]]`` quantises to ``k``.

    Starts from the rounded edges ``k/K`` and ``(k+1)/K`` and steps them inward one ulp at a
    time until both the exact and the float32 value of ``floor(K * y)`` equal ``k``.
    """
    k = torch.arange(num_levels, dtype=torch.float64)
    lo = (k / num_levels).to(torch.float32)
    hi = ((k + 1) / num_levels).to(torch.float32)
    for _ in range(16):  # converges in one or two steps; the bound only guards the loop
        lo_bad = _floor_lo(lo, num_levels) < k
        hi_bad = _floor_hi(hi, num_levels) > k
        if not bool(lo_bad.any() or hi_bad.any()):
            break
        lo = torch.where(lo_bad, torch.nextafter(lo, torch.tensor(math.inf)), lo)
        hi = torch.where(hi_bad, torch.nextafter(hi, torch.tensor(-math.inf)), hi)
    return lo.to(device), hi.to(device)


def _floor_lo(y: torch.Tensor, num_levels: int) -> torch.Tensor:
    """The smaller of exact (float64) and float32 ``floor(K * y)``, as float64 ``[K]``."""
    return torch.minimum(_floors_exact(y, num_levels), _floors_f32(y, num_levels))


def _floor_hi(y: torch.Tensor, num_levels: int) -> torch.Tensor:
    """The larger of exact (float64) and float32 ``floor(K * y)``, as float64 ``[K]``."""
    return torch.maximum(_floors_exact(y, num_levels), _floors_f32(y, num_levels))


def _floors_exact(y: torch.Tensor, num_levels: int) -> torch.Tensor:
    # K * y is exact in float64 for float32 y and K < 2**29.
    return torch.floor(y.double() * num_levels)


def _floors_f32(y: torch.Tensor, num_levels: int) -> torch.Tensor:
    return torch.floor(y * num_levels).double()
