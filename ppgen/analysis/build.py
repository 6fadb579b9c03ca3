"""``posterior``: MCMC or VI on a user's Pyro program, returned as ArviZ ``InferenceData``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from ppgen.analysis.binding import Bound, bind, check_data_arguments
from ppgen.analysis.convert import make_inference_data, site_dims
from ppgen.analysis.mcmc import KERNELS, run_chains
from ppgen.analysis.options import sort_options
from ppgen.analysis.simulate import predictive_draws, prior_draws, sample_sites, trace_program
from ppgen.analysis.vi import GUIDES, fit_guide
from ppgen.errors import ModelError
from ppgen.evaluate import DATA_PLATE, pointwise_log_likelihood
from ppgen.evaluate.enumeration import is_enumerated

logger = logging.getLogger(__name__)

__all__ = ["posterior", "METHODS"]

#: Inference methods of :func:`posterior`.
METHODS = ("nuts", "hmc", "svi")


def posterior(
    model: Callable[..., Any],
    *args: Any,
    method: str = "nuts",
    num_samples: int = 1000,
    num_warmup: int | None = None,
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
    model_kwargs: dict[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    progress: bool = True,
    **options: Any,
) -> Any:
    """Posterior of ``model(*args, **model_kwargs)`` as ArviZ ``InferenceData``.

    The program is called as ``MCMC.run(*args, **kwargs)`` would call it. Its observations
    must sit in ``pyro.plate("data", N)`` (the evaluation layer's convention); the observed
    data ``x: [N, ...]`` are the argument the program observes there (e.g. ``y`` of
    ``data={"y": y, "X": X}``), or the keyword argument named ``data_site``, or else the first
    positional argument. Sites outside the plate that are observed (globals fixed by
    ``pyro.condition(model, data={...})``) stay fixed in every group and are recorded in
    ``constant_data``.

    Pyro's own argument names work as Pyro users write them (:mod:`ppgen.analysis.options`):
    ``warmup_steps`` (``MCMC``'s name for ``num_warmup``), kernel arguments such as
    ``target_accept_prob`` or ``max_tree_depth`` (added to ``kernel_options``) and, for
    ``method="svi"``, ``num_steps``, ``lr``, ``num_particles`` (added to ``svi_options``).
    None of them reaches the program: its keywords go in ``model_kwargs``.

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
        num_warmup: adaptation steps per chain (MCMC; default 1000; Pyro's ``warmup_steps``
            is the same).
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
        model_kwargs: keyword arguments of the program (Pyro's ``MCMC.run(**kwargs)``).
        data: named arrays passed to the program as keywords, e.g. ``{"y": y, "X": X}``
            (tensors or NumPy arrays); the one the program observes in its ``"data"`` plate
            is the data, and sets ``N``.
        progress: a progress bar of the MCMC iterations (all chains) on a terminal, as Pyro's
            ``MCMC`` shows; Pyro's ``disable_progbar=True`` is the same as ``False`` here.
        **options: Pyro's option names (see above); a keyword the program declares by name
            is passed to it as before, and any other name is refused.

    Returns:
        ``arviz.InferenceData``; the attributes record the method (``inference``), how the
        chains ran (``chain_method``) and the wall time of warm-up plus sampling (or of the
        VI fit and its draws) in seconds (``sampling_time``).

    Raises:
        ModelError: an unknown option, an option given twice, a keyword that is both an
            option and the program's, no latent site, or no observed data.

    Example:
        >>> def model(x):
        ...     mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
        ...     with pyro.plate("data", x.shape[0]):
        ...         pyro.sample("x", dist.Normal(mu, 1.0), obs=x)
        >>> idata = posterior(model, torch.randn(20), num_samples=200, num_warmup=200)
        >>> az.summary(idata)  # doctest: +SKIP
    """
    _check_options(method, guide, num_samples, num_chains)
    if "disable_progbar" in options:  # Pyro's MCMC name for the same switch
        progress = not options.pop("disable_progbar")
    if data is not None and not isinstance(data, Mapping):  # a program keyword named data
        options, data = {"data": data, **options}, None
    opts = sort_options(model, method, options, num_warmup=num_warmup,
                        kernel_options=kernel_options, svi_options=svi_options,
                        model_kwargs=model_kwargs)
    kwargs = _with_arrays(opts.model_kwargs, data)
    check_data_arguments(args, kwargs, data_site)
    mcmc_options = {"kernel_options": opts.kernel_options, "chain_method": chain_method,
                    "progress": progress}
    trace = trace_program(model, args, kwargs)
    args, kwargs, trace = _in_programs_dtype(model, args, kwargs, trace)
    latent, observed = sample_sites(trace)
    observed, fixed = _split_fixed(trace, observed)
    _check_observed_shapes(trace, observed)
    if not latent:
        raise ModelError("the model has no latent sample site: there is no posterior to draw")
    bound = bind(model, args, kwargs, data_site, {n: trace.nodes[n]["value"] for n in observed})
    start = time.perf_counter()
    draws, stats, attrs = _infer(model, args, kwargs, method, guide, num_samples,
                                 opts.num_warmup, num_chains, seed, mcmc_options,
                                 opts.svi_options)
    attrs["sampling_time"] = time.perf_counter() - start
    flat = {k: torch.as_tensor(v.reshape((-1,) + v.shape[2:])) for k, v in draws.items()}
    ll_name = _ll_name(trace, observed, bound, data_site)
    groups = {
        "posterior": draws,
        "sample_stats": stats,
        "log_likelihood": {ll_name: _chains({"ll": _log_likelihood(bound, flat)},
                                            num_chains)["ll"]},
        "posterior_predictive": _chains(predictive_draws(model, args, kwargs, flat, observed,
                                                         seed + 1, fixed), num_chains),
        **_prior(model, args, kwargs, latent, observed, num_prior_samples or num_samples, seed,
                 fixed),
        "observed_data": {n: trace.nodes[n]["value"].cpu().numpy() for n in observed},
        "constant_data": {n: v.cpu().numpy() for n, v in fixed.items()},
    }
    all_dims = {**site_dims(trace), ll_name: [DATA_PLATE], **(dims or {})}
    return make_inference_data(groups, all_dims, coords, attrs)


def _with_arrays(kwargs: dict[str, Any], data: Mapping[str, Any] | None) -> dict[str, Any]:
    """The program's keywords with the named arrays of ``data`` added (as tensors)."""
    if not data:
        return kwargs
    both = sorted(set(kwargs) & set(data))
    if both:
        raise ModelError(f"{both} given both in data and as model keywords: give them once")
    return {**kwargs, **{k: _as_tensor(v) for k, v in data.items()}}


def _as_tensor(value: Any) -> Any:
    if isinstance(value, torch.Tensor) or not isinstance(value, (np.ndarray, list, tuple)):
        return value
    t = torch.as_tensor(np.asarray(value))
    return t.to(torch.get_default_dtype()) if t.is_floating_point() else t


def _in_programs_dtype(model, args: tuple, kwargs: dict[str, Any], trace):
    """The floating-point arguments in the dtype of the program's enumerated sites.

    Pyro sums enumerated sites (``@config_enumerate``) out with an einsum that takes one
    dtype, so float64 data (NumPy's default) in a program whose parameters are float32 fail
    inside NUTS ("expected scalar type Float but found Double"). Such data are cast to the
    program's dtype (and traced again); programs without enumerated sites run as given.
    """
    sites = [site for site in trace.nodes.values() if is_enumerated(site)]
    if not sites:
        return args, kwargs, trace
    dtype = sites[0]["fn"].log_prob(sites[0]["value"]).dtype

    def cast(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.is_floating_point() and \
                value.dtype != dtype:
            return value.to(dtype)
        return value

    new_args, new_kwargs = tuple(map(cast, args)), {k: cast(v) for k, v in kwargs.items()}
    if all(a is b for a, b in zip(new_args, args)) and \
            all(new_kwargs[k] is v for k, v in kwargs.items()):
        return args, kwargs, trace
    logger.info("enumerated program: floating-point arguments cast to %s", dtype)
    return new_args, new_kwargs, trace_program(model, new_args, new_kwargs)


def _check_observed_shapes(trace, observed: list[str]) -> None:
    """Refuse data that broadcast their site's distribution (``[N, 1]`` data at a scalar site
    in ``pyro.plate("data", N)`` give ``[N, N]`` log-densities): NUTS would sample from a
    wrong likelihood without a word."""
    for name in observed:
        site = trace.nodes[name]
        fn, value = site["fn"], site["value"]
        if fn.log_prob(value).shape != fn.batch_shape:
            expected = tuple(fn.batch_shape) + tuple(fn.event_shape)
            raise ModelError(
                f"observed site {name!r} has data of shape {tuple(value.shape)}, but its "
                f"distribution has batch shape {tuple(fn.batch_shape)} and event shape "
                f"{tuple(fn.event_shape)}: pass data of shape {expected} (a one-column array "
                "[N, 1] as x[:, 0]), or declare the data's dimensions with .to_event(...)")


def _split_fixed(trace, observed: list[str]) -> tuple[list[str], dict[str, torch.Tensor]]:
    """Observed sites in the ``"data"`` plate, and the values of those outside it (globals
    fixed by ``pyro.condition``); with none in the plate, all are data (the evaluation layer
    then names the missing plate)."""
    inside = [n for n in observed if _in_data_plate(trace.nodes[n])]
    if not inside:
        return observed, {}
    return inside, {n: trace.nodes[n]["value"] for n in observed if n not in inside}


def _in_data_plate(site: dict) -> bool:
    return any(f.name == DATA_PLATE for f in site["cond_indep_stack"])


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
                    num_chains=num_chains, seed=seed, progress=mcmc_options["progress"],
                    **(svi_options or {}))
    attrs = {"inference": "svi", "guide": guide, "final_loss": float(out.losses[-1])}
    return out.samples, {}, attrs


def _log_likelihood(bound: Bound, flat: dict[str, torch.Tensor]) -> np.ndarray:
    """``[S, N]`` pointwise log-likelihoods, in float64 where the program allows.

    Float32 rounds ``log p`` of well-fitted points (``-log1p(exp(-100))``) to exactly 0 for
    every draw, and PSIS then reports Pareto k = inf; so the data, the other floating-point
    arguments and the draws go in as float64. A program that cannot run on them (float32
    tensors it closes over in a matrix product, float32 networks) is scored as written.
    Discrete sites NUTS summed out (``@config_enumerate``) are summed out here too.
    """
    kwargs64 = {k: _float64(v) for k, v in bound.kwargs.items()}
    draws64 = {k: _float64(v) for k, v in flat.items()}
    try:
        ll = pointwise_log_likelihood(bound.program, _float64(bound.x), draws64, **kwargs64)
    except (RuntimeError, ValueError, TypeError) as err:
        logger.info("log-likelihood in float64 failed (%s); computing it in float32", err)
        ll = pointwise_log_likelihood(bound.program, bound.x, flat, **bound.kwargs)
    return ll.double().cpu().numpy()


def _float64(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.double()
    return value


def _ll_name(trace, observed: list[str], bound: Bound, data_site: str | None) -> str:
    """The log-likelihood's name: the observed site's, or the one that observes the data."""
    if len(observed) == 1:
        return observed[0]
    same = [n for n in observed if trace.nodes[n]["value"] is bound.x]
    return same[0] if same else data_site or "x"


def _prior(model, args, kwargs, latent, observed, num, seed, fixed) -> dict[str, dict]:
    draws = prior_draws(model, args, kwargs, num, seed + 2, fixed)
    return {
        "prior": {k: draws[k][None] for k in latent},
        "prior_predictive": {k: draws[k][None] for k in observed},
    }


def _chains(draws: dict[str, np.ndarray], num_chains: int) -> dict[str, np.ndarray]:
    return {k: v.reshape((num_chains, -1) + v.shape[1:]) for k, v in draws.items()}
