"""Bind a user's Pyro program and its arguments to the evaluation layer's ``program(x)`` form.

``ppgen.evaluate.pointwise_log_likelihood`` scores ``program(x, **kwargs)``. A user program is
called like ``MCMC.run(*args, **kwargs)``: its observed data ``x`` are the argument (positional
or keyword, e.g. ``y`` of ``data={"y": y, "X": X}``) that the program observes in its
``"data"`` plate, or the keyword argument named ``data_site``, or else the first positional
argument. Every other argument is passed by keyword under a name of its own (positional ones as
``_arg<i>``, keyword ones as ``_kw_<name>``, so that none collides with the evaluation layer's
parameters), and tensors with ``N`` rows are chunked together with ``x``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ppgen.errors import ModelError

__all__ = ["Bound", "bind", "check_data_arguments"]


@dataclass
class Bound:
    """A program in the evaluation layer's form.

    Attributes:
        program: ``program(x, **kwargs)`` calling the user's model.
        x: observed data ``[N, ...]``.
        kwargs: the other arguments, by keyword.
    """

    program: Callable[..., Any]
    x: torch.Tensor
    kwargs: dict[str, Any]


def bind(model: Callable[..., Any], args: tuple, kwargs: dict[str, Any],
         data_site: str | None, observed: dict[str, Any] | None = None) -> Bound:
    """Find the observed data among ``args``/``kwargs`` and wrap ``model`` around it.

    Args:
        model: the program.
        args: its positional arguments.
        kwargs: its keyword arguments.
        data_site: the keyword argument holding the data, if the caller says.
        observed: ``{site: value}`` of the observed sites in the ``"data"`` plate, from a
            trace of the program on these arguments: the argument that is one of these
            values (or is named like one of the sites) holds the data.

    Raises:
        ModelError: no data argument, or the data are not a tensor.
    """
    place = _data_place(args, kwargs, data_site, observed or {})
    x = args[place] if isinstance(place, int) else kwargs[place]
    if not isinstance(x, torch.Tensor):
        raise ModelError(f"the observed data must be a torch.Tensor, not {type(x).__name__}")
    named = {f"_arg{i}": a for i, a in enumerate(args) if i != place}
    named.update({f"_kw_{k}": v for k, v in kwargs.items() if k != place})
    return Bound(_wrap(model, len(args), place), x, named)


def check_data_arguments(args: tuple, kwargs: dict[str, Any], data_site: str | None) -> None:
    """Fail early (before the program runs) when there is no data argument to find.

    Raises:
        ModelError: ``data_site`` is not a keyword argument, or there are no arguments.
    """
    if data_site is not None or not kwargs:
        _data_place(args, kwargs, data_site, {})


def _data_place(args: tuple, kwargs: dict[str, Any], data_site: str | None,
                observed: dict[str, Any]) -> int | str:
    """The position or keyword of the data among the program's arguments."""
    if data_site is not None:
        if data_site not in kwargs:
            raise ModelError(f"data_site={data_site!r} is not among the keyword arguments "
                             f"{sorted(kwargs)}: pass the data as {data_site}=...")
        return data_site
    places = [*enumerate(args), *kwargs.items()]
    for value in observed.values():
        for place, arg in places:
            if arg is value:
                return place
    for name in observed:
        if name in kwargs:
            return name
    if args:
        return 0
    raise ModelError("no observed data: pass them as the first positional argument, as "
                     "data={name: array, ...}, or as a keyword argument named by data_site=...")


def _wrap(model: Callable[..., Any], nargs: int, place: int | str) -> Callable[..., Any]:
    def program(x: torch.Tensor, **kw: Any) -> Any:
        pos = tuple(x if i == place else kw.pop(f"_arg{i}") for i in range(nargs))
        named = {k.removeprefix("_kw_"): v for k, v in kw.items()}
        if isinstance(place, str):
            named[place] = x
        return model(*pos, **named)

    return program
