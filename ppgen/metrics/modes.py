"""Mode coverage on 2-D mixtures of Gaussians (the VEEGAN / PacGAN protocol).

Srivastava et al., 2017, "VEEGAN: Reducing Mode Collapse in GANs using Implicit Variational
Learning" (arXiv:1705.07761) and Lin et al., 2018, "PacGAN: The power of two samples in
generative adversarial networks" (arXiv:1712.04086): the data are an equal mixture of isotropic
Gaussians of standard deviation ``σ`` — 8 on a ring of radius 1 (``σ = 0.01``) or 25 on the grid
``{-4, -2, 0, 2, 4}²`` (``σ = 0.05``). A generated point is *high quality* when it lies within
``3σ`` of its nearest mode; a mode is *captured* when at least one high-quality point is
nearest to it. PacGAN also reports the KL divergence from the generated points' histogram over
their nearest modes to the uniform one (``mode_kl``; 0 when every mode is hit equally often).

Example:
    >>> ring = ModeSet.ring()
    >>> x = ring.sample(2000, seed=0)
    >>> scores = mode_metrics(x, ring)
    >>> scores["modes"], round(scores["high_quality"], 2)
    (8, 0.99)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["ModeSet", "mode_metrics"]


@dataclass(frozen=True)
class ModeSet:
    """An equal mixture of isotropic Gaussians: the modes a generator should cover.

    Attributes:
        centres: mode means ``[M, D]``.
        sigma: the common standard deviation of every mode.
        name: a short name, for reports.
    """

    centres: torch.Tensor
    sigma: float
    name: str = "modes"

    @classmethod
    def ring(cls, count: int = 8, radius: float = 1.0, sigma: float = 0.01) -> ModeSet:
        """``count`` modes at angles ``2πk / count`` on a circle of ``radius`` (PacGAN's ring)."""
        angle = 2 * math.pi * torch.arange(count, dtype=torch.float32) / count
        centres = radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)
        return cls(centres, sigma, f"ring{count}")

    @classmethod
    def grid(cls, size: int = 5, spacing: float = 2.0, sigma: float = 0.05) -> ModeSet:
        """``size²`` modes on a centred square grid (PacGAN's grid: ``{-4, ..., 4}²``)."""
        axis = spacing * (torch.arange(size, dtype=torch.float32) - (size - 1) / 2)
        return cls(torch.cartesian_prod(axis, axis), sigma, f"grid{size * size}")

    @property
    def num_modes(self) -> int:
        return len(self.centres)

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """``[n, D]`` float32 draws of the mixture from a CPU generator seeded with ``seed``."""
        g = torch.Generator().manual_seed(seed)
        which = torch.randint(self.num_modes, (n,), generator=g)
        noise = torch.randn(n, self.centres.shape[1], generator=g)
        return self.centres[which] + self.sigma * noise

    def nearest(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Index ``[N]`` of the nearest mode of each row of ``x: [N, D]`` and its distance."""
        distance, index = torch.cdist(x, self.centres.to(x)).min(dim=1)
        return index, distance


def mode_metrics(samples: torch.Tensor, modes: ModeSet) -> dict[str, float]:
    """Modes captured and the share of high-quality samples.

    Args:
        samples: generated points ``[N, D]``.
        modes: the mixture the generator was trained on.

    Returns:
        ``{"modes": captured (int), "num_modes": M, "high_quality": fraction within 3σ of a
        mode, "mode_kl": KL(nearest-mode histogram || uniform) in nats}``.
    """
    index, distance = modes.nearest(samples.detach().reshape(len(samples), -1).float())
    good = distance <= 3 * modes.sigma
    captured = torch.zeros(modes.num_modes, dtype=torch.bool, device=samples.device)
    captured[index[good]] = True
    share = torch.bincount(index, minlength=modes.num_modes).double() / len(index)
    kl = (share * (share * modes.num_modes).log()).nan_to_num(0.0).sum()
    return {"modes": int(captured.sum()), "num_modes": modes.num_modes,
            "high_quality": float(good.float().mean()), "mode_kl": float(kl)}
