"""The VAE with flows: an IAF or MAF posterior and a learned MAF prior (nflows through
``FlowDistribution``). Shapes and programs for every option, the guide's log q against the
change of variables, the cost structure of scoring an IAF guide (no inverse passes), the
automatic Monte Carlo KL fallback, a brute-force check of ELBO <= log p(x) ~ IWAE on a tiny
model by numerical integration over a 2-D latent grid, normalisation of the flow prior,
gradients, save/load, training, and bad options.

Statistical checks use fixed seeds; tolerances are stated next to their assertions.
"""

from __future__ import annotations

import itertools
import math

import pyro
import pytest
import torch
from pyro import poutine

import ppgen
from ppgen.checkpoint import load_model
from ppgen.distributions import FlowDistribution
from ppgen.evaluate import elbo, log_likelihood, nll_report
from ppgen.models.vae import VAE

D, L, K_LEVELS = 12, 3, 5
#: (posterior_flow, prior_flow) of every flow configuration
OPTIONS = [("iaf", "none"), ("maf", "none"), ("none", "maf"), ("iaf", "maf")]


def make(posterior_flow: str = "iaf", prior_flow: str = "maf", **kwargs) -> VAE:
    kwargs = {"latent_dim": L, "hidden_dims": (16,), "num_levels": K_LEVELS, "dropout": 0.0,
              "flow_hidden": 8, "posterior_flow": posterior_flow, "prior_flow": prior_flow,
              **kwargs}
    return VAE(D, **kwargs)


def perturb(vae: VAE, scale: float = 0.3) -> VAE:
    """Move every flow step away from its identity initialisation (random final layers)."""
    with torch.no_grad():
        for flow in (vae.q_flow, vae.p_flow):
            for module in [] if flow is None else flow.modules():
                if hasattr(module, "final_layer"):
                    module.final_layer.weight.normal_(0.0, scale)
                    module.final_layer.bias.normal_(0.0, scale)
    return vae


