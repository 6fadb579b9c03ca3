"""The discrete baselines: exhaustive normalisation, parameter counts, closed-form fits against
hand counts and against gradient training, goodness of fit of samples, data errors, and the
digits benchmark numbers (BENCHMARKS.md).

Goodness-of-fit tests use a fixed seed and reject at p < 0.001 each (four here, one per model).
"""

from __future__ import annotations

import itertools
from collections import Counter

import pyro
import pytest
import testkit
import torch
from scipy.stats import chisquare
from testkit import P_MIN, all_configs

import ppgen
from ppgen.data import DataInfo
from ppgen.evaluate import log_likelihood
from ppgen.models import FullJoint, IndependentBernoulli, IndependentCategorical, MarkovChain
from ppgen.models.discrete import ALPHA_GRID, DEFAULT_ALPHA
from ppgen.protocol import ModelKind, model_class

ALL = [IndependentBernoulli, IndependentCategorical, FullJoint, MarkovChain]
CATEGORICAL = [IndependentCategorical, FullJoint, MarkovChain]


def make(cls, n: int, K: int = 2):
    return cls(n) if cls is IndependentBernoulli else cls(n, K)



def randomize(model, seed: int = 0):
    return testkit.randomize(model, seed, scale=2.0)


def data_for(model, x: torch.Tensor) -> torch.Tensor:
    """Bernoulli models take float 0/1, the others integer levels."""
    return x.float() if isinstance(model, IndependentBernoulli) else x


def draw(num: int, n: int, K: int, seed: int) -> torch.Tensor:
    """``num`` rows from a random (dependent) distribution over all configurations."""
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(K**n, generator=g), 0)
    index = torch.multinomial(probs, num, replacement=True, generator=g)
    return all_configs(n, K)[index]


pytestmark = pytest.mark.usefixtures("clean_param_store")


# ---------------------------------------------------------------------------- protocol


@pytest.mark.parametrize("cls", ALL)
def test_protocol(cls):
    model = make(cls, 5, 2)
    assert cls.kind == ModelKind.EXACT and cls.default_objective == "closed-form"
    assert model_class(cls.name) is cls
    clone = cls.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert model.event_shape == (5,)
    assert dict(clone.state_dict()).keys() == dict(model.state_dict()).keys()


@pytest.mark.parametrize("cls", ALL)
def test_checkpoint_round_trip(cls, tmp_path):
    from ppgen.checkpoint import load_model

    model = randomize(make(cls, 4, 2))
    model.save(str(tmp_path / "model.pt"))
    loaded = load_model(tmp_path / "model.pt")
    assert type(loaded) is cls
    x = data_for(model, all_configs(4, 2))
    torch.testing.assert_close(log_likelihood(loaded, x), log_likelihood(model, x))


@pytest.mark.parametrize("cls", ALL)
def test_sample_shape_dtype_and_support(cls):
    model = randomize(make(cls, 6, 2))
    x = model.sample(7)
    assert x.shape == (7, 6) and x.device == model.device
    assert x.dtype == (torch.float32 if cls is IndependentBernoulli else torch.long)
    assert ((x == 0) | (x == 1)).all()
    assert log_likelihood(model, x).shape == (7,)


# ---------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize("cls", ALL)
def test_exhaustive_normalisation_binary(cls):
    model = randomize(make(cls, 10, 2))
    x = data_for(model, all_configs(10, 2))
    total = torch.logsumexp(log_likelihood(model, x).double(), 0)
    assert abs(float(total)) < 1e-5


@pytest.mark.parametrize("cls", CATEGORICAL)
def test_exhaustive_normalisation_categorical(cls):
    model = randomize(make(cls, 4, 3), seed=1)
    total = torch.logsumexp(log_likelihood(model, all_configs(4, 3)).double(), 0)
    assert abs(float(total)) < 1e-5


# ---------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("n", [1, 3, 10])
def test_num_parameters_binary(n):
    assert FullJoint(n).num_parameters() == 2**n - 1
    assert IndependentBernoulli(n).num_parameters() == n
    assert IndependentCategorical(n, 2).num_parameters() == n
    assert MarkovChain(n, 2).num_parameters() == 2 * n - 1


@pytest.mark.parametrize("n, K", [(4, 3), (64, 17)])
def test_num_parameters_categorical(n, K):
    assert IndependentCategorical(n, K).num_parameters() == n * (K - 1)
    assert MarkovChain(n, K).num_parameters() == (K - 1) + (n - 1) * K * (K - 1)
    if K**n <= 2**24:
        assert FullJoint(n, K).num_parameters() == K**n - 1


