"""The zoo flows (RealNVP, MAF, NSF): the adapter's contract battery, the model protocol,
the logit pre-transform, class-conditional flows and the labels plumbing of the engine."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from flow_contract import CHECKS, FlowCase

import ppgen
from ppgen.cli import main
from ppgen.data import DataInfo, load_toy
from ppgen.errors import DataError, ModelError, PpgenError
from ppgen.models import MAF, NSF, Dequantized, RealNVP
from ppgen.objective import Objective

SMALL = {"num_layers": 2, "hidden_features": 8}

MODELS = {
    "realnvp": lambda: RealNVP(2, **SMALL),
    "realnvp-batchnorm": lambda: RealNVP(3, normalization="batchnorm", **SMALL),
    "maf": lambda: MAF(3, permutation="random", **SMALL),
    "nsf-coupling": lambda: NSF(2, **SMALL),
    "nsf-autoregressive": lambda: NSF(2, transform="autoregressive", **SMALL),
    "realnvp-logit": lambda: RealNVP(3, logit_alpha=0.05, **SMALL),
    "maf-conditional": lambda: MAF(2, num_classes=3, **SMALL),
}
# In eval mode: ActNorm's data-dependent initialisation and BatchNorm's batch statistics would
# otherwise change the density between two calls of the battery (they are training devices).
CASES = [
    FlowCase(name, (lambda build=build: build().eval().flow),
             context_shape=(3,) if name.endswith("conditional") else None)
    for name, build in MODELS.items()
]


@pytest.mark.parametrize("check", CHECKS.values(), ids=list(CHECKS))
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_contract_battery(case, check):
    if case.name.endswith("logit") and check is CHECKS["grid_normalisation"]:
        pytest.skip("bounded support: see test_logit_flow_integrates_to_one_on_its_support")
    check(case)


# ----------------------------------------------------------------------------- the protocol


@pytest.mark.parametrize("name", list(MODELS))
def test_program_shapes_and_exact_likelihood(name):
    torch.manual_seed(0)
    model = MODELS[name]()
    model.eval()
    x = model.sample(7)
    assert x.shape == (7, model.num_dims) and x.dtype == torch.float32
    kwargs, context = {}, None
    if model.num_classes:
        y = torch.tensor([0, 1, 2, 0, 1, 2, 0])
        kwargs, context = {"y": y}, torch.nn.functional.one_hot(y, 3).float()
    ll = ppgen.log_likelihood(model, x, **kwargs)
    assert ll.shape == (7,)
    torch.testing.assert_close(ll, model.flow.log_prob(x, context=context))
    assert model.kind == ppgen.ModelKind.EXACT and model.default_objective == "mle"


def test_logit_pre_transform_is_in_the_density():
    """``log p(y) = log N(f(z)) + log|det df/dz| + sum log|dz/dy|``, the logit part by hand."""
    torch.manual_seed(0)
    alpha = 0.05
    model = RealNVP(3, logit_alpha=alpha, **SMALL).double().eval()
    y = torch.rand(16, 3, dtype=torch.float64)
    s = alpha + (1 - 2 * alpha) * y
    z = torch.log(s / (1 - s))
    logit_logdet = (math.log(1 - 2 * alpha) - torch.log(s) - torch.log1p(-s)).sum(-1)
    rest = model.flow._transform._transforms[1:]
    noise, logdet = z, torch.zeros(16, dtype=torch.float64)
    for layer in rest:
        noise, ld = layer(noise)
        logdet = logdet + ld
    base = -0.5 * (noise**2).sum(-1) - 1.5 * math.log(2 * math.pi)
    expected = base + logdet + logit_logdet
    torch.testing.assert_close(ppgen.log_likelihood(model, y), expected)


@pytest.mark.parametrize("alpha", [0.0, 0.05])
def test_logit_flow_integrates_to_one_on_its_support(alpha):
    """The density of y lives on ``(-a, 1 + a)``, ``a = alpha / (1 - 2 alpha)``: a midpoint
    grid of 400 x 400 there integrates to one within 5e-3."""
    torch.manual_seed(1)
    model = NSF(2, logit_alpha=alpha, **SMALL).double().eval()
    a = alpha / (1 - 2 * alpha)
    n = 400
    axis = -a + (torch.arange(n, dtype=torch.float64) + 0.5) * (1 + 2 * a) / n
    grid = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        log_p = model.distribution().log_prob(grid)
    mass = float(log_p.exp().sum() * ((1 + 2 * a) / n) ** 2)
    assert abs(mass - 1.0) < 5e-3, mass


def test_save_and_load_round_trip(tmp_path):
    for name in ["realnvp", "realnvp-batchnorm", "nsf-coupling", "maf-conditional"]:
        torch.manual_seed(0)
        model = MODELS[name]()
        x = torch.randn(10, model.num_dims)
        # a training step initialises ActNorm and moves every parameter off its start
        kwargs = {"labels": torch.arange(10) % 3} if model.num_classes else {}
        ppgen.fit(model, x, epochs=1, batch_size=10, progress=False, lr=0.05, **kwargs)
        model.save(tmp_path / f"{name}.pt")
        loaded = ppgen.load(tmp_path / f"{name}.pt")
        assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
        kw = {"y": torch.arange(10) % 3} if model.num_classes else {}
        model.eval()
        torch.testing.assert_close(ppgen.log_likelihood(loaded, x, **kw),
                                   ppgen.log_likelihood(model, x, **kw))


# ----------------------------------------------------------------------------- for_data


def test_for_data_on_each_representation():
    toy = load_toy("two_moons", 10, 5, 5).info
    flow = MAF.for_data(toy, **SMALL)
    assert isinstance(flow, MAF) and flow.logit_alpha is None and flow.num_dims == 2
    digits = {"event_shape": (6,), "num_levels": 17, "image_shape": (2, 3)}
    continuous = DataInfo(likelihood="continuous", **digits)
    flow = RealNVP.for_data(continuous, **SMALL)
    assert isinstance(flow, RealNVP) and flow.logit_alpha == 0.05 and flow.num_dims == 6
    categorical = DataInfo(likelihood="categorical", **digits)
    model = NSF.for_data(categorical, dequantization="variational", **SMALL)
    assert isinstance(model, Dequantized) and model.num_levels == 17
    assert model.dequantization == "variational" and isinstance(model.flow_model, NSF)
    assert model.flow_model.logit_alpha == 0.05 and model.flow_model.num_layers == 2
    binary = DataInfo(event_shape=(6,), likelihood="bernoulli", num_levels=2)
    assert MAF.for_data(binary, **SMALL).num_levels == 2
    with pytest.raises(ModelError, match="flatten"):
        MAF.for_data(DataInfo(event_shape=(1, 8, 8), likelihood="continuous"))
    with pytest.raises(ModelError, match="discrete data"):
        MAF.for_data(toy, dequantization="variational")


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: RealNVP(1), "num_dims >= 2"),
        (lambda: RealNVP(0), "num_dims"),
        (lambda: RealNVP(2, num_layers=0), "num_layers"),
        (lambda: RealNVP(2, normalization="layernorm"), "normalization"),
        (lambda: RealNVP(2, dropout=1.5), "dropout"),
        (lambda: MAF(2, permutation="sideways"), "permutation"),
        (lambda: MAF(2, logit_alpha=0.5), "logit_alpha"),
        (lambda: MAF(2, num_classes=1), "num_classes"),
        (lambda: NSF(2, transform="spline"), "transform"),
        (lambda: NSF(1, transform="coupling"), "num_dims >= 2"),
        (lambda: NSF(2, num_bins=1), "num_bins"),
        (lambda: NSF(2, tail_bound=0.0), "tail_bound"),
    ],
)
def test_bad_arguments_are_model_errors(build, message):
    with pytest.raises(ModelError, match=message):
        build()


def test_one_dimensional_data_use_autoregressive_flows():
    assert MAF(1, **SMALL).sample(3).shape == (3, 1)


def test_data_outside_the_unit_interval_for_logit_flows():
    model = MAF(2, logit_alpha=0.05, **SMALL)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        ppgen.log_likelihood(model, torch.tensor([[0.5, 1.2]]))
    strict = MAF(2, logit_alpha=0.0, **SMALL)
    with pytest.raises(DataError, match=r"\(0, 1\)"):
        ppgen.fit(strict, torch.tensor([[0.0, 0.5], [0.2, 0.3]]), epochs=1, progress=False)
    with pytest.raises(DataError, match="NaN"):
        ppgen.log_likelihood(MAF(2, **SMALL), torch.tensor([[math.nan, 0.0]]))


# ----------------------------------------------------------------------------- conditional


def _two_classes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0 ~ N((-2, 0), 0.5^2 I), class 1 ~ N((2, 1), 0.5^2 I), alternating labels."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    centres = torch.tensor([[-2.0, 0.0], [2.0, 1.0]])
    return centres[y] + 0.5 * torch.randn(n, 2, generator=g), y


def _true_log_density(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    centres = torch.tensor([[-2.0, 0.0], [2.0, 1.0]])
    return (-0.5 * ((x - centres[y]) / 0.5).pow(2).sum(-1) - math.log(2 * math.pi * 0.25))


def test_conditional_flow_learns_two_class_densities():
    torch.manual_seed(0)
    x, y = _two_classes(400, seed=0)
    x_val, y_val = _two_classes(200, seed=1)
    model = MAF(2, num_layers=2, hidden_features=16, num_classes=2)
    history = ppgen.fit(model, x, x_val, labels=y, val_labels=y_val, epochs=15, batch_size=100,
                        lr=1e-2, progress=False)
    assert history.best_val is not None
    x_test, y_test = _two_classes(400, seed=2)
    own = ppgen.log_likelihood(model, x_test, y=y_test)
    other = ppgen.log_likelihood(model, x_test, y=1 - y_test)
    assert float((own > other).float().mean()) > 0.98  # classifies by likelihood
    truth = _true_log_density(x_test, y_test)
    assert abs(float(own.mean() - truth.mean())) < 0.3  # close to the true density
    samples = model.sample(500, y=1)
    assert samples.shape == (500, 2)
    torch.testing.assert_close(samples.mean(0), torch.tensor([2.0, 1.0]), atol=0.2, rtol=0)
    mixed = model.sample(4)  # without labels: classes in turn
    assert mixed.shape == (4, 2)


def test_conditional_flow_needs_labels():
    model = MAF(2, num_classes=2, **SMALL)
    x = torch.randn(4, 2)
    with pytest.raises(ModelError, match="pass the labels"):
        ppgen.log_likelihood(model, x)
    with pytest.raises(DataError, match="unconditional"):  # as ppgen.fit says it
        ppgen.log_likelihood(MAF(2, **SMALL), x, y=torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize("estimator", ["log_likelihood", "elbo"])
@pytest.mark.parametrize(
    "labels, message",
    [
        (torch.tensor([0, 1, 2, 0]), "class range"),
        (torch.tensor([0, 1, 1]), r"shape \(3,\).*4 rows"),
        (torch.tensor([0.5, 1, 1, 0]), "non-integer"),
    ],
)
def test_the_evaluation_layer_checks_labels(estimator, labels, message):
    model, x = MAF(2, num_classes=2, **SMALL), torch.randn(4, 2)
    args = (model, x) if estimator == "log_likelihood" else (model, None, x)
    with pytest.raises(DataError, match=message):
        getattr(ppgen, estimator)(*args, y=labels)


@pytest.mark.parametrize(
    "labels, val_labels, message",
    [
        (torch.tensor([0, 1, 2, 0]), torch.tensor([0, 1]), "class range"),
        (torch.tensor([0, 1, 1]), torch.tensor([0, 1]), r"shape \(3,\).*4 rows"),
        (torch.tensor([0, 1, 1, 0]), None, "val_labels"),
        (torch.tensor([0.5, 1, 1, 0]), torch.tensor([0, 1]), "non-integer"),
    ],
)
def test_bad_labels_are_clear_errors(labels, val_labels, message):
    model = MAF(2, num_classes=2, **SMALL)
    x, x_val = torch.randn(4, 2), torch.randn(2, 2)
    with pytest.raises(PpgenError, match=message):
        ppgen.fit(model, x, x_val, labels=labels, val_labels=val_labels, epochs=1,
                  progress=False)


def test_labels_for_an_unconditional_model_are_refused():
    with pytest.raises(PpgenError, match="not class-conditional|unconditional"):
        ppgen.fit(ppgen.models.IndependentBernoulli(2), torch.ones(4, 2),
                  labels=torch.zeros(4, dtype=torch.long), epochs=1, progress=False)
    with pytest.raises(DataError, match="unconditional"):
        ppgen.fit(MAF(2, **SMALL), torch.randn(4, 2), labels=torch.zeros(4, dtype=torch.long),
                  epochs=1, progress=False)


class _Recorder(Objective):
    """Checks that every batch arrives with the labels of its own rows."""

    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[int] = []

    def loss(self, model, batch, y=None):
        assert y is not None and torch.equal(batch[:, 0].long() % 3, y)
        self.seen += batch[:, 0].long().tolist()
        return sum(p.sum() for p in model.parameters()) * 0.0

    def validation_loss(self, model, batch, y=None):
        assert y is not None and torch.equal(batch[:, 0].long() % 3, y)
        return torch.zeros(len(batch))


def test_engine_batches_labels_with_their_rows():
    x = torch.stack([torch.arange(23.0), torch.zeros(23)], dim=1)
    labels = torch.arange(23) % 3
    val = torch.stack([torch.arange(11.0), torch.zeros(11)], dim=1)
    model = MAF(2, num_classes=3, **SMALL)
    recorder = _Recorder()
    ppgen.fit(model, x, val, objective=recorder, labels=labels, val_labels=torch.arange(11) % 3,
              epochs=2, batch_size=5, progress=False)
    assert sorted(recorder.seen) == sorted(list(range(23)) * 2)  # every row, shuffled


# ----------------------------------------------------------------------------- device


def test_flow_end_to_end_on_device(device, tmp_path):
    torch.manual_seed(0)
    data = load_toy("eight_gaussians", 300, 100, 100)
    model = NSF.for_data(data.info, **SMALL)
    ppgen.fit(model, data.train, data.val, epochs=2, batch_size=100, device=device,
              out_dir=tmp_path, progress=False)
    assert model.device.type == device.type
    x = data.test.to(device)
    ll = ppgen.log_likelihood(model, x)
    assert ll.device.type == device.type and ll.shape == (100,) and torch.isfinite(ll).all()
    assert model.sample(5).device.type == device.type
    loaded = ppgen.load(tmp_path / "model.pt", map_location=device)
    torch.testing.assert_close(ppgen.log_likelihood(loaded, x), ll)


# ----------------------------------------------------------------------------- CLI


def test_cli_fit_evaluate_and_sample_a_toy_flow(tmp_path):
    out = tmp_path / "maf"
    argv = ["fit", "maf", "--data", "two_moons", "--out", str(out), "--epochs", "1",
            "--batch-size", "500", "--set", "num_layers=1", "--set", "hidden_features=8",
            "--no-progress"]
    assert main(argv) == 0
    assert main(["evaluate", str(out), "--split", "val"]) == 0
    report = json.loads((out / "eval-val.json").read_text())
    assert report["n"] == 2000 and math.isfinite(report["nll"]) and "elbo" not in report
    npy = tmp_path / "s.npy"
    assert main(["sample", str(out), "-n", "50", "--npy", str(npy)]) == 0
    assert (out / "samples.png").stat().st_size > 0 and np.load(npy).shape == (50, 2)


def test_cli_fits_dequantised_digits(tmp_path):
    out = tmp_path / "realnvp"
    argv = ["fit", "realnvp", "--data", "digits", "--out", str(out), "--epochs", "1",
            "--set", "num_layers=2", "--set", "hidden_features=8", "--no-progress"]
    assert main(argv) == 0
    loaded = ppgen.load(out / "model.pt")
    assert isinstance(loaded, Dequantized) and loaded.flow_model.name == "realnvp"
    assert main(["evaluate", str(out), "--particles", "4"]) == 0
    report = json.loads((out / "eval-test.json").read_text())
    assert report["n"] == 447 and report["iwae"] <= report["elbo"] + 1.0
    npy = tmp_path / "d.npy"
    assert main(["sample", str(out), "-n", "4", "--npy", str(npy)]) == 0
    levels = np.load(npy)
    assert levels.shape == (4, 64) and levels.min() >= 0 and levels.max() <= 16


def test_density_heatmap_shows_density_data_and_samples(tmp_path):
    from ppgen import plots

    torch.manual_seed(0)
    model = MAF(2, **SMALL).eval()
    data = torch.randn(300, 2)
    fig = plots.density_heatmap(model, data, num_samples=200, resolution=61, title="maf",
                                bounds=(-3.0, 3.0, -2.0, 4.0))
    density, scatter_data, scatter_samples = fig.axes[:3]  # then the colour bar
    mesh = density.collections[0].get_array().reshape(61, 61)  # rows: y, columns: x
    points = torch.tensor([[-3.0, -2.0], [0.0, 1.0], [3.0, 4.0], [0.0, -2.0]])
    expected = ppgen.log_likelihood(model, points).exp()
    got = torch.tensor([mesh[0, 0], mesh[30, 30], mesh[60, 60], mesh[0, 30]])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-7)
    assert len(scatter_data.collections[0].get_offsets()) == 300
    assert len(scatter_samples.collections[0].get_offsets()) == 200
    assert plots.save(fig, tmp_path / "d.png").stat().st_size > 0
