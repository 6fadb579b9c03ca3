"""Variational diffusion models (VDM): the learned schedule, the bound's formulas, the program.

* the schedule: monotone, its endpoints, its slope against autograd; the variance gradient
  routes ``d E[L^2]`` to the schedule's shape and ``d E[L]`` to everything else;
* closed forms: the KL terms against ``torch.distributions``; the forward posterior against
  Bayes' rule; the decoder's probabilities sum to 1 over the levels;
* the bound through the evaluation layer (``ppgen.elbo`` with closed-form KL) equals the terms
  written directly (``bound_terms``) under one seed, for every variant;
* 1-D Gaussian data, where the optimal denoiser is linear: ``ppgen.elbo`` at ``T`` steps and the
  continuous-time estimate agree with the bounds computed by hand (float64 NumPy) within 4
  standard errors (failure rate ~6e-5 each), and the hand ``T``-step bound decreases to the
  continuous one as ``T`` grows;
* shapes, samplers, save/load, errors, a short fit through the engine.
"""

from __future__ import annotations

import math

import numpy as np
import pyro
import pytest
import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

import ppgen
from ppgen.data import DataInfo
from ppgen.diffusion import LearnedSchedule, scale_gradient
from ppgen.diffusion.continuous import (
    continuous_terms,
    diffusion_loss,
    discrete_estimate,
    discrete_term,
    low_discrepancy_times,
    prior_kl,
    q_posterior,
)
from ppgen.errors import DataError, ModelError
from ppgen.inference import make_objective
from ppgen.models import DDPM, VDM
from ppgen.protocol import ModelKind, model_class

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL_MLP = {"width": 16, "blocks": 1}


def _levels(n=5, D=4, K=5, seed=0) -> torch.Tensor:
    return torch.randint(0, K, (n, D), generator=torch.Generator().manual_seed(seed))


def _randomize_outputs(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights for the zero-initialised output layers, so the network says something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "output" in name or "fc2" in name or "conv2" in name:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return model


# ----------------------------------------------------------------------------- the schedule
@pytest.mark.parametrize("learned", [True, False])
def test_schedule_is_monotone_with_its_endpoints_and_slope(learned):
    torch.manual_seed(0)
    schedule = LearnedSchedule(-10.0, 6.0, features=64, learned_shape=learned)
    with torch.no_grad():  # a visibly curved shape
        if learned:
            schedule.w1.fill_(0.5)
            schedule.w3.mul_(30.0)
    t = torch.linspace(0, 1, 2001, requires_grad=True)
    gamma, slope = schedule.gamma_and_slope(t)
    assert abs(gamma[0].item() + 10.0) < 1e-5 and abs(gamma[-1].item() - 6.0) < 1e-5
    assert bool((gamma.diff() > 0).all()) and bool((slope > 0).all())
    (autograd,) = torch.autograd.grad(gamma.sum(), t)
    assert torch.allclose(slope, autograd, rtol=1e-4, atol=1e-4)
    linear = -10.0 + 16.0 * t.detach()
    assert torch.allclose(gamma, linear, atol=1e-5) != learned  # learned: a curve
    with pytest.raises(ValueError, match="gamma_max > gamma_min"):
        LearnedSchedule(1.0, 1.0)


def test_scale_gradient_keeps_the_value_and_scales_the_gradient():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = scale_gradient(x**2, torch.tensor([3.0, 5.0]))
    assert torch.equal(y, x.detach() ** 2)
    y.sum().backward()
    assert torch.equal(x.grad, torch.tensor([6.0, 20.0]))


def test_variance_gradient_goes_to_the_shape_only():
    """With the hook, the shape's parameters get the gradient of mean(L^2) over the draws and
    everything else that of mean(L), under the same draws."""
    model = _randomize_outputs(VDM(4, num_steps=10, num_levels=5, denoiser=SMALL_MLP))
    x = _levels(8)
    shape = [model.schedule.w1, model.schedule.w2, model.schedule.b2, model.schedule.w3]
    rest = [model.schedule.gamma_0, model.schedule.width, *model.network.parameters()]

    def grads(loss):
        return torch.autograd.grad(loss, shape + rest, allow_unused=True, retain_graph=True)

    torch.manual_seed(1)
    hooked = continuous_terms(model, x, num_times=3, variance_gradient=True)
    with_hook = grads(hooked.total.mean())
    torch.manual_seed(1)
    plain = continuous_terms(model, x, num_times=3)
    torch.manual_seed(1)
    per_time = _per_time_diffusion(model, x, 3)
    assert torch.allclose(hooked.total, plain.total)
    squared = grads(plain.prior.mean() + plain.reconstruction.mean()
                    + (per_time**2).mean(-1).mean())
    ordinary = grads(plain.total.mean())
    for a, b in zip(with_hook[: len(shape)], squared[: len(shape)], strict=True):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-6), (a - b).abs().max()
    for a, b in zip(with_hook[len(shape):], ordinary[len(shape):], strict=True):
        assert (a is None and b is None) or torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(with_hook[1], ordinary[1])


