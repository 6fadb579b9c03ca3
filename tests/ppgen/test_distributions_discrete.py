"""TabularJoint and MarkovChainDistribution: shapes, support, log_prob against brute force,
normalisation and goodness of fit of samples.

Goodness-of-fit tests use a fixed seed and reject at p < 0.001 each (four here: two
distributions x two batch elements).
"""

from __future__ import annotations

import itertools

import pytest
import torch
from scipy.stats import chisquare
from torch.distributions import constraints

from ppgen.distributions import MarkovChainDistribution, TabularJoint
from ppgen.distributions.tabular import mixed_radix_decode, mixed_radix_index

P_MIN = 1e-3  # failure rate of each goodness-of-fit test under a correct implementation


def all_configs(n: int, K: int) -> torch.Tensor:
    """Every configuration of ``n`` variables with ``K`` levels, in mixed-radix order."""
    return torch.tensor(list(itertools.product(range(K), repeat=n)))


def tabular(batch=(), n=3, K=2, seed=0, validate_args=None) -> TabularJoint:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(*batch, K**n, generator=g)
    return TabularJoint(logits, num_levels=K, validate_args=validate_args)


def markov(batch=(), n=4, K=3, seed=0, validate_args=None) -> MarkovChainDistribution:
    g = torch.Generator().manual_seed(seed)
    init = torch.randn(*batch, K, generator=g)
    trans = torch.randn(*batch, n - 1, K, K, generator=g)
    return MarkovChainDistribution(init, trans, validate_args=validate_args)


# ---------------------------------------------------------------------------- brute force


def tabular_log_prob_loop(logits: torch.Tensor, x: list[int], K: int) -> float:
    index = 0
    for level in x:
        index = index * K + level
    return float(logits[index] - torch.logsumexp(logits, 0))


def markov_log_prob_loop(init: torch.Tensor, trans: torch.Tensor, x: list[int]) -> float:
    total = float(init[x[0]] - torch.logsumexp(init, 0))
    for i in range(1, len(x)):
        row = trans[i - 1, x[i - 1]]
        total += float(row[x[i]] - torch.logsumexp(row, 0))
    return total


# ---------------------------------------------------------------------------- mixed radix


def test_mixed_radix_index_is_base_k_with_first_digit_most_significant():
    x = all_configs(3, 3)
    assert torch.equal(mixed_radix_index(x, 3), torch.arange(27))
    assert torch.equal(mixed_radix_decode(torch.arange(27), 3, 3), x)


def test_tabular_refuses_a_table_that_is_not_k_to_the_n():
    with pytest.raises(ValueError, match="not 3\\^n"):
        TabularJoint(torch.zeros(10), num_levels=3)


# ---------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("make", [tabular, markov], ids=["tabular", "markov"])
@pytest.mark.parametrize("batch", [(), (4,), (2, 3)])
@pytest.mark.parametrize("sample_shape", [(), (5,), (2, 1)])
def test_shapes(make, batch, sample_shape):
    d = make(batch)
    n = d.event_shape[0]
    assert d.batch_shape == torch.Size(batch)
    x = d.sample(sample_shape)
    assert x.shape == torch.Size(sample_shape + batch + (n,))
    assert x.dtype == torch.long
    assert d.log_prob(x).shape == torch.Size(sample_shape + batch)


@pytest.mark.parametrize("make", [tabular, markov], ids=["tabular", "markov"])
def test_expand(make):
    d = make((3,))
    e = d.expand([5, 3])
    assert e.batch_shape == (5, 3) and e.event_shape == d.event_shape
    assert e.sample((2,)).shape == (2, 5, 3) + tuple(d.event_shape)
    x = d.sample((5,))
    torch.testing.assert_close(e.log_prob(x), d.log_prob(x))
    with pytest.raises(RuntimeError):
        d.expand([4])


@pytest.mark.parametrize("make", [tabular, markov], ids=["tabular", "markov"])
def test_log_prob_broadcasts_value_against_batch(make):
    d = make((3,))
    x = d.sample((5,))[:, 0, None, :]  # [5, 1, n]
    lp = d.log_prob(x)
    assert lp.shape == (5, 3)
    torch.testing.assert_close(lp, d.log_prob(x.expand(5, 3, -1)))


@pytest.mark.parametrize("make", [tabular, markov], ids=["tabular", "markov"])
def test_plate_expansion_keeps_parameter_work_unexpanded(make):
    """``expand([1, N])`` (what a plate does) must not copy the table N times."""
    d = make(()).expand([1, 1000])
    table = d.log_table if isinstance(d, TabularJoint) else d.log_trans
    assert table.shape[:2] == (1, 1)
    assert d.sample((2,)).shape == (2, 1, 1000, d.event_shape[0])


