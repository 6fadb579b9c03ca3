"""Sequential MCMC chains with Pyro's HMC/NUTS, recording per-draw sampler statistics.

Pyro's ``MCMC`` keeps only running summaries (mean acceptance, divergence indices), so the
kernels here are thin subclasses that note, after every transition, what ArviZ's
``sample_stats`` group expects: ``diverging``, ``acceptance_rate``, ``step_size``,
``tree_depth`` and ``n_steps`` (NUTS), ``energy`` (the Hamiltonian at the start of the
transition: the current state's potential energy plus the fresh momentum's kinetic energy)
and ``lp`` (the unnormalised log density of the new state, ``-potential energy``).

Chains run one after another, each under its own seed (``seed + chain``), inside
:func:`torch.random.fork_rng` so the caller's random state is left untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pyro.infer.mcmc import HMC, MCMC, NUTS

__all__ = ["ChainDraws", "run_chains", "KERNELS"]


class _StatsMixin:
    """Records one dict of sampler statistics per transition in ``self.stats_``."""

    def setup(self, warmup_steps: int, *args: Any, **kwargs: Any) -> None:
        self.stats_: list[dict[str, float]] = []
        self._ppgen_ke: float | None = None
        self._ppgen_depth = -1
        self._ppgen_steps = 0
        super().setup(warmup_steps, *args, **kwargs)

    def sample(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        _, pe_start, _ = self._fetch_from_cache()
        mean_old, divs_old = self._mean_accept_prob, len(self._divergences)
        self._ppgen_ke, self._ppgen_depth, self._ppgen_steps = None, -1, 0
        z = super().sample(params)
        _, pe_end, _ = self._fetch_from_cache()
        n = self._t - self._warmup_steps if self._t > self._warmup_steps else self._t
        stats = {
            "acceptance_rate": mean_old + n * (self._mean_accept_prob - mean_old),
            "diverging": float(len(self._divergences) > divs_old),
            "step_size": float(self.step_size),
            "energy": _num(pe_start) + (self._ppgen_ke if self._ppgen_ke is not None else math.nan),
            "lp": -_num(pe_end),
        }
        self.stats_.append({**stats, **self._trajectory_stats()})
        return z

    def _trajectory_stats(self) -> dict[str, float]:
        return {"n_steps": float(self.num_steps)}

    def _kinetic_energy(self, r_unscaled: dict[str, torch.Tensor]) -> torch.Tensor:
        ke = super()._kinetic_energy(r_unscaled)
        if self._ppgen_ke is None:
            self._ppgen_ke = float(ke)
        return ke


class _HMC(_StatsMixin, HMC):
    """Pyro's HMC, recording per-draw statistics."""


class _NUTS(_StatsMixin, NUTS):
    """Pyro's NUTS, recording per-draw statistics (with tree depth and leapfrog steps)."""

    def _build_basetree(self, *args: Any, **kwargs: Any):
        self._ppgen_steps += 1
        return super()._build_basetree(*args, **kwargs)

    def _build_tree(self, z, r, z_grads, log_slice, direction, tree_depth, energy_current):
        self._ppgen_depth = max(self._ppgen_depth, tree_depth)
        return super()._build_tree(z, r, z_grads, log_slice, direction, tree_depth,
                                   energy_current)

    def _trajectory_stats(self) -> dict[str, float]:
        return {"tree_depth": float(self._ppgen_depth + 1), "n_steps": float(self._ppgen_steps)}


#: The MCMC methods ``posterior`` accepts.
KERNELS = {"nuts": _NUTS, "hmc": _HMC}


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


@dataclass
class ChainDraws:
    """Draws of several chains.

    Attributes:
        samples: ``{site: [C, D, *shape]}`` constrained posterior draws.
        stats: ``{stat: [C, D]}`` sampler statistics (ArviZ names).
    """

    samples: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]


def run_chains(
    model: Any,
    args: tuple,
    kwargs: dict[str, Any],
    *,
    method: str,
    num_samples: int,
    num_warmup: int,
    num_chains: int,
    seed: int,
    kernel_options: dict[str, Any] | None = None,
) -> ChainDraws:
    """Run ``num_chains`` chains one after another and stack their draws.

    Args:
        model: the Pyro program.
        args: positional arguments of the program (as ``MCMC.run(*args)``).
        kwargs: keyword arguments of the program.
        method: ``"nuts"`` or ``"hmc"``.
        num_samples: draws kept per chain ``D``.
        num_warmup: adaptation steps per chain (discarded).
        num_chains: ``C``.
        seed: chain ``c`` runs under seed ``seed + c``.
        kernel_options: passed to the kernel (e.g. ``target_accept_prob``, ``max_tree_depth``).

    Returns:
        The stacked draws and statistics.
    """
    chains = [
        _one_chain(model, args, kwargs, method, num_samples, num_warmup, seed + c,
                   kernel_options or {})
        for c in range(num_chains)
    ]
    samples = {k: np.stack([ch[0][k] for ch in chains]) for k in chains[0][0]}
    stats = {k: np.stack([ch[1][k] for ch in chains]) for k in chains[0][1]}
    stats["diverging"] = stats["diverging"].astype(bool)
    return ChainDraws(samples, stats)


def _one_chain(model, args, kwargs, method, num_samples, num_warmup, seed, options):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        kernel = KERNELS[method](model, **options)
        mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=num_warmup,
                    num_chains=1, disable_progbar=True)
        mcmc.run(*args, **kwargs)
    samples = {k: v.detach().cpu().numpy() for k, v in mcmc.get_samples().items()}
    kept = kernel.stats_[-num_samples:]
    stats = {k: np.array([s[k] for s in kept]) for k in kept[0]}
    return samples, stats
