"""Users' guides the way Pyro users write them: per-datum parameters, subsampling, autoguides.

A non-amortised guide keeps one set of parameters per datum (``pyro.param("loc",
torch.zeros(N, k))`` or a closed-over tensor of ``N`` rows) and so runs only on all ``N`` rows;
Pyro's subsampling convention (``pyro.plate("data", N, subsample_size=B) as idx``) runs on the
plate's indices. The evaluation layer runs such programs on every row (chunking the particles,
or supplying the plate's indices itself) and must then give the same numbers as a closed form.

The reference is a linear-Gaussian latent model, ``z_n ~ N(0, I_k)``,
``x_n | z_n ~ N(W z_n + b, s^2 I_D)``, whose marginal ``x_n ~ N(b, W W^T + s^2 I)`` and posterior
``z_n | x_n ~ N(A^-1 W^T (x_n - b) / s^2, A^-1)`` with ``A = I + W^T W / s^2`` are analytic. With
the exact posterior as guide every importance weight equals ``p(x_n)``, so both the estimate
and the ELBO equal the marginal to float rounding; with a perturbed guide the ELBO lies below it
by at least the guide's KL. Failure budget: the Monte Carlo bands are >= 5 standard errors of
the fixed-seed estimates.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from pyro.optim import Adam

import ppgen
from ppgen.evaluate import estimators, pointwise_log_likelihood

pytestmark = [pytest.mark.usefixtures("fresh_pyro", "one_thread")]

N, K_LAT, D, SIGMA = 50, 2, 3, 0.7


def _linear_gaussian(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D, K_LAT, generator=g)
    b = torch.randn(D, generator=g)
    z = torch.randn(N, K_LAT, generator=g)
    x = z @ W.T + b + SIGMA * torch.randn(N, D, generator=g)
    return W, b, x


W, B, X = _linear_gaussian()


def model(x):
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([x.shape[0], K_LAT]).to_event(1))
        pyro.sample("x", dist.Normal(z @ W.T + B, SIGMA).to_event(1), obs=x)


def analytic_marginal(x: torch.Tensor) -> torch.Tensor:
    cov = W @ W.T + SIGMA**2 * torch.eye(D)
    return dist.MultivariateNormal(B, covariance_matrix=cov).log_prob(x)


def exact_posterior(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means ``[N, k]`` and the (shared) scale_tril ``[k, k]``."""
    A = torch.eye(K_LAT) + W.T @ W / SIGMA**2
    cov = torch.linalg.inv(A)
    return (x - B) @ W @ cov.T / SIGMA**2, torch.linalg.cholesky(cov)


MEAN, TRIL = exact_posterior(X)


def param_guide(x):
    """The textbook non-amortised guide: one ``loc`` row per datum in the param store."""
    loc = pyro.param("loc", MEAN.clone())
    with pyro.plate("data", N):
        pyro.sample("z", dist.MultivariateNormal(loc, scale_tril=TRIL))


def closure_guide(x):
    """Per-datum values closed over (no param store), plate sized by the data."""
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.MultivariateNormal(MEAN, scale_tril=TRIL))


def subsample_model(x):
    with pyro.plate("data", x.shape[0], subsample_size=16) as idx:
        z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([len(idx), K_LAT]).to_event(1))
        pyro.sample("x", dist.Normal(z @ W.T + B, SIGMA).to_event(1), obs=x[idx])


def subsample_guide(x):
    """Pyro's subsampling convention: the parameter indexed by the plate's indices."""
    loc = pyro.param("loc", MEAN.clone())
    with pyro.plate("data", x.shape[0], subsample_size=16) as idx:
        pyro.sample("z", dist.MultivariateNormal(loc[idx], scale_tril=TRIL))


def auto_subsample_guide(x):
    """Pyro subsamples a parameter declared with ``event_dim`` inside the plate itself."""
    with pyro.plate("data", x.shape[0], subsample_size=16):
        loc = pyro.param("loc", MEAN.clone(), event_dim=1)
        pyro.sample("z", dist.MultivariateNormal(loc, scale_tril=TRIL))


def given_subsample_guide(x, idx=None):
    """``subsample=`` from the caller: ``None`` (ppgen's call) means every row."""
    loc = pyro.param("loc", MEAN.clone())
    with pyro.plate("data", N, subsample=idx) as i:
        pyro.sample("z", dist.MultivariateNormal(loc[i], scale_tril=TRIL))


PROGRAMS = {
    "param": (model, param_guide),
    "closure": (model, closure_guide),
    "subsample": (subsample_model, subsample_guide),
    "auto-subsample": (subsample_model, auto_subsample_guide),
    "given-subsample": (model, given_subsample_guide),
}


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_exact_non_amortised_guide_gives_the_analytic_marginal(name):
    program, guide = PROGRAMS[name]
    exact = analytic_marginal(X)
    ll = ppgen.log_likelihood(program, X, guide, num_particles=7)
    elbo = ppgen.elbo(program, guide, X, num_particles=3)
    assert ll.shape == elbo.shape == (N,)
    torch.testing.assert_close(ll, exact, atol=2e-4, rtol=1e-5)
    torch.testing.assert_close(elbo, exact, atol=2e-4, rtol=1e-5)


