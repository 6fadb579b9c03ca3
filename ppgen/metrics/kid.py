"""Kernel inception distance: unbiased MMD² with a cubic polynomial kernel, over subsets.

Bińkowski, Sutherland, Arbel & Gretton, 2018, "Demystifying MMD GANs" (arXiv:1801.01401):
``k(a, b) = (a·b / D + 1)³`` on feature vectors ``[D]``, the unbiased estimator of MMD²
averaged over ``num_subsets`` random subsets of ``subset_size`` rows of each sample. Unlike the
Fréchet distance it has an unbiased estimator, so small samples (447 test digits) compare
fairly. ``subset_size`` defaults to 1,000 rows (the usual size) or half the smaller sample when
that is smaller (223 of the 447 test digits), so every sample size is valid and the standard
deviation over subsets is informative.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ppgen.metrics.mmd import _mean

__all__ = ["polynomial_kernel", "kid"]


def polynomial_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[N, M]`` matrix ``(a_i·b_j / D + 1)³`` of ``a: [N, D]``, ``b: [M, D]``."""
    return (a @ b.T / a.shape[1] + 1) ** 3


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
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(num_subsets):
        a = fx[torch.randperm(len(fx), generator=generator)[:size].to(fx.device)]
        b = fy[torch.randperm(len(fy), generator=generator)[:size].to(fy.device)]
        values.append(_mean(polynomial_kernel(a, a), True) + _mean(polynomial_kernel(b, b), True)
                      - 2 * polynomial_kernel(a, b).mean())
    stacked = torch.stack(values)
    return stacked.mean(), stacked.std() if num_subsets > 1 else torch.zeros_like(stacked[0])
