"""Fréchet distance between Gaussians fitted to two samples of features (FID's formula).

``d²((μ₁, Σ₁), (μ₂, Σ₂)) = |μ₁ - μ₂|² + tr(Σ₁ + Σ₂ - 2 (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2})``
(Dowson & Landau, 1982; used on Inception features as the FID by Heusel et al., 2017,
"GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium",
arXiv:1706.08500). ``Σ₁^{1/2} Σ₂ Σ₁^{1/2}`` is symmetric positive semi-definite, so the trace of
its square root is the sum of the square roots of its eigenvalues: two symmetric eigen-
decompositions in float64, no general matrix square root and no imaginary parts to drop.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["gaussian_statistics", "frechet_distance", "frechet_distance_of"]


def gaussian_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``[D]`` and unbiased covariance ``[D, D]`` (float64) of ``features: [N, D]``."""
    f = features.reshape(len(features), -1).to(torch.float64)
    if len(f) < 2:
        raise ValueError(f"a covariance needs at least 2 rows, got {len(f)}")
    return f.mean(0), torch.cov(f.T).reshape(f.shape[1], f.shape[1])


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric PSD matrix (negative round-off clipped)."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(
    mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor
) -> torch.Tensor:
    """Squared Fréchet (2-Wasserstein) distance between ``N(mu1, cov1)`` and ``N(mu2, cov2)``.

    Args:
        mu1, mu2: means ``[D]``.
        cov1, cov2: covariances ``[D, D]`` (symmetric positive semi-definite).

    Returns:
        0-d float64 tensor, >= 0 up to round-off.

    Example:
        >>> eye = torch.eye(2, dtype=torch.float64)
        >>> float(frechet_distance(torch.zeros(2), eye, torch.ones(2), 4 * eye))
        4.0
    """
    mu1, mu2 = mu1.to(torch.float64), mu2.to(torch.float64)
    cov1, cov2 = cov1.to(torch.float64), cov2.to(torch.float64)
    root1 = _psd_sqrt(cov1)
    middle = root1 @ cov2 @ root1
    cross = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    return (mu1 - mu2).square().sum() + torch.trace(cov1) + torch.trace(cov2) - 2 * cross


def frechet_distance_of(
    x: torch.Tensor,
    y: torch.Tensor,
    features: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Fréchet distance between Gaussians fitted to ``features(x)`` and ``features(y)``.

    Args:
        x: ``[N, *shape]``; y: ``[M, *shape]``.
        features: a map to ``[N, D]`` feature vectors (e.g. a classifier's penultimate layer);
            default the flattened data themselves.
    """
    fx = x if features is None else features(x)
    fy = y if features is None else features(y)
    return frechet_distance(*gaussian_statistics(fx), *gaussian_statistics(fy))