def _per_time_diffusion(model, x, k):
    """The diffusion losses ``[N, k]`` of :func:`continuous_terms`'s draws (same order)."""
    x0 = model.to_model_space(x)
    torch.randn(x0.shape)  # the z_0 draw
    n, D = x0.shape
    t = low_discrepancy_times(n, k, x0)
    gamma, slope = model.schedule.gamma_and_slope(t)
    noise = torch.randn(n, k, D)
    x0k = x0.unsqueeze(1).expand(n, k, D)
    alpha, sigma = torch.sigmoid(-gamma).sqrt()[..., None], torch.sigmoid(gamma).sqrt()[..., None]
    return diffusion_loss(x0k, model.denoise(alpha * x0k + sigma * noise, gamma), gamma, slope)


def test_low_discrepancy_times_cover_the_unit_interval_evenly():
    t = low_discrepancy_times(6, 4, torch.zeros(()), torch.Generator().manual_seed(0))
    assert t.shape == (6, 4) and bool(((t >= 0) & (t < 1)).all())
    gaps = torch.sort(t.flatten()).values.diff()
    assert torch.allclose(gaps, torch.full_like(gaps, 1 / 24), atol=1e-6)
    assert torch.allclose(torch.sort(t[0]).values.diff(), torch.full((3,), 0.25), atol=1e-6)


# ----------------------------------------------------------------------------- closed forms
def test_kl_terms_against_torch_distributions():
    g = torch.Generator().manual_seed(0)
    x, x_hat, z_t = (torch.randn(5, 3, generator=g) for _ in range(3))
    gamma_s, gamma_t = torch.tensor(-4.0), torch.tensor(-3.2)
    gamma_1 = torch.tensor(4.0)
    q1 = Normal(torch.sigmoid(-gamma_1).sqrt() * x, torch.sigmoid(gamma_1).sqrt())
    expected = kl_divergence(q1, Normal(0.0, 1.0)).sum(-1)
    assert torch.allclose(prior_kl(x, gamma_1), expected, atol=1e-6)
    q_mean, q_log_var = q_posterior(x, z_t, gamma_s, gamma_t)
    p_mean, p_log_var = q_posterior(x_hat, z_t, gamma_s, gamma_t)
    kl = kl_divergence(Normal(q_mean, (0.5 * q_log_var).exp()),
                       Normal(p_mean, (0.5 * p_log_var).exp())).sum(-1)
    assert torch.allclose(discrete_term(x, x_hat, gamma_s, gamma_t), kl, rtol=1e-4)


