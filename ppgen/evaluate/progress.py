"""A progress bar over the rows the evaluation layer scores, for long evaluations.

A 1000-particle bound of a test split, or the full bound of a diffusion model (one network pass
per step), takes minutes. Inside :func:`showing_progress` every pass of the layer over the data
(:func:`ppgen.evaluate.chunks.chunks`) advances one bar: rows scored out of the rows of the
pass (a report with two estimates runs two passes; the bar starts again for each). The
commands ``ppgen evaluate`` and ``ppgen score`` show it on a terminal; Python code opts in.
Updating the bar reads no tensor, so it adds no host synchronisation.

Example:
    >>> import io
    >>> with showing_progress("scoring", file=io.StringIO()):
    ...     pass  # ppgen.log_likelihood(model, x) here advances the bar
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import IO, Any

from tqdm.auto import tqdm

__all__ = ["showing_progress", "pass_started", "advance"]

_BAR: ContextVar[Any] = ContextVar("ppgen_evaluation_bar", default=None)


@contextlib.contextmanager
def showing_progress(desc: str = "scoring", enabled: bool = True,
                     file: IO[str] | None = None) -> Iterator[Any]:
    """Show the evaluation layer's passes over the data inside the block.

    Args:
        desc: the bar's label.
        enabled: ``False`` shows nothing (``--no-progress``).
        file: where to draw (default stderr, and only on a terminal); with a file the bar is
            always drawn.

    Yields:
        The ``tqdm`` bar, or ``None`` when disabled.
    """
    if not enabled:
        yield None
        return
    with tqdm(desc=desc, unit="rows", leave=False, file=file,
              disable=False if file is not None else None) as bar:
        token = _BAR.set(bar)
        try:
            yield bar
        finally:
            _BAR.reset(token)


def pass_started(n: int) -> Any:
    """A pass over ``n`` rows begins: the bar (if one is shown) restarts at ``0 / n``."""
    bar = _BAR.get()
    if bar is not None:
        bar.reset(total=n)
    return bar


def advance(bar: Any, rows: int) -> None:
    """``rows`` more rows of the pass are scored."""
    if bar is not None:
        bar.update(rows)
        if bar.n >= bar.total:
            bar.refresh()  # the pass's end is drawn even inside tqdm's redraw interval
