"""Conditioning inputs of a model program: declared once, validated once, batched once.

A zoo model that models ``p(x | c)`` declares each input ``c`` its programs take as a
:class:`Condition` — the program keyword (``"y"``), what kind of input it is (class labels today;
domains, text and times later) and what makes a value valid — and returns them from
:attr:`~ppgen.GenerativeModel.conditions`. Everything else reads that declaration:

* :meth:`Conditions.check` is the one validation (``ppgen.fit``, the evaluation layer, the CLI);
* :meth:`Conditions.for_sampling` fills and checks them for ``model.sample(n, y=...)``;
* :meth:`Conditions.in_program` is the cheap step inside the program itself (no data checks);
* :func:`take_rows` is the one way to cut per-datum keyword arguments into batches and chunks.

Per-datum values are tensors with one row per datum (``[N, ...]``); the engine and the
evaluation layer take them as a ``{name: tensor}`` dict (``train_kwargs={"y": labels}``).

Example:
    >>> import torch
    >>> conditions = Conditions([Condition.classes("y", 3)])
    >>> conditions.check({"y": [0, 2, 1]}, 3, "MyFlow")["y"]
    tensor([0, 2, 1])
    >>> take_rows({"y": torch.arange(5)}, slice(1, 3))
    {'y': tensor([1, 2])}
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch

from ppgen.data.validate import as_tensor, validate, value_range
from ppgen.errors import DataError, ModelError

__all__ = ["ConditionKind", "Condition", "Conditions", "take_rows"]


class ConditionKind(str, Enum):
    """What a conditioning input is (the CLI and the data loaders read it)."""

    CLASS = "class"  #: integer class labels ``0..C-1``, one per datum ``[N]``


@dataclass(frozen=True)
class Condition:
    """One conditioning input of a model's programs.

    Attributes:
        name: the keyword the programs take it by (``model(x, y=labels)``).
        kind: what the input is (:class:`ConditionKind`).
        num_classes: ``C`` for class labels (values ``0..C-1``).
    """

    name: str
    kind: ConditionKind
    num_classes: int | None = None

    @classmethod
    def classes(cls, name: str, num_classes: int) -> Condition:
        """Class labels ``0..num_classes-1`` taken as ``name``; one ``long`` per datum ``[N]``."""
        return cls(name, ConditionKind.CLASS, num_classes)

    def describe(self) -> str:
        """One line for messages: ``"y (class label in 0..9)"``."""
        return f"{self.name} (class label in 0..{self.num_classes - 1})"

    def check(self, value: Any, n: int, what: str | None = None) -> torch.Tensor:
        """Validate one value per datum: ``[n]`` integers in ``0..C-1``, returned as ``long``.

        Args:
            value: array-like labels ``[n]``.
            n: the number of data rows they go with.
            what: how the values are named in messages (default ``"labels"``).

        Raises:
            DataError: a wrong length, non-integer values or values outside the class range.
        """
        what = what or "labels"
        t = as_tensor(value, what)
        self._check_integers(t, what)
        self._check_range(t, what)
        t = validate(t, "categorical", num_levels=self.num_classes, event_shape=(), name=what)
        if t.shape != (n,):
            raise DataError(f"{what} have shape {tuple(t.shape)} but the data have {n} rows: "
                            f"pass one label per row, shape [{n}]")
        return t

    def _check_integers(self, t: torch.Tensor, what: str) -> None:
        if not t.is_floating_point() or not t.numel():
            return
        fractional = t[t != t.round()]
        if fractional.numel():
            raise DataError(
                f"{what} have non-integer values (e.g. {fractional.reshape(-1)[0].item():g}): "
                f"{self.name} takes integer class labels in 0..{self.num_classes - 1}"
            )

    def _check_range(self, t: torch.Tensor, what: str) -> None:
        if not t.numel() or t.is_floating_point():
            return
        lo, hi = value_range(t)
        c = self.num_classes
        if lo < 0 or hi >= c:
            raise DataError(
                f"{what} have values in [{lo}, {hi}], outside the class range 0..{c - 1} of "
                f"this {c}-class model: pass labels in 0..{c - 1}, or build it with "
                f"num_classes={max(hi + 1, c)}"
            )

    def broadcast(self, value: Any, n: int, device: torch.device) -> torch.Tensor:
        """A sampling value: one label for all ``n`` draws, or ``[n]`` labels; checked."""
        t = as_tensor(value, f"{self.name}=").to(device)
        if t.numel() == 1:  # one label (NumPy reads a scalar as shape [1])
            t = t.reshape(()).expand(n)
        return self.check(t, n, f"sample labels {self.name}=")

    def default(self, n: int, device: torch.device) -> torch.Tensor:
        """What generation without a value conditions on: the classes in turn ``[n]``
        (``0, 1, ..., C-1, 0, ...``)."""
        return torch.arange(n, device=device) % self.num_classes


class Conditions(Sequence[Condition]):
    """The conditioning inputs a model declares (empty for an unconditional model).

    Args:
        conditions: the :class:`Condition` of each program keyword.
        owner: the model's class name, for messages.
    """

    def __init__(self, conditions: Sequence[Condition] = (), owner: str = "the model") -> None:
        self._items = tuple(conditions)
        self.owner = owner
        names = [c.name for c in self._items]
        if len(set(names)) != len(names):
            raise ModelError(f"{owner} declares the condition names {names} more than once")

    def __getitem__(self, index):  # type: ignore[override]
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Condition]:
        return iter(self._items)

    def __repr__(self) -> str:
        return f"Conditions({list(self._items)!r})"

    @property
    def names(self) -> tuple[str, ...]:
        """The program keywords, in declaration order."""
        return tuple(c.name for c in self._items)

    def of_kind(self, kind: ConditionKind | str) -> Condition | None:
        """The (first) condition of ``kind`` (e.g. the class labels), or ``None``."""
        kind = ConditionKind(kind)
        return next((c for c in self._items if c.kind is kind), None)

    def check(
        self,
        values: Mapping[str, Any] | None,
        n: int,
        what: str = "",
        device: torch.device | None = None,
    ) -> dict[str, torch.Tensor]:
        """The one validation of per-datum conditioning values for ``n`` data rows.

        Every declared condition must be given, and nothing undeclared may be.

        Args:
            values: ``{name: [n, ...] values}`` (array-likes).
            n: the number of data rows.
            what: prefix of the values' names in messages (``"validation "``).
            device: where to put the checked tensors (default: where they are).

        Returns:
            ``{name: tensor}`` in declaration order, each checked by its :class:`Condition`.

        Raises:
            DataError: undeclared values (e.g. labels for an unconditional model), or a
                value that its condition refuses.
            ModelError: a declared condition without a value.
        """
        values = {k: v for k, v in (values or {}).items() if v is not None}
        self._refuse_undeclared(values)
        checked = {}
        for c in self._items:
            if c.name not in values:
                raise ModelError(self._missing_message(c))
            t = c.check(values[c.name], n, f"{what}{_plural(c)}")
            checked[c.name] = t if device is None else t.to(device)
        return checked

    def for_sampling(
        self, values: Mapping[str, Any], n: int, device: torch.device
    ) -> dict[str, torch.Tensor]:
        """The conditioning values of ``n`` draws: given ones broadcast and checked, the others
        filled by each condition's :meth:`Condition.default`."""
        self._refuse_undeclared({k: v for k, v in values.items() if v is not None})
        out = {}
        for c in self._items:
            value = values.get(c.name)
            out[c.name] = c.default(n, device) if value is None else c.broadcast(value, n, device)
        return out

    def in_program(
        self, values: Mapping[str, Any], x: torch.Tensor | None, num_samples: int | None,
        device: torch.device,
    ) -> dict[str, torch.Tensor]:
        """What a program conditions on, without data checks (they ran once up front).

        Scoring (``x`` given) needs every declared value; generation fills missing ones with
        :meth:`Condition.default` over ``num_samples`` rows (default 1).

        Raises:
            ModelError: an undeclared value, or a declared one missing while scoring.
        """
        given = {k: v for k, v in values.items() if v is not None}
        undeclared = sorted(set(given) - set(self.names))
        if undeclared:
            raise ModelError(self._undeclared_message(undeclared))
        out = {}
        for c in self._items:
            if c.name in given:
                out[c.name] = torch.as_tensor(given[c.name], device=device)
            elif x is not None:
                raise ModelError(self._missing_message(c))
            else:
                out[c.name] = c.default(num_samples or 1, device)
        return out

    def _refuse_undeclared(self, values: Mapping[str, Any]) -> None:
        undeclared = sorted(set(values) - set(self.names))
        if undeclared:
            raise DataError(self._undeclared_message(undeclared))

    def _undeclared_message(self, names: list[str]) -> str:
        if not self._items:
            return (f"conditioning input(s) {', '.join(names)} given, but {self.owner} is "
                    "unconditional (it declares no conditioning inputs): drop them, or use a "
                    "model built with num_classes=C to model p(x | y)")
        return (f"{self.owner} takes no conditioning input {', '.join(names)}; its inputs are "
                f"{', '.join(c.describe() for c in self._items)}")

    def _missing_message(self, c: Condition) -> str:
        return (f"{self.owner} models p(x | {c.name}): pass the {_plural(c)}, e.g. "
                f"ppgen.log_likelihood(model, x, {c.name}=labels) or ppgen.fit(model, x, "
                "x_val, labels=y, val_labels=y_val)")


def _plural(c: Condition) -> str:
    return "labels" if c.kind is ConditionKind.CLASS else c.name


def take_rows(values: Mapping[str, Any], rows: slice | torch.Tensor, n: int | None = None
              ) -> dict[str, Any]:
    """The one way to cut per-datum keyword arguments: ``value[rows]`` for each tensor.

    Args:
        values: ``{name: [N, ...] tensor}`` (other values pass through unchanged).
        rows: a slice or an index tensor of the rows to keep.
        n: ``N``; when given, only tensors with ``N`` rows are cut (user programs may take
            other tensors too).

    Returns:
        ``{name: value[rows]}``.
    """
    return {k: v[rows] if _per_datum(v, n) else v for k, v in values.items()}


def _per_datum(value: Any, n: int | None) -> bool:
    if not isinstance(value, torch.Tensor) or value.dim() == 0:
        return False
    return n is None or value.shape[0] == n
