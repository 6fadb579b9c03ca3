"""Diffusion models (DDPM, ImprovedDDPM) as Pyro programs.

* the bound through the shared evaluation layer (``ppgen.elbo`` with closed-form KL) equals
  the terms written directly (``bound_terms``) under the same seed, for every variant;
* a closed form: 1-D Gaussian data, where the optimal denoiser is linear and the expected
  bound can be computed by hand (independently of ppgen's formulas) — ``ppgen.elbo`` and the
  strided validation estimate (over 50,000 data, standard errors 0.01-0.05 nats) agree with it
  within 4 standard errors (failure rate ~6e-5 each);
* samplers: DDIM with ``eta = 0`` maps one ``x_T`` to one sample; DDIM with ``eta = 1`` and
  every step is the ancestral program (pathwise under one seed, and in distribution under two:
  a two-sample KS test failing with probability P_MIN);
* shapes, save/load, data and option errors.
"""

from __future__ import annotations

import math

import numpy as np
import pyro
import pytest
import torch
from scipy import stats
from testkit import P_MIN
from torch import nn

import ppgen
from ppgen.data import DataInfo
from ppgen.diffusion import ddim_sample, make_betas, strided_bound
from ppgen.errors import DataError, ModelError
from ppgen.models import DDPM, ImprovedDDPM
from ppgen.protocol import ModelKind, model_class

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL_MLP = {"width": 16, "blocks": 1}


def _levels(n=5, D=4, K=5, seed=0) -> torch.Tensor:
    return torch.randint(0, K, (n, D), generator=torch.Generator().manual_seed(seed))


