"""Sort ``posterior``'s extra keyword arguments: Pyro's option names, or the program's keywords.

Pyro users write ``MCMC(NUTS(model, target_accept_prob=0.9), num_samples=500,
warmup_steps=500)`` and ``mcmc.run(*args, **kwargs)``. :func:`ppgen.analysis.posterior` takes
the same names as keywords: ``MCMC``'s (``warmup_steps`` is ppgen's ``num_warmup``), the
kernel's (``NUTS``/``HMC`` constructor arguments, collected into ``kernel_options``) and, for
``method="svi"``, the VI fit's (``num_steps``, ``lr``, ``num_particles``). The program's own
keywords go in ``model_kwargs={...}``; a keyword the program declares by name is still passed
to it (as before), so an option meant for ppgen or Pyro never reaches the program, and a name
that is both is refused as ambiguous. The names are read off the signatures of the installed
Pyro classes, not listed by hand.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyro.infer.mcmc import MCMC

from ppgen.analysis.mcmc import KERNELS
from ppgen.analysis.vi import fit_guide
from ppgen.errors import ModelError

__all__ = ["Options", "sort_options", "DEFAULT_WARMUP"]

#: ``num_warmup`` when neither it nor ``warmup_steps`` is given.
DEFAULT_WARMUP = 1000

#: ``MCMC`` arguments with another name in ppgen.
_MCMC_ALIASES = {"warmup_steps": "num_warmup"}
#: ``MCMC`` arguments ``posterior`` reads itself (``disable_progbar``: its ``progress``).
_MCMC_IGNORED = {"disable_progbar"}
#: What to use instead of the ``MCMC`` arguments ppgen has no counterpart of.
_MCMC_INSTEAD = {
    "mp_context": "chain_method='parallel' or 'sequential'",
    "initial_params": "kernel_options={'init_strategy': ...} (e.g. init_to_value)",
}
#: ``posterior``'s own parameters that Pyro's ``MCMC`` also has, under the same name.
_SHARED = {"num_samples", "num_chains"}


@dataclass
class Options:
    """``posterior``'s options once the extra keyword arguments are sorted.

    Attributes:
        num_warmup: warm-up steps per chain.
        kernel_options: ``NUTS``/``HMC`` constructor arguments.
        svi_options: arguments of the VI fit.
        model_kwargs: keyword arguments of the program.
    """

    num_warmup: int
    kernel_options: dict[str, Any] = field(default_factory=dict)
    svi_options: dict[str, Any] = field(default_factory=dict)
    model_kwargs: dict[str, Any] = field(default_factory=dict)


def sort_options(model: Callable[..., Any], method: str, extra: dict[str, Any], *,
                 num_warmup: int | None, kernel_options: dict[str, Any] | None,
                 svi_options: dict[str, Any] | None,
                 model_kwargs: dict[str, Any] | None) -> Options:
    """Sort ``extra`` (``posterior``'s ``**kwargs``) into options and program keywords.

    Raises:
        ModelError: a name that is neither an option nor a keyword the program takes, one of
            Pyro's options that ppgen has no use for, an option for another method, a value
            given twice, or a program keyword named like an option (ambiguous).
    """
    out = Options(num_warmup, dict(kernel_options or {}), dict(svi_options or {}),
                  dict(model_kwargs or {}))
    named, open_ended = _program_keywords(model)
    for name, value in extra.items():
        if name in named and _is_option(name, method):
            raise ModelError(
                f"{name!r} is both an option of posterior() and a keyword of the program: "
                f"pass it to the program as model_kwargs={{{name!r}: ...}}, or to the sampler "
                f"as kernel_options / svi_options"
            )
        _sort_one(out, method, name, value, True if open_ended else named)
    if out.num_warmup is None:
        out.num_warmup = DEFAULT_WARMUP
    return out


def _sort_one(out: Options, method: str, name: str, value: Any,
              to_program: bool | set[str]) -> None:
    """File one keyword: ``to_program`` is what the program takes (``True``: any)."""
    if name in _MCMC_ALIASES:
        _set_warmup(out, name, value)
    elif name in _MCMC_IGNORED:
        pass
    elif method in KERNELS and name in _kernel_names(method):
        _put(out.kernel_options, "kernel_options", name, value)
    elif method == "svi" and name in _svi_names():
        _put(out.svi_options, "svi_options", name, value)
    elif _is_option(name, None):
        raise ModelError(_not_here(name, method))
    elif to_program is True or name in to_program:
        _put(out.model_kwargs, "model_kwargs", name, value)
    else:
        raise ModelError(_unknown(name, method))


def _set_warmup(out: Options, name: str, value: Any) -> None:
    if out.num_warmup is not None and out.num_warmup != value:
        raise ModelError(f"warmup_steps={value} and num_warmup={out.num_warmup} disagree: "
                         "give one of them (warmup_steps is Pyro's name for num_warmup)")
    out.num_warmup = value


def _put(target: dict[str, Any], what: str, name: str, value: Any) -> None:
    if name in target and target[name] is not value:
        raise ModelError(f"{name!r} is given both as a keyword argument and in {what}: "
                         "give it once")
    target[name] = value


def _is_option(name: str, method: str | None) -> bool:
    """Whether ``name`` is one of Pyro's (or the VI fit's) option names, for ``method`` or,
    with ``None``, for any method."""
    methods = list(KERNELS) + ["svi"] if method is None else [method]
    names = set(_MCMC_ALIASES) | _MCMC_IGNORED | set(_mcmc_names()) | _SHARED
    for m in methods:
        names |= _kernel_names(m) if m in KERNELS else _svi_names()
    return name in names


def _not_here(name: str, method: str) -> str:
    if name in _MCMC_INSTEAD:
        return (f"Pyro's MCMC option {name!r} has no counterpart in ppgen.analysis.posterior: "
                f"use {_MCMC_INSTEAD[name]}")
    if name in _mcmc_names():
        return f"Pyro's MCMC option {name!r} is not supported by ppgen.analysis.posterior"
    return (f"{name!r} is not an option of method={method!r} (it belongs to another method: "
            "the NUTS/HMC kernels or the VI fit)")


def _unknown(name: str, method: str) -> str:
    known = sorted(set(_MCMC_ALIASES) | (_kernel_names(method) if method in KERNELS
                                         else _svi_names()))
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (f"unknown keyword argument {name!r}{hint}: it is no option of posterior() or of "
            "Pyro's MCMC, and the program does not take it; pass the program's keyword "
            "arguments as model_kwargs={...}")


@functools.cache
def _mcmc_names() -> frozenset[str]:
    return frozenset(_parameters(MCMC.__init__)) - {"self", "kernel"}


@functools.cache
def _kernel_names(method: str) -> frozenset[str]:
    return frozenset(_parameters(KERNELS[method].__init__)) - {"self", "model", "potential_fn"}


@functools.cache
def _svi_names() -> frozenset[str]:
    own = {"model", "args", "kwargs", "guide", "num_samples", "num_chains", "seed", "progress"}
    return frozenset(_parameters(fit_guide)) - own


def _parameters(fn: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(fn).parameters)


def _program_keywords(model: Callable[..., Any]) -> tuple[set[str], bool]:
    """The keywords the program declares by name, and whether it takes any (``**kwargs``).

    Pyro's handlers (``pyro.condition(model, ...)``, ``config_enumerate``) wrap the program in
    a partial of ``(*args, **kwargs)``; the signature read is the wrapped program's.
    """
    while isinstance(model, functools.partial) and model.args and \
            getattr(model.func, "__name__", "") == "_context_wrap":
        model = model.args[-1]
    try:
        params = inspect.signature(model).parameters.values()
    except (TypeError, ValueError):  # no signature to read: let the program decide
        return set(), True
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    named = {p.name for p in params if p.kind in kinds}
    return named, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
