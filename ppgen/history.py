"""The record of a training run: one row of metrics per epoch (:class:`History`)."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterator
from typing import Any

__all__ = ["History"]

Record = dict[str, Any]


class History:
    """Per-epoch metrics of a training run, JSON- and CSV-friendly.

    Each record holds ``epoch`` (1-based), the mean training metrics (``train_loss``, ...),
    ``val_loss`` when validation data were given, ``seconds`` and the learning rate(s).

    Attributes:
        records: one dict per epoch, values are ``int``, ``float`` or ``None``.
        best_epoch: the epoch with the lowest ``val_loss`` (``None`` without validation).
        best_val: that lowest ``val_loss`` (``None`` without validation).

    Example:
        >>> h = History([{"epoch": 1, "train_loss": 2.0, "val_loss": 1.5}])
        >>> h.column("val_loss"), h.best_epoch
        ([1.5], 1)
    """

    def __init__(
        self,
        records: list[Record] | None = None,
        best_epoch: int | None = None,
        best_val: float | None = None,
    ) -> None:
        self.records = [dict(r) for r in records or []]
        self.best_epoch = best_epoch
        self.best_val = best_val
        if best_epoch is None and best_val is None:
            self.best_epoch, self.best_val = _best_of(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __repr__(self) -> str:
        return (
            f"History(epochs={len(self)}, best_epoch={self.best_epoch}, best_val={self.best_val})"
        )

    def append(self, record: Record) -> None:
        """Add one epoch's record."""
        self.records.append(dict(record))

    def column(self, name: str) -> list[Any]:
        """Values of one metric over the epochs (``None`` where an epoch lacks it)."""
        return [r.get(name) for r in self.records]

    @property
    def columns(self) -> list[str]:
        """Metric names in order of first appearance."""
        names: dict[str, None] = {}
        for record in self.records:
            names.update(dict.fromkeys(record))
        return list(names)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (see :meth:`from_dict`)."""
        return {
            "records": [dict(r) for r in self.records],
            "best_epoch": self.best_epoch,
            "best_val": self.best_val,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        """Inverse of :meth:`to_dict`."""
        return cls(d.get("records", []), d.get("best_epoch"), d.get("best_val"))

    def to_csv_string(self) -> str:
        """The records as CSV text with a header row; missing values are empty cells."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        for record in self.records:
            writer.writerow({k: _format(v) for k, v in record.items()})
        return buffer.getvalue()

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the records to ``path`` as CSV (atomically)."""
        from ppgen.checkpoint import atomic_write

        text = self.to_csv_string().encode("utf-8")
        atomic_write(path, lambda f: f.write(text))

    @classmethod
    def from_csv(cls, path: str | os.PathLike) -> History:
        """Read a CSV written by :meth:`to_csv`; the best epoch is recomputed from ``val_loss``."""
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        return cls([{k: _parse(k, v) for k, v in row.items()} for row in rows])


def _best_of(records: list[Record]) -> tuple[int | None, float | None]:
    """The first epoch with the lowest finite ``val_loss``, and that loss."""
    scored = [(r["val_loss"], r["epoch"]) for r in records if _finite(r.get("val_loss"))]
    if not scored:
        return None, None
    best_val, best_epoch = min(scored, key=lambda s: s[0])
    return best_epoch, best_val


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _format(value: Any) -> str:
    """CSV cell: ``repr`` keeps floats exact, ``None`` is an empty cell."""
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


def _parse(name: str, text: str | None) -> int | float | str | None:
    """Inverse of :func:`_format`: ``epoch`` is an int, numbers are floats."""
    if text is None or text == "":
        return None
    if name == "epoch":
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text
