"""Conditional VAEs: labels through the declared condition, the structured CVAE's conditional
density of the missing part (normalised exhaustively), completion, save/load, the CLI."""

from __future__ import annotations

import itertools

import pyro
import pytest
import torch

import ppgen
from ppgen.errors import DataError, ModelError
from ppgen.models import CVAE, StructuredCVAE


def _cvae(**kwargs) -> CVAE:
    kwargs.setdefault("likelihood", "bernoulli")
    return CVAE(6, num_classes=3, latent_dim=2, hidden_dims=(16,), **kwargs)


def _structured(**kwargs) -> StructuredCVAE:
    kwargs.setdefault("likelihood", "bernoulli")
    return StructuredCVAE(6, num_observed=4, latent_dim=2, hidden_dims=(16,), **kwargs)


# ----------------------------------------------------------------------------- CVAE
def test_labels_are_the_declared_condition_and_sampling_takes_them():
    cvae = _cvae()
    (condition,) = cvae.conditions
    assert condition.name == "y" and condition.num_classes == 3
    assert cvae.sample(5, y=2).shape == (5, 6)
    assert cvae.sample(4, y=[0, 1, 2, 0]).shape == (4, 6)
    assert cvae.sample(7).shape == (7, 6)  # the classes in turn
    x = torch.bernoulli(torch.full((4, 6), 0.5))
    assert ppgen.log_likelihood(cvae, x, y=[0, 1, 2, 0], num_particles=3).shape == (4,)
    assert ppgen.elbo(cvae, x, y=torch.tensor([0, 1, 2, 0]), analytic_kl=True).shape == (4,)
    scores = []
    for label in range(3):  # the same draws under each label: only y differs
        torch.manual_seed(0)
        scores.append(ppgen.log_likelihood(cvae, x, y=[label] * 4, num_particles=3))
    assert not torch.allclose(scores[0], scores[1]) and not torch.allclose(scores[1], scores[2])


def test_label_errors_are_the_evaluation_layers_data_errors():
    cvae = _cvae()
    x = torch.bernoulli(torch.full((4, 6), 0.5))
    with pytest.raises(DataError, match="one label per row"):
        ppgen.log_likelihood(cvae, x, y=[0, 1, 2], num_particles=2)
    with pytest.raises(DataError, match="class range 0..2"):
        ppgen.log_likelihood(cvae, x, y=[0, 1, 3, 0], num_particles=2)
    with pytest.raises(ModelError, match="pass the labels"):
        ppgen.log_likelihood(cvae, x, num_particles=2)
    with pytest.raises(DataError):
        cvae.sample(2, y=5)


@pytest.mark.slow
def test_labels_matter_once_trained():
    """Class c lights pixels 2c and 2c + 1: a trained CVAE scores each image highest under its
    own label and draws the pattern of the label it is given."""
    torch.manual_seed(0)
    y = torch.arange(90) % 3
    x = torch.zeros(90, 6)
    x[torch.arange(90), 2 * y] = 1.0
    x[torch.arange(90), 2 * y + 1] = 1.0
    cvae = _cvae(dropout=0.0)
    ppgen.fit(cvae, x, labels=y, epochs=40, lr=1e-2, batch_size=90, progress=False, seed=0)
    cvae.eval()
    scores = torch.stack([ppgen.log_likelihood(cvae, x[:3], y=torch.full((3,), c),
                                               num_particles=20) for c in range(3)])  # [c, n]
    assert torch.equal(scores.argmax(0), y[:3])
    assert (scores.max(0).values - scores.min(0).values > 2.0).all()
    draws = cvae.sample(30, y=1)
    assert draws[:, 2:4].mean() > 0.8 and draws[:, [0, 1, 4, 5]].mean() < 0.2


