"""The autoregressive distribution and its heads: heads against scipy closed forms and
normalisation, shapes and batch semantics (``expand``, plates, the evaluation layer),
orderings and their mixtures, image event shapes, and goodness of fit of samples.

Goodness-of-fit tests use fixed seeds and reject at p < 0.001 each (six here), so a correct
implementation fails one of them with probability below 0.6% for a given seed.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pyro
import pytest
import torch
from scipy import stats

from ppgen.distributions.autoregressive import AutoregressiveDistribution
from ppgen.distributions.heads import (
    HEADS,
    BernoulliHead,
    CategoricalHead,
    DiscretizedLogisticMixtureHead,
    GaussianMixtureHead,
    make_head,
)
from ppgen.evaluate import log_likelihood

P_MIN = 1e-3  # failure rate of each goodness-of-fit test under a correct implementation


def all_configs(n: int, K: int) -> torch.Tensor:
    """``[K^n, n]``: every configuration, first variable most significant."""
    return torch.tensor(list(itertools.product(range(K), repeat=n)))


class LinearNet(torch.nn.Module):
    """A strictly lower-triangular (in ``order``) linear map of the head's features."""

    def __init__(self, head, D: int, order=None, seed: int = 0, scale: float = 1.5):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        F, P = head.num_features, head.num_params
        self.head, self.D = head, D
        position = torch.empty(D, dtype=torch.long)
        position[order if order is not None else torch.arange(D)] = torch.arange(D)
        mask = (position.unsqueeze(1) > position.unsqueeze(0)).float()  # [D_out, D_in]
        self.register_buffer("mask", mask[:, None, :, None])
        self.weight = torch.nn.Parameter(scale * torch.randn(D, P, D, F, generator=g))
        self.bias = torch.nn.Parameter(scale * torch.randn(D, P, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.head.features(x, self.weight.dtype)  # [n, D, F]
        return torch.einsum("ndf,ipdf->nip", f, self.weight * self.mask) + self.bias


def make_dist(likelihood: str, D: int = 3, K: int = 3, order=None, **kwargs):
    head = make_head(likelihood, num_levels=K, num_components=2)
    return AutoregressiveDistribution(LinearNet(head, D, order), head, (D,), order=order, **kwargs)


@pytest.fixture(autouse=True)
def seeded():
    """A fixed seed, and no autograd: these tests look at values only."""
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    with torch.no_grad():
        yield


# ---------------------------------------------------------------------------- heads


@pytest.mark.parametrize("K", [2, 3, 17])
@pytest.mark.parametrize("name", ["categorical", "logistic-mixture"])
def test_level_heads_sum_to_one_over_all_levels(name, K):
    head = make_head(name, num_levels=K, num_components=3)
    params = 3 * torch.randn(50, 1, head.num_params, dtype=torch.float64)
    params[:10, :, 6:] = -20.0  # tiny logistic scales: mass concentrated in single bins
    levels = torch.arange(K)
    total = torch.logsumexp(head.log_prob(params, levels), dim=-1)
    torch.testing.assert_close(total, torch.zeros(50, dtype=torch.float64), atol=1e-9, rtol=0)


def test_bernoulli_head_sums_to_one():
    head = BernoulliHead()
    params = 4 * torch.randn(20, 1, 1)
    total = torch.logsumexp(head.log_prob(params, torch.tensor([0.0, 1.0])), dim=-1)
    torch.testing.assert_close(total, torch.zeros(20), atol=1e-6, rtol=0)


def test_discretized_logistic_matches_scipy():
    K, C = 17, 3
    head = DiscretizedLogisticMixtureHead(K, C)
    g = torch.Generator().manual_seed(1)
    params = torch.randn(C * 3, generator=g, dtype=torch.float64)
    params[2 * C :] = params[2 * C :] - 2.0  # scales around 0.1 in [-1, 1] units
    got = head.log_prob(params, torch.arange(K)).exp().numpy()
    w = torch.softmax(params[:C], 0).numpy()
    loc, scale = params[C : 2 * C].numpy(), params[2 * C :].exp().numpy()
    y = 2 * np.arange(K) / (K - 1) - 1
    h = 1 / (K - 1)
    upper = np.where(np.arange(K) == K - 1, np.inf, y + h)
    lower = np.where(np.arange(K) == 0, -np.inf, y - h)
    cdf = stats.logistic.cdf
    expected = sum(
        w[c] * (cdf(upper, loc[c], scale[c]) - cdf(lower, loc[c], scale[c])) for c in range(C)
    )
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_gaussian_mixture_matches_scipy_and_integrates_to_one():
    C = 3
    head = GaussianMixtureHead(C, min_scale=1e-3)
    g = torch.Generator().manual_seed(2)
    params = torch.randn(C * 3, generator=g, dtype=torch.float64)
    x = torch.linspace(-12, 12, 24001, dtype=torch.float64)
    density = head.log_prob(params, x).exp()
    w = torch.softmax(params[:C], 0).numpy()
    loc = params[C : 2 * C].numpy()
    scale = (torch.nn.functional.softplus(params[2 * C :]) + 1e-3).numpy()
    expected = sum(w[c] * stats.norm.pdf(x.numpy(), loc[c], scale[c]) for c in range(C))
    np.testing.assert_allclose(density.numpy(), expected, rtol=1e-9, atol=1e-15)
    assert float(torch.trapezoid(density, x)) == pytest.approx(1.0, abs=1e-6)
    cdf = head.cdf(params, x).numpy()
    exp_cdf = sum(w[c] * stats.norm.cdf(x.numpy(), loc[c], scale[c]) for c in range(C))
    np.testing.assert_allclose(cdf, exp_cdf, rtol=1e-9, atol=1e-12)


def test_discretized_logistic_samples_fit_its_probabilities():
    K = 6
    head = DiscretizedLogisticMixtureHead(K, 2)
    params = torch.tensor([0.3, -0.2, -0.6, 0.4, -1.2, -1.8])
    num = 20000
    draws = head.sample(params.expand(num, 6))
    assert draws.dtype == torch.long and draws.shape == (num,)
    observed = torch.bincount(draws, minlength=K).double()
    probs = head.log_prob(params.double(), torch.arange(K)).exp()
    expected = probs / probs.sum() * num
    assert stats.chisquare(observed.numpy(), expected.numpy()).pvalue > P_MIN


def test_gaussian_mixture_samples_fit_its_cdf():
    head = GaussianMixtureHead(2)
    params = torch.tensor([0.5, -0.5, -2.0, 1.5, -0.5, 0.3])
    draws = head.sample(params.expand(5000, 6))
    u = head.cdf(params, draws).double().numpy()
    assert stats.kstest(u, "uniform").pvalue > P_MIN


def test_make_head_errors():
    assert [type(make_head(n, 3)).__name__ for n in HEADS] == [
        "BernoulliHead",
        "CategoricalHead",
        "DiscretizedLogisticMixtureHead",
        "GaussianMixtureHead",
    ]
    with pytest.raises(ValueError, match="unknown likelihood 'poisson'"):
        make_head("poisson")
    with pytest.raises(ValueError, match="needs num_levels"):
        make_head("categorical")
    with pytest.raises(ValueError, match="num_levels must be at least 2"):
        CategoricalHead(1)


# ---------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("likelihood", HEADS)
def test_shapes_and_batch_semantics(likelihood):
    d = make_dist(likelihood, D=4)
    assert d.batch_shape == () and d.event_shape == (4,) and not d.has_rsample
    x = d.sample((5, 2))
    assert x.shape == (5, 2, 4)
    assert x.dtype == (torch.long if d.head.is_discrete else torch.float32)
    assert d.log_prob(x).shape == (5, 2)
    assert d.log_prob_per_dim(x).shape == (5, 2, 4)
    torch.testing.assert_close(d.log_prob_per_dim(x).sum(-1), d.log_prob(x))
    e = d.expand([3, 2])
    assert e.batch_shape == (3, 2) and e.event_shape == (4,)
    assert e.sample().shape == (3, 2, 4) and e.sample((7,)).shape == (7, 3, 2, 4)
    assert e.log_prob(x[0, 0]).shape == (3, 2)  # one value broadcast over the batch
    assert e.log_prob(x[:3]).shape == (3, 2)
    torch.testing.assert_close(e.log_prob(x[0, 0])[2, 1], d.log_prob(x[0, 0]))
    assert d.support.check(x).all()


def test_expand_evaluates_the_network_on_the_values_only():
    d = make_dist("categorical", D=3)
    rows = []
    net = d.net
    d.net = lambda x: rows.append(x.shape[0]) or net(x)
    x = d.sample((4,))
    rows.clear()
    assert d.expand([1000, 4]).log_prob(x).shape == (1000, 4)
    assert rows == [4]


def test_under_a_plate_and_the_evaluation_layer():
    d = make_dist("categorical", D=3)
    x = all_configs(3, 3)

    def model(x):
        with pyro.plate("data", x.shape[0]):
            return pyro.sample("x", d.expand([x.shape[0]]), obs=x)

    ll = log_likelihood(model, x)
    assert ll.shape == (27,)
    torch.testing.assert_close(ll, d.log_prob(x))
    assert abs(float(torch.logsumexp(ll.double(), 0))) < 1e-5
    with pytest.raises(Exception, match="support"):
        log_likelihood(model, x + 3)


def test_validation_refuses_values_outside_the_support():
    d = make_dist("categorical", D=3, validate_args=True)
    with pytest.raises(ValueError):
        d.log_prob(torch.tensor([0, 1, 5]))


def test_bad_network_output_is_a_clear_error():
    head = CategoricalHead(3)
    d = AutoregressiveDistribution(lambda x: torch.zeros(x.shape + (2,)), head, (4,))
    with pytest.raises(ValueError, match=r"expected \[n, \*event_shape, P\] = \[1, 4, 3\]"):
        d.log_prob(torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="order must be a long tensor"):
        AutoregressiveDistribution(lambda x: x, head, (4,), order=torch.arange(3))


# ---------------------------------------------------------------------------- orderings


@pytest.mark.parametrize("likelihood", ["bernoulli", "categorical", "logistic-mixture"])
def test_exhaustive_normalisation_with_an_ordering(likelihood):
    K = 2 if likelihood == "bernoulli" else 3
    d = make_dist(likelihood, D=4, K=K, order=torch.tensor([2, 0, 3, 1]))
    x = all_configs(4, K)
    x = x.float() if likelihood == "bernoulli" else x
    assert abs(float(torch.logsumexp(d.log_prob(x).double(), 0))) < 1e-5


def test_sampling_follows_the_ordering():
    """x_2 is a fair coin, then x_0 copies x_2 and x_1 copies x_0 (logits +-30)."""
    order = torch.tensor([2, 0, 1])

    def net(x):
        logits = torch.zeros(x.shape + (1,))
        logits[:, 0, 0] = 60 * x[:, 2] - 30
        logits[:, 1, 0] = 60 * x[:, 0] - 30
        return logits

    d = AutoregressiveDistribution(net, BernoulliHead(), (3,), order=order)
    x = d.sample((2000,))
    assert (x[:, 0] == x[:, 2]).all() and (x[:, 1] == x[:, 0]).all()
    assert 0.4 < float(x[:, 2].mean()) < 0.6


def mixture(D: int = 3, K: int = 3, M: int = 3):
    """The uniform mixture of M linear autoregressive models with different orderings."""
    head = CategoricalHead(K)
    g = torch.Generator().manual_seed(3)
    orders = torch.stack([torch.randperm(D, generator=g) for _ in range(M)])
    nets = [LinearNet(head, D, orders[m], seed=m, scale=2.0) for m in range(M)]
    d = AutoregressiveDistribution(
        lambda x: torch.stack([net(x) for net in nets]), head, (D,), order=orders
    )
    singles = [AutoregressiveDistribution(n, head, (D,), order=o) for n, o in zip(nets, orders)]
    return d, singles


def test_mixture_of_orderings_is_the_log_mean_exp():
    d, singles = mixture()
    x = all_configs(3, 3)
    assert d.num_orderings == 3
    expected = torch.logsumexp(torch.stack([s.log_prob(x) for s in singles]), 0) - math.log(3)
    torch.testing.assert_close(d.log_prob(x), expected)
    assert abs(float(torch.logsumexp(d.log_prob(x).double(), 0))) < 1e-5
    torch.testing.assert_close(d.log_prob_per_dim(x).sum(-1), d.log_prob(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("likelihood", ["categorical", "logistic-mixture"])
def test_samples_fit_exact_probabilities(likelihood):
    d = make_dist(likelihood, D=3, K=3, order=torch.tensor([1, 2, 0]))
    _chi_square_against_exact(d, K=3)


def test_mixture_samples_fit_exact_probabilities():
    _chi_square_against_exact(mixture()[0], K=3)


def _chi_square_against_exact(d, K: int, num: int = 20000) -> None:
    samples = d.sample((num,))
    index = (samples * torch.tensor([K * K, K, 1])).sum(-1)
    observed = torch.bincount(index, minlength=K**3).double()
    probs = d.log_prob(all_configs(3, K)).double().exp()
    expected = probs / probs.sum() * num
    assert stats.chisquare(observed.numpy(), expected.numpy()).pvalue > P_MIN


# ---------------------------------------------------------------------------- images


class CausalImageNet(torch.nn.Module):
    """A PixelCNN-shaped stand-in: ``[n, C, H, W]`` -> ``[n, C, H, W, P]``, raster-causal."""

    def __init__(self, shape, head):
        super().__init__()
        self.inner = LinearNet(head, math.prod(shape), seed=4)
        self.shape = shape

    def forward(self, x):
        out = self.inner(x.flatten(1))
        return out.reshape(x.shape + out.shape[-1:])


def test_image_event_shape():
    shape, head = (1, 2, 2), BernoulliHead()
    d = AutoregressiveDistribution(CausalImageNet(shape, head), head, shape)
    x = d.sample((5,))
    assert x.shape == (5, 1, 2, 2)
    assert d.log_prob(x).shape == (5,) and d.log_prob_per_dim(x).shape == (5, 1, 2, 2)
    configs = all_configs(4, 2).float().reshape(16, 1, 2, 2)
    assert abs(float(torch.logsumexp(d.log_prob(configs).double(), 0))) < 1e-5


# ---------------------------------------------------------------------------- device


@pytest.mark.parametrize("likelihood", HEADS)
def test_samples_follow_the_network_device(likelihood, device):
    d = make_dist(likelihood, D=3)
    d.net.to(device)
    x = d.sample((4,))
    assert x.device.type == device.type
    assert d.log_prob(x).device.type == device.type
