"""Kernel inception distance: unbiased MMD² with a cubic polynomial kernel, over subsets.

Bińkowski, Sutherland, Arbel & Gretton, 2018, "Demystifying MMD GANs" (arXiv:1801.01401):
``k(a, b) = (a·b / D + 1)³`` on feature vectors ``[D]``, the unbiased estimator of MMD²
averaged over ``num_subsets`` random subsets of ``subset_size`` rows of each sample. Unlike the
Fréchet distance it has an unbiased estimator, so small samples (447 test digits) compare
fairly. ``subset_size`` defaults to 1,000 rows (the usual size) or half the smaller sample when
that is smaller (223 of the 447 test digits), so every sample size is valid and the standard
deviation over subsets is informative.

Speed: every subset's kernel sums are read off the full kernel matrices, computed once: with
the subsets as rows of a 0/1 indicator matrix ``W: [S, N]``, the sum of ``K`` over a subset's
pairs is ``(W K ⊙ W) 1`` — one matrix product for all subsets instead of ``S`` kernel
evaluations. Samples too large for their full kernels in memory fall back to one kernel per
subset. Both give the same subsets and the same estimate (up to rounding).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["polynomial_kernel", "kid"]

#: the most entries of the three full kernel matrices together (float64: 128 MiB) for which
#: the subsets' sums are read off them; larger samples compute one kernel per subset
FULL_KERNEL_ENTRIES = 1 << 24


def polynomial_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[N, M]`` matrix ``(a_i·b_j / D + 1)³`` of ``a: [N, D]``, ``b: [M, D]``."""
    k = torch.addmm(torch.ones((), dtype=a.dtype, device=a.device), a, b.T,
                    alpha=1 / a.shape[1])
    return k * k * k


def kid(
    x: torch.Tensor,
    y: torch.Tensor,
    features: Callable[[torch.Tensor], torch.Tensor] | None = None,
    num_subsets: int = 100,
    subset_size: int | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """KID between ``x: [N, *shape]`` and ``y: [M, *shape]``: mean and standard deviation.

    Args:
        x, y: the two samples (e.g. real and generated).
        features: a map to ``[N, D]`` features; default the flattened data.
        num_subsets: random subsets averaged over.
        subset_size: rows per subset (drawn without replacement); default
            ``min(1000, min(N, M) // 2)``.
        seed: seed of the subsets (a CPU generator: the same subsets on every device).

    Returns:
        ``(mean, std)`` over subsets, 0-d float64 tensors (the mean is unbiased: about 0, and
        possibly negative, for equal distributions).

    Raises:
        ValueError: ``subset_size`` below 2 or above a sample's size.
    """
    fx = (x if features is None else features(x)).reshape(len(x), -1).to(torch.float64)
    fy = (y if features is None else features(y)).reshape(len(y), -1).to(torch.float64)
    size = subset_size or min(1000, min(len(fx), len(fy)) // 2)
    if not 2 <= size <= min(len(fx), len(fy)):
        raise ValueError(f"subset_size must be in 2..{min(len(fx), len(fy))}, got {size}")
    ix, iy = _subsets(len(fx), len(fy), num_subsets, size, seed)
    n, m = len(fx), len(fy)
    if n * n + m * m + n * m <= FULL_KERNEL_ENTRIES:
        values = _subset_mmd2_from_full_kernels(fx, fy, ix.to(fx.device), iy.to(fy.device))
    else:
        values = torch.stack([_mmd2(fx[a.to(fx.device)], fy[b.to(fy.device)])
                              for a, b in zip(ix, iy, strict=True)])
    return values.mean(), values.std() if num_subsets > 1 else torch.zeros_like(values[0])


def _subsets(n: int, m: int, num_subsets: int, size: int, seed: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices ``[S, size]`` of each subset of ``x`` and of ``y`` (drawn alternately from
    one seeded CPU generator, so the subsets do not depend on the device or the route)."""
    generator = torch.Generator().manual_seed(seed)
    ix, iy = [], []
    for _ in range(num_subsets):
        ix.append(torch.randperm(n, generator=generator)[:size])
        iy.append(torch.randperm(m, generator=generator)[:size])
    return torch.stack(ix), torch.stack(iy)


def _mmd2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The unbiased MMD² of one pair of subsets ``a, b: [n, D]``."""
    n = len(a)
    kaa, kbb = polynomial_kernel(a, a), polynomial_kernel(b, b)
    within = (kaa.sum() - kaa.diagonal().sum() + kbb.sum() - kbb.diagonal().sum()) / (n * (n - 1))
    return within - 2 * polynomial_kernel(a, b).mean()


def _subset_mmd2_from_full_kernels(fx: torch.Tensor, fy: torch.Tensor, ix: torch.Tensor,
                                   iy: torch.Tensor) -> torch.Tensor:
    """``[S]`` unbiased MMD² of every subset pair, from the full kernel matrices."""
    size = ix.shape[1]
    wx, wy = _indicators(ix, len(fx)), _indicators(iy, len(fy))
    within = _pair_sums(wx, polynomial_kernel(fx, fx)) + _pair_sums(wy, polynomial_kernel(fy, fy))
    between = ((wx @ polynomial_kernel(fx, fy)) * wy).sum(1)
    return within / (size * (size - 1)) - 2 * between / size**2


def _indicators(index: torch.Tensor, n: int) -> torch.Tensor:
    """``[S, n]`` 0/1 float64 rows marking each subset's ``index[s]``."""
    w = torch.zeros(len(index), n, dtype=torch.float64, device=index.device)
    return w.scatter_(1, index, 1.0)


def _pair_sums(w: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``[S]`` sums of the square kernel ``k`` over each subset's pairs ``i != j``."""
    return ((w @ k) * w).sum(1) - w @ k.diagonal()