# ----------------------------------------------------------------------------- structured
def test_the_conditional_density_of_the_missing_part_is_normalised():
    """Summed over the 4 values of the 2 missing bits, p(x_m | x_o) is 1: the observed part is
    conditioned on, not scored. Estimated with the prior network as the proposal (weights
    p(x_m | z, x_o) in [0, 1]; K = 4,000): the largest deviation over 10 seeds was 0.0009,
    tolerance 0.005. The model's own guide gives the same probabilities (largest difference
    over those seeds 0.021; tolerance 0.05)."""
    torch.manual_seed(0)
    model = _structured().eval()

    def prior_guide(x: torch.Tensor) -> None:
        with pyro.plate("data", len(x)):  # Bernoulli data enter the networks as they are
            pyro.sample("z", model.prior_distribution(x[:, :4]))

    observed = torch.tensor([1.0, 0.0, 1.0, 1.0])
    missing = torch.tensor(list(itertools.product([0.0, 1.0], repeat=2)))
    x = torch.cat([observed.expand(4, 4), missing], dim=1)
    p = ppgen.log_likelihood(model, x, guide=prior_guide, num_particles=4_000).exp()
    assert abs(float(p.sum()) - 1.0) < 0.005, p
    own = ppgen.log_likelihood(model, x, num_particles=4_000).exp()
    assert torch.allclose(own, p, atol=0.05), (own, p)


def test_complete_keeps_the_observed_part_exactly():
    model = _structured(likelihood="categorical", num_levels=5)
    x = torch.randint(0, 5, (3, 6))
    completed = model.complete(x[:, :4], 7)
    assert completed.shape == (7, 3, 6) and completed.dtype == torch.long
    assert torch.equal(completed[..., :4], x[:, :4].expand(7, 3, 4))
    assert torch.equal(model.complete(x, 2)[..., :4], x[:, :4].expand(2, 3, 4))  # whole rows
    assert (completed[..., 4:] < 5).all()
    assert model.sample(4, observed=x[0, :4]).shape == (4, 6)
    with pytest.raises(ModelError, match="observed"):
        model.sample(2)
    with pytest.raises(DataError):
        model.complete(torch.full((2, 4), 9), 1)  # outside the levels


def test_the_closed_form_kl_with_the_prior_network_equals_the_monte_carlo_kl():
    """Same draws in both (same seed): they differ only by the KL term; with 4,000 draws the
    largest difference over 10 seeds was 0.04 nats; tolerance 0.1."""
    model = _structured().eval()
    x = torch.bernoulli(torch.full((5, 6), 0.5), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    analytic = ppgen.elbo(model, x, num_particles=4_000, analytic_kl=True)
    torch.manual_seed(1)
    monte_carlo = ppgen.elbo(model, x, num_particles=4_000, analytic_kl=False)
    assert torch.allclose(analytic, monte_carlo, atol=0.1)
    assert (analytic <= ppgen.log_likelihood(model, x, num_particles=2_000) + 0.05).all()


def test_bad_options_are_clear_errors():
    with pytest.raises(ModelError, match="num_observed"):
        StructuredCVAE(6, num_observed=6, likelihood="bernoulli")
    with pytest.raises(ModelError, match="num_classes"):
        CVAE(6, num_classes=1, likelihood="bernoulli")


# ----------------------------------------------------------------------------- save, load, CLI
@pytest.mark.parametrize("build", [_cvae, _structured])
def test_save_and_load(tmp_path, build):
    model = build().eval()
    model.save(tmp_path / "model.pt")
    loaded = ppgen.load(tmp_path / "model.pt").eval()
    assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
    x = torch.bernoulli(torch.full((3, 6), 0.5))
    labels = {"y": [0, 2, 1]} if isinstance(model, CVAE) else {}
    torch.manual_seed(4)
    a = ppgen.log_likelihood(model, x, num_particles=4, **labels)
    torch.manual_seed(4)
    assert torch.equal(ppgen.log_likelihood(loaded, x, num_particles=4, **labels), a)


@pytest.mark.parametrize("name", ["cvae", "structured-cvae"])
def test_the_command_line_fits_them_on_the_digits(tmp_path, name):
    from ppgen.cli import main

    out = tmp_path / name
    code = main(["fit", name, "--data", "digits", "--epochs", "1", "--set", "latent_dim=4",
                 "--set", "hidden_dims=[16]", "--out", str(out), "--no-progress"])
    assert code == 0
    model = ppgen.load(out / "model.pt")
    assert model.name == name
    if name == "cvae":  # the digits' labels came in as the declared condition
        assert model.num_classes == 10 and model.sample(2, y=3).shape == (2, 64)
    else:
        assert model.num_observed == 32 and model.complete(torch.zeros(1, 32), 2).shape == (
            2, 1, 64)
