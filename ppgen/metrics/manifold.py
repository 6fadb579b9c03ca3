"""Precision / recall and density / coverage from k-nearest-neighbour balls around samples.

A sample's *manifold* is the union of balls around its points, each ball reaching the point's
k-th nearest neighbour within the sample (Kynkäänniemi et al., 2019, "Improved Precision and
Recall Metric for Assessing Generative Models", arXiv:1904.06991):

* **precision** — the fraction of *generated* points inside the *real* manifold (fidelity);
* **recall** — the fraction of *real* points inside the *generated* manifold (diversity).

A generator collapsed onto a few real-looking points has high precision and low recall; the
argument order (``real`` first, ``fake`` second) is fixed by name so the two cannot be swapped.
Naeem et al., 2020 ("Reliable Fidelity and Diversity Metrics for Generative Models",
arXiv:2002.09797) count with the real balls only, which resists outliers:

* **density** — ``(1 / kM) Σ_j Σ_i 1[y_j ∈ B(x_i, r_k(x_i))]`` (about 1 for equal
  distributions, above 1 when fakes crowd dense real regions);
* **coverage** — the fraction of real balls that contain at least one generated point.
"""

from __future__ import annotations

import torch

__all__ = ["knn_radii", "precision_recall", "density_coverage"]

#: query rows per distance block (keeps ``[rows, N]`` distance matrices small)
BLOCK = 1024


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(len(x), -1).to(torch.float32 if x.dtype != torch.float64 else x.dtype)


def knn_radii(points: torch.Tensor, k: int) -> torch.Tensor:
    """``[N]`` distance of each row of ``points: [N, D]`` to its k-th nearest other row.

    Raises:
        ValueError: ``k`` outside ``1..N-1``.
    """
    if not 1 <= k < len(points):
        raise ValueError(f"k must be in 1..{len(points) - 1} for {len(points)} points, got {k}")
    radii = [torch.cdist(block, points).topk(k + 1, largest=False).values[:, k]
             for block in points.split(BLOCK)]  # the 0th neighbour is the point itself
    return torch.cat(radii)


def _ball_counts(queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor
                 ) -> torch.Tensor:
    """``[Q]`` number of balls ``B(centres_i, radii_i)`` that contain each query row."""
    counts = [(torch.cdist(block, centres) <= radii).sum(1) for block in queries.split(BLOCK)]
    return torch.cat(counts)


def _covered(queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """``[N]`` whether each ball ``B(centres_i, radii_i)`` contains at least one query row."""
    hit = torch.zeros(len(centres), dtype=torch.bool, device=centres.device)
    for block in queries.split(BLOCK):
        hit |= (torch.cdist(block, centres) <= radii).any(0)
    return hit


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3
                     ) -> dict[str, torch.Tensor]:
    """Improved precision and recall of ``fake`` samples against ``real`` ones.

    Args:
        real: real data or their features ``[N, *shape]`` (rows flattened).
        fake: generated data or features ``[M, *shape]``, in the same space.
        k: the neighbour that sets each ball's radius (3 in the paper).

    Returns:
        ``{"precision": p, "recall": r}``, 0-d tensors in ``[0, 1]``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> real = torch.randn(500, 2, generator=g)
        >>> collapsed = 0.05 * torch.randn(500, 2, generator=g)  # one mode of the real cloud
        >>> pr = precision_recall(real, collapsed)
        >>> bool(pr["precision"] > 0.9 and pr["recall"] < 0.2)
        True
    """
    a, b = _flat(real), _flat(fake).to(_flat(real).dtype)
    precision = (_ball_counts(b, a, knn_radii(a, k)) > 0).float().mean()
    recall = (_ball_counts(a, b, knn_radii(b, k)) > 0).float().mean()
    return {"precision": precision, "recall": recall}


def density_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = 5
                     ) -> dict[str, torch.Tensor]:
    """Density and coverage of ``fake`` samples against the ``real`` balls (Naeem et al.).

    Args:
        real: ``[N, *shape]``; fake: ``[M, *shape]`` (same space).
        k: the neighbour that sets each real ball's radius (5 in the paper).

    Returns:
        ``{"density": d, "coverage": c}``, 0-d tensors (``d >= 0``, ``c`` in ``[0, 1]``).
    """
    a, b = _flat(real), _flat(fake).to(_flat(real).dtype)
    radii = knn_radii(a, k)
    density = _ball_counts(b, a, radii).float().sum() / (k * len(b))
    coverage = _covered(b, a, radii).float().mean()
    return {"density": density, "coverage": coverage}
