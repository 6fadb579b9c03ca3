"""Unit conversions and the bounds the benchmarks report (see BENCHMARKS.md)."""

from __future__ import annotations

import math
from typing import Any

import torch

from ppgen.conditions import take_rows
from ppgen.evaluate.estimators import elbo, log_likelihood
from ppgen.evaluate.program import resolve
from ppgen.evaluate.routing import evaluation_options, resolve_call
from ppgen.protocol import GenerativeModel, ModelKind

__all__ = ["bits_per_dim", "dequantization_bound", "nll_report", "headline_log_likelihood"]


def bits_per_dim(nll: torch.Tensor | float, num_dims: int) -> torch.Tensor | float:
    """Convert a negative log-likelihood in nats per datum to bits per dimension.

    Args:
        nll: nats per datum, ``[N]`` or a scalar.
        num_dims: dimensions of one datum (64 for 8x8 digits).
    """
    return nll / (num_dims * math.log(2.0))


def dequantization_bound(
    log_density: torch.Tensor, num_dims: int, num_levels: int
) -> torch.Tensor:
    """Upper bound on the discrete NLL from a continuous density of dequantised data.

    For ``y = (x + u) / K`` with ``u ~ U[0, 1)^D`` (uniform dequantisation),
    ``-log P(x) <= E_u[-log p(y)] + D log K`` (Theis et al., 2016). Pass ``log p(y)`` for one
    draw of ``u`` per datum (an unbiased estimate of the expectation) or averaged draws.

    Args:
        log_density: ``[N]`` continuous log-densities ``log p(y_n)``.
        num_dims: ``D``.
        num_levels: ``K`` (17 for digits).

    Returns:
        ``[N]`` upper bounds on ``-log P(x_n)`` in nats.
    """
    return -log_density + num_dims * math.log(num_levels)