def test_forward_posterior_is_bayes_rule():
    """q(z_s | z_t, x) from the joint z_s ~ N(a_s x, s_s^2), z_t | z_s ~ N(a_ts z_s, s_ts^2)."""
    x, z_t = torch.tensor([0.7, -0.2]), torch.tensor([0.1, 0.9])
    gamma_s, gamma_t = torch.tensor(-2.0), torch.tensor(0.5)
    a_s2, a_t2 = torch.sigmoid(-gamma_s), torch.sigmoid(-gamma_t)
    s_s2, s_t2 = torch.sigmoid(gamma_s), torch.sigmoid(gamma_t)
    a_ts2 = a_t2 / a_s2
    s_ts2 = s_t2 - a_ts2 * s_s2
    precision = 1 / s_s2 + a_ts2 / s_ts2
    mean = (a_s2.sqrt() * x / s_s2 + a_ts2.sqrt() * z_t / s_ts2) / precision
    got_mean, got_log_var = q_posterior(x, z_t, gamma_s, gamma_t)
    assert torch.allclose(got_mean, mean, atol=1e-6)
    assert torch.allclose(got_log_var.exp(), 1 / precision, atol=1e-6)


def test_decoder_probabilities_sum_to_one_and_round_at_low_noise():
    model = VDM(3, num_steps=5, num_levels=17, denoiser=SMALL_MLP)
    z_0 = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    decoder = model.decoder(z_0, torch.tensor(-2.0))
    levels = torch.arange(17).reshape(17, 1, 1).expand(17, 4, 3)
    probs = decoder.base_dist.log_prob(levels).exp().sum(0)
    assert decoder.batch_shape == (4,) and decoder.event_shape == (3,)
    assert torch.allclose(probs, torch.ones(4, 3), atol=1e-5)
    x = _levels(4, 3, 17)
    exact = model.decoder(model.to_model_space(x) * torch.sigmoid(torch.tensor(13.0)).sqrt(),
                          torch.tensor(-13.0))
    assert torch.equal(exact.base_dist.logits.argmax(-1), x)
    assert bool((exact.log_prob(x) > -1e-4).all())


# ----------------------------------------------------------------------------- the bound
VARIANTS = {
    "levels-mlp": lambda: VDM(4, num_steps=12, num_levels=5, denoiser=SMALL_MLP),
    "direct-linear": lambda: VDM(4, num_steps=12, num_levels=5, noise_schedule="linear",
                                 denoiser={"head": "direct", **SMALL_MLP}),
    "continuous": lambda: VDM(4, num_steps=12, likelihood="continuous", data_scale=2.0,
                              gamma_min=-8.0, denoiser=SMALL_MLP),
    "levels-unet": lambda: VDM(16, num_steps=6, num_levels=3, image_shape=(4, 4),
                               denoiser={"channels": 8, "blocks": 1}),
}


def _data_for(model) -> torch.Tensor:
    if model.likelihood == "continuous":
        return torch.randn(5, model.num_dims, generator=torch.Generator().manual_seed(0))
    return _levels(5, model.num_dims, model.num_levels)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_elbo_through_pyro_is_the_direct_sum_of_terms(name):
    torch.manual_seed(0)
    model = _randomize_outputs(VARIANTS[name]()).eval()
    x = _data_for(model)
    pyro.set_rng_seed(3)
    bound = -ppgen.elbo(model, None, x, analytic_kl=True)
    pyro.set_rng_seed(3)
    terms = model.bound_terms(x)
    T = model.num_steps
    assert bound.shape == (5,) and terms.steps.shape == (5, T + 1) and terms.prior.shape == (5,)
    assert torch.allclose(bound, terms.total, rtol=1e-5, atol=1e-4)
    assert bool((terms.steps[:, 1:] >= 0).all()) and bool((terms.prior >= 0).all())


