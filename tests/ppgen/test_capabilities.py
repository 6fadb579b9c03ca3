"""Declared capabilities of the model protocol: conditioning inputs (one validation, one batching
path), sampler options, evaluation defaults, and the routing of energy and implicit models."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch

import ppgen
from ppgen.conditions import Condition, ConditionKind, Conditions, take_rows
from ppgen.errors import DataError, ImplicitModelError, ModelError
from ppgen.evaluate import KindEstimator, nll_report, register_estimator, registered_estimator
from ppgen.evaluate.routing import estimator_for, refusal
from ppgen.models import MAF
from ppgen.protocol import DEFAULT_NUM_PARTICLES, DistributionModel, GenerativeModel, ModelKind

CLASSES = Conditions([Condition.classes("y", 3)], "Stub")


# ----------------------------------------------------------------------------- conditions
def test_one_validation_of_class_labels():
    checked = CLASSES.check({"y": [0, 2, 1]}, 3)
    assert checked["y"].dtype == torch.long and checked["y"].tolist() == [0, 2, 1]
    assert CLASSES.of_kind("class").num_classes == 3 and CLASSES.names == ("y",)
    assert Conditions().of_kind(ConditionKind.CLASS) is None and not Conditions()


@pytest.mark.parametrize(
    "values, error, message",
    [
        ({"y": [0, 3, 1]}, DataError, "class range 0..2"),
        ({"y": [0, 1]}, DataError, r"shape \(2,\).*3 rows"),
        ({"y": [0.5, 1, 1]}, DataError, "non-integer"),
        ({}, ModelError, "pass the labels"),
        ({"y": [0, 1, 1], "domain": [0, 0, 0]}, DataError, "no conditioning input domain"),
    ],
)
def test_bad_conditioning_values_are_clear_errors(values, error, message):
    with pytest.raises(error, match=message):
        CLASSES.check(values, 3)


def test_an_unconditional_model_refuses_conditioning_values():
    with pytest.raises(DataError, match="unconditional"):
        Conditions((), "Plain").check({"y": [0]}, 1)
    assert Conditions((), "Plain").check({"y": None}, 1) == {}  # None means not given


def test_sampling_values_broadcast_or_default_to_the_classes_in_turn():
    cpu = torch.device("cpu")
    assert CLASSES.for_sampling({}, 5, cpu)["y"].tolist() == [0, 1, 2, 0, 1]
    assert CLASSES.for_sampling({"y": 2}, 3, cpu)["y"].tolist() == [2, 2, 2]
    assert CLASSES.for_sampling({"y": [1, 0]}, 2, cpu)["y"].tolist() == [1, 0]
    with pytest.raises(DataError, match="class range"):
        CLASSES.for_sampling({"y": 7}, 2, cpu)


def test_programs_need_their_values_when_scoring_and_fill_them_when_generating():
    cpu = torch.device("cpu")
    assert CLASSES.in_program({"y": None}, None, 4, cpu)["y"].tolist() == [0, 1, 2, 0]
    with pytest.raises(ModelError, match="pass the labels"):
        CLASSES.in_program({"y": None}, torch.zeros(2, 1), None, cpu)
    with pytest.raises(ModelError, match="unconditional"):
        Conditions((), "Plain").in_program({"y": 1}, None, 1, cpu)


def test_one_batching_path():
    values = {"y": torch.arange(6), "w": torch.ones(2), "s": 3.0}
    assert take_rows(values, slice(1, 3), 6)["y"].tolist() == [1, 2]
    cut = take_rows(values, torch.tensor([5, 0]), 6)
    assert cut["y"].tolist() == [5, 0] and cut["w"].shape == (2,) and cut["s"] == 3.0
    assert take_rows({"y": torch.arange(4)}, slice(0, 2))["y"].tolist() == [0, 1]


def test_zoo_models_declare_their_conditions():
    conditional = MAF(2, num_layers=1, hidden_features=8, num_classes=4)
    assert conditional.conditions.of_kind("class") == Condition.classes("y", 4)
    assert not MAF(2, num_layers=1, hidden_features=8).conditions
    assert not ppgen.models.IndependentBernoulli(3).conditions


def test_the_hierarchical_and_conditional_vaes_declare_theirs():
    zoo = ppgen.models
    cvae = zoo.CVAE(4, num_classes=3, latent_dim=2, hidden_dims=(4,), likelihood="bernoulli")
    assert cvae.conditions.of_kind("class") == Condition.classes("y", 3)
    assert cvae.kind == ModelKind.LATENT and not cvae.sample_options
    ladder = zoo.LadderVAE(4, (2, 2), (4, 4), likelihood="bernoulli")
    assert not ladder.conditions and ladder.kind == ModelKind.LATENT
    structured = zoo.StructuredCVAE(4, 2, 2, (4,), likelihood="bernoulli")
    assert not structured.conditions and structured.sample_options == {"observed": None}
    with pytest.raises(ModelError, match="valid options: observed"):
        structured.sample(2, y=1)
    aae = ppgen.models.AAE
    assert aae(4, variant="supervised", num_classes=3, likelihood="gaussian").conditions.of_kind(
        "class") == Condition.classes("y", 3)
    partial = aae(4, variant="semi-supervised", num_classes=3, likelihood="gaussian").conditions
    assert partial.names == ("y",) and partial.check({"y": [2, -1]}, 2)["y"].tolist() == [2, -1]
    assert not aae(4, variant="clustering", likelihood="gaussian").conditions


def test_an_aaes_kind_follows_its_encoder_and_prior():
    aae = ppgen.models.AAE
    assert aae.kind == ModelKind.LATENT  # what the family can be (``ppgen fit --list``)
    assert aae(4, likelihood="gaussian").kind == ModelKind.LATENT
    for options in ({"encoder": "deterministic"}, {"prior": "swiss-roll"}):
        assert aae(4, likelihood="gaussian", **options).kind == ModelKind.IMPLICIT


# ----------------------------------------------------------------------------- sample options
class _Tempered(DistributionModel, register=False):
    """``x ~ N(0, I_2)``, drawn at a declared ``temperature``."""

    sample_options = {"temperature": 1.0}

    def __init__(self) -> None:
        super().__init__()
        self.num_dims = 2

    def distribution(self):
        return dist.Normal(torch.zeros(2), 1.0).to_event(1)

    def generate(self, n: int, temperature: float) -> torch.Tensor:
        return temperature * super().generate(n)


def test_declared_sampler_options_with_their_defaults():
    model = _Tempered()
    torch.manual_seed(0)
    assert model.sample(4).abs().sum() > 0  # the default temperature 1.0
    assert torch.equal(model.sample(4, temperature=0.0), torch.zeros(4, 2))
    with pytest.raises(ModelError, match=r"unknown option\(s\) steps; valid options: "
                                         r"temperature \(default 1.0\)"):
        model.sample(4, steps=3)


def test_conditioning_inputs_are_sampling_options_too():
    model = MAF(2, num_layers=1, hidden_features=8, num_classes=3)
    assert model.sample(3, y=1).shape == (3, 2)
    with pytest.raises(ModelError, match=r"valid options: y \(class label in 0..2\)"):
        model.sample(3, label=1)
    with pytest.raises(ModelError, match="unconditional"):
        MAF(2, num_layers=1, hidden_features=8).sample(3, y=1)


# ----------------------------------------------------------------------------- evaluation defaults
class _Latent(GenerativeModel, register=False):
    """``z ~ N(0, 1)``, ``x | z ~ N(z, 1)`` with ``q(z | x) = N(x / 2, 1)``; records the shapes of
    ``z`` so the test sees how many particles a pass drew."""

    kind = ModelKind.LATENT
    evaluation_defaults = {"num_particles": 3}

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size([1])

    def model(self, x=None, num_samples=None):
        with pyro.plate("data", x.shape[0] if x is not None else num_samples):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            self.shapes.append(tuple(z.shape))
            return pyro.sample("x", dist.Normal(z.unsqueeze(-1), 1.0).to_event(1), obs=x)

    def guide(self, x):
        with pyro.plate("data", x.shape[0]):
            return pyro.sample("z", dist.Normal(0.5 * x[..., 0], 1.0))


def test_the_evaluation_layer_reads_the_declared_particles():
    model, x = _Latent(), torch.randn(5, 1)
    ppgen.log_likelihood(model, x)
    assert (3, 5) in model.shapes
    model.shapes.clear()
    ppgen.log_likelihood(model, x, num_particles=7)  # an explicit value wins
    assert (7, 5) in model.shapes and (3, 5) not in model.shapes
    assert nll_report(model, x)["num_particles"] == 3


def test_undeclared_defaults_follow_the_kind():
    assert MAF(2, num_layers=1, hidden_features=8).evaluation_options() == {
        "num_particles": 1, "batch_size": None}
    vae = ppgen.models.VAE(4, latent_dim=2, hidden_dims=(4,), num_levels=3)
    assert vae.evaluation_options()["num_particles"] == DEFAULT_NUM_PARTICLES
    assert vae.evaluation_options(batch_size=8) == {"num_particles": DEFAULT_NUM_PARTICLES,
                                                    "batch_size": 8}
    assert _Latent().evaluation_options(num_particles=2)["num_particles"] == 2


def test_an_unknown_evaluation_default_is_refused_at_class_definition():
    with pytest.raises(ModelError, match="evaluation options are"):
        class _Bad(GenerativeModel, register=False):
            evaluation_defaults = {"particles": 10}


# ----------------------------------------------------------------------------- routing by kind
class _Energy(GenerativeModel, register=False):
    """A stub energy model (unnormalised density): only its kind matters here."""

    kind = ModelKind.ENERGY
    evaluation_defaults = {"num_particles": 16}

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size([2])


class _Implicit(_Energy, register=False):
    kind = ModelKind.IMPLICIT


def _fake_ais(model, x, *, num_particles, batch_size, **conditions):
    """Stands in for annealed importance sampling: ``-num_particles`` per row."""
    return torch.full((len(x),), -float(num_particles))


def test_unserved_kinds_are_clear_errors():
    x = torch.zeros(3, 2)
    with pytest.raises(ModelError, match="annealed importance sampling") as info:
        ppgen.log_likelihood(_Energy(), x)
    assert not isinstance(info.value, ImplicitModelError)
    with pytest.raises(ModelError, match="AIS"):
        nll_report(_Energy(), x)
    with pytest.raises(ImplicitModelError, match="FID"):
        ppgen.log_likelihood(_Implicit(), x)
    assert estimator_for(ModelKind.IMPLICIT).name == "sample-based metrics"  # built in
    assert "No sample-based metric is registered" in str(refusal(_Implicit(), "report"))
    with pytest.raises(ImplicitModelError):
        ppgen.elbo(_Implicit(), None, x)


def test_an_energy_model_is_routed_to_the_registered_estimator():
    x = torch.zeros(3, 2)
    with registered_estimator(ModelKind.ENERGY, KindEstimator("fake AIS", _fake_ais)):
        assert ppgen.log_likelihood(_Energy(), x).tolist() == [-16.0] * 3  # declared K
        assert ppgen.log_likelihood(_Energy(), x, num_particles=4).tolist() == [-4.0] * 3
        report = nll_report(_Energy(), x)  # the generic table on the routed estimate
        assert report["nll"] == 16.0 and report["n"] == 3 and "elbo" not in report
        with pytest.raises(ModelError, match="AIS"):
            ppgen.elbo(_Energy(), None, x)  # no bound: only the registered estimate
    # the scope restored the built-in estimator, AIS, which needs an EnergyModel's energy
    assert estimator_for(ModelKind.ENERGY).name == "annealed importance sampling"
    with pytest.raises(ModelError, match="EnergyModel"):
        ppgen.log_likelihood(_Energy(), x)


def test_an_implicit_model_is_routed_to_sample_metrics():
    def metrics(model, x, *, num_particles, batch_size):
        return {"model": type(model).__name__, "n": len(x), "mmd": 0.0}

    x = torch.zeros(4, 2)
    with registered_estimator("implicit", KindEstimator("stub MMD", report=metrics)):
        assert nll_report(_Implicit(), x) == {"model": "_Implicit", "n": 4, "mmd": 0.0}
        with pytest.raises(ImplicitModelError, match="no log-likelihood"):
            ppgen.log_likelihood(_Implicit(), x)


def test_exact_and_latent_kinds_are_not_routed():
    with pytest.raises(ModelError, match="trace-based"):
        register_estimator(ModelKind.EXACT, KindEstimator("nothing"))
