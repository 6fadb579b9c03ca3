"""The options of one training run, validated up front (:class:`Settings`)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import torch

from ppgen.engine.optim import Schedule
from ppgen.engine.precision import PRECISIONS
from ppgen.errors import TrainingError

__all__ = ["Settings", "check_data", "check_kwargs"]

logger = logging.getLogger(__name__)

LearningRate = float | dict[str, float]


@dataclass
class Settings:
    """The options of one :func:`~ppgen.engine.train` call (see its docstring)."""

    epochs: int
    batch_size: int
    lr: LearningRate
    optimizer: str | dict[str, Any]
    weight_decay: float
    max_grad_norm: float | None
    patience: int | None
    seed: int
    lr_schedule: Schedule
    warmup_steps: int = 0
    ema: float | None = None
    precision: str = "fp32"

    def check(self, train: Any, val: Any, out_dir: Any, resume: bool) -> None:
        """Refuse unusable options with a message that names the fix (the per-group optimiser
        settings are checked when the groups are known, :func:`~ppgen.engine.optim.group_specs`)."""
        require(_is_int(self.epochs) and self.epochs >= 1,
                f"epochs must be >= 1, got {self.epochs!r}")
        require(_is_int(self.batch_size) and self.batch_size >= 1,
                f"batch_size must be >= 1, got {self.batch_size!r}")
        require(self.patience is None or (_is_int(self.patience) and self.patience >= 1),
                f"patience must be >= 1 or None, got {self.patience!r}")
        require(_is_int(self.seed), f"seed must be an integer, got {self.seed!r}")
        require(self.precision in PRECISIONS,
                f"unknown precision {self.precision!r}; use one of {', '.join(PRECISIONS)}")
        require(self.ema is None or (isinstance(self.ema, float | int)
                                     and not isinstance(self.ema, bool) and 0 < self.ema < 1),
                f"ema must be a decay in (0, 1), e.g. 0.999, or None; got {self.ema!r}")
        check_data(train, "train")
        if val is not None:
            check_data(val, "val")
        require(out_dir is not None or not resume,
                "resume=True needs out_dir (where to resume from)")
        if self.patience is not None and val is None:
            logger.warning("patience=%s ignored: early stopping needs validation data",
                           self.patience)

    def to_json(self, groups: dict[str, Any]) -> str:
        """The options that decide the trajectory (``epochs`` excluded: it may grow on resume);
        ``groups`` are the resolved per-group optimiser settings."""
        return json.dumps(
            {"batch_size": self.batch_size, "seed": self.seed, "optimizers": groups,
             "ema": self.ema, "precision": self.precision},
            sort_keys=True,
        )


def require(ok: bool, message: str) -> None:
    """Raise a :class:`TrainingError` with ``message`` unless ``ok``."""
    if not ok:
        raise TrainingError(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_data(data: Any, name: str) -> None:
    """Training or validation data: a non-empty tensor ``[N, ...]``."""
    require(
        isinstance(data, torch.Tensor),
        f"{name} must be a tensor [N, ...] (run model.check_data first), got {type(data).__name__}",
    )
    require(data.dim() >= 1 and len(data) > 0, f"{name} data are empty: nothing to train on")


def check_kwargs(kwargs: dict[str, Any] | None, data: Any, name: str) -> None:
    """Per-datum keyword arguments: tensors with one row per datum of ``data``."""
    if not kwargs:
        return
    require(data is not None, f"{name}_kwargs were given without {name} data")
    for key, value in kwargs.items():
        require(
            isinstance(value, torch.Tensor) and value.dim() >= 1 and len(value) == len(data),
            f"{name}_kwargs[{key!r}] must be a tensor with one row per datum ({len(data)}), "
            f"got {getattr(value, 'shape', type(value).__name__)}",
        )
