"""The evaluation layer's entry points: one argument order, and arguments checked on one line.

Pyro users write ``(model, guide, ...)``: ``ppgen.elbo(model, guide, x)`` always took that
order, and ``ppgen.log_likelihood(model, guide, x)`` takes it too. The older
``log_likelihood(model, x, guide)`` keeps working, and so does ``elbo(model, x, guide)``: the
data are the argument that is an array, the guide the one that is a callable (or ``None``).
A call where that does not tell them apart is refused with a message naming the order.

The program is a linear-Gaussian latent model whose marginal is closed-form, and the guide is
its exact posterior, so every importance weight equals ``p(x)``: the IWAE estimate and the
ELBO are both exactly ``log p(x)`` for any number of particles, and every comparison is at
float rounding.
"""

from __future__ import annotations

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import ppgen
from ppgen.errors import ArgumentError, PpgenError
from ppgen.evaluate import nll_report, pointwise_log_likelihood

pytestmark = pytest.mark.usefixtures("one_thread", "fresh_pyro")

SIGMA = 0.5
X = torch.tensor([-1.5, -0.2, 0.0, 0.7, 2.4])


def model(x):
    """``z ~ N(0, 1)``, ``x | z ~ N(z, SIGMA)``: ``p(x) = N(0, sqrt(1 + SIGMA^2))``."""
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z, SIGMA), obs=x)


def guide(x):
    """The exact posterior ``p(z | x)``."""
    precision = 1.0 + 1.0 / SIGMA**2
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(x / SIGMA**2 / precision, precision**-0.5))


def exact_model(x):
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Normal(0.0, 1.0), obs=x)


def global_model(x):
    mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Normal(mu, 1.0), obs=x)


def marginal(x: torch.Tensor) -> torch.Tensor:
    return dist.Normal(0.0, math.sqrt(1.0 + SIGMA**2)).log_prob(x)


# ------------------------------------------------------------------ one argument order


@pytest.mark.parametrize("call", [
    lambda: ppgen.log_likelihood(model, guide, X, num_particles=3),      # documented
    lambda: ppgen.log_likelihood(model, X, guide, num_particles=3),      # the older order
    lambda: ppgen.log_likelihood(model, X, guide=guide, num_particles=3),
    lambda: ppgen.log_likelihood(model, guide, x=X, num_particles=3),
    lambda: ppgen.log_likelihood(model, guide=guide, x=X, num_particles=3),
    lambda: ppgen.log_likelihood(model, guide, X.numpy(), num_particles=3),
    lambda: ppgen.elbo(model, guide, X, num_particles=2),                # documented
    lambda: ppgen.elbo(model, X, guide, num_particles=2),                # swapped
    lambda: ppgen.elbo(model, X, guide=guide, num_particles=2),
    lambda: ppgen.elbo(model, guide=guide, x=X, num_particles=2),
], ids=["ll(model,guide,x)", "ll(model,x,guide)", "ll(model,x,guide=)", "ll(model,guide,x=)",
        "ll(model,guide=,x=)", "ll(model,guide,numpy)", "elbo(model,guide,x)",
        "elbo(model,x,guide)", "elbo(model,x,guide=)", "elbo(model,guide=,x=)"])
def test_both_orders_give_the_same_numbers(call):
    torch.testing.assert_close(call(), marginal(X))


@pytest.mark.parametrize("call", [
    lambda: ppgen.log_likelihood(exact_model, X),
    lambda: ppgen.log_likelihood(exact_model, None, X),
    lambda: ppgen.log_likelihood(exact_model, X, None),
    lambda: ppgen.log_likelihood(exact_model, x=X),
    lambda: ppgen.elbo(exact_model, X),
    lambda: ppgen.elbo(exact_model, None, X),
])
def test_models_without_a_guide_take_the_data_alone(call):
    torch.testing.assert_close(call(), dist.Normal(0.0, 1.0).log_prob(X))