def test_program_sites_pair_the_guide_in_posterior_order():
    model = VDM(2, num_steps=3, num_levels=3, denoiser=SMALL_MLP)
    x = _levels(3, 2, 3)
    guide = pyro.poutine.trace(model.guide).get_trace(x)
    replayed = pyro.poutine.trace(pyro.poutine.replay(model.model, trace=guide)).get_trace(x)
    latent = [n for n, s in guide.nodes.items() if s["type"] == "sample" and n != "data"]
    assert latent == ["z_3", "z_2", "z_1", "z_0"]
    sites = [n for n, s in replayed.nodes.items() if s["type"] == "sample" and n != "data"]
    assert sites == latent + ["x"] and replayed.nodes["x"]["is_observed"]
    assert replayed.nodes["z_1"]["fn"].batch_shape == (3,) and \
        replayed.nodes["z_1"]["fn"].event_shape == (2,)


def test_evaluation_layer_shapes_and_defaults():
    model = VDM(4, num_steps=10, num_levels=5, denoiser=SMALL_MLP)
    assert model.kind == ModelKind.LATENT and model.evaluation_options()["num_particles"] == 1
    x = _levels(6)
    assert ppgen.elbo(model, None, x, num_particles=2, analytic_kl=True).shape == (6,)
    assert model.continuous_bound(x, num_times=4).total.shape == (6,)
    assert discrete_estimate(model, x, 10, k=3).total.shape == (6,)


# ----------------------------------------------------------------------------- 1-D Gaussian
class GaussianOptimal(VDM, register=False):
    """VDM on 1-D data N(m, v) with the optimal denoiser E[x | z_t], linear in z_t."""

    def __init__(self, num_steps: int, m: float, v: float, noise_schedule: str) -> None:
        super().__init__(1, num_steps, likelihood="continuous", gamma_min=-7.0, gamma_max=5.0,
                         noise_schedule=noise_schedule, denoiser=SMALL_MLP)
        self.m, self.v = m, v
        if noise_schedule == "learned":  # a curved shape, so the grid is not uniform in gamma
            self.schedule = LearnedSchedule(-7.0, 5.0, features=32)
            with torch.no_grad():
                self.schedule.w1.fill_(2.0)
                self.schedule.w3.mul_(20.0)

    def denoise(self, z_t, gamma):
        gamma = gamma.unsqueeze(-1) if gamma.dim() else gamma
        a2, s2 = torch.sigmoid(-gamma), torch.sigmoid(gamma)
        return self.m + a2.sqrt() * self.v / (a2 * self.v + s2) * (z_t - a2.sqrt() * self.m)


def hand_bounds(gammas: np.ndarray, m: float, v: float) -> tuple[float, float]:
    """E_{x ~ N(m, v)} of the T-step and the continuous-time bound of the optimal denoiser, by
    hand: E||x - x^(z_t)||^2 = Var(x | z_t) = v / (1 + SNR_t v); the continuous diffusion loss
    integrates 0.5 v / (1 + s v) over s = SNR from SNR_1 to SNR_0."""
    snr = np.exp(-gammas)
    a2_1, s2_1 = 1 / (1 + np.exp(gammas[-1])), 1 / (1 + np.exp(-gammas[-1]))
    prior = 0.5 * (a2_1 * (m * m + v) + s2_1 - np.log(s2_1) - 1)
    reconstruction = 0.5 * np.log(2 * np.pi * np.exp(gammas[0])) + 0.5
    steps = 0.5 * (snr[:-1] - snr[1:]) * v / (1 + snr[1:] * v)
    continuous = 0.5 * (np.log1p(snr[0] * v) - np.log1p(snr[-1] * v))
    ends = prior + reconstruction
    return float(ends + steps.sum()), float(ends + continuous)


