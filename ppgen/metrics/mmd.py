"""Maximum mean discrepancy with a Gaussian kernel and the median heuristic, for any data.

``MMD²(P, Q) = E k(x, x') + E k(y, y') - 2 E k(x, y)`` (Gretton et al., 2012, "A Kernel
Two-Sample Test", JMLR 13); zero exactly when ``P = Q`` for a characteristic kernel such as the
Gaussian ``k(a, b) = exp(-|a - b|² / (2 h²))``. The bandwidth ``h`` defaults to the median
pairwise distance of the pooled sample (the median heuristic of the same paper).
"""

from __future__ import annotations

import torch

__all__ = ["median_bandwidth", "gaussian_kernel", "mmd2"]

#: pooled points the median heuristic looks at (the first ones of each sample)
MEDIAN_POINTS = 1000


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(len(x), -1).to(torch.float32 if x.dtype != torch.float64 else x.dtype)


def median_bandwidth(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The median pairwise Euclidean distance of the pooled sample (0-d tensor, > 0).

    Args:
        x: ``[N, *shape]``; y: ``[M, *shape]`` (flattened per row). At most
            :data:`MEDIAN_POINTS` / 2 rows of each are used, so the cost stays bounded.
    """
    half = MEDIAN_POINTS // 2
    pooled = torch.cat([_flat(x)[:half], _flat(y)[:half]])
    d = torch.cdist(pooled, pooled)
    off = d[~torch.eye(len(pooled), dtype=torch.bool, device=d.device)]
    return off.median().clamp_min(torch.finfo(d.dtype).tiny)


def gaussian_kernel(a: torch.Tensor, b: torch.Tensor, bandwidth: torch.Tensor | float
                    ) -> torch.Tensor:
    """``[N, M]`` kernel matrix ``exp(-|a_i - b_j|² / (2 h²))`` of ``a: [N, D]``, ``b: [M, D]``."""
    return torch.exp(-torch.cdist(a, b).square() / (2 * bandwidth**2))


def mmd2(
    x: torch.Tensor,
    y: torch.Tensor,
    bandwidth: torch.Tensor | float | None = None,
    unbiased: bool = True,
) -> torch.Tensor:
    """Squared MMD between the samples ``x: [N, *shape]`` and ``y: [M, *shape]``.

    Args:
        x: one sample (e.g. real data), rows flattened.
        y: the other (e.g. generated data), same trailing shape.
        bandwidth: the kernel's ``h``; default the median heuristic (:func:`median_bandwidth`).
        unbiased: the U-statistic (diagonals dropped, may be slightly negative, mean zero when
            ``P = Q``); otherwise the biased V-statistic (always >= 0).

    Returns:
        0-d tensor on ``x``'s device (differentiable; no host synchronisation).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> same = mmd2(torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g))
        >>> shifted = mmd2(torch.randn(200, 2, generator=g), 2 + torch.randn(200, 2, generator=g))
        >>> bool(same < 0.01 < shifted)
        True
    """
    a, b = _flat(x), _flat(y).to(_flat(x).dtype)
    h = median_bandwidth(a, b) if bandwidth is None else bandwidth
    kxx, kyy, kxy = (gaussian_kernel(a, a, h), gaussian_kernel(b, b, h),
                     gaussian_kernel(a, b, h))
    return _mean(kxx, unbiased) + _mean(kyy, unbiased) - 2 * kxy.mean()


def _mean(k: torch.Tensor, unbiased: bool) -> torch.Tensor:
    """Mean of a square kernel matrix, without its diagonal when ``unbiased``."""
    if not unbiased:
        return k.mean()
    n = k.shape[0]
    return (k.sum() - k.diagonal().sum()) / (n * (n - 1))
