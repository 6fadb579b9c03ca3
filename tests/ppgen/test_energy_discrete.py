"""Gibbs-with-gradients against a tiny discrete energy normalised by enumeration.

Three dimensions of three levels with unary and pairwise terms (27 states): 2,000 independent
chains run 30 steps from one corner, and the histogram of their final states is compared with
the exact probabilities by Pearson's chi-square test (26 degrees of freedom). Failure budget:
the test fails with probability 0.1% (p < 0.001) for an exact sampler; the seed is fixed, so it
is deterministic. A sampler without the Metropolis-Hastings correction (the proposal alone)
fails it, which shows the test can fail.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from scipy.stats import chisquare

from ppgen.energy.discrete import gwg_step, proposal_logits, run_gwg

D, L, CHAINS, STEPS = 3, 3, 2000, 30


@pytest.fixture(scope="module")
def energy():
    g = torch.Generator().manual_seed(0)
    theta = torch.randn(D * L, generator=g)
    # pairwise terms between different dimensions only (block upper triangle)
    block = torch.arange(D * L) // L
    pair = torch.randn(D * L, D * L, generator=g) * 0.7 * (block[:, None] < block[None, :])

    def log_prob(onehot: torch.Tensor) -> torch.Tensor:
        v = onehot.reshape(onehot.shape[0], D * L)
        return v @ theta + ((v @ pair) * v).sum(-1)

    states = torch.tensor(list(itertools.product(range(L), repeat=D)))
    logp = log_prob(torch.nn.functional.one_hot(states, L).float())
    return log_prob, states, torch.softmax(logp.double(), 0)


def _histogram(x: torch.Tensor) -> torch.Tensor:
    index = (x * torch.tensor([L**2, L, 1])).sum(-1)
    return torch.bincount(index, minlength=L**D).double()


def test_gwg_samples_the_enumerated_distribution(energy):
    log_prob, states, probs = energy
    x = torch.zeros(CHAINS, D, dtype=torch.long)
    out = run_gwg(log_prob, x, L, STEPS, generator=torch.Generator().manual_seed(1))
    assert out.shape == (CHAINS, D) and out.dtype == torch.long
    assert chisquare(_histogram(out), CHAINS * probs).pvalue > 1e-3


@pytest.mark.slow  # a negative control: about 10 s on a busy core
def test_the_proposal_alone_is_biased(energy):
    """Without the accept/reject step the chains' law is not the target: the test above
    would catch a sampler that drops the correction."""
    log_prob, _, probs = energy
    x = torch.zeros(CHAINS, D, dtype=torch.long)
    g = torch.Generator().manual_seed(1)
    for _ in range(STEPS):
        onehot = torch.nn.functional.one_hot(x, L).float().requires_grad_(True)
        (grad,) = torch.autograd.grad(log_prob(onehot).sum(), onehot)
        logits = proposal_logits(x, grad)
        choice = torch.multinomial(torch.softmax(logits, -1), 1, generator=g).squeeze(-1)
        x = x.clone()
        x[torch.arange(CHAINS), choice // L] = choice % L
    assert chisquare(_histogram(x), CHAINS * probs).pvalue < 1e-3


def test_acceptance_and_state_reuse(energy):
    log_prob, _, _ = energy
    x = torch.randint(0, L, (64, D), generator=torch.Generator().manual_seed(2))
    new, (f, grad), acceptance = gwg_step(log_prob, x, L)
    assert acceptance.shape == (64,) and bool(((acceptance >= 0) & (acceptance <= 1)).all())
    onehot = torch.nn.functional.one_hot(new, L).float()
    assert torch.allclose(f, log_prob(onehot), atol=1e-5)
    assert ((new != x).sum(-1) <= 1).all()  # one dimension changes per step at most
