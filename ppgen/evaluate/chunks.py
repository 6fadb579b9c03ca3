"""How the estimators cut the data (and the draws) into passes of the programs.

A program that scores any rows it is given (:attr:`~ppgen.evaluate.program.Layout.ROWS`: a
zoo model, an amortised guide) gets row slices of the data. One that closes over all ``N``
rows (``WHOLE``: per-datum guide parameters, covariates closed over) gets all of them in one
pass, and the caller chunks its particles or posterior draws instead. One whose ``"data"``
plate subsamples (``SUBSAMPLE``: ``pyro.plate("data", N, subsample_size=B) as idx``, data and
parameters indexed by ``idx``) gets all the data and, from ppgen, the plate's indices: ``B`` at
a time, the last batch wrapping round to the first rows, with the plate's ``N / B`` scale
undone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import torch
from pyro import poutine

from ppgen.conditions import take_rows
from ppgen.evaluate.program import DATA_PLATE, Layout, Structure
from ppgen.evaluate.progress import advance, pass_started

__all__ = ["Chunk", "chunk_rows", "chunks", "slices", "take"]


class Chunk(NamedTuple):
    """What one pass of the programs gets and which data rows it scores.

    Attributes:
        x: the data the programs are called with (all of them for a ``SUBSAMPLE`` program).
        kwargs: their keyword arguments, cut like ``x``.
        rows: the rows scored: a slice of the data, or the ``"data"`` plate's indices that
            ppgen supplies to a ``SUBSAMPLE`` program (a full batch, wrapping round).
        n: how many of the pass's scores are kept (fewer than ``rows`` for a wrapped batch).
    """

    x: torch.Tensor
    kwargs: dict[str, Any]
    rows: slice | torch.Tensor
    n: int

    @property
    def width(self) -> int:
        """Data rows the pass scores (a ``SUBSAMPLE`` pass: its full batch of indices)."""
        rows = self.rows
        return len(rows) if isinstance(rows, torch.Tensor) else rows.stop - rows.start

    def kept(self, value: torch.Tensor) -> torch.Tensor:
        """The scores ``[..., width]`` of the chunk's own rows (a wrapped batch scores more)."""
        return value if self.n == value.shape[-1] else value[..., : self.n]

    def program(self, fn: Callable, structure: Structure) -> Callable:
        """``fn`` as this pass runs it: for a ``SUBSAMPLE`` program, with the ``"data"``
        plate's indices set to the chunk's and unscaled (Pyro scales a subsampled plate's sites
        by ``N / B``; a per-datum score wants none of it)."""
        if not isinstance(self.rows, torch.Tensor):
            return fn
        fn = poutine.condition(fn, data={DATA_PLATE: self.rows})
        return poutine.scale(fn, scale=structure.subsample_size / self.x.shape[0])


def chunk_rows(structure: Structure, x: torch.Tensor, rows: int) -> int:
    """Rows per pass: ``rows`` when the program scores any rows, else what it insists on."""
    if structure.layout is Layout.ROWS:
        return rows
    if structure.layout is Layout.SUBSAMPLE:
        return structure.subsample_size
    return x.shape[0]


def chunks(structure: Structure, x: torch.Tensor, kwargs: dict[str, Any],
           rows: int) -> Iterator[Chunk]:
    """The passes over ``x`` of ``rows`` rows each (see :func:`chunk_rows`)."""
    n = x.shape[0]
    bar = pass_started(n)  # a progress bar, inside showing_progress
    if structure.layout is Layout.SUBSAMPLE:
        for start in range(0, n, rows):
            index = torch.arange(start, start + rows, device=x.device) % n
            yield Chunk(x, kwargs, index, min(rows, n - start))
            advance(bar, min(rows, n - start))
        return
    for sl in slices(n, rows):
        yield Chunk(x[sl], take_rows(kwargs, sl, n), sl, sl.stop - sl.start)
        advance(bar, sl.stop - sl.start)


def slices(n: int, size: int) -> Iterator[slice]:
    """``range(n)`` in slices of ``size``."""
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def take(value: torch.Tensor, dim: int, rows: slice | torch.Tensor) -> torch.Tensor:
    """A chunk's ``rows`` of ``value`` along ``dim``."""
    if isinstance(rows, torch.Tensor):
        return value.index_select(dim, rows.to(value.device))
    return value.narrow(dim, rows.start, rows.stop - rows.start)
