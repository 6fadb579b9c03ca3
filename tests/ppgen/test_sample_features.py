"""The digits feature space of the sample metrics: the shipped classifier (digest, accuracy,
bit-identical rebuild), its canonical input, the real floor against shuffled pixels, a
collapsed generator, the class histogram and the accuracy of class-conditional samples, and the
metrics reaching every family through ``nll_report``."""

from __future__ import annotations

import math

import pytest
import torch

import ppgen
from ppgen.conditions import Condition, Conditions
from ppgen.data import load_digits
from ppgen.data.info import DataInfo
from ppgen.evaluate import nll_report
from ppgen.metrics import (
    class_accuracy,
    class_histogram,
    digits_intensity,
    feature_space,
    features_for,
    frechet_distance,
    load_digits_classifier,
    sample_metrics,
)
from ppgen.metrics.digits_training import state_digest, train_digits_classifier
from ppgen.metrics.features import TEST_ACCURACY, WEIGHTS_DIGEST
from ppgen.metrics.report import CHEAP_SAMPLER, evaluation_sampler
from ppgen.protocol import GenerativeModel, ModelKind

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    return load_digits("categorical")


# --------------------------------------------------------------------------- the classifier
def test_the_shipped_weights_match_their_digest_and_recorded_accuracy(digits):
    torch.manual_seed(0)
    net = load_digits_classifier()
    after_loading = torch.rand(3)
    torch.manual_seed(0)
    assert torch.equal(after_loading, torch.rand(3))  # loading leaves the random state alone
    assert state_digest(net.state_dict()) == WEIGHTS_DIGEST
    assert not any(p.requires_grad for p in net.parameters())
    correct = int((net(digits.test).argmax(-1) == digits.labels["test"]).sum())
    assert correct / 447 >= TEST_ACCURACY - 1e-12 and correct == 424  # recorded: 424 of 447
    continuous = load_digits("continuous", seed=3)  # the same levels, dequantised
    assert torch.equal(net(continuous.test).argmax(-1), net(digits.test).argmax(-1))


@pytest.mark.slow
def test_a_rebuild_is_bit_identical_to_the_shipped_weights():
    assert state_digest(train_digits_classifier().state_dict()) == WEIGHTS_DIGEST


def test_corrupt_or_foreign_weights_are_clear_errors(tmp_path):
    state = load_digits_classifier().state_dict()
    changed = {**state, "out.bias": state["out.bias"] + 1e-3}
    torch.save(changed, tmp_path / "changed.pt")
    with pytest.raises(ppgen.CheckpointError, match="digest"):
        load_digits_classifier(str(tmp_path / "changed.pt"))
    torch.save({"w": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(ppgen.CheckpointError, match="tensors"):
        load_digits_classifier(str(tmp_path / "foreign.pt"))
    (tmp_path / "truncated.pt").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ppgen.CheckpointError, match="cannot read"):
        load_digits_classifier(str(tmp_path / "truncated.pt"))


def test_every_representation_maps_to_the_same_canonical_intensities(digits):
    levels = digits.test
    expected = levels.float() / 16
    assert torch.equal(digits_intensity(levels), expected)
    assert torch.equal(digits_intensity(load_digits("continuous", seed=1).test), expected)
    assert torch.equal(digits_intensity(levels.float() / 16), expected)  # x / 16
    assert torch.equal(digits_intensity(levels.reshape(-1, 8, 8)), expected)
    binary = load_digits("binary").test
    assert torch.equal(digits_intensity(binary), binary)  # 0 -> 0, 1 -> 1
    for bad, match in [(levels.float(), "unit scale"), (2 * expected - 1, "unit scale"),
                       (levels + 1, "levels 0..16"), (torch.zeros(3, 10), "8x8")]:
        with pytest.raises(ppgen.DataError, match=match):
            digits_intensity(bad)


def test_the_data_declare_their_feature_space(digits):
    assert features_for(digits.info) == "digits"
    assert features_for(load_digits("continuous").info) == "digits"
    assert features_for(DataInfo((2,), "continuous", name="eight_gaussians")) == "eight_gaussians"
    assert features_for(DataInfo((5,), "continuous", name="data")) == "raw"
    assert feature_space("eight_gaussians").modes.num_modes == 8
    with pytest.raises(ppgen.ArgumentError, match="unknown feature space"):
        feature_space("inception")


# --------------------------------------------------------------------------- metrics
def test_frechet_distance_of_isotropic_gaussians_in_closed_form():
    """N(0, a²I) vs N(m, b²I) in D dims: |m|² + D (a - b)²; invariant under a rotation."""
    d, a, b = 6, 0.5, 2.0
    m = torch.arange(d, dtype=torch.float64)
    eye = torch.eye(d, dtype=torch.float64)
    expected = float(m.square().sum()) + d * (a - b) ** 2
    assert float(frechet_distance(torch.zeros(d), a**2 * eye, m, b**2 * eye)) == pytest.approx(
        expected, rel=1e-10)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(0),
                                       dtype=torch.float64))
    rotated = frechet_distance(torch.zeros(d), a**2 * q @ q.T, q @ m, b**2 * q @ q.T)
    assert float(rotated) == pytest.approx(expected, rel=1e-9)