def test_full_joint_refuses_a_table_it_cannot_hold():
    with pytest.raises(ppgen.ModelError, match="2\\^64 = 18446744073709551616 configurations") as e:
        FullJoint(64)
    assert "MarkovChain" in str(e.value) and "autoregressive" in str(e.value)
    with pytest.raises(ppgen.ModelError, match="17\\^64"):
        FullJoint(64, 17)


# ---------------------------------------------------------------------------- closed form


def smoothed_log_probs(cls, x: torch.Tensor, K: int, alpha: float) -> torch.Tensor:
    """log p of every configuration from counts computed by hand (loops, no vectorisation)."""
    rows = [tuple(r) for r in x.tolist()]
    N, n = len(rows), len(rows[0])
    out = []
    for c in itertools.product(range(K), repeat=n):
        if cls is FullJoint:
            p = (Counter(rows)[c] + alpha) / (N + K**n * alpha)
        elif cls is MarkovChain:
            p = (sum(r[0] == c[0] for r in rows) + alpha) / (N + K * alpha)
            for i in range(1, n):
                prev = [r for r in rows if r[i - 1] == c[i - 1]]
                p *= (sum(r[i] == c[i] for r in prev) + alpha) / (len(prev) + K * alpha)
        else:  # independent Bernoulli / categorical
            p = 1.0
            for i in range(n):
                p *= (sum(r[i] == c[i] for r in rows) + alpha) / (N + K * alpha)
        out.append(torch.tensor(p, dtype=torch.float64).log())
    return torch.stack(out)


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_closed_form_equals_hand_counts(cls, alpha):
    K = 2 if cls is IndependentBernoulli else 3
    x = draw(40, 3, K, seed=2)
    model = make(cls, 3, K)
    params = list(model.parameters())
    assert model.fit_closed_form(data_for(model, x), alpha=alpha) is model
    assert model.alpha_ == alpha
    assert all(p is q for p, q in zip(params, model.parameters()))  # updated in place
    got = log_likelihood(model, data_for(model, all_configs(3, K))).double()
    expected = smoothed_log_probs(cls, x, K, alpha)
    finite = torch.isfinite(expected)
    assert torch.equal(finite, torch.isfinite(got))  # alpha = 0: unseen events get p = 0
    torch.testing.assert_close(got[finite], expected[finite], atol=1e-5, rtol=0)


@pytest.mark.parametrize("cls", ALL)
def test_gradient_training_reaches_the_closed_form_optimum(cls):
    torch.manual_seed(0)
    x = draw(300, 3, 2, seed=3)
    assert len(set(map(tuple, x.tolist()))) == 8  # every event seen: the MLE is finite
    reference = make(cls, 3).fit_closed_form(data_for(make(cls, 3), x), alpha=0.0)
    model = make(cls, 3)
    data = data_for(model, x)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.15)
    for _ in range(120):
        optimizer.zero_grad()
        loss = -log_likelihood(model, data, differentiable=True).mean()
        loss.backward()
        optimizer.step()
    configs = data_for(model, all_configs(3, 2))
    got, expected = log_likelihood(model, configs), log_likelihood(reference, configs)
    torch.testing.assert_close(got.exp(), expected.exp(), atol=1e-3, rtol=0)
    assert float(loss.detach()) == pytest.approx(
        float(-log_likelihood(reference, data).mean()), abs=1e-4
    )


def test_alpha_auto_selects_on_validation():
    x, val = draw(200, 4, 3, seed=4), draw(100, 4, 3, seed=4)
    model = MarkovChain(4, 3).fit_closed_form(x, alpha="auto", val=val)
    scores = model.alpha_scores_
    assert tuple(scores) == ALPHA_GRID and model.alpha_ == min(scores, key=scores.get)
    refit = MarkovChain(4, 3).fit_closed_form(x, alpha=model.alpha_)
    assert float(-log_likelihood(refit, val).mean()) == pytest.approx(scores[model.alpha_])
    assert MarkovChain(4, 3).fit_closed_form(x).alpha_ == DEFAULT_ALPHA
    with pytest.raises(ppgen.ModelError, match="alpha"):
        MarkovChain(4, 3).fit_closed_form(x, alpha=-1.0)
    with pytest.raises(ppgen.DataError, match="val"):
        MarkovChain(4, 3).fit_closed_form(x, val=val[:, :3])


# ---------------------------------------------------------------------------- samples