def test_a_zoo_model_with_its_own_guide_in_either_order():
    from ppgen.models import PPCA

    torch.manual_seed(0)
    ppca = PPCA(3, latent_dim=1)
    x = torch.randn(4, 3)
    torch.manual_seed(1)
    a = ppgen.elbo(ppca, None, x, num_particles=2)
    torch.manual_seed(1)
    b = ppgen.elbo(ppca, x, None, num_particles=2)
    torch.manual_seed(1)
    c = ppgen.elbo(ppca, x, num_particles=2)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)


MISPLACED = [
    (lambda: ppgen.log_likelihood(model, guide), "no data"),
    (lambda: ppgen.log_likelihood(model), "no data"),
    (lambda: ppgen.log_likelihood(model, guide, guide), "two callables"),
    (lambda: ppgen.log_likelihood(model, X, X), "two data"),
    (lambda: ppgen.log_likelihood(model, guide, X, X), "3 arguments"),
    (lambda: ppgen.log_likelihood(model, X, guide, guide=guide), "guide given twice"),
    (lambda: ppgen.log_likelihood(model, X, x=X), "x given twice"),
    (lambda: ppgen.log_likelihood(model, guide, guide=guide, x=X), "guide given twice"),
    (lambda: ppgen.elbo(model, guide, guide), "two callables"),
    (lambda: ppgen.elbo(model, X, X), "two data"),
    (lambda: ppgen.elbo(model, guide), "no data"),
    (lambda: ppgen.log_likelihood(model, "normal", X), "two data"),
]


@pytest.mark.parametrize("call, words", MISPLACED, ids=[w for _, w in MISPLACED])
def test_a_call_that_cannot_be_read_names_the_order(call, words):
    with pytest.raises(ArgumentError) as info:
        call()
    message = str(info.value)
    assert words in message
    assert "(model, guide, x)" in message
    assert "\n" not in message


# ------------------------------------------------------------------ counts


BAD_COUNTS = [0, -1, -5, 2.5, 3.0, True, "10", float("nan"), [4]]


@pytest.mark.parametrize("value", BAD_COUNTS, ids=repr)
@pytest.mark.parametrize("entry", ["log_likelihood", "elbo", "nll_report"])
@pytest.mark.parametrize("name", ["num_particles", "batch_size"])
def test_counts_must_be_positive_integers(entry, name, value):
    call = {
        "log_likelihood": lambda **kw: ppgen.log_likelihood(model, guide, X, **kw),
        "elbo": lambda **kw: ppgen.elbo(model, guide, X, **kw),
        "nll_report": lambda **kw: nll_report(model, X, guide, **kw),
    }[entry]
    with pytest.raises(ArgumentError) as info:
        call(**{name: value})
    message = str(info.value)
    assert name in message and "positive integer" in message and repr(value) in message
    assert "\n" not in message
    assert isinstance(info.value, PpgenError) and isinstance(info.value, ValueError)
    assert isinstance(info.value, TypeError)  # what a fractional count raised before


@pytest.mark.parametrize("value", [0, -2, 1.5, False])
def test_pointwise_batch_size_must_be_a_positive_integer(value):
    draws = {"mu": torch.zeros(3)}
    with pytest.raises(ArgumentError, match="batch_size"):
        pointwise_log_likelihood(global_model, X, draws, batch_size=value)


@pytest.mark.parametrize("value", [1, 7, np.int64(4), torch.tensor(2)], ids=repr)
def test_integers_of_any_kind_are_counts(value):
    ll = ppgen.log_likelihood(model, guide, X, num_particles=value, batch_size=value)
    torch.testing.assert_close(ll, marginal(X))
    e = ppgen.elbo(model, guide, X, num_particles=value, batch_size=value)
    torch.testing.assert_close(e, marginal(X))
    draws = {"mu": torch.zeros(3)}
    pw = pointwise_log_likelihood(global_model, X, draws, batch_size=value)
    assert pw.shape == (3, 5)


def test_the_benchmark_report_reads_both_orders():
    pyro.set_rng_seed(3)  # the reported ELBO (closed-form KL) averages one draw per datum
    documented = nll_report(model, guide, X, num_particles=4)
    pyro.set_rng_seed(3)
    older = nll_report(model, X, guide, num_particles=4)
    assert documented == older
    assert documented["nll"] == pytest.approx(float(-marginal(X).mean()), abs=1e-6)