def test_the_real_floor_is_small_against_shuffled_pixels(digits):
    floor = sample_metrics(digits.test, digits.val, features="digits")
    assert floor["fd"] == floor["fd_floor"]  # the floor is exactly this pair
    shuffled = digits.test[:, torch.randperm(64, generator=torch.Generator().manual_seed(0))]
    noise = sample_metrics(digits.test, shuffled, features="digits")
    assert floor["fd"] < 0.1 * noise["fd"] and floor["kid"] < 0.1 * noise["kid"]
    assert floor["classes_hit"] == 10 and floor["class_kl"] < 0.01
    assert floor["precision"] > noise["precision"] + 0.2
    assert floor["recall"] > 0.5 > 10 * noise["recall"]


def test_a_collapsed_generator_hits_one_class_with_low_recall_and_coverage(digits):
    """Every draw a training image of one class (the classifier knows them all): real-looking
    (high precision) but one mode of ten (low recall and coverage, KL = log 10)."""
    collapsed = digits.train[digits.labels["train"] == 0]  # distinct images (no zero radii)
    scores = sample_metrics(digits.test, collapsed, features="digits")
    assert scores["classes_hit"] == 1 and scores["class_counts"][0] == len(collapsed)
    assert scores["class_kl"] == pytest.approx(math.log(10))
    assert scores["precision"] > 0.7 and scores["recall"] < 0.15 and scores["coverage"] < 0.15
    assert scores["fd"] > 10 * scores["fd_floor"]


def test_class_accuracy_of_real_labelled_digits_is_the_classifier_accuracy(digits):
    assert class_accuracy(digits.test, digits.labels["test"]) == pytest.approx(424 / 447)
    shifted = (digits.labels["test"] + 1) % 10
    assert class_accuracy(digits.test, shifted) < 0.05
    with pytest.raises(ppgen.DataError, match="one label per sample"):
        class_accuracy(digits.test, digits.labels["val"])
    with pytest.raises(ppgen.ArgumentError, match="no classifier"):
        class_histogram(digits.test, "raw")


# --------------------------------------------------------------------------- every family
class Bank(GenerativeModel, register=False):
    """Draws real continuous digits: of the requested class when conditioned."""

    kind = ModelKind.IMPLICIT

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, conditional: bool) -> None:
        super().__init__()
        self.images, self.labels, self.conditional = images, labels, conditional

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size([64])

    @property
    def conditions(self) -> Conditions:
        return Conditions([Condition.classes("y", 10)] if self.conditional else [], "Bank")

    def generate(self, n: int, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None:
            return self.images[torch.randperm(len(self.images))[:n]]
        rows = [torch.nonzero(self.labels == c)[i % 20, 0] for i, c in enumerate(y.tolist())]
        return self.images[torch.stack(rows)]


def test_implicit_and_conditional_models_are_scored_in_the_digits_space():
    data = load_digits("continuous")
    torch.manual_seed(0)
    bank = Bank(data.train, data.labels["train"], conditional=False)
    report = nll_report(bank, data.test, features="digits")  # the implicit route
    assert report["features"] == "digits" and report["n"] == 447
    assert {"fd", "fd_floor", "kid", "precision", "recall", "density", "coverage",
            "classes_hit", "class_kl"} <= set(report) and report["classes_hit"] == 10
    conditional = Bank(data.train, data.labels["train"], conditional=True)
    labelled = nll_report(conditional, data.test, features="digits", y=data.labels["test"])
    assert labelled["class_accuracy"] == 1.0  # training images: the classifier knows them
    assert nll_report(bank, data.test)["features"] == "raw"


def test_explicit_models_add_sample_metrics_on_request():
    from ppgen.models import IndependentCategorical

    digits = load_digits("categorical")
    model = IndependentCategorical.for_data(digits.info)
    ppgen.fit(model, digits.train, progress=False)
    plain = nll_report(model, digits.test)
    assert "fd" not in plain  # off by default: the likelihood table alone
    torch.manual_seed(0)
    report = nll_report(model, digits.test, samples=True, features="digits")
    assert report["nll"] == pytest.approx(plain["nll"])
    assert report["features"] == "digits" and report["fd"] > report["fd_floor"]
    assert 0 < report["recall"] <= 1 and report["classes_hit"] >= 5


def test_a_declared_sampler_is_replaced_by_ddim_50_or_all_steps_of_a_shorter_chain():
    from ppgen.models import DDPM

    model = DDPM(4, num_steps=100, num_levels=3, denoiser={"width": 8, "blocks": 1})
    assert evaluation_sampler(model) == CHEAP_SAMPLER == {"sampler": "ddim", "steps": 50}
    short = DDPM(4, num_steps=10, num_levels=3, denoiser={"width": 8, "blocks": 1})
    assert evaluation_sampler(short) == {"sampler": "ddim", "steps": 10}
    assert short.sample(3, **evaluation_sampler(short)).shape == (3, 4)  # not "steps in 1..T"
    assert evaluation_sampler(model, {"steps": 5}) == {"steps": 5}
    assert evaluation_sampler(Bank(torch.zeros(1, 64), torch.zeros(1), False)) == {}