def test_samples_follow_their_batch_element_through_partial_expansion():
    """Batch ``[3, 1]`` expanded to ``[3, 4]``: row ``i`` is degenerate at configuration ``i``."""
    point_mass = torch.full((3, 1, 8), -1e4).scatter(-1, torch.tensor([[[0]], [[5]], [[6]]]), 0.0)
    x = TabularJoint(point_mass, 2).expand([3, 4]).sample((2,))
    assert torch.equal(mixed_radix_index(x, 2), torch.tensor([0, 5, 6])[:, None].expand(2, 3, 4))
    init = torch.full((3, 1, 3), -1e4).scatter(-1, torch.tensor([[[0]], [[1]], [[2]]]), 0.0)
    stay = torch.full((3, 3), -1e4).fill_diagonal_(0.0).expand(3, 1, 2, 3, 3)
    x = MarkovChainDistribution(init, stay).expand([3, 4]).sample((2,))
    assert torch.equal(x, torch.arange(3)[:, None, None].expand(2, 3, 4, 3))


def test_markov_batch_shape_broadcasts_init_and_transitions():
    d = MarkovChainDistribution(torch.zeros(2, 1, 3), torch.zeros(4, 4, 3, 3))
    assert d.batch_shape == (2, 4) and d.event_shape == (5,)
    with pytest.raises(ValueError, match="3, 3"):
        MarkovChainDistribution(torch.zeros(3), torch.zeros(4, 2, 2))


# ---------------------------------------------------------------------------- support


@pytest.mark.parametrize("make", [tabular, markov], ids=["tabular", "markov"])
def test_support(make):
    d = make(())
    K = 2 if isinstance(d, TabularJoint) else 3
    support = d.support
    assert support.is_discrete and support.event_dim == 1
    good = torch.zeros(d.event_shape, dtype=torch.long)
    bad = good.clone()
    bad[-1] = K
    assert bool(support.check(good)) and not bool(support.check(bad))
    assert not bool(support.check(-good - 1))
    assert not d.has_rsample
    assert d.arg_constraints and all(
        isinstance(c, constraints.Constraint) for c in d.arg_constraints.values()
    )


@pytest.mark.parametrize("make", [tabular, markov], ids=["tabular", "markov"])
def test_validate_args_rejects_values_outside_support(make):
    d = make((), validate_args=True)
    with pytest.raises(ValueError):
        d.log_prob(torch.full(d.event_shape, 7))
    with pytest.raises(ValueError):
        d.expand([2]).log_prob(torch.full((2, *d.event_shape), -1))


# ---------------------------------------------------------------------------- log_prob


def test_tabular_log_prob_matches_loop():
    K, n = 3, 3
    d = tabular((2,), n=n, K=K)
    x = all_configs(n, K)
    lp = d.log_prob(x[:, None, :])  # [27, 2]
    for b in range(2):
        expected = [tabular_log_prob_loop(d.logits[b], row.tolist(), K) for row in x]
        torch.testing.assert_close(lp[:, b], torch.tensor(expected), atol=1e-5, rtol=0)


def test_markov_log_prob_matches_loop():
    K, n = 3, 4
    d = markov((2,), n=n, K=K)
    x = all_configs(n, K)
    lp = d.log_prob(x[:, None, :])  # [81, 2]
    for b in range(2):
        loop = [
            markov_log_prob_loop(d.init_logits[b], d.trans_logits[b], row.tolist()) for row in x
        ]
        torch.testing.assert_close(lp[:, b], torch.tensor(loop), atol=1e-5, rtol=0)


@pytest.mark.parametrize("make", [tabular, markov], ids=["tabular", "markov"])
def test_normalised(make):
    d = make((3,))
    K = 2 if isinstance(d, TabularJoint) else 3
    x = all_configs(d.event_shape[0], K)[:, None, :]
    total = torch.logsumexp(d.log_prob(x), dim=0)
    torch.testing.assert_close(total, torch.zeros(3), atol=1e-5, rtol=0)


def test_log_prob_is_differentiable():
    logits = torch.randn(8, requires_grad=True)
    init = torch.randn(3, requires_grad=True)
    trans = torch.randn(4, 3, 3, requires_grad=True)
    for d, leaves in [
        (TabularJoint(logits, 2), [logits]),
        (MarkovChainDistribution(init, trans), [init, trans]),
    ]:
        d.expand([1, 4]).log_prob(d.sample((4,))).sum().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in leaves)
        assert all(bool(p.grad.abs().sum() > 0) for p in leaves)


# ---------------------------------------------------------------------------- samples


def chi_square_p(d, K: int, num: int = 20000) -> list[float]:
    """p-values of Pearson's test of samples against ``exp(log_prob)``, per batch element."""
    n = d.event_shape[0]
    x = all_configs(n, K)[:, None, :]
    probs = d.log_prob(x).double().exp()  # [K^n, B]
    expected = probs / probs.sum(0) * num  # renormalised in float64 for scipy's sum check
    samples = d.sample((num,))  # [num, B, n]
    pvalues = []
    for b in range(d.batch_shape[0]):
        observed = torch.bincount(mixed_radix_index(samples[:, b], K), minlength=K**n)
        pvalues.append(float(chisquare(observed.double().numpy(), expected[:, b].numpy()).pvalue))
    return pvalues


def test_tabular_samples_fit_probabilities():
    torch.manual_seed(0)
    assert min(chi_square_p(tabular((2,), n=3, K=2, seed=1), 2)) > P_MIN


def test_markov_samples_fit_probabilities():
    torch.manual_seed(0)
    assert min(chi_square_p(markov((2,), n=3, K=3, seed=1), 3)) > P_MIN