def nll_report(
    model: Any,
    *args: Any,
    guide: Any = None,
    x: Any = None,
    num_particles: int | None = None,
    batch_size: int | None = None,
    num_dims: int | None = None,
    samples: bool = False,
    features: Any = None,
    sample_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """The benchmark numbers for ``x`` under ``model``, in nats per datum (lower is better).

    Called like :func:`~ppgen.evaluate.log_likelihood`: ``nll_report(model, x)`` or
    ``nll_report(model, guide, x)`` (``(model, x, guide)`` is read too). ``kwargs`` go to the
    programs (e.g. ``y=labels`` of a class-conditional model).

    Exact models: ``nll`` (exact). Latent models: ``elbo`` (the negated ELBO, one particle per
    datum, closed-form KL where available), ``iwae`` (the negated importance-weighted estimate
    with ``num_particles``) and ``nll`` = ``iwae``, the headline number. With one particle the
    importance-weighted estimate is the ELBO with a Monte Carlo KL, so only the closed-form
    bound runs and ``nll`` = ``elbo`` (no ``iwae``); a model that declares its
    :meth:`~ppgen.GenerativeModel.bound_decomposition` (diffusion models: prior, the sum of the
    steps, decoder) has it reported as ``bound_<term>`` from that same single pass.
    ``num_particles`` and ``batch_size`` default to the model's declared
    ``evaluation_defaults``. Energy and implicit
    models go to the estimator registered for their kind (:mod:`ppgen.evaluate.routing`): its
    own report (sample metrics, an AIS estimate with its interval) or, for an energy model, this
    table built on its log-likelihood estimate.

    Sample metrics for every family: an implicit model's report is them; with
    ``samples=True`` any other zoo model draws ``len(x)`` samples (given each row's
    conditions) and :func:`ppgen.metrics.model_sample_metrics` is added next to the likelihood
    (``fd``, ``fd_floor``, ``kid``, ``precision``, ``recall``, ``density``, ``coverage``,
    ``classes_hit``, ... in the ``features`` space). Off by default here (likelihood scripts and
    anomaly scores pay no sampling); ``ppgen evaluate`` turns it on. A model that declares
    ``sampler`` and ``steps`` options (diffusion) draws with DDIM-50 unless ``sample_options``
    says otherwise.

    Args:
        samples: add sample metrics to a non-implicit model's report.
        features: their feature space (:func:`ppgen.metrics.feature_space`: ``"digits"``,
            ``"raw"``/``None``, a mode toy's name; :func:`ppgen.metrics.features_for` of the
            data's ``DataInfo`` names it), for implicit models too.
        sample_options: sampler options of the draws (default: DDIM-50 where declared).

    Returns:
        A JSON-able dict: ``nll``, ``n``, ``bits_per_dim`` and, for latent models, ``elbo``,
        ``num_particles``, and ``iwae`` (more than one particle) or the ``bound_<term>``
        means of a declared decomposition (one particle).
    """
    guide, x, options, estimator = resolve_call("ppgen.evaluate.nll_report", "report", model,
                                                args, guide, x, num_particles, batch_size)
    sampling = {k: v for k, v in (("features", features), ("sample_options", sample_options))
                if v is not None}
    if estimator is not None:
        return estimator(model, x, **options, **sampling, **kwargs)
    num_particles, batch_size = options["num_particles"], options["batch_size"]
    if _is_latent(model, guide) and num_particles == 1:
        report = _bound_report(model, guide, x, batch_size, kwargs)
        nll = report["nll"]
    else:
        ll = log_likelihood(model, guide, x, num_particles=num_particles,
                            batch_size=batch_size, **kwargs)
        nll = float(-ll.mean())
        report = {"nll": nll, "n": int(ll.shape[0])}
        if _is_latent(model, guide):
            e = elbo(model, guide, x, num_particles=1, batch_size=batch_size,
                     analytic_kl=True, **kwargs)
            report.update(elbo=float(-e.mean()), iwae=nll, num_particles=num_particles)
    dims = num_dims or _num_dims(model, x)
    if dims:
        report["bits_per_dim"] = float(bits_per_dim(nll, dims))
    if samples:
        from ppgen.metrics.report import model_sample_metrics

        report.update(model_sample_metrics(model, x, **sampling, **kwargs))
    return report


def headline_log_likelihood(
    model: Any,
    x: Any,
    num_particles: int | None = None,
    batch_size: int | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    """The per-datum number behind :func:`nll_report`'s headline, ``[N]`` nats (higher is
    better): what anomaly scores rank by.

    Exact models: ``log p(x)``. Latent models: the importance-weighted estimate with
    ``num_particles`` (default: the model's declared ``evaluation_defaults``) when that is more
    than one; with one particle the ELBO with closed-form KL (the same bound as a one-particle
    importance estimate, with less variance): a diffusion model's variational bound.
    Energy and implicit models go where :func:`~ppgen.evaluate.log_likelihood` sends them.

    Example:
        >>> from ppgen.models import DDPM
        >>> model = DDPM(4, num_steps=10, num_levels=3, denoiser={"width": 8, "blocks": 1})
        >>> headline_log_likelihood(model, torch.zeros(2, 4, dtype=torch.long)).shape
        torch.Size([2])
    """
    options = evaluation_options(model, num_particles, batch_size)
    if _is_latent(model, None) and options["num_particles"] == 1:
        return elbo(model, None, x, num_particles=1, batch_size=options["batch_size"],
                    analytic_kl=True, **kwargs)
    return log_likelihood(model, x, **options, **kwargs)


def _bound_report(model: Any, guide: Any, x: Any, batch_size: int | None,
                  kwargs: dict[str, Any]) -> dict[str, Any]:
    """The one-particle report of a latent model: its negated ELBO (closed-form KL), from the
    model's declared decomposition when it has one (chunks of ``batch_size`` rows)."""
    terms = _decomposition(model, guide, x, batch_size, kwargs)
    if terms is None:
        bound = -elbo(model, guide, x, num_particles=1, batch_size=batch_size,
                      analytic_kl=True, **kwargs)
        extra = {}
    else:
        bound = sum(terms.values())
        extra = {f"bound_{k}": float(v.mean()) for k, v in terms.items()}
    value = float(bound.mean())
    return {"nll": value, "n": int(bound.shape[0]), "elbo": value, "num_particles": 1, **extra}


def _decomposition(model: Any, guide: Any, x: Any, batch_size: int | None,
                   kwargs: dict[str, Any]) -> dict[str, torch.Tensor] | None:
    """``{term: [N]}`` of a zoo model's declared :meth:`~ppgen.GenerativeModel.
    bound_decomposition` (data and conditions checked once, then chunked), else ``None``."""
    if guide is not None or not isinstance(model, GenerativeModel):
        return None
    x = model.check_data(x)
    conditions = model.conditions.check(kwargs, x.shape[0], device=x.device)
    rows = batch_size or x.shape[0]
    parts = []
    for start in range(0, x.shape[0], rows):
        part = slice(start, start + rows)
        terms = model.bound_decomposition(x[part], **take_rows(conditions, part))
        if terms is None:
            return None
        parts.append(terms)
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def _is_latent(model: Any, guide: Any) -> bool:
    """A latent zoo model, or a user's program scored with a guide (an energy model's routed
    estimate is reported like an exact number)."""
    if isinstance(model, GenerativeModel):
        return model.kind == ModelKind.LATENT
    return resolve(model, guide).guide is not None


def _num_dims(model: Any, x: Any) -> int | None:
    if isinstance(model, GenerativeModel):
        return math.prod(model.event_shape)
    shape = getattr(x, "shape", None)
    return math.prod(shape[1:]) if shape is not None and len(shape) > 1 else None
