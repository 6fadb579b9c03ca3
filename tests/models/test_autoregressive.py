"""FVSBN, NADE, RNADE and MADE: exhaustive normalisation of tiny instances, the
autoregressive property (autograd Jacobians of every output with respect to every input),
goodness of fit of samples, numerical integration of the continuous models, MADE's mask
cycle and ensemble, shapes and device, data errors, checkpoints, and a closed-form check of
gradient training.

Goodness-of-fit tests use fixed seeds and reject at p < 0.001 each (nine here), so a correct
implementation fails one of them with probability below 1% for a given seed.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats
from testkit import P_MIN, all_configs, data_for, randomize

import ppgen
from ppgen.data import DataInfo
from ppgen.evaluate import log_likelihood
from ppgen.models.autoregressive import FVSBN
from ppgen.models.made import MADE
from ppgen.models.nade import NADE, RNADE
from ppgen.protocol import ModelKind, model_class

DISCRETE = [FVSBN, NADE, MADE]
ALL = [FVSBN, NADE, RNADE, MADE]


def make(cls, D: int, likelihood: str | None = None, K: int | None = None, **kwargs):
    """A small instance; ``likelihood`` defaults to the class's own default."""
    if cls is NADE:
        kwargs.setdefault("hidden_dim", 12)
    if cls is RNADE:
        kwargs.setdefault("hidden_dim", 12)
        kwargs.setdefault("num_components", 3)
    if cls is MADE:
        kwargs.setdefault("hidden_dims", (24, 24))
        kwargs.setdefault("num_masks", 3)
    if likelihood is not None:
        kwargs["likelihood"] = likelihood
    if K is not None and likelihood in ("categorical", "logistic-mixture"):
        kwargs["num_levels"] = K
    if likelihood in ("logistic-mixture", "gaussian-mixture"):
        kwargs.setdefault("num_components", 2)
    return cls(D, **kwargs)





def positions(model, m: int = 0) -> torch.Tensor:
    """``position[d]``: the step at which dimension ``d`` is generated (ordering ``m``)."""
    D = model.num_dims
    order = model.orders[m] if isinstance(model, MADE) else torch.arange(D)
    position = torch.empty(D, dtype=torch.long)
    position[order] = torch.arange(D)
    return position


pytestmark = pytest.mark.usefixtures("clean_param_store")


# ---------------------------------------------------------------------------- protocol


@pytest.mark.parametrize("cls", ALL)
def test_protocol_and_config(cls):
    model = make(cls, 5)
    assert cls.kind == ModelKind.EXACT and cls.default_objective == "mle"
    assert model_class(cls.name) is cls and cls.name == cls.__name__.lower()
    clone = cls.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert model.event_shape == (5,)
    assert set(cls.fit_defaults) >= {"epochs", "batch_size", "lr", "patience"}


@pytest.mark.parametrize("cls", ALL)
def test_checkpoint_round_trip(cls, tmp_path):
    model = randomize(make(cls, 4), scale=0.5)
    if isinstance(model, MADE):
        model.mask_step.fill_(5)
    model.save(str(tmp_path / "model.pt"))
    loaded = ppgen.load(tmp_path / "model.pt")
    assert type(loaded) is cls
    x = model.sample(6)
    torch.testing.assert_close(log_likelihood(loaded, x), log_likelihood(model, x))
    if isinstance(model, MADE):
        assert torch.equal(loaded.orders, model.orders) and int(loaded.mask_step) == 5


# ---------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize("cls", DISCRETE)
def test_exhaustive_normalisation_binary(cls):
    model = randomize(make(cls, 10))
    x = data_for(model, all_configs(10, 2))
    total = torch.logsumexp(log_likelihood(model, x).double(), 0)
    assert abs(float(total)) < 1e-5


@pytest.mark.parametrize(
    "cls, likelihood",
    [
        (FVSBN, "categorical"),
        (NADE, "categorical"),
        (NADE, "logistic-mixture"),
        (MADE, "categorical"),
        (MADE, "logistic-mixture"),
    ],
)
def test_exhaustive_normalisation_levels(cls, likelihood):
    model = randomize(make(cls, 4, likelihood, K=3), seed=1)
    total = torch.logsumexp(log_likelihood(model, all_configs(4, 3)).double(), 0)
    assert abs(float(total)) < 1e-5


