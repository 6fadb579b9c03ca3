"""What a training run checkpoints apart from the weights: where it stands (:class:`Progress`).

A checkpoint (``checkpoint.pt``) holds plain tensors, numbers, strings, lists and dicts only, so
it loads with ``weights_only=True``:

* identity: ``format``, ``version``, ``model``, ``model_config``, ``objective_config``,
  ``settings`` — what a resumed run must match;
* weights: ``model_state`` (raw weights), ``objective_state`` (a critic, a buffer, ...),
  ``optimizers`` (by group), ``ema`` (the weight average), ``scaler`` (fp16 loss scale);
* progress: ``epoch``, ``step`` (global, so a k-step cycle continues where it stopped),
  ``best_state`` / ``best_epoch`` / ``best_val``, ``bad_epochs``, ``history``;
* ``rng``: every rank's random states (a list in rank order).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ppgen.errors import CheckpointError
from ppgen.history import History

__all__ = ["FORMAT", "VERSION", "Progress", "check_resumable"]

logger = logging.getLogger(__name__)

FORMAT = "ppgen-training"
VERSION = 2


@dataclass
class Progress:
    """Where a run stands: epochs and steps done, the best epoch, the history."""

    epoch: int = 0  #: epochs completed
    step: int = 0  #: global steps completed
    history: History = field(default_factory=History)
    best_state: dict[str, torch.Tensor] | None = None
    best_val: float = math.inf
    best_epoch: int | None = None
    bad_epochs: int = 0  #: epochs since the last validation improvement

    def record(self, record: dict[str, Any], best_state: Any) -> None:
        """Add an accepted epoch; ``best_state()`` copies the weights when it is the best."""
        self.epoch = record["epoch"]
        self.history.append(record)
        val = record.get("val_loss")
        if val is None:
            return
        if val < self.best_val:
            self.best_val, self.best_epoch, self.bad_epochs = val, self.epoch, 0
            self.best_state = best_state()
        else:
            self.bad_epochs += 1

    def stopped(self, patience: int | None, validating: bool) -> bool:
        """Whether early stopping has triggered."""
        return validating and patience is not None and self.bad_epochs >= patience

    def history_now(self) -> History:
        best_val = None if self.best_epoch is None else self.best_val
        return History(self.history.records, self.best_epoch, best_val)

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "best_state": self.best_state,
            "best_epoch": self.best_epoch,
            "best_val": None if self.best_epoch is None else self.best_val,
            "bad_epochs": self.bad_epochs,
            "history": self.history.records,
        }

    @classmethod
    def from_dict(cls, payload: dict[str, Any], device: torch.device) -> Progress:
        best = payload["best_state"]
        return cls(
            epoch=payload["epoch"],
            step=payload["step"],
            history=History(payload["history"]),
            best_state=None if best is None else {k: v.to(device) for k, v in best.items()},
            best_val=math.inf if payload["best_val"] is None else payload["best_val"],
            best_epoch=payload["best_epoch"],
            bad_epochs=payload["bad_epochs"],
        )


def check_resumable(payload: Any, path: Path, identity: dict[str, str]) -> None:
    """Refuse a checkpoint of another format, version, model, config or objective."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a ppgen training checkpoint: cannot resume")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"cannot resume from {str(path)!r}: it was written by training-checkpoint version "
            f"{payload.get('version')}, this ppgen writes version {VERSION}. Retrain, or use "
            "the ppgen release that wrote it"
        )
    for key in ("model", "model_config", "objective_config"):
        if payload.get(key) != identity[key]:
            raise CheckpointError(
                f"cannot resume from {str(path)!r}: it was written for {key.replace('_', ' ')} "
                f"{payload.get(key)}, this run has {identity[key]}. Use the same model and "
                "objective, another out_dir, or resume=False to start afresh"
            )
    if payload.get("settings") != identity["settings"]:
        logger.warning(
            "resuming with different settings (was %s, now %s): the result will differ from an "
            "uninterrupted run", payload.get("settings"), identity["settings"],
        )


def identity(model: Any, objective: Any, settings: str) -> dict[str, str]:
    """What a checkpoint must match to be resumed by this run."""
    return {
        "model": model.name,
        "model_config": json.dumps(model.get_config(), sort_keys=True),
        "objective_config": json.dumps(objective.get_config(), sort_keys=True),
        "settings": settings,
    }
