"""Gibbs-with-gradients: a Metropolis-Hastings sampler for discrete data, batched over chains.

For data with ``D`` categorical dimensions of ``L`` levels each (the digits: ``D = 64``,
``L = 17``), a Gibbs sweep costs ``D L`` evaluations of the energy. Gibbs-with-gradients
(Grathwohl, Swersky, Hashemi, Duvenaud & Maddison 2021, "Oops I took a gradient: scalable
sampling for discrete distributions", ICML, arXiv:2102.04509) uses the gradient of the log
density with respect to the one-hot encoding ``x̃ [D, L]`` to estimate, in one pass, the change of
``f = log p̃`` from setting dimension ``i`` to level ``k``:

    ``d_ik(x) = ∇f(x̃)_ik - ∇f(x̃)_{i x_i}``  (zero at the current level),

proposes one change ``(i, k)`` with probability ``q(i, k | x) ∝ exp(d_ik(x) / 2)`` over the
``D (L - 1)`` changes, and accepts with the Metropolis-Hastings probability
``min(1, exp(f(x') - f(x)) q(i, x_i | x') / q(i, k | x))``, so ``p̃`` is invariant exactly,
whatever the quality of the first-order estimate.

Every chain moves at once; the accept/reject is a ``torch.where`` (no host synchronisation);
randomness comes from ``generator``.

Example:
    >>> theta = torch.randn(3, 4)  # independent categorical dimensions: f(x̃) = Σ θ ⊙ x̃
    >>> log_prob = lambda onehot: (onehot * theta).sum((-2, -1))
    >>> x = torch.zeros(100, 3, dtype=torch.long)
    >>> run_gwg(log_prob, x, num_levels=4, steps=10).shape
    torch.Size([100, 3])
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["gwg_step", "run_gwg", "proposal_logits"]

#: ``f(x̃) -> [B]`` for one-hot data ``x̃: [B, D, L]`` (float), differentiable
DiscreteLogProb = Callable[[torch.Tensor], torch.Tensor]


def _value_and_grad(log_prob: DiscreteLogProb, x: torch.Tensor, num_levels: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """``f`` ``[B]`` and ``∇f`` ``[B, D, L]`` at the one-hot encoding of levels ``x: [B, D]``."""
    with torch.enable_grad():
        onehot = F.one_hot(x, num_levels).float().requires_grad_(True)
        f = log_prob(onehot).float()
        (grad,) = torch.autograd.grad(f.sum(), onehot)
    return f.detach(), grad.detach()


def proposal_logits(x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``d_ik / 2`` ``[B, D L]`` flattened, ``-inf`` at each dimension's current level."""
    current = grad.gather(-1, x.unsqueeze(-1))
    d = (grad - current) / 2
    d = d.masked_fill(F.one_hot(x, grad.shape[-1]).bool(), -torch.inf)
    return d.reshape(x.shape[0], -1)


def gwg_step(log_prob: DiscreteLogProb, x: torch.Tensor, num_levels: int,
             state: tuple[torch.Tensor, torch.Tensor] | None = None,
             generator: torch.Generator | None = None
             ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """One Gibbs-with-gradients step of every chain.

    Args:
        log_prob: ``f(x̃) -> [B]`` on one-hot ``x̃: [B, D, L]``.
        x: the chains' levels ``[B, D]`` (long).
        num_levels: ``L``.
        state: ``(f, ∇f)`` at ``x`` from the previous step (computed when ``None``).
        generator: the random stream.

    Returns:
        ``(x', (f, ∇f) at x', acceptance probability [B])``.
    """
    f, grad = state if state is not None else _value_and_grad(log_prob, x, num_levels)
    logits = proposal_logits(x, grad)
    log_q = torch.log_softmax(logits, -1)
    u = torch.rand(logits.shape, device=x.device, generator=generator)
    choice = (logits - torch.log(-torch.log(u.clamp_min(1e-30)))).argmax(-1)  # Gumbel-max
    dim, level = choice // num_levels, choice % num_levels
    rows = torch.arange(x.shape[0], device=x.device)
    proposal = x.clone()
    proposal[rows, dim] = level
    f_new, grad_new = _value_and_grad(log_prob, proposal, num_levels)
    back = torch.log_softmax(proposal_logits(proposal, grad_new), -1)
    reverse = back[rows, dim * num_levels + x[rows, dim]]
    log_ratio = f_new - f + reverse - log_q[rows, choice]
    log_ratio = torch.where(torch.isfinite(f_new), log_ratio, -torch.inf)
    accept = torch.rand(log_ratio.shape, device=x.device, generator=generator).log() < log_ratio
    keep = accept.unsqueeze(-1)
    new = (torch.where(keep, proposal, x), (torch.where(accept, f_new, f),
                                           torch.where(keep.unsqueeze(-1), grad_new, grad)))
    return new[0], new[1], log_ratio.clamp(max=0.0).exp().nan_to_num(0.0)


def run_gwg(log_prob: DiscreteLogProb, x: torch.Tensor, num_levels: int, steps: int,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """``steps`` Gibbs-with-gradients steps from levels ``x: [B, D]``; the final levels."""
    state = None
    for _ in range(steps):
        x, state, _ = gwg_step(log_prob, x, num_levels, state, generator)
    return x