def test_every_made_ordering_normalises_on_its_own():
    model = randomize(make(MADE, 8, num_masks=4))
    x = all_configs(8, 2).float()
    model.train()
    for m in range(4):
        assert int(model.mask_step) == m
        ll = log_likelihood(model, x, differentiable=True).detach()
        assert abs(float(torch.logsumexp(ll.double(), 0))) < 1e-5


@pytest.mark.parametrize("cls", [RNADE, MADE])
def test_gaussian_mixture_models_integrate_to_one(cls):
    """Trapezoid rule in 1-D (4,001 points) and 2-D (401^2 points) on [-10, 10]^D."""
    for D, points, tol in [(1, 4001, 1e-4), (2, 401, 1e-3)]:
        model = randomize(make(cls, D, "gaussian-mixture"), seed=D, scale=0.5).double()
        grid = torch.linspace(-10, 10, points, dtype=torch.float64)
        mesh = torch.stack(torch.meshgrid(*[grid] * D, indexing="ij"), -1).reshape(-1, D)
        density = log_likelihood(model, mesh).exp().reshape([points] * D)
        for _ in range(D):
            density = torch.trapezoid(density, grid, dim=0)
        assert float(density) == pytest.approx(1.0, abs=tol)


# ---------------------------------------------------------------------------- the property


def dependency(net, f: torch.Tensor, **kwargs) -> torch.Tensor:
    """``[D, D]``: total |d params_i / d features_j| over one datum's features ``[D, F]``."""
    jac = torch.autograd.functional.jacobian(
        lambda g: net.forward_features(g.unsqueeze(0), **kwargs)[0], f
    )  # [D, P, D, F]
    return jac.abs().sum((1, 3))


CASES = [
    (FVSBN, "bernoulli"),
    (FVSBN, "categorical"),
    (NADE, "bernoulli"),
    (NADE, "categorical"),
    (NADE, "logistic-mixture"),
    (RNADE, "gaussian-mixture"),
    (MADE, "bernoulli"),
    (MADE, "categorical"),
    (MADE, "gaussian-mixture"),
]


@pytest.mark.parametrize("cls, likelihood", CASES)
def test_autoregressive_property(cls, likelihood):
    """d output_i / d input_j is exactly zero when j comes at or after i in the ordering."""
    D = 7
    model = randomize(make(cls, D, likelihood, K=4), seed=2, scale=0.5)
    f = torch.randn(D, model.head.num_features)
    masks = range(model.num_masks) if isinstance(model, MADE) else [None]
    for m in masks:
        kwargs = {} if m is None else {"index": torch.tensor(m)}
        dep = dependency(model.net, f, **kwargs)
        pos = positions(model, m or 0)
        later = pos.unsqueeze(0) >= pos.unsqueeze(1)  # [i, j]: j not before i
        assert torch.all(dep[later] == 0), f"mask {m}: an output sees its own or later inputs"
        if cls is not MADE:  # dense models: every earlier input matters
            assert torch.all(dep[~later] > 0)
        else:  # random connectivity: the last output still sees some earlier input
            assert dep[pos.argmax()].sum() > 0


def test_made_ensemble_outputs_match_each_mask():
    model = randomize(make(MADE, 5, num_masks=3), scale=0.5)
    x = all_configs(5, 2)[:7].float()
    every = model.net(x)
    assert every.shape == (3, 7, 5, 1)
    for m in range(3):
        torch.testing.assert_close(every[m], model.net(x, torch.tensor(m)))


# ---------------------------------------------------------------------------- MADE


def test_made_training_cycles_masks_and_evaluation_is_the_ensemble():
    model = randomize(make(MADE, 6, num_masks=3), scale=0.5)
    x = model.sample(5)
    model.train()
    single = [log_likelihood(model, x, differentiable=True).detach() for _ in range(3)]
    assert int(model.mask_step) == 3
    ensemble = log_likelihood(model, x)  # no gradient: the ensemble, in any mode
    expected = torch.logsumexp(torch.stack(single), 0) - math.log(3)
    torch.testing.assert_close(ensemble, expected)
    assert int(model.mask_step) == 3
    model.eval()
    torch.testing.assert_close(log_likelihood(model, x, differentiable=True).detach(), ensemble)


