"""Resolve what the evaluation layer is asked to score into a pair of Pyro programs.

A zoo :class:`~ppgen.protocol.GenerativeModel` and a user's plain ``model(x)`` function (with or
without a ``guide(x)``) become the same thing here: a :class:`Program` with the model callable,
the guide callable (or ``None``), and the structure read off one trace — the plate nesting, the
``"data"`` plate's dimension, and the observed, latent and enumerated sites.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
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

__all__ = ["Program", "Structure", "resolve", "inspect_structure", "DATA_PLATE"]

#: The plate every model program must put its data in.
DATA_PLATE = "data"


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

    With ``given`` values the trace runs on all of ``x`` (local given sites have ``N`` rows).

    Args:
        program: the model/guide pair.
        x: data ``[N, ...]`` (only the first row is used).
        kwargs: further keyword arguments of the programs (tensors with N rows are sliced).
        given: values of sites supplied from outside (one posterior draw each); they are
            neither observed nor latent.

    Raises:
        ModelError: no ``"data"`` plate, no observed site, latent sites without a guide, an
            observed or enumerated site outside the data plate, or a program that fails to
            run.
        ImplicitModelError: a site whose distribution has no density.
    """
    given = given or {}
    # Given draws of local sites carry all N rows, so their trace needs all of x.
    rows = x.shape[0] if given else 1
    x1 = x[:rows]
    kw1 = take_rows(kwargs, slice(0, rows), x.shape[0])
    if given:
        program = Program(poutine.condition(program.model, data=given), program.guide, program)
    guide_tr, model_tr = _trace_once(program, x1, kw1)
    nesting = _plate_nesting([guide_tr, model_tr] if guide_tr else [model_tr])
    observed, latent = _split_sites(model_tr, set(given))
    enumerated = enumerated_sites(model_tr, guide_tr, DATA_PLATE)
    latent = [n for n in latent if n not in enumerated]
    _check_sites(program, model_tr, guide_tr, observed, latent)
    _check_batch_ranks(model_tr, observed + latent + enumerated, nesting)
    data_dim = _data_dim(model_tr, observed)
    reparam = all(getattr(guide_tr.nodes[n]["fn"], "has_rsample", False) for n in latent)
    supports = {n: model_tr.nodes[n]["fn"].support for n in observed}
    global_latent = [n for n in latent if not _in_data_plate(model_tr.nodes[n])]
    given_info = {n: _given_info(model_tr.nodes[n]) for n in given if n in model_tr.nodes}
    return Structure(
        nesting, data_dim, observed, latent, reparam, supports, global_latent, given_info,
        enumerated,
    )


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
                "dimensions with .to_event(...) and keep the 'data' plate leftmost)"
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
                "each datum (declare per-datum dimensions with .to_event(...))"
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
