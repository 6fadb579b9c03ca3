"""Objectives are thin loss objects over the evaluation layer: check they equal it exactly."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from testkit import TinyGaussian

import ppgen
from ppgen.evaluate import elbo, log_likelihood
from ppgen.inference import ELBO, IWAE, MaximumLikelihood, make_objective


class ObjectiveTestPPCA(ppgen.GenerativeModel):
    """Linear-Gaussian latent model with an amortised linear Gaussian guide."""

    kind = ppgen.ModelKind.LATENT
    default_objective = "elbo"

    def __init__(self, num_dims: int = 4, latent_dim: int = 2) -> None:
        super().__init__()
        self.num_dims, self.latent_dim = num_dims, latent_dim
        self.decoder = torch.nn.Linear(latent_dim, num_dims)
        self.encoder = torch.nn.Linear(num_dims, 2 * latent_dim)

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size([self.num_dims])

    def model(self, x=None, num_samples=None):
        n = x.shape[0] if x is not None else num_samples
        with pyro.plate("data", n):
            prior = dist.Normal(torch.zeros(self.latent_dim), 1.0).expand([n, self.latent_dim])
            z = pyro.sample("z", prior.to_event(1))
            return pyro.sample("x", dist.Normal(self.decoder(z), 0.5).to_event(1), obs=x)

    def guide(self, x):
        loc, raw = self.encoder(x).chunk(2, dim=-1)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(loc, torch.nn.functional.softplus(raw)).to_event(1))


@pytest.fixture
def x() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(20, 4)


def test_mle_loss_is_mean_negative_log_likelihood():
    model = TinyGaussian(3)
    with torch.no_grad():
        model.loc.fill_(0.3)
    data = torch.randn(10, 3)
    expected = -dist.Normal(0.3, 1.0).log_prob(data).sum(-1).mean()
    objective = MaximumLikelihood()
    assert torch.allclose(objective.loss(model, data), expected, atol=1e-5)
    assert torch.allclose(objective.validation_loss(model, data), -log_likelihood(model, data))


def test_mle_loss_has_gradients():
    model = TinyGaussian(3)
    MaximumLikelihood().loss(model, torch.randn(8, 3)).backward()
    assert model.loc.grad is not None and model.log_scale.grad is not None


def test_elbo_objective_equals_evaluation_layer(x):
    model = ObjectiveTestPPCA()
    objective = ELBO(num_particles=3)
    pyro.set_rng_seed(1)
    loss = objective.loss(model, x)
    pyro.set_rng_seed(1)
    expected = -elbo(model, None, x, num_particles=3, analytic_kl=True).mean()
    assert torch.allclose(loss, expected, atol=1e-5)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_iwae_with_one_particle_equals_monte_carlo_elbo(x):
    model = ObjectiveTestPPCA()
    pyro.set_rng_seed(2)
    iwae = IWAE(num_particles=1).loss(model, x)
    pyro.set_rng_seed(2)
    mc = ELBO(num_particles=1, analytic_kl=False).loss(model, x)
    assert torch.allclose(iwae, mc, atol=1e-5)


def test_iwae_bound_is_tighter_than_elbo_on_average(x):
    model = ObjectiveTestPPCA()
    pyro.set_rng_seed(3)
    with torch.no_grad():
        iwae = torch.stack([IWAE(num_particles=20).loss(model, x) for _ in range(20)]).mean()
        mc = torch.stack([ELBO(num_particles=1).loss(model, x) for _ in range(20)]).mean()
    assert iwae < mc


def test_validation_loss_is_importance_weighted_nll(x):
    model = ObjectiveTestPPCA()
    pyro.set_rng_seed(4)
    got = ELBO(validation_particles=50).validation_loss(model, x)
    pyro.set_rng_seed(4)
    expected = -log_likelihood(model, x, num_particles=50)
    assert got.shape == (20,)
    assert torch.allclose(got, expected, atol=1e-5)


def test_make_objective_by_name_and_errors():
    assert isinstance(make_objective("iwae", num_particles=3), IWAE)
    objective = ELBO()
    assert make_objective(objective) is objective
    with pytest.raises(ppgen.PpgenError, match="unknown objective 'bogus'"):
        make_objective("bogus")
    with pytest.raises(ppgen.PpgenError, match="bad options"):
        make_objective("elbo", nonsense=1)
    with pytest.raises(ValueError, match=">= 1"):
        IWAE(num_particles=0)


def test_fit_trains_latent_model_with_its_default_objective(x):
    model = ObjectiveTestPPCA()
    before = -log_likelihood(model, x, num_particles=200).mean()
    history = ppgen.fit(model, x, x, epochs=30, batch_size=10, lr=0.05, progress=False)
    after = -log_likelihood(model, x, num_particles=200).mean()
    assert len(history) == 30
    assert after < before - 0.5


def test_fit_refuses_plain_functions(x):
    def program(data):
        pass

    with pytest.raises(ppgen.PpgenError, match="GenerativeModel"):
        ppgen.fit(program, x)
