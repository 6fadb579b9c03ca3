"""FactorizedDistribution: a head applied to every dimension independently."""

from __future__ import annotations

import pytest
import torch

from ppgen.distributions import FactorizedDistribution, make_head

HEADS = [
    ("bernoulli", {}),
    ("categorical", {"num_levels": 5}),
    ("logistic-mixture", {"num_levels": 5, "num_components": 3}),
    ("gaussian-mixture", {"num_components": 2}),
]


def _dist(name, kw, batch=(4,), dims=3, seed=0):
    head = make_head(name, **kw)
    g = torch.Generator().manual_seed(seed)
    params = torch.randn(*batch, dims, head.num_params, generator=g)
    return head, FactorizedDistribution(head, params)


@pytest.mark.parametrize("name, kw", HEADS)
def test_shapes_expand_and_sum_of_heads(name, kw):
    head, d = _dist(name, kw)
    assert d.batch_shape == (4,) and d.event_shape == (3,)
    x = d.sample((2,))
    assert x.shape == (2, 4, 3) and bool(d.support.check(x).all())
    assert d.log_prob(x).shape == (2, 4)
    assert torch.allclose(d.log_prob(x), head.log_prob(d.params, x).sum(-1))
    wide = d.expand([6, 4])
    assert wide.batch_shape == (6, 4) and wide.log_prob(x[0]).shape == (6, 4)


@pytest.mark.parametrize("name, kw", HEADS[1:3])
def test_discrete_heads_normalise_and_mean_is_the_expectation(name, kw):
    head, d = _dist(name, kw, batch=(2,), dims=2)
    levels = torch.arange(kw["num_levels"])
    log_p = head.log_prob(d.params.unsqueeze(-2), levels)  # [2, 2, K]
    assert torch.allclose(log_p.logsumexp(-1), torch.zeros(2, 2), atol=1e-5)
    assert torch.allclose(d.mean, (log_p.exp() * levels).sum(-1), atol=1e-6)


@pytest.mark.parametrize("name, kw", [HEADS[0], HEADS[3]])
def test_mean_matches_monte_carlo(name, kw):
    torch.manual_seed(0)
    _, d = _dist(name, kw, batch=(2,), dims=2)
    draws = d.sample((40000,)).float()
    # 40000 draws: the sd of a mean is < 0.02 for these scales; 5 sd budget
    assert torch.allclose(draws.mean(0), d.mean, atol=0.1)


def test_wrong_parameter_count_is_refused():
    head = make_head("categorical", num_levels=4)
    with pytest.raises(ValueError, match="takes 4"):
        FactorizedDistribution(head, torch.zeros(2, 3, 5))