def test_made_masks_are_seeded():
    a, b, c = MADE(6, seed=1), MADE(6, seed=1), MADE(6, seed=2)
    assert torch.equal(a.orders, b.orders) and not torch.equal(a.orders, c.orders)
    assert torch.equal(a.net.layers[0].masks, b.net.layers[0].masks)
    assert torch.equal(MADE(4, order_agnostic=False).orders, torch.arange(4).expand(8, 4))


# ---------------------------------------------------------------------------- samples


@pytest.mark.parametrize(
    "cls, likelihood",
    [
        (FVSBN, "categorical"),
        (NADE, "categorical"),
        (NADE, "logistic-mixture"),
        (MADE, "categorical"),
        (MADE, "logistic-mixture"),
    ],
)
def test_samples_fit_exact_probabilities(cls, likelihood):
    K = 3
    model = randomize(make(cls, 3, likelihood, K=K), seed=5)
    num = 20000
    samples = model.sample(num)
    index = (samples * torch.tensor([K * K, K, 1])).sum(-1)
    observed = torch.bincount(index, minlength=K**3).double()
    probs = log_likelihood(model, all_configs(3, K)).double().exp()
    expected = probs / probs.sum() * num
    assert stats.chisquare(observed.numpy(), expected.numpy()).pvalue > P_MIN


def test_binary_samples_fit_exact_probabilities():
    model = randomize(make(NADE, 4), seed=6)
    samples = model.sample(20000).long()
    observed = torch.bincount((samples * torch.tensor([8, 4, 2, 1])).sum(-1), minlength=16)
    probs = log_likelihood(model, all_configs(4, 2).float()).double().exp()
    expected = probs / probs.sum() * 20000
    assert stats.chisquare(observed.double().numpy(), expected.numpy()).pvalue > P_MIN


@pytest.mark.parametrize("cls", [RNADE, MADE])
def test_continuous_samples_pass_the_rosenblatt_test(cls):
    """u_d = F(x_d | x_<d) of model samples are i.i.d. U(0, 1): KS per dimension and a
    chi-square on a 4 x 4 grid of (u_1, u_2). MADE is tested on one ordering (its mask 0)."""
    extra = {"num_masks": 1} if cls is MADE else {}
    model = randomize(make(cls, 2, "gaussian-mixture", **extra), seed=7, scale=0.5)
    x = model.sample(4000)
    with torch.no_grad():
        params = model.net(x)
    params = params[0] if params.dim() == 4 else params
    u = model.head.cdf(params, x).double()  # [n, 2]
    for d in range(2):
        assert stats.kstest(u[:, d].numpy(), "uniform").pvalue > P_MIN
    cells = (u * 4).long().clamp(max=3)
    observed = torch.bincount(cells[:, 0] * 4 + cells[:, 1], minlength=16).double()
    assert stats.chisquare(observed.numpy()).pvalue > P_MIN


# ---------------------------------------------------------------------------- shapes


LIKELIHOODS = {FVSBN: "categorical", NADE: "categorical", RNADE: "gaussian-mixture"}


