"""Resolve what the evaluation layer is asked to score into a pair of Pyro programs.

A zoo :class:`~ppgen.protocol.GenerativeModel` and a user's plain ``model(x)`` function (with or
without a ``guide(x)``) become the same thing here: a :class:`Program` with the model callable,
the guide callable (or ``None``), and the structure read off one trace — the plate nesting, the
``"data"`` plate's dimension, the observed, latent and enumerated sites, and how the program
takes its data (:class:`Layout`: any rows, all rows, or a subsample by its plate's indices).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.poutine.subsample_messenger import _Subsample

from ppgen.conditions import take_rows
from ppgen.errors import DataError, ImplicitModelError, ModelError
from ppgen.evaluate.enumeration import enumerated_sites
from ppgen.evaluate.routing import ROUTED_KINDS, SAMPLE_METRICS_HINT, refusal
from ppgen.protocol import GenerativeModel, ModelKind

__all__ = ["Program", "Structure", "Layout", "resolve", "inspect_structure", "DATA_PLATE"]

#: The plate every model program must put its data in.
DATA_PLATE = "data"


class Layout(str, Enum):
    """How a program pair takes its data, which decides what the estimators chunk.

    ``ROWS``: it scores whatever rows it is given (an amortised guide, a zoo model): the data
    are cut into chunks. ``WHOLE``: it closes over all ``N`` rows (per-datum parameters
    ``pyro.param("loc", torch.zeros(N, k))``, covariates of ``N`` rows): it runs on all the
    data, and the particles (or posterior draws) are chunked instead. ``SUBSAMPLE``: its
    ``"data"`` plate subsamples (``pyro.plate("data", N, subsample_size=B) as idx``, Pyro's
    convention, data and parameters indexed by ``idx``): it gets all the data, and ppgen
    supplies the plate's indices, ``B`` at a time.
    """

    ROWS = "rows"
    WHOLE = "whole"
    SUBSAMPLE = "subsample"


@dataclass
class Program:
    """A model program and its guide, plus what is known about the model object."""

    model: Callable[..., Any]
    guide: Callable[..., Any] | None
    source: Any  # the object the user passed (zoo model or function)

    @property
    def zoo(self) -> GenerativeModel | None:
        """The zoo model, when the user passed one."""
        return self.source if isinstance(self.source, GenerativeModel) else None


@dataclass
class Structure:
    """What one trace of the program pair tells about its sites and plates.

    Attributes:
        nesting: number of vectorised plate dimensions (the particle plate goes left of them).
        data_dim: the (negative) dimension of the ``"data"`` plate.
        observed: names of observed sample sites.
        latent: names of latent (unobserved) sample sites the guide samples (or that are
            given), enumerated sites excluded.
        reparameterized: whether every latent site has ``rsample``.
        supports: support constraint of each observed site (for up-front data checks).
        global_latent: latent sites outside the ``"data"`` plate.
        given: sites whose values are supplied (posterior samples), with their batch rank and
            whether they sit in the data plate.
        enumerated: latent sites summed out exactly (marked ``infer={"enumerate":
            "parallel"}``, e.g. by ``config_enumerate``, and not sampled by the guide); all
            in the ``"data"`` plate (see :mod:`ppgen.evaluate.enumeration`).
        auxiliary: guide-only sample sites (an autoguide's ``z_unconstrained``): part of
            ``log q``, absent from the model.
        conditioned: observed sites outside the ``"data"`` plate (globals fixed by
            ``pyro.condition``): values the data are conditioned on, in no datum's score.
        layout: how the program takes its data (:class:`Layout`).
        subsample_size: ``B``, the ``"data"`` plate's subsample size (``SUBSAMPLE`` only).
    """

    nesting: int
    data_dim: int
    observed: list[str]
    latent: list[str]
    reparameterized: bool
    supports: dict[str, Any]
    global_latent: list[str]
    given: dict[str, tuple[int, bool]]
    enumerated: list[str] = field(default_factory=list)
    auxiliary: list[str] = field(default_factory=list)
    conditioned: list[str] = field(default_factory=list)
    layout: Layout = Layout.ROWS
    subsample_size: int | None = None


def resolve(model: Any, guide: Any = None) -> Program:
    """Turn a zoo model or a plain function (and an optional guide) into a :class:`Program`.

    Raises:
        ImplicitModelError: the model is implicit (it has no density): the entry points route
            it to sample-based metrics instead (:mod:`ppgen.evaluate.routing`).
        ModelError: the model is not callable, or is energy-based (unnormalised density: the
            entry points route it to a registered AIS estimator instead).
    """
    if isinstance(model, GenerativeModel):
        if model.kind in ROUTED_KINDS:
            raise refusal(model)
        if guide is None and model.kind == ModelKind.LATENT:
            guide = model.guide
        return Program(model.model, guide, model)
    if not callable(model):
        raise ModelError(f"model must be a GenerativeModel or a callable, not {type(model)}")
    if isinstance(guide, GenerativeModel):
        guide = guide.guide
    return Program(model, guide, model)


def inspect_structure(
    program: Program, x: torch.Tensor, kwargs: dict[str, Any], given: dict[str, Any] | None = None
) -> Structure:
    """Trace the program pair once on the first row of ``x`` and read off its structure.

    A program that cannot run on one row alone (a guide with per-datum parameters, covariates
    closed over, a subsampling ``"data"`` plate) is traced again on all of ``x``, and its
    :class:`Layout` says so. With ``given`` values the trace runs on all of ``x`` (local given
    sites have ``N`` rows), and the layout is ``WHOLE`` unless the plate subsamples; whether
    rows can be cut all the same is for :func:`runs_on_rows` to say, when it matters.

    Args:
        program: the model/guide pair.
        x: data ``[N, ...]``.
        kwargs: further keyword arguments of the programs (tensors with N rows are sliced).
        given: values of sites supplied from outside (one posterior draw each); they are
            neither observed nor latent.

    Raises:
        ModelError: no ``"data"`` plate, no observed site, latent sites without a guide, an
            enumerated site outside the data plate, a ``"data"`` plate of another size than
            the data, or a program that fails to run.
        ImplicitModelError: a site whose distribution has no density.
    """
    given = given or {}
    (guide_tr, model_tr), layout, subsample_size, retrace = _trace_layout(
        program, x, kwargs, given)
    nesting = _plate_nesting([guide_tr, model_tr] if guide_tr else [model_tr])
    observed, latent = _split_sites(model_tr, set(given))
    observed, conditioned = _split_conditioned(model_tr, observed, [x, *kwargs.values()],
                                               retrace)
    enumerated = enumerated_sites(model_tr, guide_tr, DATA_PLATE)
    latent = [n for n in latent if n not in enumerated]
    auxiliary = _guide_only_sites(guide_tr, model_tr)
    _check_sites(program, model_tr, guide_tr, observed, latent)
    _check_batch_ranks(model_tr, observed + latent + enumerated, nesting)
    data_dim = _data_dim(model_tr, observed)
    reparam = all(getattr(guide_tr.nodes[n]["fn"], "has_rsample", False)
                  for n in latent + auxiliary)
    supports = {n: model_tr.nodes[n]["fn"].support for n in observed}
    global_latent = [n for n in latent if not _in_data_plate(model_tr.nodes[n])]
    given_info = {n: _given_info(model_tr.nodes[n]) for n in given if n in model_tr.nodes}
    return Structure(
        nesting, data_dim, observed, latent, reparam, supports, global_latent, given_info,
        enumerated, auxiliary, conditioned, layout, subsample_size,
    )


def _trace_layout(program: Program, x: torch.Tensor, kwargs: dict[str, Any],
                  given: dict[str, Any]):
    """The traces to read the structure off, and the program's :class:`Layout`.

    One row is enough when the program runs on it with a ``"data"`` plate of that one row;
    otherwise (it fails, or its plate keeps another size) the program runs on all rows. The
    last item traces the program again on the same inputs.
    """
    n = x.shape[0]
    if not given:
        kw1 = take_rows(kwargs, slice(0, 1), n)
        try:
            traces = _trace_once(program, x[:1], kw1)
            if n == 1 or _plate_sizes(traces) <= {(1, 1)}:
                return traces, Layout.ROWS, None, lambda: _trace_once(program, x[:1], kw1)
        except ImplicitModelError:
            raise
        except ModelError:
            if n == 1:
                raise
    program = _conditioned(program, given)
    traces = _trace_once(program, x, kwargs)
    return (traces, *_whole_layout(traces, n), lambda: _trace_once(program, x, kwargs))


def _conditioned(program: Program, given: dict[str, Any]) -> Program:
    if not given:
        return program
    return Program(poutine.condition(program.model, data=given), program.guide, program)


def _plate_sizes(traces) -> set[tuple[int, int]]:
    """``{(size, full size)}`` of the ``"data"`` plate over every sample site of the traces."""
    return {
        (f.size, getattr(f, "full_size", None) or f.size)
        for tr in traces if tr is not None
        for site in tr.nodes.values() if site["type"] == "sample"
        for f in site["cond_indep_stack"] if f.name == DATA_PLATE
    }


def _whole_layout(traces, n: int) -> tuple[Layout, int | None]:
    """``WHOLE`` or ``SUBSAMPLE`` (with its subsample size) for a program run on all rows."""
    sizes = _plate_sizes(traces)
    full = sorted({f for _, f in sizes} - {n})
    if full:
        raise ModelError(
            f"the program's 'data' plate has size {full[0]} but the data have {n} rows: size "
            "it by the data (pyro.plate('data', x.shape[0])), or pass the rows its "
            "per-datum parameters were made for"
        )
    subs = sorted({s for s, _ in sizes})
    if len(subs) > 1:
        raise ModelError(f"the model and guide subsample the 'data' plate by different sizes "
                         f"{subs}: give both the same subsample_size")
    if subs and subs[0] < n:
        return Layout.SUBSAMPLE, subs[0]
    return Layout.WHOLE, None


def runs_on_rows(program: Program, x: torch.Tensor, kwargs: dict[str, Any],
                 given: dict[str, Any], structure: Structure) -> bool:
    """Whether the program, given one draw of each site, also runs on the first row alone
    (with the local draws cut to it): then its rows can be scored in chunks."""
    one = {k: _first_row(v, structure, k) for k, v in given.items()}
    try:
        traces = _trace_once(_conditioned(program, one), x[:1],
                             take_rows(kwargs, slice(0, 1), x.shape[0]))
    except ModelError:
        return False
    return _plate_sizes(traces) <= {(1, 1)}


def _first_row(value: Any, structure: Structure, name: str) -> Any:
    info = structure.given.get(name)
    if info is None or not info[1]:
        return value
    return value.narrow(info[0] + structure.data_dim, 0, 1)


def _split_conditioned(trace: poutine.Trace, observed: list[str], inputs: list[Any],
                       retrace: Callable[[], Any]):
    """Observed sites in the ``"data"`` plate (the data), and those outside it: globals fixed
    by ``pyro.condition`` (or ``obs=`` a constant), which the data are conditioned on.

    A fixed value is the very same tensor in every run of the program, while one computed
    from the data (``obs=x.sum()``) is made afresh: one more trace on the same inputs tells
    them apart, only for programs with observed sites outside the plate. With none in the
    plate, or an outside one observing the data themselves, all stay observed (and the site
    outside the plate is reported).
    """
    inside = [n for n in observed if _in_data_plate(trace.nodes[n])]
    outside = [n for n in observed if n not in inside]
    if not inside or not outside:
        return observed, []
    values = [trace.nodes[n]["value"] for n in outside]
    if any(_is_input(v, inputs) for v in values):
        return observed, []
    again = retrace()[1]
    if all(again.nodes[n]["value"] is v for n, v in zip(outside, values)):
        return inside, outside
    return observed, []


def _is_input(value: Any, inputs: list[Any]) -> bool:
    """Whether ``value`` is (a row slice of) one of the program's input tensors."""
    if not isinstance(value, torch.Tensor) or value.numel() == 0:
        return False
    return any(isinstance(t, torch.Tensor) and t.numel() and t.data_ptr() == value.data_ptr()
               for t in inputs)


def _guide_only_sites(guide_tr: poutine.Trace | None, model_tr: poutine.Trace) -> list[str]:
    """Latent guide sites the model does not have (an autoguide's auxiliary sites)."""
    if guide_tr is None:
        return []
    return [
        name for name, site in guide_tr.nodes.items()
        if site["type"] == "sample" and not site["is_observed"]
        and name not in model_tr.nodes and not isinstance(site["fn"], _Subsample)
    ]


def _in_data_plate(site: dict) -> bool:
    return any(f.name == DATA_PLATE for f in site["cond_indep_stack"])


def _given_info(site: dict) -> tuple[int, bool]:
    batch_rank = site["value"].dim() - len(site["fn"].event_shape)
    return batch_rank, _in_data_plate(site)


def _trace_once(program: Program, x1: torch.Tensor, kw1: dict[str, Any]):
    try:
        with torch.no_grad(), poutine.block():
            guide_tr = None
            if program.guide is not None:
                guide_tr = poutine.trace(program.guide).get_trace(x1, **kw1)
            model_fn = poutine.replay(program.model, trace=guide_tr) if guide_tr else program.model
            model_tr = poutine.trace(model_fn).get_trace(x1, **kw1)
    except NotImplementedError as err:
        msg = f"a sample site has no density ({err}); {SAMPLE_METRICS_HINT}"
        raise ImplicitModelError(msg) from err
    except (ValueError, RuntimeError, TypeError, IndexError) as err:
        hint = ""
        if "Shape mismatch inside plate" in str(err):
            hint = (
                " (a site's batch shape disagrees with its plates: declare per-datum "
                "dimensions with .to_event(...), keep the 'data' plate leftmost, and give "
                "per-datum parameters one row per datum)"
            )
        raise ModelError(
            f"running the model program on data of shape {tuple(x1.shape)} failed{hint}: {err}"
        ) from err
    return guide_tr, model_tr


def _plate_nesting(traces: list[poutine.Trace]) -> int:
    dims = [
        -frame.dim
        for tr in traces
        for site in tr.nodes.values()
        if site["type"] == "sample"
        for frame in site["cond_indep_stack"]
        if frame.vectorized
    ]
    return max(dims, default=0)


def _split_sites(trace: poutine.Trace, given: set[str]) -> tuple[list[str], list[str]]:
    observed, latent = [], []
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or name in given or isinstance(site["fn"], _Subsample):
            continue
        if site["is_observed"]:
            observed.append(name)
        elif not site["infer"].get("is_auxiliary"):
            latent.append(name)
    return observed, latent


def _check_sites(program, model_tr, guide_tr, observed, latent) -> None:
    from ppgen.distributions.implicit import ImplicitDistribution

    for name in observed + latent:
        if isinstance(_base(model_tr.nodes[name]["fn"]), ImplicitDistribution):
            raise ImplicitModelError(f"site {name!r} is implicit; {SAMPLE_METRICS_HINT}")
    if not observed:
        raise ModelError(
            "the model program has no observed sample site: write "
            "pyro.sample('x', dist, obs=x) inside pyro.plate('data', x.shape[0])"
        )
    if latent and guide_tr is None:
        raise ModelError(
            f"the model has latent sites {latent} but no guide was given: pass guide=... "
            "(a program q(z | x) sampling the same sites), or use a zoo model with a guide"
        )
    if guide_tr is not None:
        missing = [n for n in latent if n not in guide_tr.nodes]
        if missing:
            raise ModelError(f"the guide does not sample the latent sites {missing}")


def _check_batch_ranks(trace: poutine.Trace, names: list[str], nesting: int) -> None:
    for name in names:
        batch_shape = trace.nodes[name]["fn"].batch_shape
        if len(batch_shape) > nesting:
            raise ModelError(batch_dims_message(name, batch_shape))


def batch_dims_message(name: str, shape: Any) -> str:
    """The error for a site with batch dimensions that no plate declares."""
    return (
        f"site {name!r} has batch dimensions outside any plate (batch shape "
        f"{tuple(shape)}): declare per-datum dimensions with .to_event(...) and put every "
        "other batch dimension in a plate"
    )


def _base(fn: Any) -> Any:
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return fn


def _data_dim(trace: poutine.Trace, observed: list[str]) -> int:
    dims = set()
    for name in observed:
        frames = [f for f in trace.nodes[name]["cond_indep_stack"] if f.name == DATA_PLATE]
        if not frames:
            raise ModelError(
                f"observed site {name!r} is not inside a plate named 'data': wrap the "
                "observation in `with pyro.plate('data', x.shape[0]):` so ppgen can score "
                "each datum (declare per-datum dimensions with .to_event(...)); outside it "
                "only fixed values go (pyro.condition(model, data={...}) on a global)"
            )
        dims.add(frames[0].dim)
    if len(dims) != 1:
        raise ModelError(f"observed sites use the 'data' plate at different dims: {dims}")
    return dims.pop()


def check_supports(structure: Structure, x: torch.Tensor, name: str = "data") -> bool:
    """Check ``x`` against the observed sites' supports up front (one host sync).

    Returns ``True`` when the check ran, ``False`` when a support could not be checked on the
    whole data (parameter-dependent supports); the caller then keeps Pyro's validation on.

    Raises:
        DataError: some values of ``x`` lie outside the support of the likelihood.
    """
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise DataError(f"{name} contains NaN or infinite values: drop or impute them")
    if len(structure.supports) != 1:
        return False  # several observed sites: each sees its own part of x
    for site, support in structure.supports.items():
        try:
            ok = support.check(x)
        except (RuntimeError, ValueError, TypeError):
            return False
        if not isinstance(ok, torch.Tensor) or ok.dim() > x.dim():
            return False
        if not bool(ok.all()):
            raise DataError(
                f"{name} has values outside the support {support} of site {site!r}: check the "
                "representation (e.g. categorical levels 0..K-1, binary 0/1) or the likelihood"
            )
    return True


def validation_context(checked: bool):
    """Pyro/torch argument validation off when the data were checked up front."""
    return pyro.validation_enabled(not checked)
