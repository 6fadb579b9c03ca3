"""The probability-flow ODE likelihood against closed forms.

For Gaussian data ``N(m, diag v)`` the optimal noise prediction is known at every noise level,
``E[eps | x_lambda] = sigma (x - alpha m) / (alpha^2 v + sigma^2)``, and the flow it defines is
affine: from ``lambda_hi`` (where the integration starts) to ``lambda_T`` it maps ``x`` to
``alpha_T m + sqrt(var_T / var_hi) (x - alpha_hi m)`` with ``var = alpha^2 v + sigma^2``. So
the ODE's log-density has a closed form pointwise, ``log N(x_T; 0, I) + log |dx_T / dx|``, and
it is the Gaussian's own up to the prior's mismatch ``q(x_T) != N(0, I)`` (``L_T``, 1e-5 nats
on average for the linear schedule, a few 1e-3 pointwise). Tolerance 5e-4 nats: float32 and the RK4
error at 100 steps (measured 3e-5 pointwise); a 5% error in the noise prediction moves the
answer by more than ten times the tolerance.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ppgen.diffusion import GaussianDiffusion, log_snr_at, make_betas, ode_log_likelihood
from ppgen.diffusion.ode import DEFAULT_MARGIN, log_snr_grid, time_of_log_snr
from ppgen.errors import ModelError
from ppgen.models import DDPM

pytestmark = pytest.mark.usefixtures("one_thread")

M, V = torch.tensor([0.3, -0.5]), torch.tensor([0.25, 0.09])


def _gaussian_eps(m: torch.Tensor, v: torch.Tensor, scale: float = 1.0):
    def eps(x, time, log_snr):
        a2 = torch.sigmoid(log_snr)
        s2 = 1 - a2
        return s2.sqrt() * (x - a2.sqrt() * m) / (a2 * v + s2)
    return eps


def _data(n: int = 300, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Data ``N(scale m, scale^2 v)`` and their true log-density."""
    x = scale * (M + V.sqrt() * torch.randn(n, 2, generator=torch.Generator().manual_seed(0)))
    true = torch.distributions.Normal(scale * M, scale * V.sqrt()).log_prob(x).sum(-1)
    return x, true


def flow_density(process: GaussianDiffusion, x: torch.Tensor) -> torch.Tensor:
    """The exact log-density of the affine flow of ``N(M, diag V)`` data (float64)."""
    grid, x = log_snr_grid(process), x.double()
    hi, lo = grid[0] + DEFAULT_MARGIN, grid[-1]
    a_hi, a_lo = torch.sigmoid(hi), torch.sigmoid(lo)  # alpha^2
    var_hi, var_lo = a_hi * V + 1 - a_hi, a_lo * V + 1 - a_lo
    x_T = a_lo.sqrt() * M + (var_lo / var_hi).sqrt() * (x - a_hi.sqrt() * M)
    prior = torch.distributions.Normal(0.0, 1.0).log_prob(x_T).sum(-1)
    return prior + 0.5 * (var_lo / var_hi).log().sum()


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_ode_likelihood_of_gaussian_data_is_the_flow_density(schedule):
    process = GaussianDiffusion(make_betas(schedule, 1000))
    x, true = _data()
    exact = flow_density(process, x)
    assert (exact - true).abs().max() < 0.02 and abs((exact - true).mean()) < 2e-3
    got = ode_log_likelihood(_gaussian_eps(M, V), x, process, steps=100)
    assert got.shape == (300,)
    assert (got - exact).abs().max() < 5e-4, (got - exact).abs().max()
    wrong = ode_log_likelihood(lambda *a: 0.95 * _gaussian_eps(M, V)(*a), x, process, steps=100)
    assert (wrong - exact).abs().mean() > 2e-2


def test_log_snr_interpolation_passes_through_the_steps_and_inverts():
    process = GaussianDiffusion(make_betas("cosine", 50))
    abar = process.alphas_cumprod.double()
    assert torch.allclose(log_snr_at(process, process.times), (abar / (1 - abar)).log())
    for t in (0.031, 0.5, 0.97):
        lam = log_snr_at(process, torch.tensor(t, dtype=torch.float64))
        assert abs(time_of_log_snr(process, lam).item() - t) < 1e-6


class GaussianNetwork(nn.Module):
    """The optimal network of 2-D Gaussian data in model space, at continuous times: its
    target (noise, ``x_0`` or ``v``) from the exact noise prediction."""

    def __init__(self, process: GaussianDiffusion, prediction: str, m, v) -> None:
        super().__init__()
        self.process, self.prediction, self.eps = process, prediction, _gaussian_eps(m, v)

    def forward(self, x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        lam = log_snr_at(self.process, time).to(x.dtype)
        eps = self.eps(x, time, lam)
        alpha, sigma = torch.sigmoid(lam).sqrt(), torch.sigmoid(-lam).sqrt()
        x0 = (x - sigma * eps) / alpha
        return {"epsilon": eps, "x0": x0, "v": alpha * eps - sigma * x0}[self.prediction]


@pytest.mark.parametrize("prediction", ["epsilon", "x0", "v"])
def test_model_ode_likelihood_with_the_optimal_network(prediction):
    scale = 2.0
    model = DDPM(2, num_steps=1000, schedule="cosine", likelihood="continuous",
                 data_scale=scale, prediction=prediction, denoiser={"width": 8, "blocks": 1})
    model.network = GaussianNetwork(model.process, prediction, M, V)
    x, true = _data(200, scale)
    got = model.ode_log_likelihood(x, steps=100, batch_size=128)
    exact = flow_density(model.process, x / scale) - 2 * torch.log(torch.tensor(scale))
    assert got.shape == (200,)
    assert (got - exact).abs().max() < 5e-4, (got - exact).abs().max()
    assert abs((got - true).mean()) < 2e-3


def test_ode_likelihood_refuses_levels_data():
    model = DDPM(4, num_steps=10, num_levels=5, denoiser={"width": 8, "blocks": 1})
    with pytest.raises(ModelError, match="bound"):
        model.ode_log_likelihood(torch.zeros(2, 4, dtype=torch.long))
