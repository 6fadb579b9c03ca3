"""The arguments of the evaluation layer's entry points: their order, and the counts.

Pyro users write ``(model, guide, ...)`` (``SVI(model, guide, ...)``, ``Trace_ELBO().loss(model,
guide, ...)``), so the documented order of :func:`~ppgen.evaluate.log_likelihood` and
:func:`~ppgen.evaluate.elbo` is ``(model, guide, x)``, and ``(model, x)`` for a model without
a guide (or a zoo model with its own). Older code wrote ``log_likelihood(model, x, guide)``,
and a swapped ``elbo(model, x, guide)`` is an easy slip; both stay unambiguous, because the
data are an array (a tensor, a NumPy array, nested lists) and a guide is a callable or
``None``. :func:`guide_and_data` reads the two that way, whichever order they come in, and
refuses a call where they cannot be told apart with one line naming the order.

:func:`check_counts` is the one check of the particle and chunk counts: a positive integer of
any integer type (``int``, NumPy's, a 0-d integer tensor), never a ``bool``, a float or text.

Example:
    >>> guide_and_data("ppgen.elbo", (print, [1.0]))
    (<built-in function print>, [1.0])
    >>> guide_and_data("ppgen.elbo", ([1.0], print))
    (<built-in function print>, [1.0])
    >>> check_counts(num_particles=10, batch_size=None)
    (10, None)
"""

from __future__ import annotations

import operator
from typing import Any

from ppgen.errors import ArgumentError

__all__ = ["guide_and_data", "check_counts"]


def guide_and_data(entry: str, args: tuple, guide: Any = None, x: Any = None
                   ) -> tuple[Any, Any]:
    """``(guide, x)`` of a call ``entry(model, *args, guide=guide, x=x)``.

    Args:
        entry: the entry point's name, for messages (``"ppgen.log_likelihood"``).
        args: the positional arguments after the model: ``(guide, x)``, ``(x, guide)`` or
            ``(x,)`` (or ``(guide,)`` with ``x=`` given, or nothing with both given).
        guide: the ``guide=`` keyword (``None`` when not given).
        x: the ``x=`` keyword (``None`` when not given).

    Returns:
        The guide (a callable, or ``None``) and the data.

    Raises:
        ArgumentError: no data, two of them, two callables, too many arguments, or an
            argument given both by position and by keyword.
    """
    if len(args) > 2:
        raise ArgumentError(_message(entry, f"{len(args)} arguments after the model"))
    if x is not None and guide is not None:
        if args:
            _twice(entry, "guide" if any(map(_is_guide, args)) else "x")
        return _order(entry, (guide, x))
    if x is not None:
        if len(args) > 1 or (args and not _is_guide(args[0])):
            _twice(entry, "x")
        return _order(entry, (*args, x))
    if guide is not None:
        if len(args) > 1 or (args and _is_guide(args[0])):
            _twice(entry, "guide")
        return _order(entry, (guide, *args))
    return _order(entry, args)


def check_counts(**counts: Any) -> tuple[int | None, ...]:
    """The counts as ``int`` (``None`` stays: "the default"), refusing any that is not a
    positive integer.

    Returns:
        The values in the order given.

    Raises:
        ArgumentError: naming the argument and the value, e.g. ``num_particles=0``.
    """
    for name, value in counts.items():
        if value is not None and not _positive_integer(value):
            raise ArgumentError(f"{name} must be a positive integer (1, 2, ...), got {value!r}")
    return tuple(None if v is None else operator.index(v) for v in counts.values())


def _twice(entry: str, name: str) -> None:
    raise ArgumentError(_message(entry, f"{name} given twice (by position and by keyword)"))


def _order(entry: str, args: tuple) -> tuple[Any, Any]:
    guides = [a for a in args if _is_guide(a)]
    data = [a for a in args if not _is_guide(a)]
    if not data:
        what = "two callables" if len(guides) == 2 and None not in guides else "no data"
        raise ArgumentError(_message(entry, f"{what}: the data x must be an array or tensor "
                                     "[N, ...]"))
    if len(data) == 2:
        raise ArgumentError(_message(entry, f"two data arguments ({_kind(data[0])} and "
                                     f"{_kind(data[1])}): the guide must be a callable or None"))
    return (guides[0] if guides else None), data[0]


def _is_guide(value: Any) -> bool:
    """A guide is a callable (a function, a module, an autoguide) or ``None``; data are not."""
    return value is None or callable(value)


def _kind(value: Any) -> str:
    return type(value).__name__


def _message(entry: str, problem: str) -> str:
    return (f"{entry}(model, guide, x) or {entry}(model, x): {problem} (the guide is a "
            "callable or None, the data an array; (model, x, guide) is read too)")


def _positive_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        return operator.index(value) >= 1
    except TypeError:
        return False
