"""Parallel chains and the sampler-statistics recorder of ppgen.analysis.mcmc.

Everything here is exact (identical draws, identities of the Hamiltonian), not statistical.
"""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer.mcmc import NUTS
from testkit import NORMAL_MODEL_SOURCE

import ppgen.analysis.mcmc as mcmc
from ppgen.analysis.mcmc import check_pyro_internals, resolve_chain_method, run_chains
from ppgen.errors import ModelError

PRIOR_SD = 10.0

pytestmark = pytest.mark.usefixtures("one_thread")




def normal_model(x):
    mu = pyro.sample("mu", dist.Normal(0.0, PRIOR_SD))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Normal(mu, 1.0), obs=x)


def normal_data() -> torch.Tensor:
    return torch.randn(15, generator=torch.Generator().manual_seed(3)) + 1.0


def chains(how: str, method: str = "nuts"):
    return run_chains(normal_model, (normal_data(),), {}, method=method, num_samples=60,
                      num_warmup=40, num_chains=2, seed=5, chain_method=how)


@pytest.fixture(scope="module")
def sequential():
    return chains("sequential")


def test_parallel_chains_draw_exactly_the_sequential_chains(sequential):
    # A chain depends only on its seed, wherever it runs (forked workers inherit the model).
    parallel = chains("parallel")
    assert parallel.chain_method == "parallel" and sequential.chain_method == "sequential"
    np.testing.assert_array_equal(parallel.samples["mu"], sequential.samples["mu"])
    for name, values in sequential.stats.items():
        np.testing.assert_array_equal(parallel.stats[name], values, err_msg=name)
    assert not np.array_equal(sequential.samples["mu"][0], sequential.samples["mu"][1])


def test_parallel_runs_closures_and_reports_worker_errors():
    scale = torch.tensor(2.0)

    def closure(x):  # not picklable: workers must inherit it, not receive it
        mu = pyro.sample("mu", dist.Normal(0.0, scale))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(mu, 1.0), obs=x)

    out = run_chains(closure, (normal_data(),), {}, method="hmc", num_samples=5,
                     num_warmup=5, num_chains=2, seed=0, chain_method="parallel")
    assert out.samples["mu"].shape == (2, 5)

    def broken(x):
        raise ValueError("broken on purpose")

    with pytest.raises(ValueError, match="broken on purpose"):
        run_chains(broken, (normal_data(),), {}, method="nuts", num_samples=5,
                   num_warmup=5, num_chains=2, seed=0, chain_method="parallel")


@pytest.mark.parametrize("how", ["sequential", "parallel"])
def test_the_progress_bar_counts_every_iteration_of_every_chain(how, monkeypatch):
    """Warm-up and sampling of both chains: 2 x (5 + 7) ticks, also from forked workers."""
    import ppgen.analysis.mcmc as mcmc

    bars = []

    class Recording:
        def __init__(self, total, disable=None, **_):
            self.total, self.disable, self.n = total, disable, 0
            bars.append(self)

        def update(self, k=1):
            self.n += k

        def __enter__(self):
            return self

        def __exit__(self, *_):
            return False

    monkeypatch.setattr(mcmc, "tqdm", Recording)
    run_chains(normal_model, (normal_data(),), {}, method="hmc", num_samples=7,
               num_warmup=5, num_chains=2, seed=0, chain_method=how)
    assert [(b.total, b.n, b.disable) for b in bars] == [(24, 24, None)]
    run_chains(normal_model, (normal_data(),), {}, method="hmc", num_samples=7,
               num_warmup=5, num_chains=2, seed=0, chain_method=how, progress=False)
    assert bars[-1].disable is True


def test_chain_method_resolution(monkeypatch):
    x = (normal_data(),)
    assert resolve_chain_method("auto", 1, x, {}) == "sequential"
    assert resolve_chain_method("sequential", 4, x, {}) == "sequential"
    monkeypatch.setattr(mcmc, "_num_cpus", lambda: 4)
    assert resolve_chain_method("auto", 4, x, {}) == "parallel"
    monkeypatch.setattr(mcmc, "_num_cpus", lambda: 1)
    assert resolve_chain_method("auto", 4, x, {}) == "sequential"
    with pytest.raises(ModelError, match="chain_method"):
        resolve_chain_method("threads", 2, x, {})


def test_recorded_statistics_obey_the_hamiltonian(sequential):
    """``lp`` is the exact log joint at the draw; ``energy`` = previous ``-lp`` + KE >= it."""
    mu = torch.as_tensor(sequential.samples["mu"], dtype=torch.float64)  # [C, D]
    x = normal_data().double()
    log_joint = dist.Normal(0.0, PRIOR_SD).log_prob(mu) + \
        dist.Normal(mu[..., None], 1.0).log_prob(x).sum(-1)
    stats = sequential.stats
    np.testing.assert_allclose(stats["lp"], log_joint.numpy(), rtol=1e-5, atol=1e-4)
    assert (stats["energy"][:, 1:] >= -stats["lp"][:, :-1] - 1e-4).all()
    assert ((stats["acceptance_rate"] >= 0) & (stats["acceptance_rate"] <= 1)).all()
    assert ((stats["n_steps"] >= 1) & (stats["n_steps"] <= 2 ** stats["tree_depth"] - 1)).all()
    assert (stats["step_size"] > 0).all() and stats["diverging"].dtype == bool


def test_pyro_internals_are_where_the_recorder_expects(monkeypatch):
    check_pyro_internals()  # fails with the Pyro version in the message if Pyro moved them
    check_pyro_internals.cache_clear()
    monkeypatch.delattr(NUTS, "_build_tree")
    try:
        with pytest.raises(ModelError, match=f"pyro-ppl {pyro.__version__}.*_build_tree"):
            check_pyro_internals()
    finally:
        check_pyro_internals.cache_clear()


def test_cli_chain_method_reaches_the_sampler(tmp_path):
    import arviz as az

    from ppgen.cli import main

    src = tmp_path / "m.py"
    src.write_text(NORMAL_MODEL_SOURCE)
    np.save(tmp_path / "x.npy", normal_data().numpy())
    out = tmp_path / "out"
    code = main(["posterior", f"{src}:model", "--data", str(tmp_path / "x.npy"), "--out",
                 str(out), "--samples", "10", "--warmup", "10", "--chains", "2",
                 "--chain-method", "parallel", "--no-plots"])
    assert code == 0
    assert az.from_netcdf(out / "posterior.nc").posterior.attrs["chain_method"] == "parallel"
