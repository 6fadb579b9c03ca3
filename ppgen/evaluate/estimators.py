"""Per-datum log-likelihoods, ELBOs and pointwise log-likelihoods from traces.

The one primitive is a pair of traces: the guide run under a vectorised particle plate, and the
model replayed against it. Every site's ``log_prob`` is reduced over every dimension but the
particle plate's and the ``"data"`` plate's, giving ``[K, n]`` tensors; data are processed in
chunks so that ``K x chunk`` stays within a fixed number of rows, and nothing inside the loop
synchronises with the host. Discrete sites marked for enumeration (``@config_enumerate``) are
summed out exactly instead of sampled (:mod:`ppgen.evaluate.enumeration`); programs without
them take the plain path, with no extra trace.

A user's program that cannot be cut into rows (a non-amortised guide with per-datum
parameters ``pyro.param("loc", torch.zeros(N, k))``, covariates of ``N`` rows closed over) runs
on all the data and its particles (or posterior draws) are chunked instead; one whose
``"data"`` plate subsamples (``pyro.plate("data", N, subsample_size=B) as idx``, Pyro's
convention) gets all the data and the plate's indices from ppgen, ``B`` at a time, unscaled
(:class:`~ppgen.evaluate.program.Layout`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable
from typing import Any

import pyro
import torch
from pyro import poutine
from torch.distributions import kl_divergence

from ppgen.data.validate import as_tensor
from ppgen.errors import DataError, ModelError
from ppgen.evaluate.arguments import check_counts, guide_and_data
from ppgen.evaluate.chunks import Chunk, chunk_rows, chunks, slices, take
from ppgen.evaluate.enumeration import contract_sites, enumerate_program
from ppgen.evaluate.program import (
    DATA_PLATE,
    Layout,
    Program,
    Structure,
    batch_dims_message,
    check_supports,
    inspect_structure,
    resolve,
    runs_on_rows,
    validation_context,
)
from ppgen.evaluate.routing import evaluation_options, resolve_call

__all__ = ["log_likelihood", "elbo", "pointwise_log_likelihood", "ROWS_PER_CHUNK"]

#: Rows (particles x data) evaluated at once; bounds memory whatever K and N are.
ROWS_PER_CHUNK = 2**15

PARTICLE_PLATE = "_ppgen_particles"


def log_likelihood(
    model: Any,
    *args: Any,
    guide: Any = None,
    x: Any = None,
    num_particles: int | None = None,
    batch_size: int | None = None,
    differentiable: bool = False,
    structure: Structure | None = None,
    check: bool = True,
    **kwargs: Any,
) -> torch.Tensor:
    """Per-datum log-likelihood ``log p(x_n)``: exact, or importance-weighted.

    Exact when the model has no latent sites other than enumerated ones (discrete sites in
    the ``"data"`` plate marked ``infer={"enumerate": "parallel"}``, e.g. by
    ``@config_enumerate``, summed out exactly: a mixture's ``log sum_c p(c) p(x_n | c)``).
    Otherwise the importance-weighted estimate ``log (1/K) sum_k p(x_n, z_k) / q(z_k | x_n)``
    with ``z_k ~ q(z | x_n)`` — a stochastic lower bound in expectation that tightens as ``K``
    grows (Burda et al., 2016); enumerated sites the guide does not sample are summed out of
    ``p(x_n, z_k)``.

    Called as ``log_likelihood(model, guide, x)`` (Pyro's order, as in :func:`elbo`) or
    ``log_likelihood(model, x)`` without a guide; the older ``log_likelihood(model, x, guide)``
    is read too: the data are the array, the guide the callable (or ``None``), and a call
    where they cannot be told apart is an :class:`~ppgen.errors.ArgumentError`.

    Args:
        model: a :class:`~ppgen.GenerativeModel` or a Pyro program ``model(x, **kwargs)`` with
            its observations in ``pyro.plate("data", x.shape[0])``.
        *args: ``guide, x`` or ``x`` (see above).
        guide: ``guide(x, **kwargs)`` sampling every latent site (zoo models use their own);
            positional or by keyword.
        x: data ``[N, ...]`` (array-like; kept on its device); positional or by keyword.
        num_particles: ``K``, the number of importance samples per datum, a positive integer
            (default: what a zoo model declares in ``evaluation_defaults``, else 1000).
        batch_size: rows of ``x`` per chunk (default: the model's declaration, else as many
            as fit ``ROWS_PER_CHUNK``); a program that runs only on all rows, or subsamples
            its plate, sets its own.
        differentiable: keep the autograd graph (training the IWAE bound); otherwise the
            computation runs under ``torch.no_grad()``.
        structure: the program's structure, when the caller has it cached.
        check: validate ``x`` first (shape, finiteness, support). Training objectives pass
            ``False`` for batches of data the engine validated once up front.
        **kwargs: passed to the programs; tensors with ``N`` rows are chunked with ``x``. A
            zoo model's are its declared conditioning inputs (e.g. ``y=labels``), checked by
            its :attr:`~ppgen.GenerativeModel.conditions`.

    Returns:
        ``[N]`` log-likelihoods (nats), on ``x``'s device.

    Energy-based zoo models are handed to the estimator registered for their kind (AIS, see
    :mod:`ppgen.evaluate.routing`); implicit ones have no log-likelihood.

    Example:
        >>> import torch, pyro, pyro.distributions as dist
        >>> def model(x):
        ...     with pyro.plate("data", x.shape[0]):
        ...         d = dist.Normal(0.0, 1.0).expand([x.shape[0], 2]).to_event(1)
        ...         pyro.sample("x", d, obs=x)
        >>> log_likelihood(model, torch.zeros(3, 2)).shape
        torch.Size([3])
    """
    guide, x, options, estimator = resolve_call("ppgen.log_likelihood", "log_likelihood", model,
                                                args, guide, x, num_particles, batch_size)
    if estimator is not None:
        return estimator(model, x, **options, **kwargs)
    num_particles, batch_size = options["num_particles"], options["batch_size"]
    program, x, structure, checked = _setup(model, guide, x, kwargs, structure, check=check)
    _refuse_global_latents(structure)
    K = num_particles if structure.latent else 1
    if differentiable and structure.latent and not structure.reparameterized:
        raise ModelError(
            "the importance-weighted bound needs reparameterisable latent sites to train; "
            "train with the ELBO (which handles discrete sites by score-function gradients)"
        )
    rows = batch_size or (x.shape[0] if differentiable else max(1, ROWS_PER_CHUNK // K))
    rows = chunk_rows(structure, x, rows)
    pchunk = max(1, min(K, ROWS_PER_CHUNK // rows))
    with _grad(differentiable), validation_context(checked):
        parts = [
            _iw_chunk(program, structure, chunk, K, pchunk)
            for chunk in chunks(structure, x, kwargs, rows)
        ]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def elbo(
    model: Any,
    *args: Any,
    guide: Any = None,
    x: Any = None,
    num_particles: int = 1,
    batch_size: int | None = None,
    analytic_kl: bool = False,
    differentiable: bool = False,
    structure: Structure | None = None,
    check: bool = True,
    **kwargs: Any,
) -> torch.Tensor:
    """Per-datum evidence lower bound ``E_q[log p(x_n, z) - log q(z | x_n)]``.

    Enumerated sites the guide does not sample (see :func:`log_likelihood`) are summed out of
    ``p(x_n, z)``; with no other latent site the bound is the exact ``log p(x_n)``.

    Called as ``elbo(model, guide, x)`` (Pyro's order) or ``elbo(model, x)`` without a guide;
    the swapped ``elbo(model, x, guide)`` is read too (see :func:`log_likelihood`).

    Args:
        model: a :class:`~ppgen.GenerativeModel` or a Pyro program ``model(x)``.
        *args: ``guide, x`` or ``x``.
        guide: ``guide(x)`` (``None`` for a zoo model's own guide, or a model without latents).
        x: data ``[N, ...]``.
        num_particles: Monte Carlo samples averaged per datum (a positive integer).
        batch_size: rows per chunk (a positive integer; default: the zoo model's declared
            ``evaluation_defaults`` when not ``differentiable``, else all rows at once).
        analytic_kl: use the closed-form ``KL(q || p)`` for latent sites where one is
            registered (e.g. Gaussian guide and Gaussian prior), Monte Carlo elsewhere; not
            with enumerated sites, whose sum couples the terms.
        differentiable: keep the graph; non-reparameterisable latent sites then add a
            score-function surrogate whose value is zero, so the result is unchanged.
        structure: cached program structure.
        check: validate ``x`` first (see :func:`log_likelihood`).
        **kwargs: passed to the programs.

    Returns:
        ``[N]`` ELBO values (nats).
    """
    guide, x = guide_and_data("ppgen.elbo", args, guide, x)
    num_particles, batch_size = check_counts(num_particles=num_particles, batch_size=batch_size)
    if batch_size is None and not differentiable:  # a training step takes its batch whole
        batch_size = evaluation_options(model)["batch_size"]
    program, x, structure, checked = _setup(model, guide, x, kwargs, structure, check=check)
    _refuse_global_latents(structure)
    if analytic_kl and structure.enumerated and structure.latent:
        raise ModelError(
            f"analytic_kl=True with enumerated sites {structure.enumerated}: the sum over "
            "them couples the KL terms; pass analytic_kl=False (Monte Carlo over the guide)"
        )
    K = num_particles
    rows = batch_size or (x.shape[0] if differentiable else max(1, ROWS_PER_CHUNK // K))
    rows = chunk_rows(structure, x, rows)
    pchunk = K if differentiable else max(1, min(K, ROWS_PER_CHUNK // rows))
    with _grad(differentiable), validation_context(checked):
        parts = [
            _elbo_chunk(program, structure, chunk, K, pchunk, analytic_kl, differentiable)
            for chunk in chunks(structure, x, kwargs, rows)
        ]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def pointwise_log_likelihood(
    model: Any,
    x: Any,
    posterior_samples: dict[str, torch.Tensor],
    *,
    batch_size: int | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    """``log p(x_n | theta_s)`` for every posterior draw ``s`` and datum ``n``: ``[S, N]``.

    This is ArviZ's ``log_likelihood`` group (LOO, WAIC). Each draw conditions the model's
    latent sites; only observed sites count. Discrete sites marked for enumeration
    (``@config_enumerate``, e.g. a mixture's assignments, which NUTS sums out) are summed out
    here too: ``log p(x_n | theta_s) = log sum_c p(c | theta_s) p(x_n | c, theta_s)``, a
    log-sum-exp per datum; they must sit in the ``"data"`` plate.

    Args:
        model: a Pyro program ``model(x)`` (or a zoo model).
        x: data ``[N, ...]``.
        posterior_samples: ``{site: [S, *site_shape]}``; local sites (in the data plate) carry
            their ``N`` rows in their data dimension.
        batch_size: rows of ``x`` per chunk (a positive integer).
        **kwargs: passed to the program.

    Returns:
        ``[S, N]`` log-likelihoods.

    Raises:
        ModelError: no draws, draws of different lengths, latent sites that are neither
            given nor enumerated, or an enumerated site outside the ``"data"`` plate.
    """
    (batch_size,) = check_counts(batch_size=batch_size)
    if not posterior_samples:
        raise ModelError("posterior_samples is empty: pass {site name: [S, ...] draws}")
    S = _num_draws(posterior_samples)
    first = {k: v[0] for k, v in posterior_samples.items()}
    program, x, structure, checked = _setup(model, None, x, kwargs, None, given=first)
    rows = batch_size or max(1, ROWS_PER_CHUNK // S)
    if structure.layout is Layout.WHOLE and rows < x.shape[0] and \
            runs_on_rows(program, x, kwargs, first, structure):
        structure = dataclasses.replace(structure, layout=Layout.ROWS)
    rows = chunk_rows(structure, x, rows)
    per = max(1, min(S, ROWS_PER_CHUNK // rows))  # draws at once: all, unless rows are few
    with torch.no_grad(), validation_context(checked):
        parts = [
            torch.cat([_pointwise_chunk(program, structure, chunk, _draws(posterior_samples, d))
                       for d in slices(S, per)])
            for chunk in chunks(structure, x, kwargs, rows)
        ]
    return torch.cat(parts, dim=1)


# ---------------------------------------------------------------------------- set-up


def _setup(model, guide, x, kwargs, structure, given=None, check=True):
    program = resolve(model, guide)
    if not check:
        return program, x, structure or _structure(program, guide, x, kwargs, given), True
    x = _prepare_data(program, x)
    _prepare_conditions(program, x, kwargs)
    if structure is None:
        structure = _structure(program, guide, x, kwargs, given)
    checked = program.zoo is not None or check_supports(structure, x)
    if given:
        program = Program(program.model, None, program.source)
    return program, x, structure, checked


def structure_of(model: Any, x: torch.Tensor, kwargs: dict[str, Any] | None = None) -> Structure:
    """The structure of ``model``'s program pair on data like ``x`` (what training objectives
    cache), probed exactly as the estimators probe it: remembered by zoo models, and without
    touching the random state."""
    return _structure(resolve(model), None, x, kwargs or {}, None)


def _structure(program: Program, guide: Any, x: torch.Tensor, kwargs, given) -> Structure:
    """The program's structure; a zoo model with its own guide keeps it per kind of data.

    A zoo model's sites do not change over its life, so tracing it on one row on every call
    (a pass of the whole network) is wasted work: the structure is remembered on the model,
    keyed by the datum's shape and dtype and the keyword arguments' names.
    """
    zoo = program.zoo
    if zoo is None or guide is not None or given:
        return _probe(program, x, kwargs, given)
    key = (tuple(x.shape[1:]), x.dtype, tuple(sorted(kwargs)))
    cache = zoo.__dict__.setdefault("_structures", {})
    if key not in cache:
        cache[key] = _probe(program, x, kwargs, given)
    return cache[key]


def _probe(program: Program, x: torch.Tensor, kwargs, given) -> Structure:
    """:func:`inspect_structure` without touching the random state, so that a seeded
    evaluation draws the same numbers whether or not the structure was remembered."""
    devices = [x.device.index or 0] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        return inspect_structure(program, x, kwargs, given)


def _prepare_data(program: Program, x: Any) -> torch.Tensor:
    if program.zoo is not None:
        return program.zoo.check_data(x)
    x = as_tensor(x)
    if x.dim() == 0 or x.shape[0] == 0:
        raise DataError(f"data of shape {tuple(x.shape)} has no rows: pass [N, ...] with N >= 1")
    return x


def _prepare_conditions(program: Program, x: torch.Tensor, kwargs: dict[str, Any]) -> None:
    """A zoo model's conditioning values (``kwargs``, e.g. ``y``), checked in place by its
    declared :attr:`~ppgen.GenerativeModel.conditions`: every declared one given, one per
    row and valid, nothing undeclared; put on ``x``'s device."""
    if program.zoo is not None:
        checked = program.zoo.conditions.check(kwargs, x.shape[0], device=x.device)
        kwargs.clear()
        kwargs.update(checked)


def _refuse_global_latents(structure: Structure) -> None:
    if structure.global_latent:
        raise ModelError(
            f"latent sites {structure.global_latent} are outside the 'data' plate, so "
            "p(x_n) does not factor over data; move per-datum latents into the plate, or "
            "condition on posterior draws with pointwise_log_likelihood"
        )


def _grad(differentiable: bool):
    return contextlib.nullcontext() if differentiable else torch.no_grad()


def _num_draws(samples: dict[str, torch.Tensor]) -> int:
    sizes = {v.shape[0] for v in samples.values()}
    if len(sizes) != 1:
        raise ModelError(f"posterior samples disagree on the number of draws: {sorted(sizes)}")
    return sizes.pop()


def _draws(samples: dict[str, torch.Tensor], sl: slice) -> dict[str, torch.Tensor]:
    if sl.start == 0 and sl.stop == _num_draws(samples):
        return samples
    return {k: v[sl] for k, v in samples.items()}


# ---------------------------------------------------------------------------- traces


def _vectorized(fn: Callable, K: int, structure: Structure, device: torch.device) -> Callable:
    if K == 1 and not structure.latent and not structure.given:  # one exact pass: no plate
        return fn

    def wrapped(*args, **kwargs):
        with pyro.plate(PARTICLE_PLATE, K, dim=-(structure.nesting + 1), device=device):
            return fn(*args, **kwargs)

    return wrapped


def _traces(program: Program, structure: Structure, chunk: Chunk, K: int):
    xb, kb = chunk.x, chunk.kwargs
    guide_tr = None
    if program.guide is not None and structure.latent:
        guide = _vectorized(program.guide, K, structure, xb.device)
        guide_tr = poutine.trace(chunk.program(guide, structure)).get_trace(xb, **kb)
    model = _vectorized(program.model, K, structure, xb.device)
    if structure.enumerated:  # enumeration dims go left of the particle plate
        model = enumerate_program(model, structure.nesting + 1)
    model = chunk.program(model, structure)
    if guide_tr is not None:
        model = poutine.replay(model, trace=guide_tr)
    model_tr = poutine.trace(model).get_trace(xb, **kb)
    return guide_tr, model_tr


def _per_datum(lp: torch.Tensor, structure: Structure, K: int, n: int, name: str) -> torch.Tensor:
    """Reduce a site's batch-shaped log-density to ``[K, n]``."""
    total = structure.nesting + 1
    if lp.dim() > total:
        raise ModelError(
            f"site {name!r} has batch dimensions outside any plate (log_prob shape "
            f"{tuple(lp.shape)}): declare per-datum dimensions with .to_event(...)"
        )
    lp = lp.reshape((1,) * (total - lp.dim()) + tuple(lp.shape))
    data = total + structure.data_dim
    others = [d for d in range(1, total) if d != data]
    if others:
        lp = lp.sum(others, keepdim=True)
    return lp.reshape(lp.shape[0], lp.shape[data]).expand(K, n)


def _site_sum(trace, names: list[str], structure: Structure, K: int, n: int) -> torch.Tensor:
    total = 0.0
    for name in names:
        site = trace.nodes[name]
        lp = site["fn"].log_prob(site["value"])
        if lp.shape != site["fn"].batch_shape:  # the value broadcast the distribution
            raise ModelError(batch_dims_message(name, lp.shape))
        lp = _scaled(lp, site)
        total = total + _per_datum(lp, structure, K, n, name)
    return total


def _joint_sum(trace, names: list[str], structure: Structure, K: int, n: int,
               keep: tuple[str, ...] = (PARTICLE_PLATE, DATA_PLATE)) -> torch.Tensor:
    """:func:`_site_sum` of the model sites ``names``, the enumerated sites summed out."""
    if not structure.enumerated:
        return _site_sum(trace, names, structure, K, n)
    log_probs = {}
    for name in names + structure.enumerated:
        site = trace.nodes[name]
        lp = site["fn"].log_prob(site["value"])
        if name not in structure.enumerated and lp.shape != site["fn"].batch_shape:
            raise ModelError(batch_dims_message(name, lp.shape))
        log_probs[name] = _scaled(lp, site)
    total = contract_sites(trace, log_probs, structure.enumerated, keep)
    return _per_datum(total, structure, K, n, names[0])


def _scaled(lp: torch.Tensor, site: dict) -> torch.Tensor:
    mask = site.get("mask")
    if mask is not None and mask is not True:
        lp = lp * mask if isinstance(mask, torch.Tensor) else lp * float(mask)
    scale = site.get("scale", 1.0)
    return lp if (isinstance(scale, float) and scale == 1.0) else lp * scale


# ---------------------------------------------------------------------------- chunks


def _iw_chunk(program, structure, chunk: Chunk, K: int, pchunk: int) -> torch.Tensor:
    if K == 1:  # exact (no latent sites) or a single particle: nothing to average
        return chunk.kept(_log_weights(program, structure, chunk, 1)[0])
    parts = [_log_weights(program, structure, chunk, k) for k in _particle_sizes(K, pchunk)]
    log_w = torch.cat(parts, dim=0)
    return chunk.kept(torch.logsumexp(log_w, dim=0) - math.log(K))


def _particle_sizes(K: int, pchunk: int) -> list[int]:
    return [min(pchunk, K - start) for start in range(0, K, pchunk)]


def _log_weights(program, structure, chunk: Chunk, K: int) -> torch.Tensor:
    guide_tr, model_tr = _traces(program, structure, chunk, K)
    return _log_weights_of(model_tr, guide_tr, structure, K, chunk.width)


def _log_weights_of(model_tr, guide_tr, structure, K: int, n: int) -> torch.Tensor:
    """``log p(x_n, z_k) - log q(z_k | x_n)``: ``[K, n]``."""
    log_p = _joint_sum(model_tr, structure.observed + structure.latent, structure, K, n)
    if not structure.latent:
        return log_p
    return log_p - _site_sum(guide_tr, structure.latent + structure.auxiliary, structure, K, n)


def _elbo_chunk(program, structure, chunk: Chunk, K: int, pchunk: int, analytic_kl,
                differentiable) -> torch.Tensor:
    sizes = _particle_sizes(K, pchunk)
    if len(sizes) == 1:
        value = _elbo_values(program, structure, chunk, K, analytic_kl, differentiable).mean(0)
    else:  # particles in parts (a whole-data program): their sum over all parts, / K
        value = sum(_elbo_values(program, structure, chunk, k, analytic_kl,
                                 differentiable).sum(0) for k in sizes) / K
    return chunk.kept(value)


def _elbo_values(program, structure, chunk: Chunk, K: int, analytic_kl,
                 differentiable) -> torch.Tensor:
    """``log p(x_n, z_k) - log q(z_k | x_n)`` (KL terms closed-form where asked): ``[K, n]``."""
    n = chunk.width
    guide_tr, model_tr = _traces(program, structure, chunk, K)
    if structure.enumerated:  # the sum over enumerated values couples the sites
        value = _log_weights_of(model_tr, guide_tr, structure, K, n)
    else:
        value = _site_sum(model_tr, structure.observed, structure, K, n)
        for name in structure.latent:
            value = value - _kl_term(model_tr.nodes[name], guide_tr.nodes[name], structure,
                                     K, n, analytic_kl)
        if structure.auxiliary:
            value = value - _site_sum(guide_tr, structure.auxiliary, structure, K, n)
    if differentiable and not structure.reparameterized:
        value = _with_score_function(value, guide_tr, structure, K, n)
    return value


def _kl_term(p_site, q_site, structure, K, n, analytic: bool) -> torch.Tensor:
    """``log q(z) - log p(z)`` at the sample, or the closed-form KL where registered."""
    name = q_site["name"]
    if analytic:
        try:
            kl = kl_divergence(q_site["fn"], p_site["fn"])
        except NotImplementedError:
            kl = None
        if kl is not None and kl.shape == q_site["fn"].batch_shape:
            return _per_datum(_scaled(kl, p_site), structure, K, n, name)
    log_q = _scaled(q_site["fn"].log_prob(q_site["value"]), q_site)
    log_p = _scaled(p_site["fn"].log_prob(p_site["value"]), p_site)
    return _per_datum(log_q, structure, K, n, name) - _per_datum(log_p, structure, K, n, name)


def _with_score_function(value, guide_tr, structure, K, n) -> torch.Tensor:
    """Add ``log q(z) * stop_grad(elbo)`` minus its own value: the REINFORCE surrogate."""
    score = 0.0
    for name in structure.latent + structure.auxiliary:
        site = guide_tr.nodes[name]
        if not getattr(site["fn"], "has_rsample", False):
            score = score + _per_datum(site["fn"].log_prob(site["value"]), structure, K, n, name)
    surrogate = score * value.detach()
    return value + surrogate - surrogate.detach()


def _pointwise_chunk(program, structure, chunk: Chunk, samples) -> torch.Tensor:
    S, n = _num_draws(samples), chunk.width
    data = {k: _given_value(v, structure, k, chunk.rows) for k, v in samples.items()}
    model = poutine.condition(program.model, data=data)
    model = _vectorized(model, S, structure, chunk.x.device)
    if structure.enumerated:  # enumeration dims go left of the particle plate
        model = enumerate_program(model, structure.nesting + 1)
    model = chunk.program(model, structure)
    try:
        trace = poutine.trace(model).get_trace(chunk.x, **chunk.kwargs)
        if structure.enumerated:  # a wrong broadcast shows up as a misplaced dimension
            return chunk.kept(_joint_sum(trace, structure.observed, structure, S, n))
    except (RuntimeError, ValueError):
        # A program written for unbatched parameters (``X @ w`` with ``w: [D]``) cannot run
        # all draws at once: score the draws one at a time instead.
        return torch.cat([_pointwise_draw(program, structure, chunk, samples, s)
                          for s in range(S)])
    return chunk.kept(_site_sum(trace, structure.observed, structure, S, n))


def _pointwise_draw(program, structure, chunk: Chunk, samples, s: int) -> torch.Tensor:
    """``log p(x_n | theta_s)`` for one draw, the program run as written: ``[1, n]``."""
    data = {k: _draw_value(v[s], structure, k, chunk.rows) for k, v in samples.items()}
    model = poutine.condition(program.model, data=data)
    if structure.enumerated:
        model = enumerate_program(model, structure.nesting)
    model = chunk.program(model, structure)
    trace = poutine.trace(model).get_trace(chunk.x, **chunk.kwargs)
    value = _joint_sum(trace, structure.observed, structure, 1, chunk.width,
                       keep=(DATA_PLATE,))
    return chunk.kept(value)


def _draw_value(value: torch.Tensor, structure: Structure, name: str, rows):
    """One draw ``[*shape]``, restricted to the chunk's rows for a local site."""
    if name not in structure.given or not structure.given[name][1]:
        return value
    return take(value, structure.given[name][0] + structure.data_dim, rows)


def _given_value(value: torch.Tensor, structure: Structure, name: str, rows):
    """Reshape draws ``[S, *shape]`` to broadcast against the particle plate."""
    if name not in structure.given:
        return value
    batch_rank, local = structure.given[name]
    pad = structure.nesting - batch_rank
    value = value.reshape((value.shape[0],) + (1,) * pad + tuple(value.shape[1:]))
    if local:
        value = take(value, structure.nesting + 1 + structure.data_dim, rows)
    return value
