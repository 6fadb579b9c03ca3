"""The energy models' samplers, replay buffer and Gaussian base (:mod:`ppgen.energy`).

Closed forms: on a Gaussian target ``N(m, v I)`` (whitened coordinates) unadjusted Langevin with
step ``ε`` and noise ``sqrt(2 ε)`` is a linear autoregression with stationary variance
``v / (1 - ε / (2 v))``, biased; MALA and HMC leave the target itself invariant. Moment checks
use 4.5 standard errors (a chance below 1e-5 each of failing by noise, fixed seeds).
"""

from __future__ import annotations

import math

import pytest
import torch

from ppgen.energy import (
    GaussianBase,
    ReplayBuffer,
    evaluate,
    fit_gaussian,
    run_chain,
    transition,
)

pytestmark = pytest.mark.usefixtures("one_thread")

M = torch.tensor([1.0, -0.5])
V = 0.25  # target variance per dimension


def h_gauss(z: torch.Tensor) -> torch.Tensor:
    """``h`` of ``N(M, V I)`` against the whitened reference ``N(0, I)``."""
    return -((z - M) ** 2).sum(-1) / (2 * V) + 0.5 * (z * z).sum(-1)


def exact(n: int, seed: int) -> torch.Tensor:
    return M + math.sqrt(V) * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


def _moments_match(z: torch.Tensor, mean: torch.Tensor, var: float) -> None:
    n = z.shape[0]
    assert torch.all((z.mean(0) - mean).abs() < 4.5 * math.sqrt(var / n))
    assert torch.all((z.var(0) - var).abs() < 4.5 * var * math.sqrt(2 / n))


def test_unadjusted_langevin_has_its_closed_form_bias():
    eps = 0.125  # ε / (2 v) = 1/4: the stationary variance is 4/3 of the target's
    run = run_chain(h_gauss, exact(4000, 0), steps=60, sampler="langevin", step_size=eps,
                    generator=torch.Generator().manual_seed(1))
    _moments_match(run.state.z, M, V / (1 - eps / (2 * V)))
    assert torch.equal(run.acceptance, torch.ones(60))


@pytest.mark.parametrize("sampler,step", [("mala", 0.125), ("hmc", 0.4)])
def test_adjusted_samplers_keep_the_target(sampler, step):
    run = run_chain(h_gauss, exact(4000, 2), steps=30, sampler=sampler, step_size=step,
                    num_leapfrog=3, generator=torch.Generator().manual_seed(3))
    _moments_match(run.state.z, M, V)
    assert 0.3 < float(run.acceptance.mean()) < 1.0


def test_adjusted_samplers_reach_the_target_from_the_reference():
    run = run_chain(h_gauss, torch.randn(3000, 2, generator=torch.Generator().manual_seed(4)),
                    steps=60, sampler="hmc", step_size=0.4, num_leapfrog=3,
                    generator=torch.Generator().manual_seed(5))
    _moments_match(run.state.z, M, V)


def test_tempered_target_and_non_finite_proposals():
    # at β = 0 the target is the reference N(0, I) whatever h is
    run = run_chain(h_gauss, exact(3000, 6), steps=40, sampler="mala", step_size=0.5,
                    beta=0.0, generator=torch.Generator().manual_seed(7))
    _moments_match(run.state.z, torch.zeros(2), 1.0)

    def walled(z):  # log density -inf outside the unit disc (NaN gradient there too)
        return torch.where(z.norm(dim=-1) < 1, torch.zeros_like(z[:, 0]), -torch.inf)

    for sampler in ("mala", "hmc"):
        state = evaluate(walled, torch.zeros(500, 2))
        for _ in range(20):
            state, prob = transition(sampler, walled, state, 1.0, 0.3, num_leapfrog=2)
        assert torch.isfinite(state.z).all() and (state.z.norm(dim=-1) < 1).all()
        assert torch.isfinite(prob).all()


def test_run_chain_records_its_path_and_refuses_unknown_samplers():
    run = run_chain(h_gauss, torch.zeros(7, 2), steps=10, record_every=4)
    assert run.path.shape == (4, 7, 2)  # start, steps 4 and 8, the last
    assert torch.equal(run.path[-1], run.state.z)
    with pytest.raises(ValueError, match="unknown sampler"):
        run_chain(h_gauss, torch.zeros(3, 2), steps=1, sampler="gibbs")


# ----------------------------------------------------------------------------- replay buffer
def test_replay_buffer_starts_fresh_keeps_chains_and_restarts_a_share():
    torch.manual_seed(0)
    buffer = ReplayBuffer(1000, reinit=0.2)
    buffer.resize((3,), torch.device("cpu"), torch.float32)
    fresh = torch.full((1000, 3), -1.0)
    start, slots = buffer.draw(fresh)
    assert torch.equal(start, fresh) and sorted(slots.tolist()) == list(range(1000))
    buffer.push(slots, torch.ones(1000, 3))
    assert bool(buffer.filled.all())
    start, _ = buffer.draw(fresh)
    restarted = (start[:, 0] == -1).float().mean()
    assert abs(float(restarted) - 0.2) < 4.5 * math.sqrt(0.2 * 0.8 / 1000)


def test_replay_buffer_state_round_trips_and_refuses_bad_sizes():
    buffer = ReplayBuffer(10, reinit=0.0)
    buffer.resize((2,), torch.device("cpu"), torch.float32)
    start, slots = buffer.draw(torch.zeros(4, 2))
    buffer.push(slots, torch.arange(8.0).reshape(4, 2))
    other = ReplayBuffer(10)
    other.resize((2,), torch.device("cpu"), torch.float32)
    other.load_state_dict(buffer.state_dict())
    assert torch.equal(other.samples, buffer.samples) and torch.equal(other.filled,
                                                                      buffer.filled)
    with pytest.raises(ValueError, match="at least 11"):
        buffer.draw(torch.zeros(11, 2))
    with pytest.raises(ValueError, match="probability"):
        ReplayBuffer(10, reinit=1.5)


# ----------------------------------------------------------------------------- the base
def test_gaussian_base_matches_torch_and_whitens():
    x = torch.randn(400, 3, generator=torch.Generator().manual_seed(0)) @ torch.tensor(
        [[2.0, 0.0, 0.0], [0.5, 0.3, 0.0], [0.0, 1.0, 1.0]]) + 3.0
    base = GaussianBase.fit(x, shrinkage=0.0)
    reference = torch.distributions.MultivariateNormal(base.loc, scale_tril=base.scale_tril)
    assert torch.allclose(base.log_prob(x), reference.log_prob(x), atol=1e-4)
    z = base.whiten(x)
    assert torch.allclose(z.mean(0), torch.zeros(3), atol=1e-4)
    assert torch.allclose(torch.cov(z.T), torch.eye(3), atol=1e-2)  # the variance floor
    assert torch.allclose(base.to_data(z), x, atol=1e-4)
    # fewer rows than dimensions: shrinkage still gives a proper Gaussian
    _, tril = fit_gaussian(torch.randn(3, 10))
    assert bool((torch.diagonal(tril) > 0).all())
