"""What ``ppgen evaluate`` reports for a diffusion model (``ppgen.evaluate.nll_report``).

* one pass: the bound from the model's declared decomposition, ``T`` network calls per chunk of
  the declared ``batch_size`` rows (no extra one-particle importance-weighted pass, no
  structure probe), its terms summing to the headline, equal to ``-ppgen.elbo`` under the
  same seed, bits per dimension as its view;
* ``ppgen.elbo`` chunks by the model's declared ``batch_size``;
* a class-conditional model reports ``p(x | y)`` and refuses wrong labels.
"""

from __future__ import annotations

import math

import pyro
import pytest
import torch

import ppgen
from ppgen.errors import DataError
from ppgen.evaluate import nll_report
from ppgen.models import DDPM, ImprovedDDPM

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL_MLP = {"width": 16, "blocks": 1}
T, N, D = 12, 300, 4


def _calls(model) -> tuple[list[int], object]:
    """Rows of every network call (a forward hook)."""
    rows: list[int] = []
    hook = model.network.register_forward_hook(lambda m, args, out: rows.append(
        math.prod(args[0].shape[:-1])))
    return rows, hook


def _levels(n=N, seed=0):
    return torch.randint(0, 5, (n, D), generator=torch.Generator().manual_seed(seed))


def test_report_is_one_pass_of_the_bound_with_its_terms():
    model = ImprovedDDPM(D, num_steps=T, num_levels=5, denoiser=SMALL_MLP).eval()
    x = _levels()
    rows, hook = _calls(model)
    try:
        pyro.set_rng_seed(0)
        report = nll_report(model, x)
    finally:
        hook.remove()
    batch = model.evaluation_defaults["batch_size"]
    assert len(rows) == T * math.ceil(N / batch) and max(rows) == batch
    assert "iwae" not in report and report["num_particles"] == 1 and report["n"] == N
    terms = report["bound_prior"] + report["bound_steps"] + report["bound_decoder"]
    assert report["nll"] == report["elbo"] and abs(terms - report["nll"]) < 1e-4
    assert report["bound_prior"] >= 0 and report["bound_steps"] > 0
    assert abs(report["bits_per_dim"] - report["nll"] / (D * math.log(2))) < 1e-9
    pyro.set_rng_seed(0)
    bound = -ppgen.elbo(model, None, x, analytic_kl=True)
    assert abs(bound.mean().item() - report["nll"]) < 1e-4


def test_elbo_chunks_by_the_declared_batch_size():
    model = DDPM(D, num_steps=T, num_levels=5, denoiser=SMALL_MLP).eval()
    rows, hook = _calls(model)
    try:
        ppgen.elbo(model, None, _levels(), analytic_kl=True)
        assert max(rows) == model.evaluation_defaults["batch_size"]
        rows.clear()
        ppgen.elbo(model, None, _levels(), analytic_kl=True, batch_size=50)
        assert max(rows) == 50
    finally:
        hook.remove()


def test_more_particles_keep_the_importance_weighted_headline():
    model = DDPM(D, num_steps=T, num_levels=5, denoiser=SMALL_MLP).eval()
    report = nll_report(model, _levels(40), num_particles=3)
    assert report["iwae"] == report["nll"] and report["num_particles"] == 3
    assert "bound_steps" not in report


def test_conditional_report():
    model = DDPM(D, num_steps=T, num_levels=5, denoiser=SMALL_MLP, num_classes=3).eval()
    x, y = _levels(30), torch.arange(30) % 3
    pyro.set_rng_seed(1)
    report = nll_report(model, x, y=y)
    pyro.set_rng_seed(1)
    assert abs(report["nll"] + ppgen.elbo(model, None, x, y=y, analytic_kl=True).mean().item()
               ) < 1e-4
    with pytest.raises(DataError, match="class range"):
        nll_report(model, x, y=y + 1)


@pytest.mark.parametrize("likelihood", ["categorical", "continuous"])
def test_per_pixel_shares_sum_to_the_bound(likelihood):
    """The explanation of an anomaly score: every term factorises over pixels."""
    levels = likelihood == "categorical"
    model = ImprovedDDPM(D, num_steps=T, likelihood=likelihood, num_levels=5 if levels else None,
                         denoiser=SMALL_MLP).eval()
    with torch.no_grad():
        for p in model.network.output.parameters():
            p.normal_(0, 0.3, generator=torch.Generator().manual_seed(0))
    x = _levels(20) if levels else torch.randn(20, D, generator=torch.Generator().manual_seed(0))
    pyro.set_rng_seed(2)
    shares = model.log_prob_per_dim(x)
    pyro.set_rng_seed(2)
    terms = model.bound_terms(x)
    assert shares.shape == (20, D)
    assert torch.allclose(shares.sum(-1), -terms.total, rtol=1e-5, atol=1e-4)
    assert not torch.allclose(shares, shares.mean(-1, keepdim=True))  # pixels differ


def test_headline_log_likelihood_is_the_closed_form_bound_with_one_particle():
    """What anomaly scores rank by: the bound with closed-form KL at the declared one
    particle (not a noisier one-particle importance estimate); importance-weighted beyond."""
    model = DDPM(D, num_steps=T, num_levels=5, denoiser=SMALL_MLP).eval()
    x = _levels(10)
    pyro.set_rng_seed(4)
    headline = ppgen.evaluate.headline_log_likelihood(model, x)
    pyro.set_rng_seed(4)
    assert torch.allclose(headline, ppgen.elbo(model, None, x, analytic_kl=True))
    pyro.set_rng_seed(4)
    assert not torch.allclose(headline, ppgen.log_likelihood(model, x), atol=1e-3)
    pyro.set_rng_seed(5)
    iw = ppgen.evaluate.headline_log_likelihood(model, x, num_particles=3)
    pyro.set_rng_seed(5)
    assert torch.allclose(iw, ppgen.log_likelihood(model, x, num_particles=3))
