"""Probabilistic PCA: closed-form marginal, posterior and maximum likelihood."""

from __future__ import annotations

import pytest
import torch

import ppgen
from ppgen.data import load_digits
from ppgen.errors import ModelError
from ppgen.models import PPCA
from ppgen.protocol import ModelKind, model_class

pytestmark = pytest.mark.usefixtures("clean_param_store")


def planted(n: int = 600, seed: int = 0) -> torch.Tensor:
    """Rows of a rank-2 Gaussian in 6-D plus isotropic noise (sd 0.3), mean 1."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(6, 2, generator=g) * 2
    z = torch.randn(n, 2, generator=g)
    return z @ W.T + 0.3 * torch.randn(n, 6, generator=g) + 1.0


@pytest.fixture
def fitted() -> PPCA:
    x = planted()
    return PPCA(6, latent_dim="auto").fit_closed_form(x[:450], val=x[450:])


def test_protocol(fitted):
    assert model_class("ppca") is PPCA and PPCA.kind == ModelKind.LATENT
    assert PPCA.default_objective == "closed-form"
    assert fitted.get_config() == {
        "num_dims": 6, "latent_dim": fitted.num_latent, "min_variance": 1e-6,
    }


def test_auto_latent_dim_selects_on_validation_data(fitted):
    scores = fitted.latent_scores_
    assert set(scores) == {1, 2, 3, 4} and fitted.num_latent == min(scores, key=scores.get)
    assert scores[1] > scores[2] + 1.0  # rank 1 misses a planted direction: far worse
    assert all(scores[2] <= s + 0.05 for s in scores.values())  # beyond rank 2: only noise


@pytest.mark.parametrize("particles", [1, 7])
def test_evaluation_layer_is_exact(fitted, particles):
    """The guide is the exact posterior: every importance weight is p(x)."""
    x = planted(20, seed=1)
    exact = fitted.marginal().log_prob(x).detach()
    ll = ppgen.log_likelihood(fitted, x, num_particles=particles)
    torch.testing.assert_close(ll, exact, atol=1e-4, rtol=5e-5)  # float32 round-off
    torch.testing.assert_close(ppgen.elbo(fitted, None, x), exact, atol=1e-4, rtol=5e-5)


def test_posterior_is_gaussian_conditioning(fitted):
    """Against the joint-Gaussian formulas: mean W^T C^-1 (x - mu), cov I - W^T C^-1 W."""
    x = planted(5, seed=2).double()
    W, mu = fitted.weight.detach().double(), fitted.loc.detach().double()
    C = W @ W.T + fitted.variance().detach().double() * torch.eye(6, dtype=torch.float64)
    mean = torch.linalg.solve(C, (x - mu).T).T @ W
    cov = torch.eye(W.shape[1], dtype=torch.float64) - W.T @ torch.linalg.solve(C, W)
    q = fitted.posterior(x.float())
    torch.testing.assert_close(q.mean.double(), mean, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(q.covariance_matrix[0].double(), cov, atol=1e-5, rtol=1e-4)


def test_closed_form_fit_is_the_maximum_likelihood(fitted):
    """At the Tipping-Bishop solution the gradient of the mean log-likelihood vanishes."""
    x = planted()[:450]
    model = PPCA(6, latent_dim=2).double().fit_closed_form(x.double())
    loss = -model.marginal().log_prob(x.double()).mean()
    grads = torch.autograd.grad(loss, [model.loc, model.weight, model.log_variance])
    for g in grads:
        assert g.abs().max() < 1e-6  # vs. O(1) gradients one step away


def test_samples_have_the_model_covariance(fitted):
    torch.manual_seed(0)
    s = fitted.sample(40000)
    cov = fitted.marginal().covariance_matrix.detach()
    # sd of a sample covariance entry is about sqrt((C_ii C_jj + C_ij^2) / n) <= 0.05 here:
    # 5 sd of slack
    torch.testing.assert_close(torch.cov(s.T), cov, atol=0.25, rtol=0.02)
    torch.testing.assert_close(s.mean(0), fitted.loc.detach(), atol=0.1, rtol=0)


def test_fit_save_and_load_through_the_face(tmp_path):
    digits = load_digits("categorical")
    model = PPCA.for_data(digits.info)
    history = ppgen.fit(model, digits.train, digits.val, out_dir=tmp_path, progress=False)
    assert len(history) == 1 and model.num_latent in (12, 16, 24, 32, 48)
    loaded = ppgen.load(tmp_path / "model.pt")
    x = digits.test[:10].float()
    torch.testing.assert_close(loaded.marginal().log_prob(x), model.marginal().log_prob(x))


@pytest.mark.parametrize(
    "kwargs, match",
    [({"num_dims": 1}, "at least 2"), ({"num_dims": 4, "latent_dim": 4}, "below"),
     ({"num_dims": 4, "latent_dim": "two"}, "positive int"),
     ({"num_dims": 4, "min_variance": 0.0}, "min_variance")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ModelError, match=match):
        PPCA(**kwargs)