def test_perturbed_guide_elbo_below_marginal_and_iw_estimate_converges():
    """A wider, shifted guide: the ELBO is at least its KL below log p(x); K = 2000 particles
    bring the importance-weighted estimate close to the marginal."""
    def guide(x):
        loc = pyro.param("loc", MEAN + 0.3)
        with pyro.plate("data", N):
            pyro.sample("z", dist.MultivariateNormal(loc, scale_tril=1.5 * TRIL))

    exact = analytic_marginal(X)
    pyro.set_rng_seed(1)
    elbo = ppgen.elbo(model, guide, X, num_particles=200)
    ll = ppgen.log_likelihood(model, X, guide, num_particles=2000)
    kl = torch.distributions.kl_divergence(
        dist.MultivariateNormal(MEAN + 0.3, scale_tril=1.5 * TRIL),
        dist.MultivariateNormal(MEAN, scale_tril=TRIL))
    assert float(kl.min()) > 0.2
    assert (elbo < exact - 0.5 * kl).all()
    assert (ll > elbo).all()
    # per datum the estimate's sd is about 0.03 nats here (and its bias far smaller)
    assert float((ll - exact).abs().max()) < 0.15
    assert abs(float((ll - exact).mean())) < 0.02


def test_particles_are_chunked_when_the_data_cannot_be(monkeypatch):
    """A whole-data program still keeps ``K x N`` within the chunk budget: the particles are
    split, and the estimate is the same whatever the split."""
    monkeypatch.setattr(estimators, "ROWS_PER_CHUNK", 4 * N)
    ll = ppgen.log_likelihood(model, X, param_guide, num_particles=10)
    elbo = ppgen.elbo(model, param_guide, X, num_particles=10)
    torch.testing.assert_close(ll, analytic_marginal(X), atol=2e-4, rtol=1e-5)
    torch.testing.assert_close(elbo, analytic_marginal(X), atol=2e-4, rtol=1e-5)


def test_amortised_program_is_probed_on_one_row_only():
    """The fast path is unchanged: a program that scores any rows is traced once on a single
    row, then once per chunk -- no whole-data probe."""
    seen = []

    def amortised_guide(x):
        seen.append(x.shape[0])
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.MultivariateNormal(exact_posterior(x)[0], scale_tril=TRIL))

    ll = ppgen.log_likelihood(model, X, amortised_guide, num_particles=7)
    torch.testing.assert_close(ll, analytic_marginal(X), atol=2e-4, rtol=1e-5)
    assert seen == [1, N]


def test_plate_of_another_size_than_the_data_is_a_clear_error():
    """Programs made for 51 rows, given 50."""
    def model51(x):
        with pyro.plate("data", N + 1):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([N + 1, K_LAT]).to_event(1))
            pyro.sample("x", dist.Normal(z @ W.T + B, SIGMA).to_event(1), obs=x)

    def guide51(x):
        with pyro.plate("data", N + 1):
            pyro.sample("z", dist.Normal(0.0, 1.0).expand([N + 1, K_LAT]).to_event(1))

    with pytest.raises(ppgen.ModelError, match="plate has size 51 but the data have 50 rows"):
        ppgen.log_likelihood(model51, X, guide51, num_particles=3)
    with pytest.raises(ppgen.ModelError, match="one row per datum"):
        ppgen.log_likelihood(model, X, guide51, num_particles=3)


def test_pointwise_log_likelihood_of_a_program_closing_over_its_covariates():
    """A regression with ``X`` closed over runs on all rows; many draws make the default chunk
    smaller than the data, so the draws are chunked instead."""
    g = torch.Generator().manual_seed(3)
    cov = torch.randn(N, 2, generator=g)
    y = cov @ torch.tensor([1.0, -1.0]) + 0.5 * torch.randn(N, generator=g)

    def regression(y):
        w = pyro.sample("w", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        with pyro.plate("data", y.shape[0]):
            pyro.sample("y", dist.Normal(cov @ w, 0.5), obs=y)

    w = torch.randn(3000, 2, generator=g)
    ll = pointwise_log_likelihood(regression, y, {"w": w})
    expected = dist.Normal(w @ cov.T, 0.5).log_prob(y)
    assert ll.shape == (3000, N)
    torch.testing.assert_close(ll, expected, atol=1e-5, rtol=1e-5)


def test_autonormal_fitted_by_pyro_svi_is_scored():
    """Pyro's ``AutoNormal`` (per-datum locs and scales; samples through an auxiliary
    ``z_unconstrained`` site) fitted by Pyro's own SVI, then scored: ppgen's ELBO agrees with
    Pyro's ``Trace_ELBO`` on the same guide, lies below the analytic marginal, and the
    importance-weighted estimate closes most of the gap."""
    guide = AutoNormal(model)
    svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(300):
        svi.step(X)
    exact = analytic_marginal(X)
    pyro.set_rng_seed(2)
    elbo = ppgen.elbo(model, guide, X, num_particles=400)
    ll = ppgen.log_likelihood(model, X, guide, num_particles=1000)
    with torch.no_grad():
        pyro_elbo = -Trace_ELBO(num_particles=400, vectorize_particles=True,
                                max_plate_nesting=1).loss(model, guide, X)
    assert elbo.shape == ll.shape == (N,)
    assert abs(float(elbo.sum()) - pyro_elbo) < 1.0
    assert float(elbo.sum()) < float(exact.sum())
    assert float(ll.sum()) <= float(exact.sum()) + 0.5
    assert float(exact.sum() - ll.sum()) < 0.2 * float(exact.sum() - elbo.sum())