@pytest.mark.parametrize("cls", ALL)
def test_shapes_dtype_and_device(cls, device):
    likelihood = LIKELIHOODS.get(cls, "logistic-mixture")
    model = make(cls, 6, likelihood, K=4).to(device)
    x = model.sample(7)
    assert x.shape == (7, 6) and x.device.type == device.type
    assert x.dtype == (torch.float32 if cls is RNADE else torch.long)
    assert model.check_data(x).shape == (7, 6)  # samples lie in the support
    ll = log_likelihood(model, x)
    assert ll.shape == (7,) and ll.device.type == device.type
    per_dim = model.log_prob_per_dim(x)
    assert per_dim.shape == (7, 6)
    torch.testing.assert_close(per_dim.sum(-1), ll, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("cls", DISCRETE)
def test_binary_samples_are_float_zeros_and_ones(cls):
    x = randomize(make(cls, 5)).sample(9)
    assert x.dtype == torch.float32 and ((x == 0) | (x == 1)).all()


# ---------------------------------------------------------------------------- data


@pytest.mark.parametrize("cls", DISCRETE)
@pytest.mark.parametrize(
    "bad, match",
    [(lambda x: x[:, :3], "shape"), (lambda x: x + 3, "values"), (lambda x: x - 2, "values")],
    ids=["width", "too-large", "negative"],
)
def test_bad_data_is_a_data_error(cls, bad, match):
    model = make(cls, 4, "categorical", K=3)
    with pytest.raises(ppgen.DataError, match=match):
        log_likelihood(model, bad(torch.ones(5, 4, dtype=torch.long)))


def test_bernoulli_refuses_levels_and_rnade_refuses_nan():
    with pytest.raises(ppgen.DataError, match="0 and 1"):
        log_likelihood(make(NADE, 3), torch.tensor([[0.0, 2.0, 1.0]]))
    with pytest.raises(ppgen.DataError, match="NaN"):
        log_likelihood(make(RNADE, 2), torch.tensor([[0.0, float("nan")]]))


def test_constructor_errors():
    with pytest.raises(ppgen.ModelError, match="no 'gaussian-mixture' likelihood"):
        NADE(4, likelihood="gaussian-mixture")
    with pytest.raises(ppgen.ModelError, match="needs num_levels"):
        MADE(4, likelihood="categorical")
    with pytest.raises(ppgen.ModelError, match="activation"):
        NADE(4, activation="swish")
    with pytest.raises(ppgen.ModelError, match="num_masks"):
        MADE(4, num_masks=0)


@pytest.mark.parametrize("cls", ALL)
def test_for_data(cls):
    categorical = DataInfo(event_shape=(3,), likelihood="categorical", num_levels=4)
    binary = DataInfo(event_shape=(3,), likelihood="bernoulli", num_levels=2)
    continuous = DataInfo(event_shape=(3,), likelihood="continuous")
    for info, head in [
        (categorical, "categorical"),
        (binary, "bernoulli"),
        (continuous, "gaussian-mixture"),
    ]:
        if head in cls.likelihoods:
            model = cls.for_data(info)
            assert model.likelihood == head and model.num_dims == 3
            assert model.num_levels == (4 if head == "categorical" else None)
        else:
            with pytest.raises(ppgen.ModelError, match="RNADE|NADE"):
                cls.for_data(info)
    with pytest.raises(ppgen.ModelError, match="flatten"):
        cls.for_data(DataInfo(event_shape=(2, 2), likelihood="continuous"))


# ---------------------------------------------------------------------------- training


def test_fit_reaches_the_closed_form_optimum():
    """A 2-D binary FVSBN is saturated: maximum likelihood is the empirical distribution."""
    g = torch.Generator().manual_seed(8)
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    x = all_configs(2, 2)[torch.multinomial(probs, 400, replacement=True, generator=g)]
    empirical = torch.bincount(x[:, 0] * 2 + x[:, 1], minlength=4).double() / 400
    model = FVSBN(2)
    history = ppgen.fit(
        model,
        x.float(),
        epochs=150,
        batch_size=400,
        lr=0.1,
        progress=False,
        device="cpu",
        weight_decay=0.0,
    )
    assert len(history) == 150
    fitted = log_likelihood(model, all_configs(2, 2).float()).double().exp()
    torch.testing.assert_close(fitted, empirical, atol=2e-3, rtol=0)


# ---------------------------------------------------------------------------- digits


@pytest.mark.slow
@pytest.mark.parametrize("cls", DISCRETE)
def test_digits_beats_the_markov_chain(cls):
    """With its fit_defaults each model beats the Markov chain (101.8 nats) clearly; the
    quick runs recorded in the classes' fit_defaults give 91-92 nats (about a minute each)."""
    from ppgen.data import load_digits

    digits = load_digits("categorical")
    model = cls.for_data(digits.info)
    ppgen.fit(model, digits.train, digits.val, progress=False, device="cpu")
    assert float(-log_likelihood(model, digits.test).mean()) < 95.0
