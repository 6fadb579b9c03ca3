"""Optimisers per parameter group, with learning-rate schedules and warm-up at step granularity.

Every parameter group of an objective (``"model"``, or ``"generator"`` and ``"critic"``, ...) gets
its own optimiser. Its settings are plain JSON: the run's ``optimizer`` is a name for all groups
or a dict of per-group specs, e.g. ``{"critic": {"name": "adam", "lr": 1e-4, "betas": [0.0,
0.9]}}``; keys a spec leaves out come from the run's ``lr``, ``weight_decay``, ``lr_schedule``,
``warmup_steps`` and ``max_grad_norm``; any other key is passed to the torch optimiser.

The rate of a group at global step ``s`` of ``S`` is ``lr * warm-up(s) * schedule(s', S')``:
linear warm-up from ``lr / warmup_steps`` to ``lr`` over the first ``warmup_steps`` steps, then
the schedule over the remaining steps (``s' = s - warmup_steps``, ``S' = S - warmup_steps``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from ppgen.errors import TrainingError

__all__ = ["OPTIMIZERS", "LR_SCHEDULES", "GroupSpec", "group_specs", "Optimizers"]

#: optimiser names accepted by :func:`ppgen.engine.train`
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}


def _constant(step: int, total: int) -> float:
    return 1.0


def _cosine(step: int, total: int) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * step / total))


def _linear(step: int, total: int) -> float:
    return 1.0 - step / total


#: learning-rate multipliers ``f(step, total_steps)`` (0-based global step) by name
LR_SCHEDULES: dict[str, Callable[[int, int], float]] = {
    "constant": _constant,
    "cosine": _cosine,
    "linear": _linear,
}

Schedule = str | Callable[[int, int], float] | None
_SPEC_KEYS = ("name", "lr", "weight_decay", "schedule", "warmup_steps", "max_grad_norm")


def schedule_function(schedule: Schedule) -> Callable[[int, int], float]:
    """The multiplier function of an ``lr_schedule`` argument."""
    if schedule is None:
        return _constant
    if callable(schedule):
        return schedule
    if schedule not in LR_SCHEDULES:
        raise TrainingError(
            f"unknown lr_schedule {schedule!r}; use one of {', '.join(LR_SCHEDULES)} "
            "or a function f(step, total_steps) -> multiplier"
        )
    return LR_SCHEDULES[schedule]


@dataclass
class GroupSpec:
    """The optimiser settings of one parameter group.

    Attributes:
        name: optimiser name in :data:`OPTIMIZERS`.
        lr: base learning rate.
        weight_decay: L2 penalty (decoupled for ``"adamw"``).
        schedule: name in :data:`LR_SCHEDULES`, ``f(step, total_steps)``, or ``None``.
        warmup_steps: steps of linear warm-up before the schedule.
        max_grad_norm: clip the group's gradient norm to this (``None``: no clipping).
        options: further keyword arguments of the torch optimiser (``betas``, ``momentum``, ...).
    """

    name: str
    lr: float
    weight_decay: float = 0.0
    schedule: Schedule = None
    warmup_steps: int = 0
    max_grad_norm: float | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def factor(self, step: int, total: int) -> float:
        """The multiplier of ``lr`` at the 0-based global ``step`` of ``total``."""
        warm = self.warmup_steps
        if step < warm:
            return (step + 1) / warm
        return schedule_function(self.schedule)(step - warm, max(total - warm, 1))

    def check(self, group: str) -> None:
        """Refuse settings no optimiser can run, naming the group and the fix."""
        where = "" if group == "model" else f" (group {group!r})"
        if self.name not in OPTIMIZERS:
            raise TrainingError(
                f"unknown optimizer {self.name!r}{where}; use one of {', '.join(OPTIMIZERS)}"
            )
        _positive(self.lr, f"lr must be > 0{where}")
        if self.weight_decay != 0:
            _positive(self.weight_decay, f"weight_decay must be >= 0{where}")
        if self.max_grad_norm is not None:
            _positive(self.max_grad_norm, f"max_grad_norm must be > 0 or None{where}")
        if not (_is_int(self.warmup_steps) and self.warmup_steps >= 0):
            raise TrainingError(f"warmup_steps must be an integer >= 0{where}, "
                                f"got {self.warmup_steps!r}")
        schedule_function(self.schedule)

    def to_json(self) -> dict[str, Any]:
        schedule = self.schedule
        return {
            "name": self.name, "lr": self.lr, "weight_decay": self.weight_decay,
            "schedule": schedule if schedule is None or isinstance(schedule, str) else "callable",
            "warmup_steps": self.warmup_steps, "max_grad_norm": self.max_grad_norm,
            **self.options,
        }

    def build(self, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        try:
            return OPTIMIZERS[self.name](
                params, lr=self.lr, weight_decay=self.weight_decay, **self.options
            )
        except (TypeError, ValueError) as err:
            raise TrainingError(f"bad options for optimizer {self.name!r}: {err}") from err


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive(value: Any, message: str) -> None:
    if not (isinstance(value, int | float) and not isinstance(value, bool) and value > 0):
        raise TrainingError(f"{message}, got {value!r}")


def group_specs(
    groups: Iterable[str],
    optimizer: str | dict[str, Any],
    lr: float | dict[str, float],
    weight_decay: float,
    lr_schedule: Schedule,
    warmup_steps: int,
    max_grad_norm: float | None,
) -> dict[str, GroupSpec]:
    """One :class:`GroupSpec` per group from the run's options (see the module docstring)."""
    groups = list(groups)
    rates = lr if isinstance(lr, dict) else dict.fromkeys(groups, lr)
    per_group = optimizer if isinstance(optimizer, dict) else {}
    for given, what in ((rates, "lr"), (per_group, "optimizer")):
        unknown = set(given) - set(groups)
        if unknown or (what == "lr" and set(given) != set(groups)):
            raise TrainingError(
                f"{what} must give settings by parameter group {sorted(groups)}, got "
                f"{sorted(given)}"
            )
    specs = {}
    for group in groups:
        given = dict(per_group.get(group, {}))
        if not isinstance(per_group.get(group, {}), dict):
            raise TrainingError(f"optimizer[{group!r}] must be a dict of settings")
        spec = GroupSpec(
            name=given.pop("name", optimizer if isinstance(optimizer, str) else "adam"),
            lr=given.pop("lr", rates[group]),
            weight_decay=given.pop("weight_decay", weight_decay),
            schedule=given.pop("schedule", lr_schedule),
            warmup_steps=given.pop("warmup_steps", warmup_steps),
            max_grad_norm=given.pop("max_grad_norm", max_grad_norm),
            options=given,
        )
        spec.check(group)
        specs[group] = spec
    return specs


