"""The adversarial autoencoder: priors, the prior matching, its density (or none), save/load."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

import ppgen
from ppgen.errors import DataError, ImplicitModelError, ModelError
from ppgen.metrics import mmd2
from ppgen.models import AAE
from ppgen.models.aae import PartialLabels
from ppgen.models.aae_priors import (
    NAMED_PRIORS,
    CategoricalProduct,
    GaussianPrior,
    MixturePrior,
    make_prior,
)

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"hidden_dims": (8,), "critic_dims": (8,)}


# ----------------------------------------------------------------------------- priors
@pytest.mark.parametrize("name", NAMED_PRIORS)
def test_named_priors_draw_codes_of_the_right_shape_and_support(name):
    torch.manual_seed(0)
    z = make_prior(name, 3).sample(2000)
    assert z.shape == (2000, 3) and torch.isfinite(z).all()
    plane = z[:, :2].norm(dim=-1)
    if name == "uniform":
        assert z.abs().max() <= 2.0 and z.min() < -1.9 and z.max() > 1.9
    if name == "mixture10":  # radius 4, sd 0.5: ~all draws within 4 +- 2
        assert ((plane > 2) & (plane < 6)).float().mean() > 0.99
        assert z[:, 2].std().item() == pytest.approx(1.0, abs=0.1)
    if name == "swiss-roll":  # r(t) in [4/3, 4] plus small noise
        assert plane.min() > 1.0 and plane.max() < 4.6


def test_densities_are_normalised_and_match_torch():
    grid = torch.linspace(-8, 8, 16001).unsqueeze(-1)
    mass = MixturePrior(1).log_prob(grid).exp().sum() * (grid[1] - grid[0])
    assert mass.item() == pytest.approx(1.0, abs=1e-3)
    z = torch.randn(5, 3)
    expected = dist.Normal(0.0, 1.0).expand([3]).to_event(1).log_prob(z)
    torch.testing.assert_close(GaussianPrior(3).log_prob(z), expected)
    uniform = make_prior("uniform", 2)
    inside = uniform.log_prob(torch.tensor([[0.0, 1.9], [2.5, 0.0]]))
    assert inside[0].item() == pytest.approx(-2 * math.log(4.0)) and inside[1] == -math.inf
    with pytest.raises(ModelError, match="no density"):
        make_prior("swiss-roll", 2).log_prob(z[:, :2])


def test_categorical_product_draws_one_hot_classes_beside_the_style():
    torch.manual_seed(0)
    z = CategoricalProduct(4, GaussianPrior(2)).sample(4000)
    onehot = z[:, :4]
    assert z.shape == (4000, 6) and set(onehot.unique().tolist()) == {0.0, 1.0}
    assert (onehot.sum(-1) == 1).all()
    assert onehot.mean(0).sub(0.25).abs().max() < 0.03


def test_any_distribution_or_program_is_a_prior():
    loc = torch.tensor([3.0, -2.0])
    by_event = make_prior(dist.Normal(loc, 0.5).to_event(1), 2)
    by_batch = make_prior(torch.distributions.Normal(loc, 0.5), 2)
    z = torch.zeros(4, 2)
    torch.testing.assert_close(by_event.log_prob(z), by_batch.log_prob(z))

    def program(n):
        k = pyro.sample("k", dist.Categorical(torch.ones(3)).expand([n]))
        return torch.stack([k.float(), torch.zeros(n)], dim=-1)

    prior = make_prior(program, 2)
    with pyro.poutine.trace() as tracer:  # the program's own sites stay hidden
        draws = prior.sample(50)
    assert draws.shape == (50, 2) and not prior.has_density
    assert "k" not in tracer.trace.nodes
    with pytest.raises(ModelError, match="latent_dim is 3"):
        make_prior(program, 3)
    with pytest.raises(ModelError, match=r"return n codes \[n, L\]"):
        make_prior(lambda n: torch.zeros(n), 1)
    with pytest.raises(ModelError, match="unknown prior"):
        make_prior("gaussain", 2)


# ----------------------------------------------------------------------------- density
def _linear_gaussian_aae(seed: int = 0):
    """An AAE whose decoder is ``x = W z + b + N(0, s^2 I)`` with orthogonal columns of ``W``
    and whose encoder is the exact posterior: then every importance weight is ``p(x)``."""
    torch.manual_seed(seed)
    D, L, s = 4, 2, 0.5
    aae = AAE(D, latent_dim=L, likelihood="gaussian", network={"hidden_dims": ()})
    q, _ = torch.linalg.qr(torch.randn(D, L))
    W, b = q * torch.tensor([2.0, 1.0]), torch.randn(D)
    precision = W.T @ W + s**2 * torch.eye(L)  # diagonal: W's columns are orthogonal
    A = torch.linalg.solve(precision, W.T)
    post_sd = (s**2 / precision.diagonal()).sqrt()

    def inv_softplus(v):
        return torch.log(torch.expm1(v))

    with torch.no_grad():
        dec, enc = aae.decoder_net[0], aae.encoder_net[0]
        dec.weight.zero_()
        dec.weight[:D] = W
        dec.bias[:D], dec.bias[D:] = b, inv_softplus(torch.tensor(s - 1e-3))
        enc.weight.zero_()
        enc.weight[:L] = A
        enc.bias[:L], enc.bias[L:] = -A @ b, inv_softplus(post_sd - 1e-4)
    marginal = dist.MultivariateNormal(b, W @ W.T + s**2 * torch.eye(D))
    return aae, marginal


def test_importance_weighted_estimate_is_exact_with_the_exact_posterior():
    aae, marginal = _linear_gaussian_aae()
    assert aae.kind == ppgen.ModelKind.LATENT
    x = marginal.sample((50,))
    estimate = ppgen.log_likelihood(aae, x, num_particles=3)
    torch.testing.assert_close(estimate, marginal.log_prob(x), atol=2e-4, rtol=0)
    with torch.no_grad():  # a worse guide: the estimate is below log p(x) on average
        aae.encoder_net[0].bias[:2] += 1.0
    worse = ppgen.log_likelihood(aae, x, num_particles=3)
    assert (worse - marginal.log_prob(x)).mean() < -0.1


@pytest.mark.parametrize("options, why", [
    ({"encoder": "deterministic"}, "deterministic"),
    ({"prior": "swiss-roll"}, "only draws"),
    ({"variant": "clustering"}, "categorical part"),
])
def test_an_aae_without_a_bound_says_so_and_routes_to_sample_metrics(options, why):
    aae = AAE(6, latent_dim=2, num_levels=3, network=SMALL, **options)
    assert aae.kind == ppgen.ModelKind.IMPLICIT and not aae.has_bound
    with pytest.raises(ImplicitModelError, match="no log-likelihood or bound"):
        ppgen.log_likelihood(aae, torch.zeros(2, 6, dtype=torch.long))
    with pytest.raises(ModelError, match=f"no likelihood bound: .*{why}.*sample-based"):
        aae.guide(torch.zeros(2, 6, dtype=torch.long))
    assert aae.sample(3).shape == (3, 6)


# ----------------------------------------------------------------------------- prior matching
def _critic_loss_after_training(shift: float, steps: int = 120) -> float:
    """The critic's loss (non-saturating) after ``steps`` critic updates of the objective, for
    an encoder that is the identity plus ``shift`` on data ``x ~ N(0, I)`` and the prior
    ``N(0, I)``: q(z) = p(z) when the shift is 0."""
    from ppgen.inference.aae import AdversarialAutoencoding
    from ppgen.objective import StepContext

    torch.manual_seed(0)
    aae = AAE(2, latent_dim=2, encoder="deterministic", likelihood="gaussian",
              network={"hidden_dims": (), "critic_dims": (16,)})
    with torch.no_grad():
        aae.encoder_net[0].weight.copy_(torch.eye(2))
        aae.encoder_net[0].bias.fill_(shift)
    objective = AdversarialAutoencoding()
    optimizer = torch.optim.Adam(aae.critic.parameters(), lr=1e-2)
    context = StepContext(0, 1, ("critic",))
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = objective.losses(aae, torch.randn(128, 2), context)["loss"]
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return sum(losses[-40:]) / 40


def test_the_critic_loss_behaves_as_theory_says():
    """At the optimal critic the loss is 2 log 2 - 2 JSD(p, q): it cannot fall below 2 log 2
    when the codes follow the prior, and falls towards 0 when they do not overlap it."""
    matched = _critic_loss_after_training(0.0)
    assert matched == pytest.approx(2 * math.log(2), abs=0.06)
    assert _critic_loss_after_training(6.0) < 0.2


@pytest.mark.slow
def test_training_matches_the_aggregate_posterior_to_a_known_prior():
    """Codes of 2-d Gaussian data, matched to N((3, -2), 0.5^2 I): before training they sit
    near the origin; after it their mean, spread and MMD to the prior agree with it (fails if
    either phase's sign or player is wrong)."""
    torch.manual_seed(0)
    x = torch.randn(256, 2) @ torch.tensor([[1.0, 0.5], [0.0, 0.7]])
    loc = torch.tensor([3.0, -2.0])
    prior = dist.Normal(loc, 0.5).to_event(1)
    aae = AAE(2, latent_dim=2, prior=prior, encoder="deterministic", likelihood="gaussian",
              network={"hidden_dims": (32,), "critic_dims": (32,)})
    before = mmd2(aae.encode(x), prior.sample((256,)))
    ppgen.fit(aae, x, epochs=150, batch_size=64, seed=0)
    z = aae.encode(x)
    assert (z.mean(0) - loc).abs().max() < 0.3
    assert ((z.std(0) > 0.3) & (z.std(0) < 0.9)).all()
    after = mmd2(z, prior.sample((256,)))
    assert after < 0.1 < before


# ----------------------------------------------------------------------------- variants
def test_partial_labels_take_minus_one_for_unlabelled_rows():
    condition = PartialLabels.classes("y", 3)
    assert condition.check([0, -1, 2], 3).tolist() == [0, -1, 2]
    for bad, message in (([0, -2, 1], r"\[-2, 1\]"), ([0, 3, 1], r"\[0, 3\]"),
                         ([0.5, 1, 1], "non-integer"), ([0, 1], "shape")):
        with pytest.raises(DataError, match=message):
            condition.check(bad, 3)


def test_semi_supervised_and_supervised_variants_train_and_sample():
    torch.manual_seed(0)
    x = torch.randint(0, 3, (40, 6))
    y = torch.arange(40) % 3
    semi = AAE(6, latent_dim=2, variant="semi-supervised", num_classes=3, num_levels=3,
               network=SMALL)
    partial = torch.where(torch.arange(40) < 6, y, -1)
    history = ppgen.fit(semi, x, x[:10], labels=partial, val_labels=torch.full((10,), -1),
                        epochs=2, batch_size=20)
    assert "train_classification" in history.records[-1]
    assert semi.classify(x).shape == (40,) and semi.encode(x).shape == (40, 5)
    with pytest.raises(ModelError, match="pass the labels"):
        ppgen.fit(semi, x, epochs=1)
    sup = AAE(6, latent_dim=2, variant="supervised", num_classes=3, num_levels=3, network=SMALL)
    ppgen.fit(sup, x, x[:10], labels=y, val_labels=y[:10], epochs=1, batch_size=20)
    assert sup.sample(4, y=2).shape == (4, 6)
    assert ppgen.log_likelihood(sup, x[:5], y=y[:5], num_particles=4).shape == (5,)
    with pytest.raises(ModelError, match="labels"):
        ppgen.log_likelihood(sup, x[:5], num_particles=4)
    with pytest.raises(ModelError, match="no categorical code"):
        sup.classify(x)


def test_bad_options_are_clear_errors():
    for options, message in (({"encoder": "vae"}, "unknown encoder"),
                             ({"variant": "weak"}, "unknown variant"),
                             ({"network": {"width": 3}}, "unknown network option"),
                             ({"num_levels": None}, "num_levels"),
                             ({"prior": "custom"}, "user's prior")):
        with pytest.raises(ModelError, match=message):
            AAE(6, **{"num_levels": 3, **options})


# ----------------------------------------------------------------------------- save / load
def test_save_and_load_keep_the_model(tmp_path):
    torch.manual_seed(0)
    aae = AAE(6, latent_dim=2, prior="mixture10", num_levels=3, network=SMALL)
    x = torch.randint(0, 3, (30, 6))
    ppgen.fit(aae, x, epochs=1, batch_size=10)
    aae.save(tmp_path / "aae.pt")
    loaded = ppgen.load(tmp_path / "aae.pt")
    assert isinstance(loaded, AAE) and loaded.get_config() == aae.get_config()
    torch.testing.assert_close(loaded.encode(x), aae.encode(x))
    torch.manual_seed(1)
    a = ppgen.log_likelihood(aae, x, num_particles=5)
    torch.manual_seed(1)
    torch.testing.assert_close(ppgen.log_likelihood(loaded, x, num_particles=5), a)
    custom = AAE(6, latent_dim=2, prior=dist.Normal(torch.zeros(2), 1.0).to_event(1),
                 num_levels=3, network=SMALL)
    custom.save(tmp_path / "custom.pt")
    with pytest.raises(ppgen.CheckpointError, match="user's prior"):
        ppgen.load(tmp_path / "custom.pt")
