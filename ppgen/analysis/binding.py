"""Bind a user's Pyro program and its arguments to the evaluation layer's ``program(x)`` form.

``ppgen.evaluate.pointwise_log_likelihood`` scores ``program(x, **kwargs)``. A user program is
called like ``MCMC.run(*args, **kwargs)``: its observed data ``x`` are the first positional
argument by convention, or the keyword argument named ``data_site``. Every other argument is
passed by keyword (positional ones as ``_arg<i>``), so tensors with ``N`` rows are chunked
together with ``x``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ppgen.errors import ModelError

__all__ = ["Bound", "bind"]


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
         data_site: str | None) -> Bound:
    """Find the observed data among ``args``/``kwargs`` and wrap ``model`` around it.

    Raises:
        ModelError: no data argument (no positional argument and no ``data_site``), or the
            data are not a tensor.
    """
    if data_site is not None:
        if data_site not in kwargs:
            raise ModelError(f"data_site={data_site!r} is not among the keyword arguments "
                             f"{sorted(kwargs)}: pass the data as {data_site}=...")
        x, rest = kwargs[data_site], {k: v for k, v in kwargs.items() if k != data_site}
        positional: tuple = args
    elif args:
        x, positional, rest = args[0], args[1:], dict(kwargs)
    else:
        raise ModelError("no observed data: pass them as the first positional argument, or "
                         "as a keyword argument named by data_site=...")
    if not isinstance(x, torch.Tensor):
        raise ModelError(f"the observed data must be a torch.Tensor, not {type(x).__name__}")
    extra = {f"_arg{i}": a for i, a in enumerate(positional)}
    return Bound(_wrap(model, len(positional), data_site), x, {**extra, **rest})


def _wrap(model: Callable[..., Any], npos: int, data_site: str | None) -> Callable[..., Any]:
    def program(x: torch.Tensor, **kw: Any) -> Any:
        pos = tuple(kw.pop(f"_arg{i}") for i in range(npos))
        if data_site is None:
            return model(x, *pos, **kw)
        return model(*pos, **{data_site: x}, **kw)

    return program
