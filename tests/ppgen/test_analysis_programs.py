"""``ppgen.analysis.posterior`` on programs the way Pyro users write and call them.

Pyro's own argument names (``warmup_steps`` of ``MCMC``, the kernel's ``target_accept_prob``)
are options, never keywords of the user's program; the program's keywords go in
``model_kwargs`` (or, as before, as extra keywords the program declares). Several named arrays
(a regression's ``y`` and ``X``) come as ``data={...}``, and globals fixed by ``pyro.condition``
stay fixed. The log-likelihood group is float64.

Failure budget: the conjugate regression's posterior means are compared within 5 Monte Carlo
standard errors (``sd / sqrt(ESS)``, ESS >= 200 checked); seeds are fixed, so a failure means
a behaviour change.
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from ppgen import analysis
from ppgen.analysis import build
from ppgen.errors import ModelError

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning"),
    pytest.mark.usefixtures("one_thread"),
]

QUICK = {"num_samples": 30, "num_chains": 1, "seed": 0}


def normal_model(x):
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Normal(mu, 1.0), obs=x)


def scaled_model(x, scale=1.0):
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Normal(mu, scale), obs=x)


X1 = torch.randn(20, generator=torch.Generator().manual_seed(1)) + 2.0


@pytest.fixture
def spy(monkeypatch):
    """The arguments ``posterior`` hands to its MCMC driver (which still runs)."""
    calls = []
    real = build.run_chains

    def recording(model, args, kwargs, **options):
        calls.append({"args": args, "kwargs": kwargs, **options})
        return real(model, args, kwargs, **options)

    monkeypatch.setattr(build, "run_chains", recording)
    return calls


def test_pyro_mcmc_argument_names_are_options(spy):
    idata = analysis.posterior(normal_model, X1, warmup_steps=20, target_accept_prob=0.9,
                               max_tree_depth=4, disable_progbar=True, **QUICK)
    (call,) = spy
    assert call["num_warmup"] == 20 and call["kwargs"] == {}
    assert call["kernel_options"] == {"target_accept_prob": 0.9, "max_tree_depth": 4}
    assert idata.posterior.attrs["num_warmup"] == 20
    assert idata.posterior["mu"].shape == (1, 30)


def test_vi_options_by_their_names(monkeypatch):
    calls = []
    real = build.fit_guide

    def recording(model, args, kwargs, **options):
        calls.append(options)
        return real(model, args, kwargs, **options)

    monkeypatch.setattr(build, "fit_guide", recording)
    analysis.posterior(normal_model, X1, method="svi", num_steps=5, lr=0.01, **QUICK)
    assert calls[0]["num_steps"] == 5 and calls[0]["lr"] == 0.01
    with pytest.raises(ModelError, match="target_accept_prob.*method='svi'"):
        analysis.posterior(normal_model, X1, method="svi", target_accept_prob=0.9, **QUICK)


def test_warmup_given_twice_differently_is_refused():
    with pytest.raises(ModelError, match="warmup_steps.*num_warmup"):
        analysis.posterior(normal_model, X1, warmup_steps=20, num_warmup=30, **QUICK)


def test_unknown_option_is_named_before_it_reaches_the_program():
    with pytest.raises(ModelError, match="warmup_step'.*model_kwargs"):
        analysis.posterior(normal_model, X1, warmup_step=20, **QUICK)
    with pytest.raises(ModelError, match="initial_params"):
        analysis.posterior(normal_model, X1, initial_params={"mu": torch.zeros(())}, **QUICK)


def test_model_keywords_explicitly_or_as_before(spy):
    analysis.posterior(scaled_model, X1, model_kwargs={"scale": 2.0}, num_warmup=10, **QUICK)
    analysis.posterior(scaled_model, X1, scale=2.0, num_warmup=10, **QUICK)
    assert [c["kwargs"] for c in spy] == [{"scale": 2.0}, {"scale": 2.0}]
    with pytest.raises(ModelError, match="both"):
        analysis.posterior(scaled_model, X1, scale=2.0, model_kwargs={"scale": 3.0}, **QUICK)


def test_a_program_keyword_named_like_a_pyro_option_is_ambiguous():
    def model(x, step_size=1.0):
        normal_model(x * step_size)

    with pytest.raises(ModelError, match="step_size.*model_kwargs"):
        analysis.posterior(model, X1, step_size=0.5, **QUICK)


# ---------------------------------------------------------------- several arrays, pyro.condition

TAU, SIGMA, N = 2.0, 0.5, 40


def regression(y, X):
    w = pyro.sample("w", dist.Normal(0.0, TAU).expand([X.shape[1]]).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfNormal(1.0))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Normal(X @ w, sigma), obs=y)


def regression_data():
    g = torch.Generator().manual_seed(5)
    X = torch.cat([torch.ones(N, 1), torch.randn(N, 2, generator=g)], dim=1)
    y = X @ torch.tensor([0.5, 1.0, -2.0]) + SIGMA * torch.randn(N, generator=g)
    return X, y


def conjugate_posterior(X, y):
    """``w | y ~ N(m, S)`` with ``S = (X^T X / s^2 + I / tau^2)^-1``, ``m = S X^T y / s^2``."""
    X, y = X.double(), y.double()
    S = torch.linalg.inv(X.T @ X / SIGMA**2 + torch.eye(X.shape[1]) / TAU**2)
    return S @ X.T @ y / SIGMA**2, S.diagonal().sqrt()


@pytest.fixture(scope="module")
def regression_fit():
    X, y = regression_data()
    fixed = pyro.condition(regression, data={"sigma": torch.tensor(SIGMA)})
    idata = analysis.posterior(fixed, data={"y": y, "X": X}, num_samples=400,
                               warmup_steps=300, num_chains=2, seed=0)
    return X, y, idata


def test_regression_with_named_arrays_and_a_conditioned_global(regression_fit):
    X, y, idata = regression_fit
    mean, sd = conjugate_posterior(X, y)
    assert set(idata.posterior.data_vars) == {"w"}  # sigma is fixed, not sampled
    w = idata.posterior["w"].values  # [C, D, 3]
    ess = az.ess(idata, var_names=["w"])["w"].values
    assert (ess >= 200).all()
    err = np.abs(w.reshape(-1, 3).mean(0) - mean.numpy())
    assert (err < 5 * sd.numpy() / np.sqrt(ess)).all(), (err, sd)
    assert set(idata.observed_data.data_vars) == {"y"}
    np.testing.assert_array_equal(idata.observed_data["y"].values, y.numpy())
    assert idata.constant_data["sigma"].values.item() == SIGMA


def test_log_likelihood_is_the_data_sites_given_the_fixed_global(regression_fit):
    X, y, idata = regression_fit
    ll = idata.log_likelihood["y"].values  # [C, D, N]
    assert ll.shape == (2, 400, N) and ll.dtype == np.float64
    w = torch.as_tensor(idata.posterior["w"].values, dtype=torch.float64)
    expected = dist.Normal(w @ X.double().T, SIGMA).log_prob(y.double()).numpy()
    np.testing.assert_allclose(ll, expected, rtol=1e-6, atol=1e-6)


def test_predictive_draws_keep_the_conditioned_global_fixed(regression_fit):
    """Residuals of the posterior predictive have sd SIGMA (a resampled sigma ~ HalfNormal(1)
    would give about 0.8); 800 x 40 residuals put its standard error near 0.3%."""
    X, _, idata = regression_fit
    rep = idata.posterior_predictive["y"].values.reshape(-1, N)
    w = idata.posterior["w"].values.reshape(-1, 3)
    resid = rep - w @ X.numpy().T
    assert abs(resid.std() / SIGMA - 1) < 0.03


def test_closed_over_covariates_work_too():
    X, y = regression_data()

    def model(y):
        regression(y, X)

    idata = analysis.posterior(pyro.condition(model, data={"sigma": torch.tensor(SIGMA)}), y,
                               num_samples=50, num_warmup=50, num_chains=1, seed=0)
    w = torch.as_tensor(idata.posterior["w"].values[0], dtype=torch.float64)
    expected = dist.Normal(w @ X.double().T, SIGMA).log_prob(y.double()).numpy()
    np.testing.assert_allclose(idata.log_likelihood["y"].values[0], expected, rtol=1e-6,
                               atol=1e-6)


# ---------------------------------------------------------------- float64 log-likelihood


def test_log_likelihood_in_float64_keeps_pareto_k_finite():
    """Points with logits ~ 100 have ``log p = -log1p(exp(-100))``: exactly 0 in float32 for
    every draw (then PSIS finds no tail and reports k = inf), about -4e-44 in float64."""
    x = torch.tensor([10.0, 11.0, 12.0, 0.1, -0.2, 0.05, -0.1, 0.3])
    y = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0])

    def logistic(y, x):
        w = pyro.sample("w", dist.Normal(10.0, 0.5))
        with pyro.plate("data", y.shape[0]):
            pyro.sample("y", dist.Bernoulli(logits=w * x), obs=y)

    idata = analysis.posterior(logistic, data={"y": y, "x": x}, num_samples=200,
                               num_warmup=100, num_chains=2, seed=0)
    ll = idata.log_likelihood["y"].values
    assert ll.dtype == np.float64 and (ll[..., :3] < 0).all()
    k = analysis.diagnostics(idata).pareto_k
    assert np.isfinite(k).all(), k
    assert "inf" not in analysis.report(idata)


# ---------------------------------------------------------------------------- data shapes


def test_data_whose_shape_the_program_broadcasts_are_refused_before_sampling(monkeypatch):
    """``[N, 1]`` data observed by a scalar site in ``pyro.plate("data", N)`` broadcast to an
    ``[N, N]`` log-density: NUTS would sample a wrong posterior and the log-likelihood group
    then failed (in worker processes, with several chains). One line, before any chain."""
    monkeypatch.setattr(build, "run_chains", lambda *a, **k: pytest.fail("sampled"))
    with pytest.raises(ModelError) as info:
        analysis.posterior(normal_model, X1[:, None], **QUICK)
    message = str(info.value)
    assert "'x'" in message and "(20, 1)" in message and "(20,)" in message
    assert "\n" not in message


def test_cli_reads_a_one_column_csv_as_a_vector(tmp_path, capsys):
    from testkit import NORMAL_MODEL_SOURCE

    from ppgen.cli import main

    (tmp_path / "prog.py").write_text(NORMAL_MODEL_SOURCE)
    np.savetxt(tmp_path / "one_col.csv", X1.numpy()[:, None], delimiter=",")
    out = tmp_path / "post"
    code = main(["posterior", f"{tmp_path / 'prog.py'}:model", "--data",
                 str(tmp_path / "one_col.csv"), "--out", str(out), "--samples", "10",
                 "--chains", "2", "--chain-method", "sequential", "--no-plots"])
    assert code == 0, capsys.readouterr().err
    idata = az.from_netcdf(out / "posterior.nc")
    assert idata.observed_data["x"].shape == (20,)
    assert idata.log_likelihood["x"].shape == (2, 10, 20)


REGRESSION_SOURCE = (
    "import pyro, torch, pyro.distributions as dist\n"
    "def regression(X, y=None):\n"
    "    w = pyro.sample('w', dist.Normal(torch.zeros(2), 1.0).to_event(1))\n"
    "    with pyro.plate('data', X.shape[0]):\n"
    "        pyro.sample('y', dist.Normal(X @ w, 0.5), obs=y)\n"
)


def test_cli_passes_named_arrays_to_a_regression_and_its_posterior_is_the_conjugate_one(
        tmp_path, capsys):
    """``--data y=y.npy --data X=X.npy`` (and the same arrays in one ``.npz``) reach the program
    as keywords: the NUTS posterior mean of the weights is the conjugate Gaussian's, within
    5 Monte Carlo standard errors (failure budget ~1e-6 per coordinate with a fixed seed)."""
    from ppgen.cli import main

    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2)).astype(np.float32)
    y = (X @ np.array([1.5, -0.7]) + 0.5 * rng.normal(size=30)).astype(np.float32)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    np.savez(tmp_path / "both.npz", X=X, y=y)
    (tmp_path / "prog.py").write_text(REGRESSION_SOURCE)
    common = ["--samples", "300", "--chains", "2", "--chain-method", "sequential",
              "--no-plots", "--seed", "1"]
    runs = {"files": ["--data", f"y={tmp_path / 'y.npy'}", "--data", f"X={tmp_path / 'X.npy'}"],
            "npz": ["--data", str(tmp_path / "both.npz")]}
    draws = {}
    for name, data in runs.items():
        out = tmp_path / name
        code = main(["posterior", f"{tmp_path / 'prog.py'}:regression", *data,
                     "--out", str(out), *common])
        assert code == 0, capsys.readouterr().err
        idata = az.from_netcdf(out / "posterior.nc")
        assert idata.observed_data["y"].shape == (30,)
        draws[name] = idata.posterior["w"].values.reshape(-1, 2)
    np.testing.assert_array_equal(draws["files"], draws["npz"])
    X64, y64 = X.astype(np.float64), y.astype(np.float64)
    cov = np.linalg.inv(X64.T @ X64 / 0.25 + np.eye(2))
    mean = cov @ X64.T @ y64 / 0.25
    se = np.sqrt(np.diag(cov) / len(draws["files"])) * 2  # ESS >= a quarter of the draws
    assert np.all(np.abs(draws["files"].mean(0) - mean) < 5 * se), (draws["files"].mean(0), mean)
