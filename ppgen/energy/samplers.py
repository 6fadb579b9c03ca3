"""Langevin, Metropolis-adjusted Langevin and Hamiltonian transitions, batched over chains.

Every sampler here targets a density on whitened coordinates ``z: [K, D]`` (see
:class:`~ppgen.energy.base.GaussianBase`) of the form

    ``π_β(z) ∝ N(z; 0, I) exp(β h(z))``,

the geometric path of annealed importance sampling between the base (``β = 0``) and the energy
model (``β = 1``, where ``h(z) = log p̃(x) - log q_0(x)`` at ``x = loc + L z``). A
:class:`ChainState` keeps ``h`` and its gradient at the current points, so moving along the path
(a new ``β``) costs no network call. All randomness comes from ``generator`` (or the global
stream); every accept/reject is a ``torch.where``: nothing reads a value on the host, so a step
never synchronises with the device. A proposal whose ``h`` is not finite is rejected.

* :func:`langevin_step` — unadjusted Langevin (ULA): ``z' = z + ε ∇ log π(z) + σ ξ``, with the
  noise scale ``σ`` free (short-run EBM training decouples it, Du & Mordatch 2019) or
  ``sqrt(2 ε)`` (the Langevin diffusion).
* :func:`mala_step` — the same proposal with a Metropolis-Hastings correction (Roberts &
  Tweedie 1996; exact for any ``ε``, ``σ``).
* :func:`hmc_step` — Hamiltonian Monte Carlo with ``L`` leapfrog steps (Neal 2011); with one
  leapfrog step it is MALA with ``σ = ε``, ``ε_MALA = ε² / 2``.
* :func:`run_chain` — ``n`` steps of one of them (optionally recording the path).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = [
    "ChainState",
    "evaluate",
    "log_target",
    "grad_target",
    "langevin_step",
    "mala_step",
    "hmc_step",
    "transition",
    "run_chain",
    "SAMPLERS",
]

#: the transitions :func:`transition` and :func:`run_chain` know
SAMPLERS = ("langevin", "mala", "hmc")
#: HMC draws each chain's step size uniformly in ``ε (1 ± STEP_JITTER)`` per transition, which
#: breaks the resonance of trajectories whose length is near a period of the target (Neal 2011,
#: section 5.4.2.2); a random step size independent of the state keeps the target invariant
STEP_JITTER = 0.4

HFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ChainState:
    """Chains at points ``z: [K, D]`` with ``h(z): [K]`` and ``∇h(z): [K, D]`` (detached)."""

    z: torch.Tensor
    h: torch.Tensor
    grad: torch.Tensor

    def take(self, index: torch.Tensor) -> ChainState:
        """The chains at ``index: [M]`` (e.g. resampled by weight)."""
        return ChainState(self.z[index], self.h[index], self.grad[index])

    def where(self, keep: torch.Tensor, other: ChainState) -> ChainState:
        """Per chain, ``other`` where ``keep: [K]`` is true, else this state."""
        k = keep.unsqueeze(-1)
        return ChainState(torch.where(k, other.z, self.z), torch.where(keep, other.h, self.h),
                          torch.where(k, other.grad, self.grad))


def evaluate(h_fn: HFn, z: torch.Tensor) -> ChainState:
    """``h`` and its gradient at ``z: [K, D]`` (autograd on ``z`` only, under any grad mode;
    model parameters get no gradient). ``h`` is computed in fp32."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        h = h_fn(z).float()
        if not h.requires_grad:  # h does not depend on z (a flat energy): no gradient
            return ChainState(z.detach(), h.detach(), torch.zeros_like(z))
        (grad,) = torch.autograd.grad(h.sum(), z)
    return ChainState(z.detach(), h.detach(), grad.detach())


def log_target(state: ChainState, beta: torch.Tensor | float) -> torch.Tensor:
    """``log π_β(z)`` up to a constant: ``-|z|²/2 + β h(z)``, ``[K]``."""
    return -0.5 * (state.z * state.z).sum(-1) + beta * state.h


def grad_target(state: ChainState, beta: torch.Tensor | float) -> torch.Tensor:
    """``∇ log π_β(z) = -z + β ∇h(z)``, ``[K, D]``."""
    return -state.z + beta * state.grad


