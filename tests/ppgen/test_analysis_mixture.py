"""Enumerated discrete sites in ppgen.analysis: the Gaussian mixture of examples/.

The ``log_likelihood`` group that ``posterior`` builds for a mixture with its assignment
enumerated out must be the exact ``log sum_k w_k N(y_n; mu_k, s_k)`` of each draw (checked
against a hand-written log-sum-exp to float rounding). The evaluation layer's own checks of the
sum (closed forms, the out-of-plate refusal) are in test_evaluate_enumeration.py.
"""

from __future__ import annotations

import numpy as np
import pyro.distributions as dist
import pytest
import torch
from testkit import load_example

from ppgen import analysis

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning"),
    pytest.mark.usefixtures("one_thread"),
]


example = load_example("gaussian_mixture")


def by_hand(y: torch.Tensor, w: torch.Tensor, mu: torch.Tensor, s: torch.Tensor):
    """``[S, N]`` log-sum-exp over components, for draws ``w, mu, s: [S, K]``."""
    comp = dist.Normal(mu[:, None, :], s[:, None, :]).log_prob(y[None, :, None])  # [S, N, K]
    return torch.logsumexp(w.log()[:, None, :] + comp, dim=-1)


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


def test_float64_data_are_cast_to_the_programs_dtype():
    """NumPy's float64 data in the example's float32 mixture: NUTS (Pyro's enumeration)
    cannot mix the two dtypes ("expected scalar type Float but found Double"); the data are
    cast to the program's dtype, so the fit is the same as with float32 data."""
    y = example.data(n=30)
    options = {"K": 2, "num_samples": 6, "num_warmup": 4, "num_chains": 1, "seed": 0,
               "kernel_options": {"max_plate_nesting": 1, "max_tree_depth": 3}}
    as_float64 = analysis.posterior(example.mixture, y.double(), **options)
    as_float32 = analysis.posterior(example.mixture, y, **options)
    np.testing.assert_allclose(as_float64.posterior["mu"].values,
                               as_float32.posterior["mu"].values)
    np.testing.assert_allclose(as_float64.log_likelihood["y"].values,
                               as_float32.log_likelihood["y"].values, rtol=1e-6)


def test_svi_on_an_enumerated_mixture_sums_the_assignment_out():
    """``method="svi"``: the autoguide covers the continuous sites only (the assignment is
    hidden from it) and the ELBO sums the assignment out (Pyro's ``TraceEnum_ELBO``), where
    Pyro refused with "Continuous inference cannot handle discrete sample site 'c'" and a
    trace-shape dump."""
    y = example.data(n=30)
    idata = analysis.posterior(example.mixture, y, K=2, method="svi", num_samples=8,
                               num_chains=1, seed=0, num_steps=20)
    post = idata.posterior
    assert set(post.data_vars) == {"w", "mu", "s"}
    flat = {k: torch.as_tensor(post[k].values[0]) for k in ("w", "mu", "s")}
    expected = by_hand(y, flat["w"], flat["mu"], flat["s"]).numpy()
    np.testing.assert_allclose(idata.log_likelihood["y"].values[0], expected, rtol=1e-5,
                               atol=1e-5)
    assert (np.diff(post["mu"].values, axis=-1) > 0).all()
