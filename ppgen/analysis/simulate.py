"""Prior, prior-predictive and posterior-predictive draws of a Pyro program, by tracing it.

One trace per draw: slower than a vectorised ``Predictive`` but correct for any program,
including ones that are not written to broadcast over an extra batch dimension. Observed
sites are resampled (``poutine.uncondition``) rather than returned as the data, except the
``fixed`` ones: globals the program is conditioned on (``pyro.condition``) keep their values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from pyro import poutine

__all__ = ["trace_program", "prior_draws", "predictive_draws", "sample_sites"]


def trace_program(model: Callable[..., Any], args: tuple, kwargs: dict[str, Any]):
    """One trace of ``model(*args, **kwargs)`` (no gradients, parameters blocked).

    Runs under its own random state: the caller's stream is not advanced.
    """
    with torch.random.fork_rng(devices=[]), torch.no_grad(), poutine.block():
        return poutine.trace(model).get_trace(*args, **kwargs)


def sample_sites(trace) -> tuple[list[str], list[str]]:
    """``(latent, observed)`` sample-site names of a trace, in program order."""
    latent, observed = [], []
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site["infer"].get("is_auxiliary"):
            continue
        if type(site["fn"]).__name__ == "_Subsample":
            continue
        (observed if site["is_observed"] else latent).append(name)
    return latent, observed


def prior_draws(model, args, kwargs, num: int, seed: int,
                fixed: dict[str, torch.Tensor] | None = None) -> dict[str, np.ndarray]:
    """``{site: [num, *shape]}`` for every sample site, observed ones simulated (but the
    ``fixed`` ones)."""
    free = _free(model, fixed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        traces = [trace_program(free, args, kwargs) for _ in range(num)]
    return _stack(traces)


def predictive_draws(model, args, kwargs, samples: dict[str, torch.Tensor],
                     names: list[str], seed: int,
                     fixed: dict[str, torch.Tensor] | None = None) -> dict[str, np.ndarray]:
    """``{site: [S, *shape]}`` of the sites ``names``, one simulation per posterior draw.

    Args:
        samples: ``{latent site: [S, *shape]}`` posterior draws.
        fixed: ``{site: value}`` of observed sites that keep their values.
    """
    S = next(iter(samples.values())).shape[0]
    free = _free(model, fixed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        traces = [
            trace_program(poutine.condition(free, {k: v[s] for k, v in samples.items()}),
                          args, kwargs)
            for s in range(S)
        ]
    return {k: v for k, v in _stack(traces).items() if k in names}


def _free(model, fixed: dict[str, torch.Tensor] | None):
    """``model`` with its observed sites simulated, the ``fixed`` ones kept."""
    free = poutine.uncondition(model)
    return poutine.condition(free, data=fixed) if fixed else free


def _stack(traces) -> dict[str, np.ndarray]:
    names = [n for n, s in traces[0].nodes.items() if s["type"] == "sample"
             and type(s["fn"]).__name__ != "_Subsample"]
    return {
        n: np.stack([tr.nodes[n]["value"].detach().cpu().numpy() for tr in traces])
        for n in names
    }