def data(n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, K_LEVELS, (n, D), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(autouse=True)
def seeded_one_thread():
    """Fixed seeds; one intra-op thread (small ops on a loaded 2-core machine, see
    tests/models/test_vae.py)."""
    pyro.set_rng_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def made_calls(vae: VAE):
    """A list that grows by one at every MADE pass of either flow, and its hook handles."""
    calls: list[int] = []
    hooks = [m.register_forward_pre_hook(lambda *_: calls.append(1))
             for m in vae.modules() if type(m).__name__ == "MADE"]
    return calls, hooks


def latent_grid(prior: FlowDistribution, n: int = 200):
    """Midpoints ``[n * n, 2]`` over the range of 20,000 prior draws widened by 25% (expected
    prior mass outside < 4e-4), and the log cell area."""
    with torch.no_grad():
        draws = prior.sample((20_000,)).reshape(-1, 2)
    lo, hi = draws.min(0).values, draws.max(0).values
    lo, hi = lo - 0.25 * (hi - lo), hi + 0.25 * (hi - lo)
    axes = [lo[j] + (torch.arange(n) + 0.5) * (hi[j] - lo[j]) / n for j in range(2)]
    return torch.cartesian_prod(*axes), float(((hi - lo) / n).log().sum())


# ---------------------------------------------------------------------------- programs


@pytest.mark.parametrize("posterior_flow, prior_flow", OPTIONS)
def test_shapes_and_programs(posterior_flow, prior_flow):
    vae = perturb(make(posterior_flow, prior_flow))
    x = data()
    assert vae.sample(4).shape == (4, D)
    codes = vae.encode(x)
    assert codes.shape == (6, L) and torch.equal(codes, vae.encode(x))  # deterministic
    assert vae.decode(torch.randn(2, 5, L)).shape == (2, 5, D)
    q = vae.posterior_distribution(x)
    assert q.batch_shape == (6,) and q.event_shape == (L,) and q.has_rsample
    assert vae.prior_distribution(6).batch_shape == (6,)
    assert log_likelihood(vae, x, num_particles=7).shape == (6,)
    assert elbo(vae, None, x, num_particles=3, analytic_kl=True).shape == (6,)
    with pyro.plate("particles", 7, dim=-2):  # as the evaluation layer's particle plate
        site = poutine.trace(vae.guide).get_trace(x).nodes["z"]
    assert site["value"].shape == (7, 6, L) and site["fn"].batch_shape == (7, 6)
    assert site["fn"].log_prob(site["value"]).shape == (7, 6)


def test_defaults_keep_the_gaussian_vae():
    vae = VAE(D, latent_dim=L, hidden_dims=(16,), num_levels=K_LEVELS)
    assert vae.q_flow is None and vae.p_flow is None
    assert {k.split(".")[0] for k in vae.state_dict()} == {"encoder", "decoder"}
    assert vae.encoder[-1].out_features == 2 * L
    config = vae.get_config()
    assert (config["posterior_flow"], config["prior_flow"]) == ("none", "none")
    # a config saved before the flow options existed still builds the same model
    old = {k: v for k, v in config.items() if "flow" not in k}
    assert VAE.from_config(old).get_config() == config


def test_flows_start_as_the_identity():
    vae = make("iaf", "maf")
    x = data()
    with torch.no_grad():
        loc, scale = vae.posterior(x)
        z = torch.randn(4, 6, L)
        q = vae.posterior_distribution(x)
        gaussian = torch.distributions.Normal(loc, scale).log_prob(z).sum(-1)
        torch.testing.assert_close(q.log_prob(z), gaussian)
        standard = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
        torch.testing.assert_close(vae.prior_distribution(6).log_prob(z), standard)
    torch.testing.assert_close(vae.encode(x), loc)


@pytest.mark.parametrize("posterior_flow", ["iaf", "maf"])
def test_guide_log_q_is_the_change_of_variables(posterior_flow):
    """The site's log q (from the fused sampling pass) equals log N(z_0; mu, sigma) + log |det
    dz_0/dz| computed through the transform's other direction."""
    vae = perturb(make(posterior_flow, "none"))
    x = data()
    site = poutine.trace(vae.guide).get_trace(x).nodes["z"]
    z, log_q = site["value"], site["fn"].log_prob(site["value"])
    with torch.no_grad():
        h = vae.encoder(vae._encoder_input(x))
        z0, logabsdet = vae.q_flow._transform(z, context=h)
        loc, scale = vae.posterior(x)
        base = torch.distributions.Normal(loc, scale).log_prob(z0).sum(-1)
    torch.testing.assert_close(log_q, base + logabsdet, atol=1e-4, rtol=1e-5)
    assert not torch.allclose(logabsdet, torch.zeros_like(logabsdet))  # not vacuous


@pytest.mark.parametrize("posterior_flow, passes_per_step", [("iaf", 1), ("maf", L)])
def test_scoring_a_flow_guide_costs_only_its_sampling_passes(posterior_flow, passes_per_step):
    """Structural cost check: every evaluation runs each guide step's network only in the
    sampling pass (1 for IAF, L for MAF), never the other direction to re-score the draw.
    The first evaluation traces the guide twice (structure probe + one chunk); later ones
    reuse the model's remembered structure and trace once per estimator (``nll_report`` runs
    two)."""
    vae = perturb(make(posterior_flow, "none", flow_layers=2))
    x = data()
    per_trace = 2 * passes_per_step
    calls, hooks = made_calls(vae)
    try:
        log_likelihood(vae, x, num_particles=10)
        assert len(calls) == 2 * per_trace, len(calls)
        calls.clear()
        elbo(vae, None, x, num_particles=10, analytic_kl=True)
        assert len(calls) == per_trace, len(calls)
        calls.clear()
        nll_report(vae, x, num_particles=10)
        assert len(calls) == 2 * per_trace, len(calls)
    finally:
        for h in hooks:
            h.remove()


@pytest.mark.parametrize("posterior_flow, prior_flow", OPTIONS)
def test_analytic_kl_falls_back_to_monte_carlo(posterior_flow, prior_flow):
    """No closed-form KL with a flow at either end: ``analytic_kl=True`` gives exactly the
    Monte Carlo ELBO for the same draws (while the Gaussian VAE's differs)."""
    x = data()
    vae = perturb(make(posterior_flow, prior_flow))
    values = []
    for analytic in (True, False):
        pyro.set_rng_seed(3)
        values.append(elbo(vae, None, x, num_particles=5, analytic_kl=analytic))
    torch.testing.assert_close(values[0], values[1], rtol=0, atol=0)
    gaussian = make("none", "none")
    pyro.set_rng_seed(3)
    closed = elbo(gaussian, None, x, num_particles=5, analytic_kl=True)
    pyro.set_rng_seed(3)
    assert not torch.allclose(closed, elbo(gaussian, None, x, num_particles=5))


# ---------------------------------------------------------------------------- densities


def test_flow_prior_integrates_to_one():
    """exp(log p(z)) of a (perturbed) 2-D flow prior sums to one on a 200 x 200 grid within
    5e-3 (prior mass outside the grid < 4e-4; midpoint error far smaller)."""
    vae = perturb(make("none", "maf", latent_dim=2), 0.1)
    prior = vae.prior_distribution(1)
    grid, log_cell = latent_grid(prior)
    with torch.no_grad():
        log_p = prior.log_prob(grid.unsqueeze(1)).squeeze(1)
    assert abs(float(torch.logsumexp(log_p, 0) + log_cell)) < 5e-3
    standard = torch.distributions.Normal(0.0, 1.0).log_prob(grid).sum(-1)
    assert float((log_p - standard).abs().max()) > 0.1  # not the standard normal


def test_bounds_against_numerical_integration():
    """A tiny VAE (2-d latent, 4 binary pixels, IAF posterior, perturbed MAF prior): log p(x)
    for all 16 images by integrating p(x | z) p(z) over a 200 x 200 grid of z, which sums to
    one over the 16 images. After 60 ELBO steps on the guide alone, IWAE-2000 lies within
    5 standard errors (estimated from 2,000 independent log-weights per image, each < 0.01
    here) of it, and the ELBO (2,000 particles) lies below it on average by more than 4 of
    its standard errors."""
    torch.manual_seed(0)
    vae = VAE(4, latent_dim=2, hidden_dims=(8,), likelihood="bernoulli", dropout=0.0,
              posterior_flow="iaf", prior_flow="maf", flow_hidden=8)
    with torch.no_grad():
        perturb(vae, 0.25)
        vae.decoder[-1].weight.mul_(2.0)  # a likelihood that moves the posterior
    x = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4)))
    optimizer = torch.optim.Adam([*vae.encoder.parameters(), *vae.q_flow.parameters()], 3e-2)
    for _ in range(60):
        optimizer.zero_grad()
        (-elbo(vae, None, x, num_particles=8, differentiable=True).mean()).backward()
        optimizer.step()
    prior = vae.prior_distribution(1)
    grid, log_cell = latent_grid(prior)
    with torch.no_grad():
        log_prior = prior.log_prob(grid.unsqueeze(1))  # [G, 1]
        log_lik = vae.likelihood_fn(grid.unsqueeze(1)).log_prob(x)  # [G, 16]
    exact = torch.logsumexp(log_prior + log_lik, 0) + log_cell
    assert abs(float(torch.logsumexp(exact, 0))) < 5e-3  # sum_x p(x) = 1
    K = 2000
    log_w = log_likelihood(vae, x.repeat(K, 1), num_particles=1).reshape(K, 16)
    rel = (log_w - (torch.logsumexp(log_w, 0) - math.log(K))).exp()  # w / mean w
    se_iw = rel.std(0) / math.sqrt(K)  # delta method: sd(log mean w) ~ sd(w) / (mean w sqrt K)
    se_elbo = log_w.std(0) / math.sqrt(K)
    assert float(se_iw.max()) < 0.02  # the guide is good enough for the check to bite
    iw = log_likelihood(vae, x, num_particles=K)
    assert bool(((iw - exact).abs() < 5 * se_iw + 1e-3).all()), (iw - exact, se_iw)
    bound = elbo(vae, None, x, num_particles=K, analytic_kl=True)
    gap = float((exact - bound).mean())
    assert gap > 4 * float(se_elbo.pow(2).sum().sqrt() / 16), gap
    assert bool((bound < exact + 4 * se_elbo).all())


