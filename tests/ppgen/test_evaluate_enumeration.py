"""Enumerated discrete sites in ppgen.evaluate, against closed forms.

A discrete site in the ``"data"`` plate marked ``infer={"enumerate": "parallel"}`` (Pyro's
``@config_enumerate``) is summed out exactly: for a Gaussian mixture with weights ``w``, means
``mu`` and scales ``s``, ``log p(x_n) = logsumexp_c(log w_c + log N(x_n; mu_c, s_c))``. Every
check here is deterministic (exact sums, or importance weights recomputed by hand from the
guide's own draws), compared at float rounding; none can pass by sampling the assignment.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.distributions import constraints
from pyro.ops.indexing import Vindex
from testkit import load_example

import ppgen.evaluate.estimators as estimators
from ppgen.errors import ModelError
from ppgen.evaluate import (
    elbo,
    inspect_structure,
    log_likelihood,
    pointwise_log_likelihood,
    resolve,
    structure_of,
)

F64 = torch.float64
W = torch.tensor([0.2, 0.5, 0.3], dtype=F64)
MU = torch.tensor([-2.0, 0.0, 3.0], dtype=F64)
SIGMA = torch.tensor([0.5, 1.0, 2.0], dtype=F64)
X = torch.tensor([-4.0, -2.1, -0.3, 0.0, 1.2, 2.9, 6.0], dtype=F64)

example = load_example("gaussian_mixture")


pytestmark = pytest.mark.usefixtures("one_thread", "fresh_pyro")


def normal_log_pdf(x: float, mu: float, s: float) -> float:
    return -0.5 * ((x - mu) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)


def logsumexp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def mixture_by_hand(x, w, mu, s) -> torch.Tensor:
    """``[N]``: ``logsumexp_c(log w_c + log N(x_n; mu_c, s_c))``, one datum at a time."""
    rows = [
        logsumexp([math.log(wc) + normal_log_pdf(xn, mc, sc)
                   for wc, mc, sc in zip(w.tolist(), mu.tolist(), s.tolist())])
        for xn in x.tolist()
    ]
    return torch.tensor(rows, dtype=F64)


def by_hand(y: torch.Tensor, w: torch.Tensor, mu: torch.Tensor, s: torch.Tensor):
    """``[S, N]`` log-sum-exp over components, for draws ``w, mu, s: [S, K]``."""
    comp = dist.Normal(mu[:, None, :], s[:, None, :]).log_prob(y[None, :, None])  # [S, N, K]
    return torch.logsumexp(w.log()[:, None, :] + comp, dim=-1)


@pyro.infer.config_enumerate
def fixed_mixture(x):
    """The mixture with given parameters: no latent site but the assignment."""
    with pyro.plate("data", x.shape[0]):
        c = pyro.sample("c", dist.Categorical(W))
        pyro.sample("x", dist.Normal(MU[c], SIGMA[c]), obs=x)


@pyro.infer.config_enumerate
def bayes_mixture(x):
    """Priors on the parameters, written to broadcast over draws (``Vindex``)."""
    w = pyro.sample("w", dist.Dirichlet(torch.ones(3, dtype=F64)))
    mu = pyro.sample("mu", dist.Normal(torch.zeros(3, dtype=F64), 5.0).to_event(1))
    s = pyro.sample("s", dist.HalfNormal(2.0 * torch.ones(3, dtype=F64)).to_event(1))
    with pyro.plate("data", x.shape[0]):
        c = pyro.sample("c", dist.Categorical(w))
        pyro.sample("x", dist.Normal(Vindex(mu)[..., c], Vindex(s)[..., c]), obs=x)


def posterior_draws(S: int = 5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return {
        "w": torch.distributions.Dirichlet(torch.ones(3, dtype=F64)).sample((S,)),
        "mu": 3 * torch.randn(S, 3, generator=g, dtype=F64),
        "s": 0.3 + torch.rand(S, 3, generator=g, dtype=F64),
    }


def counting(program):
    """``program`` and a list whose length is the number of times it ran."""
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(1)
        return program(*args, **kwargs)

    return wrapped, calls


# ---------------------------------------------------------------------------- structure


def test_structure_records_the_enumerated_sites():
    structure = inspect_structure(resolve(fixed_mixture), X, {})
    assert structure.enumerated == ["c"] and structure.latent == []
    assert structure.observed == ["x"] and structure.global_latent == []

    def plain(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(0.0, 1.0), obs=x)

    assert structure_of(plain, X).enumerated == []


def test_a_site_the_guide_samples_is_not_enumerated():
    """Pyro's rule: a model site that the guide samples is replayed from it. With the exact
    posterior ``q(c | x_n) = p(c | x_n)`` as guide every importance weight is ``p(x_n)``."""

    def posterior_guide(x):
        logits = W.log() + dist.Normal(MU, SIGMA).log_prob(x[:, None])
        with pyro.plate("data", x.shape[0]):
            pyro.sample("c", dist.Categorical(logits=logits))

    structure = inspect_structure(resolve(fixed_mixture, posterior_guide), X, {})
    assert structure.enumerated == [] and structure.latent == ["c"]
    got = log_likelihood(fixed_mixture, X, posterior_guide, num_particles=4)
    torch.testing.assert_close(got, mixture_by_hand(X, W, MU, SIGMA), atol=1e-10, rtol=0)


# ---------------------------------------------------------------------------- pointwise


def test_pointwise_is_the_log_sum_exp_for_every_draw():
    draws = posterior_draws(S=5)
    program, calls = counting(bayes_mixture)
    got = pointwise_log_likelihood(program, X, draws)
    assert got.shape == (5, X.shape[0]) and got.dtype == F64
    expected = torch.stack([mixture_by_hand(X, draws["w"][i], draws["mu"][i], draws["s"][i])
                            for i in range(5)])
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)
    assert len(calls) == 2  # one structure probe, then all draws at once (no per-draw loop)
    chunked = pointwise_log_likelihood(bayes_mixture, X, draws, batch_size=3)
    torch.testing.assert_close(chunked, expected, atol=1e-10, rtol=0)


def test_enumerated_log_likelihood_is_the_log_sum_exp():
    """The example's program indexes ``mu[..., c]`` (written for one draw): scored draw by
    draw, with the same result."""
    y = example.data(n=25)
    g = torch.Generator().manual_seed(1)
    S, K = 4, 3
    draws = {
        "w": torch.distributions.Dirichlet(torch.ones(K)).sample((S,)),
        "mu": torch.randn(S, K, generator=g).sort(-1).values * 2,
        "s": torch.rand(S, K, generator=g) + 0.3,
    }
    got = pointwise_log_likelihood(example.mixture, y, draws, K=K)
    assert got.shape == (S, 25)
    torch.testing.assert_close(got, by_hand(y, draws["w"], draws["mu"], draws["s"]))
    # Not the conditional likelihood of one sampled assignment:
    assert (got > by_hand(y, torch.ones(S, 1), draws["mu"][:, :1], draws["s"][:, :1])).any()


@pyro.infer.config_enumerate
def float32_mixture(x):
    """``fixed_mixture`` written the usual way, its parameters in float32."""
    w, mu, s = W.float(), MU.float(), SIGMA.float()
    with pyro.plate("data", x.shape[0]):
        c = pyro.sample("c", dist.Categorical(w))
        pyro.sample("x", dist.Normal(mu[c], s[c]), obs=x)


def test_float64_data_in_a_float32_enumerated_program():
    """NumPy's float64 data in a program whose parameters are float32: the log-densities of
    the assignment (float32) and of the data (float64) are summed out together, in the wider
    dtype, where torch's einsum refused to mix them ("expected scalar type Float but found
    Double")."""
    expected = mixture_by_hand(X, W, MU, SIGMA)
    got = log_likelihood(float32_mixture, X)
    torch.testing.assert_close(got.double(), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(elbo(float32_mixture, X).double(), expected, atol=1e-5, rtol=0)
    y = example.data(n=25).double()
    draws = {"w": torch.full((2, 2), 0.5), "mu": torch.tensor([[-2.0, 1.5]] * 2),
             "s": torch.tensor([[0.6, 0.8]] * 2)}
    pointwise = pointwise_log_likelihood(example.mixture, y, draws)
    torch.testing.assert_close(pointwise.double(), by_hand(y, *draws.values()).double(),
                               atol=1e-5, rtol=0)


def test_global_enumerated_site_is_refused():
    @pyro.infer.config_enumerate
    def model(y):
        c = pyro.sample("c", dist.Categorical(torch.ones(2) / 2))
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        with pyro.plate("data", y.shape[0]):
            pyro.sample("y", dist.Normal(mu + c.float(), 1.0), obs=y)

    with pytest.raises(ModelError, match="outside the 'data' plate"):
        pointwise_log_likelihood(model, torch.zeros(3), {"mu": torch.zeros(2)})

    def given_mu(y):
        return pyro.condition(model, data={"mu": torch.tensor(0.0)})(y)

    for score in (log_likelihood, lambda m, y: elbo(m, None, y)):
        with pytest.raises(ModelError, match="outside the 'data' plate"):
            score(given_mu, torch.zeros(3))


# ---------------------------------------------------------------------------- exact


def test_log_likelihood_and_elbo_are_exact_without_other_latents():
    expected = mixture_by_hand(X, W, MU, SIGMA)
    torch.testing.assert_close(log_likelihood(fixed_mixture, X), expected, atol=1e-10, rtol=0)
    torch.testing.assert_close(elbo(fixed_mixture, None, X), expected, atol=1e-10, rtol=0)
    torch.testing.assert_close(log_likelihood(fixed_mixture, X, batch_size=2), expected,
                               atol=1e-10, rtol=0)


def test_pyro_param_mixture_is_exact_and_differentiable():
    """Global parameters as ``pyro.param``: exact log-likelihood, and its gradient in the
    means equals autograd through the hand-written log-sum-exp."""

    @pyro.infer.config_enumerate
    def model(x):
        w = pyro.param("w", W.clone(), constraint=constraints.simplex)
        mu = pyro.param("mu", MU.clone())
        s = pyro.param("s", SIGMA.clone(), constraint=constraints.positive)
        with pyro.plate("data", x.shape[0]):
            c = pyro.sample("c", dist.Categorical(w))
            pyro.sample("x", dist.Normal(mu[c], s[c]), obs=x)

    ll = log_likelihood(model, X, differentiable=True)
    torch.testing.assert_close(ll.detach(), mixture_by_hand(X, W, MU, SIGMA), atol=1e-10,
                               rtol=0)
    ll.sum().backward()
    mu = MU.clone().requires_grad_()
    comp = dist.Normal(mu, SIGMA).log_prob(X[:, None]) + W.log()
    (expected,) = torch.autograd.grad(torch.logsumexp(comp, -1).sum(), mu)
    torch.testing.assert_close(pyro.param("mu").unconstrained().grad, expected)
    assert expected.abs().min() > 1e-3  # a gradient that a constant would not match


def test_nested_plate_sums_the_assignment_after_the_pixels():
    """One class ``c_n`` per datum, ``D`` pixels i.i.d. given it: ``log p(x_n) =
    logsumexp_c(log w_c + sum_d log N(x_nd; mu_c, s_c))``, not a sum of per-pixel mixtures."""
    D = 4
    x = torch.randn(5, D, generator=torch.Generator().manual_seed(2), dtype=F64) * 2

    @pyro.infer.config_enumerate
    def model(x):
        with pyro.plate("data", x.shape[0], dim=-2):
            c = pyro.sample("c", dist.Categorical(W))
            with pyro.plate("pixels", D, dim=-1):
                pyro.sample("x", dist.Normal(MU[c], SIGMA[c]), obs=x)

    per_class = torch.stack([
        torch.tensor([sum(normal_log_pdf(v, mc, sc) for v in row) for row in x.tolist()],
                     dtype=F64)
        for mc, sc in zip(MU.tolist(), SIGMA.tolist())
    ], -1)  # [N, C]
    expected = torch.logsumexp(per_class + W.log(), -1)
    naive = torch.stack([mixture_by_hand(row, W, MU, SIGMA).sum() for row in x])
    assert (expected - naive).abs().max() > 1.0  # the wrong order of sums is far off
    torch.testing.assert_close(log_likelihood(model, x), expected, atol=1e-10, rtol=0)


def test_continuous_latent_with_enumerated_site():
    """``z_n ~ N(0, 1)`` from the guide (= the prior), ``c_n`` enumerated, ``x_n ~ N(z_n +
    mu_c, s_c)``: each importance weight is ``logsumexp_c(log w_c + log N(x_n; z_kn + mu_c,
    s_c))`` at the guide's own draws ``z_kn`` (prior and guide cancel)."""
    drawn = []

    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros((), dtype=F64), 1.0))
            c = pyro.sample("c", dist.Categorical(W), infer={"enumerate": "parallel"})
            pyro.sample("x", dist.Normal(z + MU[c], SIGMA[c]), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            drawn.append(pyro.sample("z", dist.Normal(torch.zeros((), dtype=F64), 1.0)))

    def weights() -> torch.Tensor:
        z = drawn[-1]  # [K, N]
        comp = dist.Normal(z[..., None] + MU, SIGMA).log_prob(X[:, None]) + W.log()
        return torch.logsumexp(comp, -1)

    K = 6
    iw = log_likelihood(model, X, guide, num_particles=K)
    torch.testing.assert_close(iw, torch.logsumexp(weights(), 0) - math.log(K))
    bound = elbo(model, guide, X, num_particles=K)
    torch.testing.assert_close(bound, weights().mean(0))
    with pytest.raises(ModelError, match="analytic_kl=False"):
        elbo(model, guide, X, analytic_kl=True)


# ---------------------------------------------------------------------------- fast path


def test_programs_without_enumeration_trace_once_per_chunk(monkeypatch):
    """The plain path is unchanged: one trace per chunk, and no contraction."""

    def plain(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(0.5, 2.0), obs=x)

    def refuse(*args, **kwargs):
        raise AssertionError("the enumeration path ran for a program without enumeration")

    monkeypatch.setattr(estimators, "contract_sites", refuse)
    program, calls = counting(plain)
    structure = structure_of(program, X)
    calls.clear()
    got = log_likelihood(program, X, structure=structure)
    torch.testing.assert_close(got, dist.Normal(0.5, 2.0).log_prob(X))
    assert len(calls) == 1
