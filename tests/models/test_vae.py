"""The VAE: shapes for every likelihood (under the evaluation layer's particle plate too), the
closed-form KL against the hand formula and against Monte Carlo, ELBO <= IWAE-K increasing in K,
gradients, normalisation, data errors, and a training smoke test.

Statistical checks use fixed seeds; each tolerance is stated next to its assertion as a multiple
of the Monte Carlo standard error it guards against.
"""

from __future__ import annotations

import math

import pyro
import pytest
import torch

import ppgen
from ppgen.data import DataInfo
from ppgen.evaluate import elbo, log_likelihood
from ppgen.models.vae import VAE
from ppgen.protocol import ModelKind, model_class

D, L, K_LEVELS = 12, 3, 5
LIKELIHOODS = ["categorical", "bernoulli", "gaussian"]
#: every decoder: (likelihood, categorical head)
DECODERS = [
    ("categorical", "logistic"),
    ("categorical", "softmax"),
    ("bernoulli", "logistic"),
    ("gaussian", "logistic"),
]


def make(likelihood: str, head: str = "logistic", **kwargs) -> VAE:
    levels = K_LEVELS if likelihood == "categorical" else None
    kwargs = {"latent_dim": L, "hidden_dims": (16, 8), "categorical_head": head, "dropout": 0.0,
              **kwargs}
    return VAE(D, likelihood=likelihood, num_levels=levels, **kwargs)


