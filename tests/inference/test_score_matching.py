"""Denoising score matching recovers the optimal score on Gaussian data.

With a Gaussian energy ``E(x) = (x - μ)ᵀ A (x - μ) / 2`` fitted to samples of ``N(m, S)``, the
minimiser of the denoising objective with noise ``σ`` is the score of the perturbed empirical
law's Gaussian fit: ``μ = m̂`` and ``A = (Ŝ + σ² I)⁻¹`` (for Gaussian models score matching
matches the moments), with ``m̂, Ŝ`` the sample moments. Full-batch Adam on the objective's loss
with 4 noise draws per row; fixed seed (deterministic); the tolerances cover the noise of the
last steps (fresh ε each step). A wrong sign or scale of the target (``ε/σ``) moves ``A`` far
outside them.
"""

from __future__ import annotations

import pytest
import torch

from ppgen.energy import EnergyModel
from ppgen.inference import DenoisingScoreMatching, make_objective

pytestmark = pytest.mark.usefixtures("one_thread")


class QuadraticEnergy(EnergyModel, register=False):
    """``E(x) = (x - μ)ᵀ L Lᵀ (x - μ) / 2`` with a learnt lower-triangular ``L``."""

    def __init__(self, num_dims: int) -> None:
        super().__init__()
        self.setup_base(num_dims)
        self.mu = torch.nn.Parameter(torch.zeros(num_dims))
        self.raw = torch.nn.Parameter(torch.zeros(num_dims, num_dims))

    def precision(self) -> torch.Tensor:
        tril = torch.tril(self.raw, -1) + torch.diag(self.raw.diagonal().exp())
        return tril @ tril.T

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        d = x - self.mu
        return 0.5 * ((d @ self.precision()) * d).sum(-1)


def test_gaussian_optimal_score_is_recovered():
    g = torch.Generator().manual_seed(0)
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.8]])
    x = torch.randn(2000, 2, generator=g) @ torch.linalg.cholesky(cov).T + torch.tensor(
        [1.0, -2.0])
    sigma = 0.5
    model = QuadraticEnergy(2)
    objective = make_objective("denoising-score-matching", noise_scale=sigma)
    assert isinstance(objective, DenoisingScoreMatching)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
    torch.manual_seed(1)
    rows = x.repeat(4, 1)
    for step in range(200):
        if step == 130:
            optimiser.param_groups[0]["lr"] = 0.01
        optimiser.zero_grad()
        objective.loss(model, rows).backward()
        optimiser.step()
    centred = x - x.mean(0)
    target = torch.linalg.inv(centred.T @ centred / len(x) + sigma**2 * torch.eye(2))
    assert torch.allclose(model.mu.detach(), x.mean(0), atol=0.06)
    assert torch.allclose(model.precision().detach(), target, atol=0.08)
    # the unperturbed precision is far off: the test sees the σ² term
    assert not torch.allclose(torch.linalg.inv(cov), target, atol=0.1)