@pytest.mark.parametrize("cls", ALL)
def test_samples_fit_exact_probabilities(cls):
    K = 2 if cls is IndependentBernoulli else 3
    model = randomize(make(cls, 3, K), seed=5)
    pyro.set_rng_seed(0)
    num = 20000
    samples = model.sample(num).long()
    index = (samples * torch.tensor([K * K, K, 1])).sum(-1)
    observed = torch.bincount(index, minlength=K**3).double()
    probs = log_likelihood(model, data_for(model, all_configs(3, K))).double().exp()
    expected = probs / probs.sum() * num
    assert chisquare(observed.numpy(), expected.numpy()).pvalue > P_MIN


# ---------------------------------------------------------------------------- data errors


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda x: x[:, :3], "shape"),
        (lambda x: torch.where(x == x.max(), float("nan"), x.float()), "NaN"),
        (lambda x: x - 2, "values"),
        (lambda x: x + 3, "values"),
    ],
    ids=["width", "nan", "negative", "too-large"],
)
def test_bad_data_is_a_data_error(cls, bad, match):
    model = make(cls, 4, 3 if cls is not IndependentBernoulli else 2)
    x = data_for(model, torch.ones(5, 4, dtype=torch.long))
    with pytest.raises(ppgen.DataError, match=match):
        log_likelihood(model, bad(x))


def test_bernoulli_refuses_non_binary_data():
    with pytest.raises(ppgen.DataError, match="0 and 1"):
        log_likelihood(IndependentBernoulli(3), torch.tensor([[0.0, 0.5, 1.0]]))


# ---------------------------------------------------------------------------- for_data


@pytest.mark.parametrize("cls", CATEGORICAL)
def test_for_data(cls):
    categorical = DataInfo(event_shape=(3,), likelihood="categorical", num_levels=4)
    binary = DataInfo(event_shape=(3,), likelihood="bernoulli", num_levels=2)
    assert cls.for_data(categorical).get_config() == {"num_dims": 3, "num_levels": 4}
    assert cls.for_data(binary).num_levels == 2
    with pytest.raises(ppgen.ModelError, match="continuous"):
        cls.for_data(DataInfo(event_shape=(3,), likelihood="continuous"))
    with pytest.raises(ppgen.ModelError, match="flatten"):
        cls.for_data(DataInfo(event_shape=(2, 2), likelihood="categorical", num_levels=3))


def test_bernoulli_for_data():
    binary = DataInfo(event_shape=(5,), likelihood="bernoulli", num_levels=2)
    assert IndependentBernoulli.for_data(binary).get_config() == {"num_dims": 5}
    with pytest.raises(ppgen.ModelError, match="IndependentCategorical"):
        IndependentBernoulli.for_data(DataInfo((5,), "categorical", num_levels=17))


# ---------------------------------------------------------------------------- digits


def _digits_test_nll(cls, representation: str) -> float:
    from ppgen.data.digits import load_digits

    splits = load_digits(representation)
    model = cls.for_data(splits.info).fit_closed_form(splits.train, alpha="auto", val=splits.val)
    return float(-log_likelihood(model, splits.test).mean())


@pytest.mark.parametrize("cls, reference", [(IndependentCategorical, 106.3), (MarkovChain, 101.8)])
def test_digits_categorical_matches_benchmark_reference(cls, reference):
    assert _digits_test_nll(cls, "categorical") == pytest.approx(reference, abs=0.5)


def test_digits_binary_bernoulli_equals_two_level_categorical():
    bernoulli = _digits_test_nll(IndependentBernoulli, "binary")
    assert _digits_test_nll(IndependentCategorical, "binary") == pytest.approx(bernoulli, abs=1e-3)
    assert _digits_test_nll(MarkovChain, "binary") < bernoulli


@pytest.mark.parametrize("cls, K", [(IndependentBernoulli, 2), (IndependentCategorical, 3),
                                    (MarkovChain, 3)])
def test_per_pixel_terms_sum_to_the_exact_log_likelihood(cls, K):
    """The per-pixel decomposition (what explains an anomaly score) of the closed-form fit."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, K, (200, 5), generator=g)
    model = (cls(5) if cls is IndependentBernoulli else cls(5, K)).fit_closed_form(x)
    parts = model.log_prob_per_dim(x[:20])
    assert parts.shape == (20, 5) and (parts <= 0).all()
    torch.testing.assert_close(parts.sum(-1), log_likelihood(model, x[:20]))
    if cls is MarkovChain:  # term i is log p_i(x_i | x_{i-1}): counts of the pair, normalised
        a, b = int(x[0, 2]), int(x[0, 3])
        pair = ((x[:, 2] == a) & (x[:, 3] == b)).sum() + DEFAULT_ALPHA
        given = (x[:, 2] == a).sum() + K * DEFAULT_ALPHA
        torch.testing.assert_close(parts[0, 3], (pair / given).log().float())
