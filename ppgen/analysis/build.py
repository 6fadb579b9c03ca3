"""``posterior``: MCMC or VI on a user's Pyro program, returned as ArviZ ``InferenceData``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ppgen.analysis.binding import bind
from ppgen.analysis.convert import make_inference_data, site_dims
from ppgen.analysis.mcmc import KERNELS, run_chains
from ppgen.analysis.simulate import predictive_draws, prior_draws, sample_sites, trace_program
from ppgen.analysis.vi import GUIDES, fit_guide
from ppgen.errors import ModelError
from ppgen.evaluate import pointwise_log_likelihood

__all__ = ["posterior", "METHODS"]

#: Inference methods of :func:`posterior`.
METHODS = ("nuts", "hmc", "svi")


def posterior(
    model: Callable[..., Any],
    *args: Any,
    method: str = "nuts",
    num_samples: int = 1000,
    num_warmup: int = 1000,
    num_chains: int = 4,
    seed: int = 0,
    chain_method: str = "auto",
    guide: str = "normal",
    data_site: str | None = None,
    num_prior_samples: int | None = None,
    kernel_options: dict[str, Any] | None = None,
    svi_options: dict[str, Any] | None = None,
    coords: dict[str, Any] | None = None,
    dims: dict[str, list[str]] | None = None,
    **kwargs: Any,
) -> Any:
    """Posterior of ``model(*args, **kwargs)`` as ArviZ ``InferenceData``.

    The program is called as ``MCMC.run(*args, **kwargs)`` would call it. Its observations
    must sit in ``pyro.plate("data", N)`` (the evaluation layer's convention), and the observed
    data ``x: [N, ...]`` are the first positional argument, or the keyword argument named
    ``data_site``.

    Groups: ``posterior`` ``[chain, draw, ...]``; ``sample_stats`` (MCMC: ``diverging``,
    ``acceptance_rate``, ``step_size``, ``energy``, ``lp``, ``n_steps``, and ``tree_depth``
    for NUTS); ``log_likelihood`` (``log p(x_n | theta)`` from
    :func:`ppgen.evaluate.pointwise_log_likelihood`, under the observed site's name);
    ``posterior_predictive``, ``prior``, ``prior_predictive`` and ``observed_data``.
    Dimension names are the plates' names (see :mod:`ppgen.analysis.convert`).

    Args:
        model: a Pyro program.
        *args: its positional arguments.
        method: ``"nuts"``, ``"hmc"`` or ``"svi"``.
        num_samples: draws per chain ``D``.
        num_warmup: adaptation steps per chain (MCMC).
        num_chains: chains ``C``, chain ``c`` seeded with ``seed + c``. For VI the ``C * D``
            draws are independent and only split into ``C`` rows.
        seed: seeds everything; the caller's random state is left untouched.
        chain_method: MCMC chains in ``"parallel"`` worker processes or ``"sequential"``ly;
            ``"auto"`` runs them in parallel when more than one CPU is available and the data
            are on the CPU. The draws are the same either way (each chain depends only on
            its seed).
        guide: VI family: ``"normal"`` (``AutoNormal``), ``"mvn"``
            (``AutoMultivariateNormal``) or ``"flow"`` (``AutoIAFNormal``).
        data_site: the keyword argument holding the observed data (default: the first
            positional argument).
        num_prior_samples: prior draws (default: ``num_samples``).
        kernel_options: passed to ``NUTS``/``HMC`` (e.g. ``target_accept_prob``).
        svi_options: passed to the VI fit (``num_steps``, ``lr``, ``num_particles``).
        coords: extra coordinates ``{dim: values}``.
        dims: dimension names overriding the plate-derived ones ``{var: [dim, ...]}``.
        **kwargs: keyword arguments of the program.

    Returns:
        ``arviz.InferenceData``; the attributes record the method (``inference``), how the
        chains ran (``chain_method``) and the wall time of warm-up plus sampling (or of the
        VI fit and its draws) in seconds (``sampling_time``).

    Example:
        >>> def model(x):
        ...     mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
        ...     with pyro.plate("data", x.shape[0]):
        ...         pyro.sample("x", dist.Normal(mu, 1.0), obs=x)
        >>> idata = posterior(model, torch.randn(20), num_samples=200, num_warmup=200)
        >>> az.summary(idata)  # doctest: +SKIP
    """
    _check_options(method, guide, num_samples, num_chains)
    mcmc_options = {"kernel_options": kernel_options, "chain_method": chain_method}
    bound = bind(model, args, kwargs, data_site)
    trace = trace_program(model, args, kwargs)
    latent, observed = sample_sites(trace)
    if not latent:
        raise ModelError("the model has no latent sample site: there is no posterior to draw")
    start = time.perf_counter()
    draws, stats, attrs = _infer(model, args, kwargs, method, guide, num_samples, num_warmup,
                                 num_chains, seed, mcmc_options, svi_options)
    attrs["sampling_time"] = time.perf_counter() - start
    flat = {k: torch.as_tensor(v.reshape((-1,) + v.shape[2:])) for k, v in draws.items()}
    groups = {
        "posterior": draws,
        "sample_stats": stats,
        "log_likelihood": _log_likelihood(bound, flat, observed, data_site, num_chains),
        "posterior_predictive": _chains(predictive_draws(model, args, kwargs, flat, observed,
                                                         seed + 1), num_chains),
        **_prior(model, args, kwargs, latent, observed, num_prior_samples or num_samples, seed),
        "observed_data": {n: trace.nodes[n]["value"].cpu().numpy() for n in observed},
    }
    all_dims = {**site_dims(trace), **_ll_dims(trace, observed, data_site), **(dims or {})}
    return make_inference_data(groups, all_dims, coords, attrs)


def _check_options(method: str, guide: str, num_samples: int, num_chains: int) -> None:
    if method not in METHODS:
        raise ModelError(f"method={method!r}: choose one of {', '.join(METHODS)}")
    if method == "svi" and guide not in GUIDES:
        raise ModelError(f"guide={guide!r}: choose one of {', '.join(GUIDES)}")
    if num_samples < 1 or num_chains < 1:
        raise ModelError("num_samples and num_chains must be at least 1")


def _infer(model, args, kwargs, method, guide, num_samples, num_warmup, num_chains, seed,
           mcmc_options, svi_options):
    if method in KERNELS:
        out = run_chains(model, args, kwargs, method=method, num_samples=num_samples,
                         num_warmup=num_warmup, num_chains=num_chains, seed=seed,
                         **mcmc_options)
        attrs = {"inference": method, "num_warmup": num_warmup,
                 "chain_method": out.chain_method}
        return out.samples, out.stats, attrs
    out = fit_guide(model, args, kwargs, guide=guide, num_samples=num_samples,
                    num_chains=num_chains, seed=seed, **(svi_options or {}))
    attrs = {"inference": "svi", "guide": guide, "final_loss": float(out.losses[-1])}
    return out.samples, {}, attrs


def _log_likelihood(bound, flat, observed, data_site, num_chains) -> dict[str, np.ndarray]:
    # discrete sites NUTS summed out (@config_enumerate) are summed out here too
    ll = pointwise_log_likelihood(bound.program, bound.x, flat, **bound.kwargs)
    return {_ll_name(observed, data_site): _chains({"ll": ll.cpu().numpy()}, num_chains)["ll"]}


def _ll_name(observed: list[str], data_site: str | None) -> str:
    if len(observed) == 1:
        return observed[0]
    return data_site or "x"


def _ll_dims(trace, observed, data_site) -> dict[str, list[str]]:
    """The log-likelihood is per datum: its one dimension is the ``"data"`` plate."""
    return {_ll_name(observed, data_site): ["data"]}


def _prior(model, args, kwargs, latent, observed, num, seed) -> dict[str, dict]:
    draws = prior_draws(model, args, kwargs, num, seed + 2)
    return {
        "prior": {k: draws[k][None] for k in latent},
        "prior_predictive": {k: draws[k][None] for k in observed},
    }


def _chains(draws: dict[str, np.ndarray], num_chains: int) -> dict[str, np.ndarray]:
    return {k: v.reshape((num_chains, -1) + v.shape[1:]) for k, v in draws.items()}
