"""What training changes, in one place (:class:`Trained`): the model's weights, the objective's
state, the optimisers, the weight average and the loss scale — copied as the NaN guard's restore
point, written to checkpoints and put back on resume."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch

from ppgen.engine.ema import EMA
from ppgen.engine.optim import Optimizers
from ppgen.objective import Objective
from ppgen.protocol import GenerativeModel

__all__ = ["Trained", "clone"]


def clone(obj: Any) -> Any:
    """A copy of nested dicts / lists / tuples whose tensors are detached clones (much cheaper
    than ``deepcopy``, which matters when an epoch is a single step)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: clone(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(clone(v) for v in obj)
    return obj


@dataclass
class Trained:
    """References to everything a run trains (the objects themselves, not copies)."""

    model: GenerativeModel
    objective: Objective
    optimizers: Optimizers
    ema: EMA | None
    scaler: torch.amp.GradScaler

    def snapshot(self, step: int) -> dict[str, Any]:
        """Copies of every trained state after global step ``step``."""
        return {
            "model_state": clone(self.model.state_dict()),
            "objective_state": clone(self.objective.state_dict()),
            "optimizers": clone(self.optimizers.state_dict()),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": step,
        }

    def load(self, state: dict[str, Any]) -> int:
        """Put a :meth:`snapshot` (or a checkpoint's weights) back; returns its step."""
        self.model.load_state_dict(state["model_state"])
        self.objective.load_state_dict(state["objective_state"])
        self.optimizers.load_state_dict(clone(state["optimizers"]))
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        return state["step"]

    def averaged(self) -> dict[str, torch.Tensor]:
        """A copy of the model's weights — the averaged ones when ``ema`` is on."""
        with self.ema.applied() if self.ema is not None else contextlib.nullcontext():
            return {k: v.detach().clone() for k, v in self.model.state_dict().items()}