def _randomize_outputs(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give the zero-initialised output layers random weights, so the network says something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "output" in name or "fc2" in name or "conv2" in name:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return model


VARIANTS = {
    "ddpm-direct": lambda: DDPM(4, num_steps=30, num_levels=5,
                                denoiser={"head": "direct", **SMALL_MLP}),
    "ddpm-x0-small": lambda: DDPM(4, num_steps=30, num_levels=5, prediction="x0",
                                  variance="fixed-small", denoiser=SMALL_MLP),
    "improved-levels": lambda: ImprovedDDPM(4, num_steps=30, num_levels=5, denoiser=SMALL_MLP),
    "improved-v-continuous": lambda: ImprovedDDPM(4, num_steps=30, likelihood="continuous",
                                                  prediction="v", data_scale=2.0,
                                                  denoiser=SMALL_MLP),
    "ddpm-unet-direct": lambda: DDPM(16, num_steps=10, num_levels=3, image_shape=(4, 4),
                                     denoiser={"head": "direct", "channels": 8, "blocks": 1}),
    "improved-levels-head": lambda: ImprovedDDPM(4, num_steps=30, num_levels=5,
                                                 denoiser={"head": "levels", **SMALL_MLP}),
    "ddpm-unet-levels-head": lambda: DDPM(16, num_steps=10, num_levels=3, image_shape=(4, 4),
                                          denoiser={"head": "levels", "channels": 8,
                                                    "blocks": 1}),
}


def _data_for(model) -> torch.Tensor:
    if model.likelihood == "continuous":
        return torch.randn(5, model.num_dims, generator=torch.Generator().manual_seed(0))
    return _levels(5, model.num_dims, model.num_levels)


# ----------------------------------------------------------------------------- the bound
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_elbo_through_pyro_is_the_direct_sum_of_terms(name):
    model = _randomize_outputs(VARIANTS[name]()).eval()
    x = _data_for(model)
    pyro.set_rng_seed(3)
    bound = -ppgen.elbo(model, None, x, analytic_kl=True)
    pyro.set_rng_seed(3)
    terms = model.bound_terms(x)
    T = model.num_steps
    assert bound.shape == (5,) and terms.steps.shape == (5, T) and terms.prior.shape == (5,)
    assert torch.allclose(bound, terms.total, rtol=1e-5, atol=1e-4)
    assert bool((terms.steps[:, 1:] >= -1e-5).all()) and bool((terms.prior >= 0).all())


def test_program_sites_pair_the_guide_in_posterior_order():
    model = DDPM(2, num_steps=4, num_levels=3, denoiser=SMALL_MLP)
    x = _levels(3, 2, 3)
    guide = pyro.poutine.trace(model.guide).get_trace(x)
    replayed = pyro.poutine.trace(pyro.poutine.replay(model.model, trace=guide)).get_trace(x)
    latent = [n for n, s in guide.nodes.items() if s["type"] == "sample" and n != "data"]
    assert latent == ["x_4", "x_3", "x_2", "x_1"]
    sites = [n for n, s in replayed.nodes.items() if s["type"] == "sample" and n != "data"]
    assert sites == latent + ["x"] and replayed.nodes["x"]["is_observed"]
    assert replayed.nodes["x_2"]["fn"].batch_shape == (3,) and \
        replayed.nodes["x_2"]["fn"].event_shape == (2,)


def test_evaluation_layer_shapes_and_defaults():
    model = ImprovedDDPM(4, num_steps=20, num_levels=5, denoiser=SMALL_MLP)
    assert model.kind == ModelKind.LATENT
    assert model.evaluation_options()["num_particles"] == 1
    x = _levels(6)
    assert ppgen.log_likelihood(model, x).shape == (6,)
    assert ppgen.elbo(model, None, x, num_particles=3, analytic_kl=True).shape == (6,)
    report = ppgen.evaluate.nll_report(model, x)
    assert report["num_particles"] == 1 and report["elbo"] > 0


# ----------------------------------------------------------------------------- closed form
class OptimalDenoiser(nn.Module):
    """The optimal noise prediction for 1-D data N(m, v): E[eps | x_t], linear in x_t."""

    def __init__(self, T: int, m: float, v: float, schedule: str) -> None:
        super().__init__()
        self.m, self.v = m, v
        self.register_buffer("abar", torch.cumprod(1 - make_betas(schedule, T), 0).float())

    def forward(self, x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        index = (time * len(self.abar)).round().long() - 1
        abar = self.abar[index]
        abar = abar.unsqueeze(-1) if abar.dim() else abar
        x0 = self.m + abar.sqrt() * self.v / (abar * self.v + 1 - abar) * (x - abar.sqrt() * self.m)
        return (x - abar.sqrt() * x0) / (1 - abar).sqrt()


def hand_bound(T: int, m: float, v: float, schedule: str, variance: str) -> float:
    """E_{x_0 ~ N(m, v)} of L_T + sum L_{t-1} + L_0 for the optimal denoiser, by hand (float64
    NumPy): every reverse mean is coef1 E[x_0 | x_t] + coef2 x_t, so E||mu~ - mu||^2 is coef1^2
    times the posterior variance Var(x_0 | x_t) = v (1 - abar) / (abar v + 1 - abar)."""
    betas = make_betas(schedule, T).numpy()
    abar = np.cumprod(1 - betas)
    prev = np.concatenate([[1.0], abar[:-1]])
    tilde = betas * (1 - prev) / (1 - abar)
    tilde_clipped = np.concatenate([[tilde[1]], tilde[1:]])  # beta~_1 = 0: t = 1 uses beta~_2
    p_var = tilde_clipped if variance == "fixed-small" else np.concatenate([[tilde[1]], betas[1:]])
    coef1 = betas * np.sqrt(prev) / (1 - abar)
    post = v * (1 - abar) / (abar * v + 1 - abar)  # Var(x_0 | x_t) at each index
    prior = 0.5 * (-np.log(1 - abar[-1]) + (1 - abar[-1]) + abar[-1] * (m * m + v) - 1)
    q_var, p_var_t, c = tilde[1:], p_var[1:], coef1[1:] ** 2 * post[1:]  # t = 2..T
    steps = 0.5 * (np.log(p_var_t / q_var) + q_var / p_var_t - 1 + c / p_var_t)
    decoder = 0.5 * np.log(2 * np.pi * p_var[0]) + post[0] / (2 * p_var[0])
    return float(prior + steps.sum() + decoder)


def _optimal_model(T=40, m=0.3, v=0.25, schedule="linear", variance="fixed-small") -> DDPM:
    model = DDPM(1, num_steps=T, schedule=schedule, likelihood="continuous",
                 variance=variance, denoiser=SMALL_MLP)
    model.network = OptimalDenoiser(T, m, v, schedule)
    return model


@pytest.mark.parametrize("schedule,variance", [("linear", "fixed-small"),
                                               ("cosine", "fixed-large")])
def test_closed_form_bound_of_gaussian_data(schedule, variance):
    T, m, v, N = 40, 0.3, 0.25, 50000
    model = _optimal_model(T, m, v, schedule, variance)
    x = m + math.sqrt(v) * torch.randn(N, 1, generator=torch.Generator().manual_seed(0))
    expected = hand_bound(T, m, v, schedule, variance)
    pyro.set_rng_seed(0)
    bound = -ppgen.elbo(model, None, x, analytic_kl=True).double()
    se = bound.std().item() / math.sqrt(N)
    assert abs(bound.mean().item() - expected) < 4 * se, (bound.mean().item(), expected, se)
    for strata in ("uniform", "geometric"):
        strided = strided_bound(model, x, num_steps=8, strata=strata).double()
        se = strided.std().item() / math.sqrt(N)
        assert abs(strided.mean().item() - expected) < 4 * se, (strata, strided.mean(), se)
    assert expected > 0.5 * math.log(2 * math.pi * math.e * v)  # above the true NLL


# ----------------------------------------------------------------------------- samplers
def test_ddim_eta_zero_is_a_deterministic_map_of_x_T():
    model = _randomize_outputs(ImprovedDDPM(4, num_steps=30, num_levels=5,
                                            denoiser=SMALL_MLP)).eval()
    x_T = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    process = model.sampling_process(10, "trailing")
    torch.manual_seed(1)
    a = ddim_sample(model, process, x_T, eta=0.0)
    torch.manual_seed(2)
    b = ddim_sample(model, process, x_T, eta=0.0)
    assert torch.equal(a, b) and a.dtype == torch.long
    torch.manual_seed(1)
    c = ddim_sample(model, process, x_T, eta=1.0)
    torch.manual_seed(2)
    assert not torch.equal(c, ddim_sample(model, process, x_T, eta=1.0))


def test_ddim_eta_one_with_every_step_is_the_ancestral_program_pathwise():
    model = _optimal_model()
    pyro.set_rng_seed(0)
    ancestral = model.sample(200)
    pyro.set_rng_seed(0)
    ddim = model.sample(200, sampler="ddim", eta=1.0)
    assert torch.allclose(ancestral, ddim, atol=1e-4)


def test_ddim_eta_one_with_every_step_is_ancestral_in_distribution():
    model = _optimal_model(T=40, m=0.3, v=0.25)
    pyro.set_rng_seed(10)
    ancestral = model.sample(3000).squeeze(-1).numpy()
    pyro.set_rng_seed(11)  # independent draws
    ddim = model.sample(3000, sampler="ddim", eta=1.0).squeeze(-1).numpy()
    assert stats.ks_2samp(ancestral, ddim).pvalue > P_MIN


def test_sample_options_are_declared_and_checked():
    model = DDPM(4, num_steps=20, num_levels=5, denoiser=SMALL_MLP)
    assert model.sample(3).shape == (3, 4) and model.sample(3).dtype == torch.long
    for options in ({"sampler": "ddim", "steps": 5}, {"steps": 4, "spacing": "leading"},
                    {"sampler": "ddim", "spacing": "ddim10", "eta": 0.5}):
        assert model.sample(2, **options).shape == (2, 4)
    with pytest.raises(ModelError, match="valid options"):
        model.sample(2, temperature=1.0)
    with pytest.raises(ModelError, match="unknown sampler"):
        model.sample(2, sampler="euler")
    with pytest.raises(ModelError, match="steps"):
        model.sample(2, sampler="ddim", steps=50)
    continuous = DDPM(2, num_steps=10, likelihood="continuous", denoiser=SMALL_MLP)
    assert continuous.sample(3, sampler="ddim").dtype == torch.float32


# ----------------------------------------------------------------------------- protocol
def test_config_save_and_load(tmp_path):
    model = _randomize_outputs(ImprovedDDPM(4, num_steps=20, num_levels=5, denoiser=SMALL_MLP))
    model.save(tmp_path / "m.pt")
    loaded = ppgen.load(tmp_path / "m.pt")
    assert type(loaded) is ImprovedDDPM and loaded.get_config() == model.get_config()
    assert model_class("improved-ddpm") is ImprovedDDPM and model_class("ddpm") is DDPM
    x = _levels()
    pyro.set_rng_seed(0)
    a = loaded.bound_terms(x).total
    pyro.set_rng_seed(0)
    assert torch.allclose(a, model.bound_terms(x).total)


def test_for_data():
    digits = DataInfo((64,), "categorical", 17, image_shape=(8, 8))
    model = DDPM.for_data(digits, num_steps=10, denoiser={"channels": 8, "blocks": 1})
    assert model.num_levels == 17 and type(model.network).__name__ == "UNetDenoiser"
    assert DDPM.for_data(DataInfo((6,), "bernoulli"), num_steps=5).num_levels == 2
    toy = ImprovedDDPM.for_data(DataInfo((2,), "continuous"), num_steps=5)
    assert toy.likelihood == "continuous" and type(toy.network).__name__ == "MLPDenoiser"
    with pytest.raises(ModelError, match="flatten"):
        DDPM.for_data(DataInfo((8, 8), "categorical", 17))


def test_bad_data_and_arguments_are_refused():
    model = DDPM(4, num_steps=10, num_levels=5, denoiser=SMALL_MLP)
    with pytest.raises(DataError, match="levels|integers"):
        ppgen.elbo(model, None, torch.full((2, 4), 7))
    with pytest.raises(DataError, match="shape"):
        ppgen.elbo(model, None, torch.zeros(2, 3, dtype=torch.long))
    for kwargs, match in [({"num_levels": None}, "num_levels"), ({"schedule": "quad"}, "linear"),
                          ({"prediction": "score"}, "epsilon"), ({"variance": "big"}, "fixed"),
                          ({"likelihood": "poisson"}, "categorical"),
                          ({"denoiser": {"kind": "transformer"}}, "mlp"),
                          ({"denoiser": {"kind": "unet"}}, "image_shape"),
                          ({"denoiser": {"depth": 3}}, "bad options"),
                          ({"denoiser": {"head": "logits"}}, "direct")]:
        with pytest.raises(ModelError, match=match):
            DDPM(4, **{"num_steps": 10, "num_levels": 5, **kwargs})
    with pytest.raises(ModelError, match="levels data"):
        DDPM(4, num_steps=10, likelihood="continuous", denoiser={"head": "levels"})


def test_levels_head_is_the_independent_pixel_posterior_mean():
    """With the network at zero, x_0 is E[x_0 | x_t] under independent uniform pixels: exact
    rounding at low noise, the hand posterior mean at any noise."""
    model = DDPM(3, num_steps=100, num_levels=5, denoiser=SMALL_MLP)  # levels: the default
    process, levels = model.process, torch.linspace(-1, 1, 5)
    x0 = levels[torch.tensor([0, 2, 4])]
    for s in (0, 10, 60):
        x_t = process.q_sample(x0, s, torch.full((3,), 0.7))
        eps = model.denoise(x_t, s)  # the network's output layer starts at zero
        got = process.p_mean_variance(eps, x_t, s).x0
        a, v = process.sqrt_alphas_cumprod[s], process.one_minus_alphas_cumprod[s]
        w = torch.softmax(-(x_t[:, None] - a * levels) ** 2 / (2 * v), dim=-1)
        assert torch.allclose(got, w @ levels, atol=1e-4)
        if s == 0:
            assert torch.allclose(got, x0, atol=1e-5)
