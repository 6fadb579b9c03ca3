"""The Gaussian diffusion process (ppgen.diffusion) against its definitions.

Schedules against the papers' formulas; the forward posterior against Bayes' rule written out
independently; every parameterisation's prediction inverted; the KL between Gaussians against
torch.distributions; the discretised decoder normalised over the levels (exhaustively) and its
draws against its probabilities (chi-square, failure rate P_MIN); every spacing against the
formula of the library that defined it, and the respaced process stepping to the previous
*kept* step (no off-by-one previous timestep).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from testkit import P_MIN
from torch.distributions import Normal, kl_divergence

from ppgen.diffusion import (
    DiscretizedGaussian,
    GaussianDiffusion,
    Prediction,
    ReverseStep,
    Variance,
    make_betas,
    normal_kl,
    space_timesteps,
    strata_edges,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _process(T=100, schedule="linear", **kwargs) -> GaussianDiffusion:
    return GaussianDiffusion(make_betas(schedule, T), **kwargs)


# ----------------------------------------------------------------------------- schedules
def test_linear_schedule_is_ho_et_al():
    betas = make_betas("linear", 1000)
    assert betas.dtype == torch.float64 and betas.shape == (1000,)
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    assert torch.allclose(betas.diff(), betas.diff()[0].expand(999))
    assert make_betas("linear", 500)[-1].item() == pytest.approx(0.04)  # scaled by 1000 / T


def test_cosine_schedule_is_nichol_and_dhariwal_eq_17():
    T, s = 1000, 0.008
    abar = torch.cumprod(1 - make_betas("cosine", T), 0)
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    for t in (1, 10, 500, 900):
        assert abar[t - 1].item() == pytest.approx(f(t) / f(0), rel=1e-9)
    assert make_betas("cosine", T).max().item() <= 0.999


def test_unknown_schedule_and_bad_betas_are_refused():
    with pytest.raises(ValueError):
        make_betas("quadratic", 10)
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        GaussianDiffusion(torch.tensor([0.1, 1.0]))


# ----------------------------------------------------------------------------- forward process
def test_forward_marginal_composes_the_steps():
    process = _process(50)
    betas = make_betas("linear", 50)
    for s in (0, 7, 49):
        mean, var, log_var = process.q_mean_variance(torch.ones(3), s)
        abar = torch.prod(1 - betas[: s + 1]).item()
        assert mean[0].item() == pytest.approx(math.sqrt(abar), rel=1e-5)
        assert var.item() == pytest.approx(1 - abar, rel=1e-5)
        assert log_var.item() == pytest.approx(math.log(1 - abar), rel=1e-5)


def test_forward_posterior_is_bayes_rule():
    """q(x_{t-1} | x_t, x_0) ∝ q(x_t | x_{t-1}) q(x_{t-1} | x_0), written out in precisions."""
    process = _process(100, "cosine")
    betas = make_betas("cosine", 100)
    abar = torch.cumprod(1 - betas, 0)
    g = torch.Generator().manual_seed(0)
    x0, x_t = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    for s in (1, 2, 50, 99):  # x_t is x_{s+1}; the posterior is over x_s
        alpha, prev = 1 - betas[s], abar[s - 1]
        precision = 1 / (1 - prev) + alpha / betas[s]
        mean = (prev.sqrt() * x0 / (1 - prev) + alpha.sqrt() * x_t / betas[s]) / precision
        got_mean, got_var, got_log_var = process.q_posterior(x0, x_t, s)
        assert torch.allclose(got_mean, mean.float(), atol=1e-5)
        assert got_var.item() == pytest.approx(1 / precision.item(), rel=1e-5)
        assert got_log_var.item() == pytest.approx(-math.log(precision.item()), rel=1e-5)


def test_step_indices_broadcast_per_datum():
    process = _process(100)
    x0 = torch.randn(4, 3)
    s = torch.tensor([0, 5, 50, 99])
    noise = torch.randn(4, 3)
    rows = torch.stack([process.q_sample(x0[i], int(s[i]), noise[i]) for i in range(4)])
    assert torch.allclose(process.q_sample(x0, s, noise), rows)
    assert process.q_posterior(x0, x0, s)[0].shape == (4, 3)


# ----------------------------------------------------------------------------- reverse process
@pytest.mark.parametrize("prediction", list(Prediction))
def test_every_prediction_recovers_x0_from_its_target(prediction):
    process = _process(100, "cosine", prediction=prediction)
    g = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    s = torch.tensor([0, 1, 30, 70, 99])
    x_t = process.q_sample(x0, s, noise)
    step = process.p_mean_variance(process.training_target(x0, noise, s), x_t, s)
    assert torch.allclose(step.x0, x0, atol=1e-3)
    assert torch.allclose(step.eps, noise, atol=2e-3)
    assert torch.allclose(step.mean, process.q_posterior(x0, x_t, s)[0], atol=1e-4)


def test_clipping_bounds_the_predicted_x0():
    process = _process(10, "cosine", prediction="x0", clip=True)
    step = process.p_mean_variance(torch.tensor([[-3.0, 0.5, 3.0]]), torch.zeros(1, 3), 4)
    assert step.x0.tolist() == [[-1.0, 0.5, 1.0]]


def test_reverse_variances():
    process = _process(100, variance=Variance.LEARNED_RANGE)
    x = torch.zeros(2, 3)
    out = torch.cat([x, torch.tensor([[1.0] * 3, [-1.0] * 3])], dim=-1)
    step = process.p_mean_variance(out, x, torch.tensor([20, 20]))
    assert torch.allclose(step.log_variance[0], process.betas[20].log().expand(3))
    assert torch.allclose(step.log_variance[1], process.posterior_variance[20].log().expand(3))
    small = _process(100, variance="fixed-small")
    large = _process(100, variance="fixed-large")
    close = lambda a, b: torch.allclose(a, b.log(), rtol=1e-5)  # noqa: E731
    assert close(small.p_mean_variance(x, x, 20).log_variance, process.posterior_variance[20])
    assert close(large.p_mean_variance(x, x, 20).log_variance, process.betas[20])
    for fixed in (small, large):  # t = 1: beta~_1 = 0, so both use beta~_2
        assert close(fixed.p_mean_variance(x, x, 0).log_variance, process.posterior_variance[1])


def test_learned_variance_doubles_the_output_and_freezes_only_the_mean():
    process = _process(10, variance="learned-range")
    assert process.output_multiplier == 2 and _process(10).output_multiplier == 1
    out = torch.randn(2, 6, requires_grad=True)
    process.freeze_mean(out).sum().backward()
    assert out.grad[:, :3].abs().sum() == 0 and bool((out.grad[:, 3:] == 1).all())


# ----------------------------------------------------------------------------- Gaussian pieces
def test_normal_kl_against_torch():
    g = torch.Generator().manual_seed(2)
    m1, m2, lv1, lv2 = (torch.randn(50, generator=g) * 2 for _ in range(4))
    expected = kl_divergence(Normal(m1, (0.5 * lv1).exp()), Normal(m2, (0.5 * lv2).exp()))
    assert torch.allclose(normal_kl(m1, lv1, m2, lv2), expected, atol=1e-5)


def test_prior_kl_against_torch():
    process = _process(100)
    x0 = torch.randn(4, 3)
    mean, var, _ = process.q_mean_variance(x0, 99)
    expected = kl_divergence(Normal(mean, var.sqrt()), Normal(0.0, 1.0))
    assert torch.allclose(process.prior_kl(x0), expected, atol=1e-6)


@pytest.mark.parametrize("K", [2, 17, 256])
def test_discretized_gaussian_sums_to_one_over_the_levels(K):
    g = torch.Generator().manual_seed(K)
    loc = torch.cat([torch.randn(40, generator=g) * 2, torch.tensor([-5.0, 5.0, 0.0, 1.0])])
    scale = torch.cat([torch.rand(40, generator=g) + 1e-3, torch.tensor([1e-4, 1e-4, 30, 1e-4])])
    d = DiscretizedGaussian(loc.double(), scale.double(), K)
    probs = d.log_prob(torch.arange(K)[:, None]).exp()
    assert torch.allclose(probs.sum(0), torch.ones(44, dtype=torch.float64), atol=1e-9)


def test_discretized_gaussian_bins_are_the_gaussian_mass():
    loc, scale = torch.tensor(0.1, dtype=torch.float64), torch.tensor(0.3, dtype=torch.float64)
    d = DiscretizedGaussian(loc, scale, 17)
    cdf = lambda y: stats.norm.cdf(y, 0.1, 0.3)  # noqa: E731
    edges = [-math.inf] + [-1 + (2 * k + 1) / 16 for k in range(16)] + [math.inf]
    expected = [cdf(edges[k + 1]) - cdf(edges[k]) for k in range(17)]
    got = d.log_prob(torch.arange(17)).exp().numpy()
    assert np.allclose(got, expected, atol=1e-12)
    assert d.mode.item() == int(np.argmax(expected)) and d.support.upper_bound == 16


def test_discretized_gaussian_draws_follow_its_probabilities():
    d = DiscretizedGaussian(torch.tensor(0.3), torch.tensor(0.4), 5)
    torch.manual_seed(0)
    draws = d.sample((20000,))
    observed = torch.bincount(draws, minlength=5).numpy()
    expected = d.log_prob(torch.arange(5)).exp().double().numpy() * 20000
    assert stats.chisquare(observed, expected).pvalue > P_MIN
    assert d.sample((2, 3)).shape == (2, 3) and draws.dtype == torch.long


# ----------------------------------------------------------------------------- spacing
#: the definitions, as the libraries that named the spacings write them (NumPy)
DEFINITIONS = {
    "linspace": lambda T, S: np.linspace(0, T - 1, S).round().astype(np.int64),
    "leading": lambda T, S: np.arange(0, S) * (T // S),
    "trailing": lambda T, S: np.round(np.arange(T, 0, -T / S)).astype(np.int64) - 1,
    "ddim": lambda T, S: np.arange(0, T, next(c for c in range(1, T + 1)
                                              if len(range(0, T, c)) == S)),
}
SIZES = [(1000, 50), (1000, 10), (1000, 7), (100, 33), (10, 4), (50, 50), (9, 1)]


@pytest.mark.parametrize("spacing", sorted(DEFINITIONS))
@pytest.mark.parametrize("T,S", SIZES)
def test_each_spacing_against_its_definition(spacing, T, S):
    try:
        expected = sorted(DEFINITIONS[spacing](T, S).tolist())
    except StopIteration:  # ddim: no stride gives S steps
        with pytest.raises(ValueError):
            space_timesteps(T, S, spacing)
        return
    kept = space_timesteps(T, S, spacing)
    assert kept == expected and len(set(kept)) == S and 0 <= kept[0] and kept[-1] <= T - 1


def test_spacing_ends_and_names():
    assert space_timesteps(1000, 10, "trailing")[-1] == 999  # starts from pure noise
    assert space_timesteps(1000, 10, "leading")[0] == 0
    assert space_timesteps(1000, None, "ddim50") == space_timesteps(1000, 50, "ddim")
    assert space_timesteps(10, None, [7, 2]) == [2, 7]
    assert space_timesteps(10, None, "linspace") == list(range(10))
    for bad in [(10, 11, "linspace"), (10, 3, "middle"), (10, 4, "ddim5"), (10, None, [3, 3]),
                (10, None, [10])]:
        with pytest.raises(ValueError):
            space_timesteps(*bad)


@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing", "ddim"])
def test_respaced_process_steps_to_the_previous_kept_step(spacing):
    process = _process(1000, "cosine")
    kept = space_timesteps(1000, 20, spacing)
    short = process.respace(kept)
    abar = process.alphas_cumprod
    assert short.num_timesteps == 20 and short.timesteps.tolist() == kept
    assert torch.allclose(short.alphas_cumprod, abar[kept], rtol=1e-5)
    previous = torch.cat([torch.ones(1), abar[kept[:-1]]])
    assert torch.allclose(short.alphas_cumprod_prev, previous, rtol=1e-5)
    assert torch.allclose(short.times, (torch.tensor(kept) + 1) / 1000)
    # a deterministic DDIM step from kept[i] lands on the noise level of kept[i - 1]
    x0, eps = torch.randn(3, 2), torch.randn(3, 2)
    for i in (1, 10, 19):
        step = ReverseStep(torch.zeros(3, 2), torch.zeros(()), x0, eps)
        a = abar[kept[i - 1]]
        assert torch.allclose(short.ddim_step(step, i, 0.0), a.sqrt() * x0 + (1 - a).sqrt() * eps,
                              atol=1e-5)


def test_respacing_composes_and_keeps_everything_else():
    process = _process(100, prediction="v", variance="learned-range", clip=True)
    once = process.respace(list(range(0, 100, 2)))
    twice = once.respace(list(range(0, 50, 5)))
    assert twice.timesteps.tolist() == list(range(0, 100, 10))
    assert torch.allclose(twice.alphas_cumprod, process.alphas_cumprod[::10], rtol=1e-5)
    assert (twice.prediction, twice.variance, twice.clip) == (Prediction.V,
                                                               Variance.LEARNED_RANGE, True)
    full = process.respace(range(100))
    assert torch.allclose(full.betas, process.betas)
    with pytest.raises(ValueError):
        process.respace([5, 3])


def test_ddim_with_eta_one_has_the_posterior_variance():
    process = _process(100)
    step = ReverseStep(torch.zeros(20000, 1), torch.zeros(()), torch.zeros(20000, 1),
                       torch.zeros(20000, 1))
    torch.manual_seed(0)
    draws = process.ddim_step(step, 30, 1.0)
    # zero prediction: the draws are sigma z; their variance is beta~_31 (chi-square bound)
    var = draws.var().item()
    n, expected = 20000, process.posterior_variance[30].item()
    lo, hi = stats.chi2.ppf([P_MIN / 2, 1 - P_MIN / 2], n - 1) / (n - 1)
    assert lo * expected < var < hi * expected


# ----------------------------------------------------------------------------- validation strata
def test_strata_of_the_validation_bound():
    assert strata_edges(1000, 10, "uniform") == list(range(0, 1001, 100))
    assert strata_edges(10, 3, "uniform") == [0, 3, 7, 10]  # round(10 / 3), round(20 / 3)
    assert strata_edges(1000, 10) == [0, 1, 2, 4, 8, 16, 32, 63, 126, 251, 501, 1000]
    assert strata_edges(5, 10) == [0, 1, 2, 3, 4, 5]  # more passes than steps: every step
    with pytest.raises(ValueError, match="geometric"):
        strata_edges(10, 2, "log")
