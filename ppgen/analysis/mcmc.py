"""MCMC chains with Pyro's HMC/NUTS, in parallel processes or in turn, with sampler statistics.

Pyro's ``MCMC`` keeps only running summaries (mean acceptance, divergence indices), so the
kernels here are thin subclasses that note, after every transition, what ArviZ's
``sample_stats`` group expects: ``diverging``, ``acceptance_rate``, ``step_size``,
``tree_depth`` and ``n_steps`` (NUTS), ``energy`` (the Hamiltonian at the start of the
transition: the current state's potential energy plus the fresh momentum's kinetic energy)
and ``lp`` (the unnormalised log density of the new state, ``-potential energy``).

Pyro offers no public per-transition hook for these numbers (``MCMC(hook_fn=...)`` sees only
the new state, and ``kernel.diagnostics()`` only running totals), so the recorder reads a few
private attributes of Pyro's kernels; :func:`check_pyro_internals` verifies once per run that
they are still there and fails with a message naming the installed Pyro version if not.

Each chain runs under its own seed (``seed + chain``) inside :func:`torch.random.fork_rng`, so
the caller's random state is left untouched. With ``chain_method="parallel"`` (the default
``"auto"`` picks it when more than one CPU is available, the data are on the CPU and the
chains are more than one) each chain runs in a forked worker process; since a chain depends
only on its seed, the draws are the same as when the chains run in turn (up to the order of
floating-point reductions when the workers get fewer threads than the parent).
"""

from __future__ import annotations

import functools
import inspect
import math
import multiprocessing
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyro
import torch
from pyro.infer.mcmc import HMC, MCMC, NUTS
from tqdm.auto import tqdm

from ppgen.errors import ModelError

__all__ = [
    "ChainDraws", "run_chains", "KERNELS", "CHAIN_METHODS", "resolve_chain_method",
    "check_pyro_internals",
]

#: How ``run_chains`` runs several chains.
CHAIN_METHODS = ("auto", "parallel", "sequential")

#: Private methods of Pyro's kernels the recorder overrides or calls, with their parameters.
_PRIVATE_METHODS = {
    HMC: {"_fetch_from_cache": ["self"], "_kinetic_energy": ["self", "r_unscaled"]},
    NUTS: {
        "_build_basetree": ["self", "z", "r", "z_grads", "log_slice", "direction",
                            "energy_current"],
        "_build_tree": ["self", "z", "r", "z_grads", "log_slice", "direction", "tree_depth",
                        "energy_current"],
    },
}
#: Private attributes of a fresh kernel the recorder reads.
_PRIVATE_ATTRS = ("_t", "_warmup_steps", "_mean_accept_prob", "_divergences")


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
            # the step's own probability, recovered from Pyro's running mean (clipped:
            # the recovery is exact up to rounding)
            "acceptance_rate": min(1.0, max(0.0, mean_old + n * (self._mean_accept_prob
                                                                  - mean_old))),
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


@functools.cache
def check_pyro_internals() -> None:
    """Check the private Pyro kernel internals the statistics recorder relies on.

    Raises:
        ModelError: an attribute or method moved or changed its parameters; the message
            names the installed Pyro version (the recorder was written against 1.9).
    """
    problems = []
    for cls, methods in _PRIVATE_METHODS.items():
        for name, params in methods.items():
            fn = getattr(cls, name, None)
            if fn is None or list(inspect.signature(fn).parameters) != params:
                problems.append(f"{cls.__name__}.{name}{tuple(params[1:])}")
    kernel = HMC(potential_fn=lambda z: z["x"].pow(2).sum())
    problems += [f"HMC.{a}" for a in _PRIVATE_ATTRS if not hasattr(kernel, a)]
    if problems:
        raise ModelError(
            f"ppgen's MCMC statistics recorder needs Pyro internals that pyro-ppl "
            f"{pyro.__version__} no longer has ({', '.join(problems)}); it was written "
            "against pyro-ppl 1.9: install pyro-ppl~=1.9, or update ppgen/analysis/mcmc.py"
        )


@dataclass
class ChainDraws:
    """Draws of several chains.

    Attributes:
        samples: ``{site: [C, D, *shape]}`` constrained posterior draws.
        stats: ``{stat: [C, D]}`` sampler statistics (ArviZ names).
        chain_method: ``"parallel"`` or ``"sequential"``, as run.
    """

    samples: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]
    chain_method: str = "sequential"


