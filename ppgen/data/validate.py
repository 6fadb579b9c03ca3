"""The data validators: every path that takes user data goes through :func:`validate`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ppgen.data.info import LIKELIHOODS, DataInfo
from ppgen.errors import DataError

__all__ = ["as_tensor", "validate", "validate_for", "value_range"]


def as_tensor(x: Any, name: str = "data") -> torch.Tensor:
    """Convert an array-like to a tensor, refusing non-numeric data with a clear message."""
    if isinstance(x, torch.Tensor):
        t = x
    else:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as err:
            raise DataError(f"{name} could not be read as a numeric array: {err}") from err
        if arr.dtype == object or arr.dtype.kind in "USV":
            raise DataError(
                f"{name} has non-numeric entries (dtype {arr.dtype}): "
                "convert text columns to numbers or drop them"
            )
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    if t.is_complex():
        raise DataError(f"{name} is complex-valued ({t.dtype}); ppgen models real data")
    return t


def validate(
    x: Any,
    likelihood: str = "continuous",
    *,
    num_levels: int | None = None,
    event_shape: tuple[int, ...] | torch.Size | None = None,
    name: str = "data",
) -> torch.Tensor:
    """Check data at the boundary and return it in the dtype its likelihood needs.

    Args:
        x: array-like ``[N, *event_shape]``.
        likelihood: ``"categorical"`` (integers in ``0..num_levels-1``; returned as ``long``),
            ``"bernoulli"`` (0/1; returned as float) or ``"continuous"`` (returned as float).
        num_levels: number of levels for categorical data.
        event_shape: expected shape of one datum, if known.
        name: how to call the data in error messages.

    Returns:
        A tensor ``[N, *event_shape]`` on the device ``x`` was on.

    Raises:
        DataError: empty data, wrong shape, non-finite values, or values outside the support.
    """
    if likelihood not in LIKELIHOODS:
        raise DataError(f"unknown likelihood {likelihood!r}: use one of {', '.join(LIKELIHOODS)}")
    t = as_tensor(x, name)
    if t.dim() == 0 or t.shape[0] == 0:
        raise DataError(f"{name} is empty (shape {tuple(t.shape)}): pass at least one row")
    if t.dim() == 1 and event_shape is not None and len(event_shape) > 0:
        raise DataError(
            f"{name} has shape {tuple(t.shape)} but one datum has shape {tuple(event_shape)}: "
            f"pass a batch [N, {', '.join(map(str, event_shape))}] (x[None] for a single row)"
        )
    if event_shape is not None and tuple(t.shape[1:]) != tuple(event_shape):
        raise DataError(
            f"{name} has rows of shape {tuple(t.shape[1:])} but the model expects "
            f"{tuple(event_shape)}: reshape the data or build the model for this shape"
        )
    if t.is_floating_point() and t.numel() and not all(map(math.isfinite, value_range(t))):
        bad = int((~torch.isfinite(t)).reshape(t.shape[0], -1).any(dim=1).sum())
        raise DataError(
            f"{name} contains NaN or infinite values ({bad} rows affected): "
            "drop or impute them before fitting or scoring"
        )
    if likelihood == "categorical":
        return _categorical(t, num_levels, name)
    if likelihood == "bernoulli":
        return _binary(t, name)
    return t.to(torch.get_default_dtype()) if not t.is_floating_point() else t


def value_range(t: torch.Tensor) -> tuple[float, float]:
    """``(min, max)`` of a non-empty tensor in one pass and one host synchronisation.

    NaN propagates (both ends are NaN if any value is) and infinities show at the ends, so
    ``all(map(math.isfinite, value_range(t)))`` is the finiteness check — cheaper than
    ``torch.isfinite(t).all()``, which allocates a mask the size of the data.
    """
    lo, hi = torch.aminmax(t)
    return tuple(torch.stack([lo, hi]).tolist())


def _categorical(t: torch.Tensor, num_levels: int | None, name: str) -> torch.Tensor:
    if num_levels is None or num_levels < 2:
        raise DataError("categorical data need num_levels >= 2")
    if t.is_floating_point() and not bool((t == t.round()).all()):
        raise DataError(
            f"{name} has non-integer values but the likelihood is categorical: "
            "use integer levels 0..K-1, or a continuous representation"
        )
    lo, hi = value_range(t)
    if lo < 0 or hi > num_levels - 1:
        raise DataError(
            f"{name} has values in [{lo:g}, {hi:g}] but a categorical likelihood with "
            f"{num_levels} levels needs integers in [0, {num_levels - 1}]: rescale the data or "
            "pass the right number of levels"
        )
    return t.long()


def _binary(t: torch.Tensor, name: str) -> torch.Tensor:
    if not bool(((t == 0) | (t == 1)).all()):
        raise DataError(
            f"{name} has values other than 0 and 1 but the likelihood is Bernoulli: "
            "binarise it first (e.g. x >= threshold)"
        )
    return t.to(torch.get_default_dtype())


def validate_for(x: Any, info: DataInfo, name: str = "data") -> torch.Tensor:
    """:func:`validate` against a :class:`DataInfo` (shape, likelihood and levels)."""
    return validate(
        x, info.likelihood, num_levels=info.num_levels, event_shape=info.event_shape, name=name
    )