class Optimizers:
    """The optimisers of a run, one per parameter group.

    :meth:`build` (re)creates them over the groups' current parameters; state of parameters
    that already had an optimiser carries over, so a network that grows keeps the moments of
    its old layers, and rebuilding in the same order gives the same ``state_dict`` layout
    (which is what an exact resume of a grown network needs).
    """

    def __init__(self, specs: dict[str, GroupSpec]) -> None:
        self.specs = specs
        self.by_group: dict[str, torch.optim.Optimizer] = {}
        self.params: dict[str, list[torch.nn.Parameter]] = {}

    def build(self, groups: dict[str, Iterable[torch.nn.Parameter]]) -> None:
        """(Re)build one optimiser per group over its trainable parameters."""
        old = {id(p): s for o in self.by_group.values() for p, s in o.state.items()}
        for name, params in groups.items():
            params = [p for p in params if p.requires_grad]
            if not params:
                raise TrainingError(f"parameter group {name!r} has no trainable parameters")
            optimizer = self.specs[name].build(params)
            for p in params:
                if id(p) in old:
                    optimizer.state[p] = old[id(p)]
            self.by_group[name], self.params[name] = optimizer, params

    def set_step(self, step: int, total: int) -> dict[str, float]:
        """Apply every group's schedule at the 0-based global ``step``; returns the rates."""
        rates = {}
        for name, optimizer in self.by_group.items():
            spec = self.specs[name]
            rate = spec.lr * spec.factor(step, total)
            for group in optimizer.param_groups:
                group["lr"] = rate
            rates[name] = rate
        return rates

    def state_dict(self) -> dict[str, Any]:
        return {name: o.state_dict() for name, o in self.by_group.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, optimizer in self.by_group.items():
            optimizer.load_state_dict(state[name])

    def to_json(self) -> dict[str, Any]:
        return {name: spec.to_json() for name, spec in self.specs.items()}