def resolve_chain_method(chain_method: str, num_chains: int, args: tuple,
                         kwargs: dict[str, Any]) -> str:
    """``"parallel"`` or ``"sequential"`` for the request ``chain_method``.

    ``"auto"`` is parallel when there are several chains, more than one CPU, the program's
    tensors are on the CPU, forking is available and this process is not itself a worker.

    Raises:
        ModelError: an unknown method, or ``"parallel"`` where processes cannot be forked.
    """
    if chain_method not in CHAIN_METHODS:
        raise ModelError(f"chain_method={chain_method!r}: choose one of "
                         f"{', '.join(CHAIN_METHODS)}")
    forkable = "fork" in multiprocessing.get_all_start_methods() and \
        not multiprocessing.current_process().daemon
    if chain_method == "parallel" and not forkable:
        raise ModelError("parallel chains need processes started with 'fork' (Linux, macOS) "
                         "outside a worker process: use chain_method='sequential'")
    if chain_method != "auto":
        return chain_method
    on_cpu = all(t.device.type == "cpu" for t in _tensors(args, kwargs))
    parallel = num_chains > 1 and _num_cpus() > 1 and on_cpu and forkable
    return "parallel" if parallel else "sequential"


def _tensors(args: tuple, kwargs: dict[str, Any]) -> list[torch.Tensor]:
    return [v for v in (*args, *kwargs.values()) if isinstance(v, torch.Tensor)]


def _num_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


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
    chain_method: str = "auto",
    progress: bool = True,
) -> ChainDraws:
    """Run ``num_chains`` chains (in parallel processes or in turn) and stack their draws.

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
        chain_method: ``"auto"``, ``"parallel"`` or ``"sequential"`` (see
            :func:`resolve_chain_method`); the draws do not depend on it.
        progress: a bar of the iterations (warm-up and sampling, all chains) on a terminal;
            the workers of parallel chains report to it through a shared counter.

    Returns:
        The stacked draws and statistics.
    """
    check_pyro_internals()
    how = resolve_chain_method(chain_method, num_chains, args, kwargs)
    job = functools.partial(_one_chain, model, args, kwargs, method, num_samples, num_warmup,
                            options=kernel_options or {})
    seeds = [seed + c for c in range(num_chains)]
    total = num_chains * (num_warmup + num_samples)
    with tqdm(total=total, desc=f"{method.upper()} ({num_chains} chains, {how})",
              unit="it", disable=None if progress else True, leave=False) as bar:
        if how == "parallel":
            chains = _in_processes(job, seeds, bar)
        else:
            chains = [job(s, tick=lambda *_: bar.update()) for s in seeds]
    samples = {k: np.stack([ch[0][k] for ch in chains]) for k in chains[0][0]}
    stats = {k: np.stack([ch[1][k] for ch in chains]) for k in chains[0][1]}
    stats["diverging"] = stats["diverging"].astype(bool)
    return ChainDraws(samples, stats, how)


#: The job forked workers run and their shared iteration counter (set only while a pool is
#: open; inherited, never pickled, so closures and user functions defined anywhere work).
_JOB: Any = None
_DONE: Any = None


def _in_processes(job, seeds: list[int], bar: Any) -> list[tuple[dict, dict]]:
    """``job(seed)`` for every seed, in forked worker processes; results in seed order. The
    workers count their iterations in a shared counter that ``bar`` follows."""
    global _JOB, _DONE
    context = multiprocessing.get_context("fork")
    workers = min(len(seeds), _num_cpus())
    threads = max(1, torch.get_num_threads() // workers)
    _JOB, _DONE = job, context.Value("q", 0)
    try:
        with context.Pool(workers, initializer=torch.set_num_threads,
                          initargs=(threads,)) as pool:
            result = pool.map_async(_run_job, seeds, chunksize=1)
            while not result.ready():
                result.wait(0.25)
                bar.update(_DONE.value - bar.n)
            chains = result.get()
            bar.update(_DONE.value - bar.n)
            return chains
    finally:
        _JOB = _DONE = None


def _run_job(seed: int) -> tuple[dict, dict]:
    return _JOB(seed, tick=_count)


def _count(*_: Any) -> None:
    """A worker's iteration, added to the shared counter (Pyro's ``MCMC`` ``hook_fn``)."""
    with _DONE.get_lock():
        _DONE.value += 1


def _one_chain(model, args, kwargs, method, num_samples, num_warmup, seed, options,
               tick: Callable[..., None] | None = None):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        kernel = KERNELS[method](model, **options)
        mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=num_warmup,
                    num_chains=1, disable_progbar=True, hook_fn=tick)
        mcmc.run(*args, **kwargs)
    samples = {k: v.detach().cpu().numpy() for k, v in mcmc.get_samples().items()}
    kept = kernel.stats_[-num_samples:]
    stats = {k: np.array([s[k] for s in kept]) for k in kept[0]}
    return samples, stats