def _gaussian_data(m, v, N, seed=0):
    return m + math.sqrt(v) * torch.randn(N, 1, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("noise_schedule", ["learned", "linear"])
def test_closed_form_bounds_of_gaussian_data(noise_schedule):
    T, m, v, N = 30, 0.3, 0.25, 20000
    torch.manual_seed(0)
    model = GaussianOptimal(T, m, v, noise_schedule).eval()
    x = _gaussian_data(m, v, N)
    gammas = model.gammas(T).detach().double().numpy()
    discrete, continuous = hand_bounds(gammas, m, v)
    pyro.set_rng_seed(0)
    with torch.no_grad():
        bound = -ppgen.elbo(model, None, x, analytic_kl=True, batch_size=N).double()
    se = bound.std().item() / math.sqrt(N)
    assert abs(bound.mean().item() - discrete) < 4 * se, (bound.mean().item(), discrete, se)
    pyro.set_rng_seed(1)
    estimate = model.continuous_bound(x, num_times=4).total.double()
    se = estimate.std().item() / math.sqrt(N)
    assert abs(estimate.mean().item() - continuous) < 4 * se, (estimate.mean(), continuous, se)
    estimate = discrete_estimate(model, x, T, k=5).total.detach().double()
    se = estimate.std().item() / math.sqrt(N)
    assert abs(estimate.mean().item() - discrete) < 4 * se, (estimate.mean(), discrete, se)
    assert discrete > continuous > 0.5 * math.log(2 * math.pi * math.e * v)  # above the NLL


def test_discrete_bound_decreases_to_the_continuous_one():
    model = GaussianOptimal(10, 0.3, 0.25, "learned")
    gaps = []
    for T in (10, 100, 1000, 10000):
        discrete, continuous = hand_bounds(model.gammas(T).detach().double().numpy(), 0.3, 0.25)
        gaps.append(discrete - continuous)
    ratios = [a / b for a, b in zip(gaps, gaps[1:], strict=False)]
    assert all(5 < r < 20 for r in ratios) and gaps[-1] < 2e-3, gaps  # the gap falls as 1 / T


# ----------------------------------------------------------------------------- samplers, protocol
def test_sample_shapes_and_options():
    model = VDM(4, num_steps=8, num_levels=5, denoiser=SMALL_MLP)
    for options in ({}, {"steps": 3}, {"sampler": "ddim", "steps": 4}):
        draws = model.sample(3, **options)
        assert draws.shape == (3, 4) and draws.dtype == torch.long
        assert bool(((draws >= 0) & (draws < 5)).all())
    torch.manual_seed(0)
    a = model.sample(3, sampler="ddim")
    torch.manual_seed(0)
    assert torch.equal(a, model.sample(3, sampler="ddim"))
    continuous = VDM(2, num_steps=5, likelihood="continuous", denoiser=SMALL_MLP)
    assert continuous.sample(4, sampler="ddim").dtype == torch.float32
    with pytest.raises(ModelError, match="valid options"):
        model.sample(2, eta=1.0)
    with pytest.raises(ModelError, match="unknown sampler"):
        model.sample(2, sampler="euler")
    with pytest.raises(ModelError, match="positive integer"):
        model.sample(2, steps=0)


def test_config_save_and_load(tmp_path):
    model = _randomize_outputs(VDM(4, num_steps=10, num_levels=5, denoiser=SMALL_MLP))
    with torch.no_grad():
        model.schedule.gamma_0.fill_(-9.0)
    model.save(tmp_path / "m.pt")
    loaded = ppgen.load(tmp_path / "m.pt")
    assert type(loaded) is VDM and loaded.get_config() == model.get_config()
    assert model_class("vdm") is VDM and loaded.schedule.gamma_0.item() == -9.0
    x = _levels()
    pyro.set_rng_seed(0)
    a = loaded.bound_terms(x).total
    pyro.set_rng_seed(0)
    assert torch.allclose(a, model.bound_terms(x).total)


def test_for_data():
    digits = VDM.for_data(DataInfo((64,), "categorical", 17, image_shape=(8, 8)), num_steps=10)
    assert digits.num_levels == 17 and type(digits.network).__name__ == "UNetDenoiser"
    assert digits.head is not None
    assert VDM.for_data(DataInfo((6,), "bernoulli"), num_steps=5).num_levels == 2
    toy = VDM.for_data(DataInfo((2,), "continuous"), num_steps=5)
    assert toy.likelihood == "continuous" and toy.head is None
    assert type(toy.network).__name__ == "MLPDenoiser"
    with pytest.raises(ModelError, match="flatten"):
        VDM.for_data(DataInfo((8, 8), "categorical", 17))


def test_bad_data_and_arguments_are_refused():
    model = VDM(4, num_steps=5, num_levels=5, denoiser=SMALL_MLP)
    with pytest.raises(DataError, match="levels|integers"):
        ppgen.elbo(model, None, torch.full((2, 4), 7))
    with pytest.raises(DataError, match="shape"):
        model.bound_terms(torch.zeros(2, 3, dtype=torch.long))
    for kwargs, match in [({"num_levels": None}, "num_levels"),
                          ({"noise_schedule": "cosine"}, "learned"),
                          ({"likelihood": "poisson"}, "categorical"),
                          ({"gamma_min": 6.0}, "gamma_max > gamma_min"),
                          ({"denoiser": {"head": "logits"}}, "direct"),
                          ({"denoiser": {"kind": "unet"}}, "image_shape")]:
        with pytest.raises(ModelError, match=match):
            VDM(4, **{"num_steps": 5, "num_levels": 5, **kwargs})
    with pytest.raises(ModelError, match="levels data"):
        VDM(4, num_steps=5, likelihood="continuous", denoiser={"head": "levels"})
    with pytest.raises(ModelError, match="log-SNR"):
        make_objective("vdm").loss(DDPM(4, num_steps=5, num_levels=5), _levels())


def test_a_short_fit_lowers_the_bound():
    """Twelve epochs on correlated pixels: the validation bound (common random numbers, so
    epochs compare without noise) falls and the schedule's endpoints move."""
    torch.manual_seed(0)
    x = torch.cat([_levels(100, 4, 5, seed=1) // 3, _levels(100, 4, 5, seed=2) // 3 + 3])
    model = VDM(4, num_steps=20, num_levels=5, denoiser=SMALL_MLP)
    gamma_0 = model.schedule.gamma_0.item()
    history = ppgen.fit(model, x, x[:50], epochs=12, batch_size=50, warmup_steps=5, lr=1e-2,
                        progress=False, seed=0, ema=None)
    val = history.column("val_loss")
    assert history.best_val < val[0] - 0.3 and val[-1] < val[0], val
    assert len(history.column("lr_schedule")) == 12  # the schedule's own parameter group
    assert model.schedule.gamma_0.item() != gamma_0


def test_objective_is_registered_with_the_schedule_in_its_own_group():
    from ppgen.inference import OBJECTIVES
    from ppgen.inference.vdm import VDMObjective

    objective = make_objective("vdm", num_times=2, validation_steps=4)
    assert OBJECTIVES["vdm"] is VDMObjective and VDM.default_objective == "vdm"
    assert objective.get_config() == {"name": "vdm", "num_times": 2, "variance_gradient": True,
                                      "validation_steps": 4, "validation_seed": 0}
    model = VDM(4, num_steps=10, num_levels=5, denoiser=SMALL_MLP)
    groups = objective.param_groups(model)
    schedule = {id(p) for p in groups["schedule"]}
    assert schedule == {id(p) for p in model.schedule.parameters()}
    assert {id(p) for p in groups["model"]} | schedule == {id(p) for p in model.parameters()}
    assert not schedule & {id(p) for p in groups["model"]}
    x = _levels(6)
    a, b = objective.validation_loss(model, x), objective.validation_loss(model, x)
    assert a.shape == (6,) and torch.equal(a, b)  # common random numbers
    with pytest.raises(ValueError, match="num_times"):
        VDMObjective(num_times=0)