def _noise(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(like.shape, device=like.device, dtype=like.dtype, generator=generator)


def _accept(log_ratio: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``[K]`` bool: accept with probability ``min(1, exp(log_ratio))`` (NaN: reject)."""
    u = torch.rand(log_ratio.shape, device=log_ratio.device, generator=generator)
    return u.log() < log_ratio


def _drift(state: ChainState, beta, step_size) -> torch.Tensor:
    return state.z + step_size * grad_target(state, beta)


def langevin_step(h_fn: HFn, state: ChainState, beta, step_size, noise_scale=None,
                  generator: torch.Generator | None = None) -> ChainState:
    """One unadjusted Langevin step ``z' = z + ε ∇ log π_β(z) + σ ξ`` (``σ`` default
    ``sqrt(2 ε)``)."""
    sigma = (2 * step_size) ** 0.5 if noise_scale is None else noise_scale
    return evaluate(h_fn, _drift(state, beta, step_size) + sigma * _noise(state.z, generator))


def mala_step(h_fn: HFn, state: ChainState, beta, step_size, noise_scale=None,
              generator: torch.Generator | None = None
              ) -> tuple[ChainState, torch.Tensor]:
    """One Metropolis-adjusted Langevin step: the :func:`langevin_step` proposal, accepted with
    the Metropolis-Hastings probability. Returns ``(state, acceptance probability [K])``."""
    sigma = (2 * step_size) ** 0.5 if noise_scale is None else noise_scale
    proposal = evaluate(h_fn, _drift(state, beta, step_size) + sigma * _noise(state.z,
                                                                              generator))
    forward = ((proposal.z - _drift(state, beta, step_size)) ** 2).sum(-1)
    backward = ((state.z - _drift(proposal, beta, step_size)) ** 2).sum(-1)
    log_ratio = (log_target(proposal, beta) - log_target(state, beta)
                 + (forward - backward) / (2 * sigma**2))
    return _metropolis(state, proposal, log_ratio, generator)


def _metropolis(state: ChainState, proposal: ChainState, log_ratio: torch.Tensor,
                generator: torch.Generator | None) -> tuple[ChainState, torch.Tensor]:
    log_ratio = torch.where(torch.isfinite(proposal.h), log_ratio, -torch.inf)
    accept = _accept(log_ratio, generator)
    prob = log_ratio.clamp(max=0.0).exp().nan_to_num(0.0)
    return state.where(accept, proposal), prob


def hmc_step(h_fn: HFn, state: ChainState, beta, step_size, num_leapfrog: int = 5,
             generator: torch.Generator | None = None) -> tuple[ChainState, torch.Tensor]:
    """One Hamiltonian Monte Carlo step (identity mass in the whitened coordinates):
    ``num_leapfrog`` leapfrog steps of size about ``ε`` (jittered per chain, see
    :data:`STEP_JITTER`) from a fresh momentum, then a Metropolis-Hastings correction.
    Returns ``(state, acceptance probability [K])``."""
    momentum = _noise(state.z, generator)
    h0 = log_target(state, beta) - 0.5 * (momentum * momentum).sum(-1)
    jitter = torch.rand(state.h.shape, device=state.z.device, generator=generator)
    step_size = (step_size * (1 + STEP_JITTER * (2 * jitter - 1))).unsqueeze(-1)
    point = state
    momentum = momentum + 0.5 * step_size * grad_target(point, beta)
    for i in range(num_leapfrog):
        point = evaluate(h_fn, point.z + step_size * momentum)
        scale = 0.5 if i == num_leapfrog - 1 else 1.0
        momentum = momentum + scale * step_size * grad_target(point, beta)
    h1 = log_target(point, beta) - 0.5 * (momentum * momentum).sum(-1)
    return _metropolis(state, point, h1 - h0, generator)


def transition(sampler: str, h_fn: HFn, state: ChainState, beta, step_size,
               noise_scale=None, num_leapfrog: int = 5,
               generator: torch.Generator | None = None) -> tuple[ChainState, torch.Tensor]:
    """One step of ``sampler`` (:data:`SAMPLERS`); returns ``(state, acceptance [K])``
    (ones for the unadjusted sampler). ``noise_scale`` belongs to the Langevin samplers,
    ``num_leapfrog`` to HMC."""
    if sampler == "langevin":
        new = langevin_step(h_fn, state, beta, step_size, noise_scale, generator)
        return new, torch.ones_like(new.h)
    if sampler == "mala":
        return mala_step(h_fn, state, beta, step_size, noise_scale, generator)
    if sampler == "hmc":
        return hmc_step(h_fn, state, beta, step_size, num_leapfrog, generator)
    raise ValueError(f"unknown sampler {sampler!r}: use one of {SAMPLERS}")


@dataclass(frozen=True)
class ChainRun:
    """What :func:`run_chain` returns: the final ``state``, the mean acceptance probability of
    each step ``[steps]`` and, when recorded, the path ``[frames, K, D]`` (whitened)."""

    state: ChainState
    acceptance: torch.Tensor
    path: torch.Tensor | None = None


def run_chain(h_fn: HFn, z: torch.Tensor, steps: int, sampler: str = "mala",
              step_size: float = 0.01, noise_scale: float | None = None,
              beta: float = 1.0, num_leapfrog: int = 5, record_every: int | None = None,
              generator: torch.Generator | None = None) -> ChainRun:
    """``steps`` transitions of ``sampler`` from ``z: [K, D]`` targeting ``π_β``.

    Args:
        h_fn: ``h(z) -> [K]``, differentiable in ``z``.
        z: the chains' starting points (whitened).
        steps: number of transitions.
        sampler: ``"langevin"`` (unadjusted), ``"mala"`` or ``"hmc"``.
        step_size: ``ε``.
        noise_scale: the Langevin samplers' ``σ`` (default ``sqrt(2 ε)``).
        beta: the target's inverse temperature (1: the model).
        num_leapfrog: HMC's leapfrog steps.
        record_every: keep every this many states (and the first and last) in ``path``.
        generator: the random stream (default: the global one).

    Example:
        >>> run = run_chain(lambda z: torch.zeros(len(z)), torch.zeros(100, 2), steps=20)
        >>> run.state.z.shape, run.acceptance.shape
        (torch.Size([100, 2]), torch.Size([20]))
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}: use one of {SAMPLERS}")
    state = evaluate(h_fn, z)
    acceptance = torch.zeros(steps, device=z.device)
    frames = [state.z] if record_every else []
    for i in range(steps):
        state, prob = transition(sampler, h_fn, state, beta, step_size, noise_scale,
                                 num_leapfrog, generator)
        acceptance[i] = prob.mean()
        if record_every and ((i + 1) % record_every == 0 or i == steps - 1):
            frames.append(state.z)
    path = torch.stack(frames) if frames else None
    return ChainRun(state, acceptance, path)