def data(likelihood: str, n: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if likelihood == "categorical":
        return torch.randint(0, K_LEVELS, (n, D), generator=g)
    if likelihood == "bernoulli":
        return torch.randint(0, 2, (n, D), generator=g).float()
    return torch.rand(n, D, generator=g)


@pytest.fixture(autouse=True)
def seeded():
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    yield


# ---------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("likelihood, head", DECODERS)
def test_shapes(likelihood, head):
    vae = make(likelihood, head)
    x = data(likelihood)
    samples = vae.sample(4)
    assert samples.shape == (4, D)
    assert samples.dtype == (torch.long if likelihood == "categorical" else torch.float32)
    assert vae.check_data(samples).shape == (4, D)  # samples lie in the support
    assert vae.encode(x).shape == (6, L)
    assert vae.decode(torch.randn(2, 5, L)).shape == (2, 5, D)
    assert log_likelihood(vae, x, num_particles=7).shape == (6,)
    assert elbo(vae, None, x, num_particles=3, analytic_kl=True).shape == (6,)
    assert vae.event_shape == (D,)
    assert vae.kind == ModelKind.LATENT


@pytest.mark.parametrize("likelihood, head", DECODERS)
def test_decoder_broadcasts_over_particles(likelihood, head):
    vae = make(likelihood, head)
    x = data(likelihood, n=6)
    fn = vae.likelihood_fn(torch.randn(7, 6, L))
    assert fn.batch_shape == (7, 6) and fn.event_shape == (D,)
    assert fn.log_prob(x).shape == (7, 6)
    # the particle plate gives the same per-particle values as scoring each particle alone
    z = torch.randn(7, 6, L)
    joint = vae.likelihood_fn(z).log_prob(x)
    single = torch.stack([vae.likelihood_fn(z[k]).log_prob(x) for k in range(7)])
    assert torch.allclose(joint, single, atol=1e-5)


def test_encode_and_decode_are_deterministic_in_training_mode():
    vae = make("categorical", dropout=0.5).train()
    x = data("categorical")
    z = torch.randn(3, L)
    assert torch.equal(vae.encode(x), vae.encode(x))
    assert torch.equal(vae.decode(z), vae.decode(z))
    assert vae.training  # the mode is restored
    loc_a, _ = vae.posterior(x)
    loc_b, _ = vae.posterior(x)
    assert not torch.equal(loc_a, loc_b)  # dropout is on for training passes


def test_gaussian_scale_is_floored():
    vae = make("gaussian", min_scale=0.05)
    with torch.no_grad():
        vae.decoder[-1].bias.fill_(-50.0)  # softplus(-50) ~ 0: only the floor remains
    scale = vae.likelihood_fn(torch.zeros(2, L)).base_dist.scale
    assert torch.all(scale >= 0.05)


def test_for_data_maps_likelihoods():
    cat = VAE.for_data(DataInfo((64,), "categorical", num_levels=17), hidden_dims=(8,))
    assert (cat.likelihood, cat.num_levels, cat.num_dims) == ("categorical", 17, 64)
    assert VAE.for_data(DataInfo((10,), "bernoulli", num_levels=2)).likelihood == "bernoulli"
    assert VAE.for_data(DataInfo((10,), "continuous")).likelihood == "gaussian"
    with pytest.raises(ppgen.ModelError, match="flatten"):
        VAE.for_data(DataInfo((1, 8, 8), "continuous"))


def test_config_round_trip_and_registry():
    vae = make("categorical", input_encoding="scaled", dropout=0.1)
    clone = VAE.from_config(vae.get_config())
    assert clone.get_config() == vae.get_config()
    assert clone.load_state_dict(vae.state_dict()) is not None
    assert model_class("vae") is VAE
    assert len(pyro.get_param_store()) == 0  # plain nn modules: nothing in the global store


def test_checkpoint_round_trip(tmp_path):
    from ppgen.checkpoint import load_model

    vae = make("categorical")
    vae.save(str(tmp_path / "vae.pt"))
    loaded = load_model(tmp_path / "vae.pt")
    x = data("categorical")
    assert isinstance(loaded, VAE) and loaded.get_config() == vae.get_config()
    assert torch.equal(loaded.encode(x), vae.encode(x))


# ---------------------------------------------------------------------------- KL and bounds


def hand_kl(loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """KL(N(loc, scale^2) || N(0, 1)) summed over the last dimension."""
    return 0.5 * (loc**2 + scale**2 - 1 - torch.log(scale**2)).sum(-1)


def test_analytic_kl_equals_hand_formula():
    # With the decoder's last layer zeroed, p(x | z) does not depend on z, so the ELBO is
    # exactly log p(x | bias) - KL(q || p) and the KL is isolated without Monte Carlo noise.
    vae = make("categorical")
    x = data("categorical")
    with torch.no_grad():
        vae.decoder[-1].weight.zero_()
        loc, scale = vae.posterior(x)
        recon = vae.likelihood_fn(torch.zeros(1, L)).log_prob(x)
    value = elbo(vae, None, x, num_particles=2, analytic_kl=True)
    assert torch.allclose(value, recon - hand_kl(loc, scale), atol=1e-4)


def test_analytic_and_monte_carlo_elbo_agree():
    # Same seed => same guide draws => identical reconstruction terms; what differs is the KL
    # (closed form) against its Monte Carlo estimate mean_k [log q(z_k) - log p(z_k)].
    vae = make("categorical")
    with torch.no_grad():
        vae.encoder[-1].bias.normal_()  # a posterior that differs from the prior
    x = data("categorical", n=8)
    K = 4000
    pyro.set_rng_seed(1)
    analytic = elbo(vae, None, x, num_particles=K, analytic_kl=True)
    pyro.set_rng_seed(1)
    monte_carlo = elbo(vae, None, x, num_particles=K, analytic_kl=False)
    # standard error of the MC KL per datum, from independent draws of the same q
    with torch.no_grad():
        loc, scale = vae.posterior(x)
        q = torch.distributions.Normal(loc, scale)
        z = q.sample((K,))
        log_ratio = (q.log_prob(z) - torch.distributions.Normal(0.0, 1.0).log_prob(z)).sum(-1)
    se = log_ratio.std(0) / math.sqrt(K)
    assert torch.all(se < 0.1)
    # 5 standard errors per datum: a failure rate below 1e-5 for a correct implementation
    assert torch.all((analytic - monte_carlo).abs() < 5 * se)
    assert torch.allclose(log_ratio.mean(0), hand_kl(loc, scale), atol=float(5 * se.max()))


def standard_error(d: torch.Tensor) -> float:
    """Standard error of the mean of per-datum values ``d: [N]``."""
    return float(d.std() / math.sqrt(d.shape[0]))


def test_elbo_below_iwae_and_iwae_increases_with_k():
    vae = make("categorical")
    with torch.no_grad():
        vae.encoder[-1].bias.normal_(0.0, 2.0)  # a guide far from the posterior: wide gaps
    x = data("categorical", n=256)
    pyro.set_rng_seed(2)
    bound = elbo(vae, None, x, num_particles=200, analytic_kl=True)  # ~ the exact ELBO
    iw = {k: log_likelihood(vae, x, num_particles=k) for k in (1, 10, 100)}
    # The K-sample bound increases with K in expectation (Burda et al., 2016, Theorem 1). The
    # expected gaps are ~9-19 standard errors of their 256-row means; requiring 3 makes a
    # failure of a correct implementation a < 1e-3 event.
    for low, high in [(bound, iw[10]), (iw[1], iw[10]), (iw[10], iw[100])]:
        gap = high - low
        assert gap.mean() > 3 * standard_error(gap)
    # IWAE with K = 1 is the (Monte Carlo) ELBO: equal means within 4 standard errors
    gap = iw[1] - bound
    assert abs(float(gap.mean())) < 4 * standard_error(gap)


# ---------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("likelihood, head", DECODERS)
@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_gradients_reach_every_parameter(likelihood, head, objective):
    vae = make(likelihood, head, dropout=0.1)
    x = data(likelihood)
    if objective == "elbo":
        value = elbo(vae, None, x, analytic_kl=True, differentiable=True)
    else:
        value = log_likelihood(vae, x, num_particles=5, differentiable=True)
    (-value.mean()).backward()
    for name, p in vae.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    # every output of both networks (encoder loc and scale, every decoder parameter) matters
    for layer in (vae.encoder[-1], vae.decoder[-1]):
        assert torch.all(layer.bias.grad != 0)


# ---------------------------------------------------------------------------- normalisation, data


@pytest.mark.parametrize("head", ["logistic", "softmax"])
def test_categorical_decoder_normalises(head):
    vae = make("categorical", head)
    fn = vae.likelihood_fn(torch.randn(4, L))
    levels = torch.arange(K_LEVELS).reshape(K_LEVELS, 1, 1).expand(K_LEVELS, 4, D)
    if head == "logistic":  # a FactorizedDistribution: per-pixel log-probs from its head
        per_pixel = fn.head.log_prob(fn.params, levels)
    else:
        per_pixel = fn.base_dist.log_prob(levels)
    total = torch.logsumexp(per_pixel, dim=0)  # sum over every level of each pixel
    assert torch.allclose(total, torch.zeros(4, D), atol=1e-5)
    mean = vae.decode(torch.randn(4, L))
    assert torch.all((mean >= 0) & (mean <= K_LEVELS - 1))


@pytest.mark.parametrize(
    "likelihood, bad",
    [
        ("categorical", torch.full((2, D), K_LEVELS)),
        ("categorical", torch.full((2, D), -1)),
        ("categorical", torch.full((2, D), 0.5)),
        ("categorical", torch.full((2, D), float("nan"))),
        ("bernoulli", torch.full((2, D), 2.0)),
        ("bernoulli", torch.full((2, D), float("nan"))),
        ("gaussian", torch.full((2, D), float("inf"))),
        ("gaussian", torch.zeros(2, D + 1)),
    ],
)
def test_check_data_refuses_bad_data(likelihood, bad):
    vae = make(likelihood)
    with pytest.raises(ppgen.DataError):
        vae.check_data(bad)
    with pytest.raises(ppgen.DataError):
        log_likelihood(vae, bad, num_particles=2)


def test_constructor_refuses_bad_arguments():
    with pytest.raises(ppgen.ModelError, match="num_levels"):
        VAE(D, likelihood="categorical")
    with pytest.raises(ppgen.ModelError, match="likelihood"):
        VAE(D, likelihood="poisson")
    with pytest.raises(ppgen.ModelError, match="input_encoding"):
        VAE(D, num_levels=3, input_encoding="binary")
    with pytest.raises(ppgen.ModelError, match="categorical_head"):
        VAE(D, num_levels=3, categorical_head="probit")
    with pytest.raises(ppgen.ModelError, match="dropout"):
        VAE(D, num_levels=3, dropout=1.0)


# ---------------------------------------------------------------------------- training


@pytest.fixture
def one_thread():
    """One intra-op thread for a loop of small ops: on a loaded 2-core machine, OpenMP's
    barriers make two threads ~15x slower than one here (measured: 19 s against 1.2 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_training_improves_elbo(one_thread):
    torch.manual_seed(0)
    x = ppgen.data.load_digits().train[:100]
    vae = VAE(64, latent_dim=8, hidden_dims=(32,), num_levels=17, dropout=0.0)
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)

    def mean_elbo(differentiable: bool = False) -> torch.Tensor:
        return elbo(vae, None, x, analytic_kl=True, differentiable=differentiable).mean()

    before = float(mean_elbo())
    for _ in range(120):
        opt.zero_grad()
        (-mean_elbo(differentiable=True)).backward()
        opt.step()
    after = float(mean_elbo())
    # 120 full-batch steps take the ELBO from far below the uniform model (-64 ln 17 ~ -181
    # nats) to well above it (about -112 here)
    assert after > before + 40
    assert after > -64 * math.log(17) + 40
