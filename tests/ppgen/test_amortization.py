"""Tests of ppgen.analysis.amortization_gap against closed forms.

Reference: probabilistic PCA (z ~ N(0, I_2), x | z ~ N(Wz + b, s^2 I)) with strongly correlated
columns of W, so the exact posterior N(m, S) is tilted (correlation about -0.8) and a diagonal
Gaussian cannot match it. Everything is closed-form:

* ``log p(x) = log N(x; b, W W^T + s^2 I)``;
* the amortised guide is a deliberately wrong diagonal Gaussian (mean shifted by 0.5, sds
  halved), whose ``ELBO = log p(x) - KL(q || N(m, S))``;
* the best diagonal Gaussian q* has mean ``m`` and variances ``1 / Lambda_ii`` with
  ``Lambda = S^-1``, so ``KL(q* || p) = (log det S + sum_i log Lambda_ii) / 2`` (the
  approximation gap, 0.56 nats here) and the amortisation gap is the difference of the two KLs.

Failure budget: every estimate must lie within 4 of its own reported Monte Carlo standard
errors (plus 0.01 nats for the optimisation's residual), and the NUTS moments within
4 sd / sqrt(ESS); seeds are fixed, so a failure is a behaviour change, not bad luck.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from ppgen.analysis import amortization_gap, plot_amortization_gap
from ppgen.errors import ModelError, TrainingError
from ppgen.models import VAE


def _evaluate_helpers():
    """The pPCA closed forms of ``test_evaluate.py``, imported (not copied)."""
    name = "_ppgen_test_evaluate_helpers"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).with_name("test_evaluate.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


helpers = _evaluate_helpers()
F64 = torch.float64
SHRINK, SHIFT = 0.5, 0.5
W = torch.tensor([[1.0, 0.8], [0.9, 1.0], [1.0, 0.9], [-0.2, 0.1]], dtype=F64)
PPCA = helpers.PPCA(W, torch.zeros(4, dtype=F64), 0.7)

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning"),
    pytest.mark.usefixtures("one_thread"),
]




def data() -> torch.Tensor:
    return helpers.ppca_data(PPCA, n=2, seed=2)


def exact() -> dict[str, torch.Tensor]:
    x = data()
    mean, cov = PPCA.posterior(x)
    precision = torch.linalg.inv(cov)
    kl_star = 0.5 * (torch.logdet(cov) + precision.diagonal().log().sum())
    log_px = PPCA.log_marginal(x)
    return {
        "log_px": log_px,
        "elbo_amortized": helpers.mean_field_closed_form_elbo(PPCA, x, SHRINK, SHIFT),
        "elbo_optimal": log_px - kl_star,
        "mean": mean, "cov": cov, "optimal_scale": precision.diagonal().rsqrt(),
    }


@pytest.fixture(scope="module")
def gap():
    # One chain with a dense mass matrix keeps NUTS to a few seconds; the checks below use
    # the chain's own ESS.
    return amortization_gap(
        helpers.ppca_model(PPCA), data(), helpers.mean_field_guide(PPCA, SHRINK, SHIFT),
        num_samples=300, num_warmup=200, num_chains=1, num_particles=50_000, num_steps=200,
        seed=0, mcmc_options={"kernel_options": {"full_mass": True}},
    )


@pytest.mark.parametrize("name", ["log_px", "elbo_amortized", "elbo_optimal"])
def test_bounds_match_closed_form(gap, name):
    got, se = getattr(gap, name), gap.se[name]
    assert (se > 0).all() and (se < 0.05).all(), se
    np.testing.assert_array_less(np.abs(got - exact()[name].numpy()), 4 * se + 0.01)


def test_gaps_match_closed_form(gap):
    e = {k: v.numpy() for k, v in exact().items()}
    se = np.sqrt(sum(s**2 for s in gap.se.values()))
    tol = 4 * se + 0.02
    np.testing.assert_array_less(np.abs(gap.inference_gap - (e["log_px"] - e["elbo_amortized"])),
                                 tol)
    np.testing.assert_array_less(
        np.abs(gap.amortization_gap - (e["elbo_optimal"] - e["elbo_amortized"])), tol)
    np.testing.assert_array_less(
        np.abs(gap.approximation_gap - (e["log_px"] - e["elbo_optimal"])), tol)
    # The decomposition is an identity, and the design makes both parts clearly positive.
    np.testing.assert_allclose(gap.inference_gap, gap.amortization_gap + gap.approximation_gap)
    assert (gap.approximation_gap > 0.4).all() and (gap.amortization_gap > 2.0).all()


def test_optimal_guide_is_the_best_diagonal_gaussian(gap):
    e = exact()
    np.testing.assert_allclose(gap.optimal_loc, e["mean"].numpy(), atol=0.03)
    np.testing.assert_allclose(gap.optimal_scale, e["optimal_scale"].expand(2, -1).numpy(),
                               atol=0.03)
    assert gap.losses[-20:].mean() < gap.losses[:20].mean()


def test_nuts_draws_match_exact_posterior(gap):
    e = exact()
    sd = e["cov"].diagonal().sqrt().numpy()
    corr = float(e["cov"][0, 1]) / float(sd.prod())
    post = gap.idata.posterior[gap.site]
    ess = az.ess(gap.idata, var_names=[gap.site])[gap.site].values  # [N, L]
    assert ess.min() > 80, ess
    for n in range(2):
        draws = gap.draws["nuts"][n]  # [S, L]
        assert draws.shape == (300, 2)
        np.testing.assert_array_less(np.abs(draws.mean(0) - e["mean"][n].numpy()),
                                     4 * sd / np.sqrt(ess[n]))
        np.testing.assert_allclose(draws.std(0), sd, rtol=0.2)
        assert abs(np.corrcoef(draws.T)[0, 1] - corr) < 0.15
    assert post.dims == ("chain", "draw", "data", f"{gap.site}_dim_1")


def test_result_shapes_table_and_plot(gap, tmp_path):
    assert gap.site == "z"
    assert gap.rhat.shape == (2,) and np.isnan(gap.rhat).all()  # one chain: no R-hat
    for kind in ("nuts", "amortized", "optimal"):
        assert gap.draws[kind].shape == (2, 300, 2)
    # The amortised draws really come from the shifted, narrowed guide.
    shifted = exact()["mean"].numpy() + SHIFT
    np.testing.assert_allclose(gap.draws["amortized"].mean(1), shifted, atol=0.1)
    table = gap.table()
    assert list(table.columns)[-1] == "amortization gap" and len(table) == 2
    assert "amortization gap" in str(gap)
    fig = plot_amortization_gap(gap, tmp_path / "gap.png")
    assert (tmp_path / "gap.png").stat().st_size > 5000
    assert len(fig.axes) == 3


def test_zoo_vae_runs_and_is_left_as_it_was():
    """A tiny untrained VAE through its own guide: shapes, the identity, and no side effects."""
    torch.manual_seed(0)
    vae = VAE(6, latent_dim=2, hidden_dims=(8,), likelihood="bernoulli")
    x = (torch.rand(1, 6, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    state = torch.get_rng_state()
    gap = amortization_gap(vae, x, num_samples=40, num_warmup=40, num_chains=1,
                           num_particles=500, num_steps=30, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert vae.training and all(p.requires_grad for p in vae.parameters())
    assert gap.draws["nuts"].shape == (1, 40, 2)
    np.testing.assert_allclose(gap.inference_gap, gap.amortization_gap + gap.approximation_gap)
    # q* starts at the encoder and climbs its own ELBO: it cannot end clearly below it.
    assert (gap.elbo_optimal > gap.elbo_amortized - 4 * gap.se["elbo_amortized"] - 0.05).all()


def test_refuses_what_it_cannot_measure():
    x = data()
    with pytest.raises(ModelError, match="guide"):
        amortization_gap(helpers.ppca_model(PPCA), x)

    def positive_model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Gamma(torch.ones(2, dtype=F64), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z.sum(-1, keepdim=True), 1.0).to_event(1), obs=x)

    def positive_guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Gamma(torch.ones(x.shape[0], 2, dtype=F64), 1.0).to_event(1))

    with pytest.raises(ModelError, match="unconstrained"):
        amortization_gap(positive_model, x[:, :1], positive_guide)


def test_cli_amortization_gap_writes_outputs(tmp_path, capsys):
    from ppgen.cli import main

    torch.manual_seed(0)
    vae = VAE(6, latent_dim=2, hidden_dims=(8,), likelihood="bernoulli")
    vae.save(tmp_path / "vae.pt")
    x = (torch.rand(4, 6, generator=torch.Generator().manual_seed(2)) < 0.5).float()
    np.save(tmp_path / "x.npy", x.numpy())
    out = tmp_path / "out"
    code = main(["posterior", str(tmp_path / "vae.pt"), "--amortization-gap", "--rows", "2",
                 "--data", str(tmp_path / "x.npy"), "--out", str(out), "--samples", "20",
                 "--warmup", "20", "--chains", "1", "--no-plots"])
    assert code == 0
    assert "amortization gap" in (out / "amortization_gap.txt").read_text()
    assert len((out / "amortization_gap.csv").read_text().splitlines()) == 3
    assert az.from_netcdf(out / "posterior.nc").posterior["z"].shape == (1, 20, 2, 2)


# ---------------------------------------------------------------------------- the q* fit
SHIFTS = torch.tensor([-3.0, 0.0, 3.0, 6.0], dtype=F64)


def shifted_model(x, shift):
    """``z_n ~ N(0, I_2)``, ``x_n ~ N(z_n + shift_n, I_2)``: ``p(z_n | x_n) = N((x_n - shift_n)
    / 2, I / 2)`` is itself a diagonal Gaussian, so ``q*`` is known exactly."""
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(torch.zeros_like(x), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z + shift[:, None], 1.0).to_event(1), obs=x)


def standard_guide(x, shift):
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(torch.zeros_like(x), 1.0).to_event(1))


def _spy_on_engine(monkeypatch):
    from ppgen import engine

    calls = []
    real = engine.train

    def spy(*args, **kwargs):
        calls.append({"args": args, **kwargs, "history": real(*args, **kwargs)})
        return calls[-1]["history"]

    monkeypatch.setattr(engine, "train", spy)
    return calls


def test_optimal_fit_is_the_engines_and_keeps_each_datum_with_its_own_gaussian(monkeypatch):
    """One engine run: full batch, an epoch per step, lr decaying to lr/100, the losses its
    history; the shuffled rows carry each datum's Gaussian and per-datum keyword argument
    (mismatched rows would pull every mean towards the others', by up to 4.5)."""
    calls = _spy_on_engine(monkeypatch)
    x = helpers.ppca_data(PPCA, n=4, seed=3)[:, :2] + SHIFTS[:, None]
    py_state, np_state = random.getstate(), np.random.get_state()
    gap = amortization_gap(shifted_model, x, standard_guide, num_samples=30, num_warmup=30,
                           num_chains=1, num_particles=200, num_steps=150, lr=0.05, seed=0,
                           shift=SHIFTS)
    assert random.getstate() == py_state  # the engine's seeding is undone
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    (call,) = calls
    assert call["epochs"] == 150 and call["batch_size"] == 4 and call["optimizer"] == "adam"
    assert torch.equal(call["train_kwargs"]["rows"], torch.arange(4))
    history = call["history"]
    np.testing.assert_array_equal(gap.losses, history.column("train_loss"))
    np.testing.assert_allclose(history.column("lr"), 0.05 * 0.01 ** (np.arange(150) / 150))
    exact_loc = ((x - SHIFTS[:, None]) / 2).numpy()
    np.testing.assert_allclose(gap.optimal_loc, exact_loc, atol=0.05)
    np.testing.assert_allclose(gap.optimal_scale, np.full((4, 2), 0.5**0.5), atol=0.05)


def test_non_finite_elbo_raises_the_engines_training_error():
    """A likelihood whose scale underflows (variance 0 in float32) gives ELBO = -inf at the
    first step: the engine's NaN/inf guard stops the fit before NUTS runs."""

    def degenerate_model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros_like(x), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z, 1e-30).to_event(1), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(torch.zeros_like(x), 1.0).to_event(1))

    with pytest.raises(TrainingError, match="diverged in epoch 1.*non-finite"):
        amortization_gap(degenerate_model, torch.ones(2, 2), guide, num_steps=5)
