"""Enumerated discrete sites in ppgen.analysis: the Gaussian mixture of examples/.

The pointwise log-likelihood of a mixture with its assignment enumerated out must be the
exact ``log sum_k w_k N(y_n; mu_k, s_k)`` (checked against a hand-written log-sum-exp to float
rounding), both directly and in the ``log_likelihood`` group that ``posterior`` builds.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from ppgen import analysis
from ppgen.analysis.enumeration import enumerated_pointwise_log_likelihood
from ppgen.errors import ModelError

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning"),
    pytest.mark.usefixtures("one_thread"),
]



EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gaussian_mixture.py"


def _example():
    name = "_ppgen_example_gaussian_mixture"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLE)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


example = _example()


def by_hand(y: torch.Tensor, w: torch.Tensor, mu: torch.Tensor, s: torch.Tensor):
    """``[S, N]`` log-sum-exp over components, for draws ``w, mu, s: [S, K]``."""
    comp = dist.Normal(mu[:, None, :], s[:, None, :]).log_prob(y[None, :, None])  # [S, N, K]
    return torch.logsumexp(w.log()[:, None, :] + comp, dim=-1)


def test_enumerated_log_likelihood_is_the_log_sum_exp():
    y = example.data(n=25)
    g = torch.Generator().manual_seed(1)
    S, K = 4, 3
    draws = {
        "w": torch.distributions.Dirichlet(torch.ones(K)).sample((S,)),
        "mu": torch.randn(S, K, generator=g).sort(-1).values * 2,
        "s": torch.rand(S, K, generator=g) + 0.3,
    }
    got = enumerated_pointwise_log_likelihood(example.mixture, y, draws, ["y"], K=K)
    assert got.shape == (S, 25)
    torch.testing.assert_close(got, by_hand(y, draws["w"], draws["mu"], draws["s"]))
    # Not the conditional likelihood of one sampled assignment:
    assert (got > by_hand(y, torch.ones(S, 1), draws["mu"][:, :1], draws["s"][:, :1])).any()


def test_posterior_of_enumerated_mixture_has_the_marginal_log_likelihood():
    y = example.data(n=30)
    idata = analysis.posterior(example.mixture, y, K=2, num_samples=10, num_warmup=5,
                               num_chains=1, seed=0,
                               kernel_options={"max_plate_nesting": 1, "max_tree_depth": 3})
    post = idata.posterior
    assert set(post.data_vars) == {"w", "mu", "s"}  # the assignment c was summed out
    assert (np.diff(post["mu"].values, axis=-1) > 0).all()  # ordered: no label switching
    flat = {k: torch.as_tensor(post[k].values[0]) for k in ("w", "mu", "s")}
    expected = by_hand(y, flat["w"], flat["mu"], flat["s"]).numpy()
    np.testing.assert_allclose(idata.log_likelihood["y"].values[0], expected, rtol=1e-5,
                               atol=1e-5)
    assert idata.posterior_predictive["y"].shape == (1, 10, 30)


def test_global_enumerated_site_is_refused():
    @pyro.infer.config_enumerate
    def model(y):
        c = pyro.sample("c", dist.Categorical(torch.ones(2) / 2))
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        with pyro.plate("data", y.shape[0]):
            pyro.sample("y", dist.Normal(mu + c.float(), 1.0), obs=y)

    with pytest.raises(ModelError, match="outside the 'data' plate"):
        enumerated_pointwise_log_likelihood(model, torch.zeros(3), {"mu": torch.zeros(2)},
                                            ["y"])