# ---------------------------------------------------------------------------- training, io


def test_gradients_reach_every_parameter():
    vae = perturb(make("iaf", "maf"))
    x = data()
    (-log_likelihood(vae, x, num_particles=5, differentiable=True).mean()).backward()
    for name, p in vae.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_training_decreases_the_loss():
    x = ppgen.data.load_digits().train[:100]
    vae = VAE(64, latent_dim=4, hidden_dims=(32,), num_levels=17, dropout=0.0,
              posterior_flow="iaf", prior_flow="maf", flow_hidden=16)
    history = ppgen.fit(vae, x, epochs=4, batch_size=25, lr=3e-3, progress=False,
                        device="cpu")
    losses = [record["train_loss"] for record in history]
    # the IWAE-5 loss falls by more than 10 nats/image in 4 epochs (~139 -> ~122 here)
    assert losses[-1] < losses[0] - 10, losses


@pytest.mark.parametrize("posterior_flow, prior_flow", OPTIONS)
def test_checkpoint_round_trip(tmp_path, posterior_flow, prior_flow):
    vae = perturb(make(posterior_flow, prior_flow))
    vae.save(str(tmp_path / "vae.pt"))
    loaded = load_model(tmp_path / "vae.pt")
    assert isinstance(loaded, VAE) and loaded.get_config() == vae.get_config()
    x = data()
    torch.testing.assert_close(loaded.encode(x), vae.encode(x), rtol=0, atol=0)
    values = []
    for model in (vae, loaded):
        pyro.set_rng_seed(5)
        values.append(log_likelihood(model, x, num_particles=4))
    torch.testing.assert_close(values[0], values[1], rtol=0, atol=0)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"posterior_flow": "planar"}, "posterior_flow"),
        ({"posterior_flow": "gaussian"}, "posterior_flow"),
        ({"prior_flow": "realnvp"}, "prior_flow"),
        ({"flow_layers": 0}, "flow_layers"),
        ({"flow_layers": 1.5}, "flow_layers"),
        ({"flow_hidden": 0}, "flow_hidden"),
    ],
)
def test_bad_options(options, match):
    with pytest.raises(ppgen.ModelError, match=match):
        VAE(D, num_levels=K_LEVELS, **options)


def test_device(device):
    vae = perturb(make("iaf", "maf")).to(device)
    x = data().to(device)
    assert vae.sample(3).device == x.device
    assert log_likelihood(vae, x, num_particles=4).device == x.device
    assert vae.encode(x).device == x.device
