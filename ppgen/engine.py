"""The training engine: one loop for every family (:func:`train`).

The engine owns *how* a model is trained — batching, epochs, validation, early stopping with
best-state restore, the NaN/inf guard, atomic checkpoints with exact resume, seeding, device
placement and the history — while an :class:`~ppgen.objective.Objective` owns *what* is
optimised. Concrete objectives live in ``ppgen.inference``; ``ppgen.fit`` picks one and calls
:func:`train`.

Files written when ``out_dir`` is given:

* ``checkpoint.pt`` — everything needed to resume exactly (weights, optimiser states, best
  state, RNG states, history, configs), rewritten atomically after every good epoch; plain
  tensors, numbers, strings, lists and dicts only, so it loads with ``weights_only=True``;
* ``history.csv`` — one row per epoch (:class:`~ppgen.history.History`);
* ``model.pt`` — the final (best) model, written by :func:`ppgen.checkpoint.save_model`.

Data-parallel training slots in at two points without a second loop: the epoch permutation
(:func:`_permutation`, to be strided by rank) and the one per-epoch host synchronisation
(:meth:`_Run._summarise`, to be all-reduced).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch
from tqdm.auto import tqdm

from ppgen.checkpoint import atomic_save, safe_load, save_model
from ppgen.devices import resolve_device
from ppgen.errors import CheckpointError, TrainingError
from ppgen.history import History
from ppgen.objective import Objective
from ppgen.protocol import GenerativeModel

__all__ = ["train", "History", "OPTIMIZERS", "LR_SCHEDULES"]

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "ppgen-training"
CHECKPOINT_VERSION = 1

#: optimiser names accepted by :func:`train`
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
}


def _constant(epoch: int, epochs: int) -> float:
    return 1.0


def _cosine(epoch: int, epochs: int) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def _linear(epoch: int, epochs: int) -> float:
    return 1.0 - epoch / epochs


#: learning-rate multipliers ``f(epoch, epochs)`` (0-based epoch) by name
LR_SCHEDULES: dict[str, Callable[[int, int], float]] = {
    "constant": _constant,
    "cosine": _cosine,
    "linear": _linear,
}

LearningRate = float | dict[str, float]
Schedule = str | Callable[[int, int], float] | None


# =========================================================================== public entry
def train(
    model: GenerativeModel,
    objective: Objective,
    train: torch.Tensor,
    val: torch.Tensor | None = None,
    *,
    epochs: int = 100,
    batch_size: int = 128,
    lr: LearningRate = 1e-3,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    max_grad_norm: float | None = None,
    patience: int | None = None,
    device: str | torch.device | None = "auto",
    seed: int = 0,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    lr_schedule: Schedule = None,
    extra: dict | None = None,
    train_kwargs: dict[str, torch.Tensor] | None = None,
    val_kwargs: dict[str, torch.Tensor] | None = None,
) -> History:
    """Train ``model`` by minimising ``objective`` on ``train``; validate on ``val``.

    Args:
        model: the model; moved to ``device`` and trained in place.
        objective: what to minimise (:class:`~ppgen.objective.Objective`).
        train: training data ``[N, *event_shape]``, already checked by ``model.check_data``.
        val: validation data ``[M, *event_shape]``; enables early stopping and best-state
            restore (the lowest mean ``objective.validation_loss``).
        epochs: total number of epochs (with ``resume``, including those already run).
        batch_size: data per optimisation step (the last batch of an epoch may be smaller).
        lr: learning rate, or a dict of rates by parameter group
            (``objective.param_groups(model)``).
        optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"``; one per parameter group.
        weight_decay: L2 penalty (decoupled for ``"adamw"``).
        max_grad_norm: clip the gradient norm of each group to this value.
        patience: stop after this many epochs without a validation improvement.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ... (see :func:`ppgen.devices.resolve_device`).
        seed: seeds torch, ``random`` and NumPy at the start of a fresh run, and the shuffles.
        out_dir: folder for ``checkpoint.pt``, ``history.csv`` and ``model.pt``.
        resume: continue from ``out_dir/checkpoint.pt`` exactly where it stopped.
        progress: show a progress bar over epochs (only on a terminal).
        lr_schedule: ``None``, a name in :data:`LR_SCHEDULES`, or ``f(epoch, epochs)``
            returning the multiplier of ``lr`` for the 0-based ``epoch``.
        extra: JSON-able metadata stored in ``model.pt`` (e.g. ``DataInfo.to_dict()``).
        train_kwargs: per-datum keyword arguments of the programs (e.g. ``{"y": labels}``),
            tensors ``[N, ...]`` batched with ``train`` (same shuffle, same batches) and passed
            to the objective as ``objective.step(model, batch, ..., **kwargs)``.
        val_kwargs: the same for ``val`` (``[M, ...]``, same chunks), passed to
            ``objective.validation_loss(model, chunk, **kwargs)``.

    Returns:
        The :class:`History`; the model holds the best state (lowest validation loss) when
        ``val`` is given, the last state otherwise.

    Raises:
        TrainingError: bad arguments, or a non-finite loss or parameter (the model and
            optimisers are then restored to the last good epoch, which is also on disk).
        CheckpointError: ``resume`` without a usable checkpoint for this model and objective.

    Example:
        >>> history = train(model, objective, x_train, x_val, patience=5)  # doctest: +SKIP
        >>> history.best_epoch, history.best_val  # doctest: +SKIP
    """
    settings = _Settings(
        epochs,
        batch_size,
        lr,
        optimizer,
        weight_decay,
        max_grad_norm,
        patience,
        seed,
        lr_schedule,
    )
    settings.check(train, val, out_dir, resume)
    _check_kwargs(train_kwargs, train, "train")
    _check_kwargs(val_kwargs, val, "val")
    run = _Run.start(model, objective, train, val, settings, device, out_dir, extra)
    run.set_kwargs(train_kwargs, val_kwargs)
    if resume:
        run.restore(safe_load(run.checkpoint_path, "cpu", what="training checkpoint"))
    else:
        pyro.set_rng_seed(seed)
    return run.fit(progress)


# =========================================================================== settings
@dataclass
class _Settings:
    """The options of one :func:`train` call, validated."""

    epochs: int
    batch_size: int
    lr: LearningRate
    optimizer: str
    weight_decay: float
    max_grad_norm: float | None
    patience: int | None
    seed: int
    lr_schedule: Schedule

    def check(self, train: Any, val: Any, out_dir: Any, resume: bool) -> None:
        """Refuse unusable options with a message that names the fix."""
        _require(
            _is_int(self.epochs) and self.epochs >= 1, f"epochs must be >= 1, got {self.epochs!r}"
        )
        _require(
            _is_int(self.batch_size) and self.batch_size >= 1,
            f"batch_size must be >= 1, got {self.batch_size!r}",
        )
        self._check_optimisation()
        _check_data(train, "train")
        if val is not None:
            _check_data(val, "val")
        _require(
            out_dir is not None or not resume, "resume=True needs out_dir (where to resume from)"
        )
        if self.patience is not None and val is None:
            logger.warning(
                "patience=%s ignored: early stopping needs validation data", self.patience
            )

    def _check_optimisation(self) -> None:
        rates = self.lr.values() if isinstance(self.lr, dict) else [self.lr]
        _require(all(_is_positive(r) for r in rates), f"lr must be > 0, got {self.lr!r}")
        _require(
            self.optimizer in OPTIMIZERS,
            f"unknown optimizer {self.optimizer!r}; use one of {', '.join(OPTIMIZERS)}",
        )
        _require(
            self.weight_decay == 0 or _is_positive(self.weight_decay),
            f"weight_decay must be >= 0, got {self.weight_decay!r}",
        )
        _require(
            self.max_grad_norm is None or _is_positive(self.max_grad_norm),
            f"max_grad_norm must be > 0 or None, got {self.max_grad_norm!r}",
        )
        _require(
            self.patience is None or (_is_int(self.patience) and self.patience >= 1),
            f"patience must be >= 1 or None, got {self.patience!r}",
        )
        _schedule(self.lr_schedule)

    def to_json(self) -> str:
        """The options that decide the trajectory (``epochs`` excluded: it may grow on resume)."""
        schedule = self.lr_schedule
        return json.dumps(
            {
                "batch_size": self.batch_size,
                "lr": self.lr,
                "optimizer": self.optimizer,
                "weight_decay": self.weight_decay,
                "max_grad_norm": self.max_grad_norm,
                "seed": self.seed,
                "lr_schedule": schedule
                if schedule is None or isinstance(schedule, str)
                else "callable",
            },
            sort_keys=True,
        )


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise TrainingError(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _check_data(data: Any, name: str) -> None:
    _require(
        isinstance(data, torch.Tensor),
        f"{name} must be a tensor [N, ...] (run model.check_data first), got {type(data).__name__}",
    )
    _require(data.dim() >= 1 and len(data) > 0, f"{name} data are empty: nothing to train on")


def _check_kwargs(kwargs: dict[str, Any] | None, data: Any, name: str) -> None:
    """Per-datum keyword arguments: tensors with one row per datum of ``data``."""
    if not kwargs:
        return
    _require(data is not None, f"{name}_kwargs were given without {name} data")
    for key, value in kwargs.items():
        _require(
            isinstance(value, torch.Tensor) and value.dim() >= 1 and len(value) == len(data),
            f"{name}_kwargs[{key!r}] must be a tensor with one row per datum ({len(data)}), "
            f"got {getattr(value, 'shape', type(value).__name__)}",
        )


def _schedule(schedule: Schedule) -> Callable[[int, int], float]:
    """The multiplier function of an ``lr_schedule`` argument."""
    if schedule is None:
        return _constant
    if callable(schedule):
        return schedule
    if schedule not in LR_SCHEDULES:
        raise TrainingError(
            f"unknown lr_schedule {schedule!r}; use one of {', '.join(LR_SCHEDULES)} "
            "or a function f(epoch, epochs) -> multiplier"
        )
    return LR_SCHEDULES[schedule]


def _make_optimizers(
    groups: dict[str, Iterable[torch.nn.Parameter]], settings: _Settings
) -> dict[str, torch.optim.Optimizer]:
    """One optimiser per parameter group of the objective."""
    rates = settings.lr if isinstance(settings.lr, dict) else dict.fromkeys(groups, settings.lr)
    _require(
        set(rates) == set(groups),
        f"lr must give one rate per parameter group {sorted(groups)}, got {sorted(rates)}",
    )
    optimizers = {}
    for name, params in groups.items():
        params = [p for p in params if p.requires_grad]
        _require(bool(params), f"parameter group {name!r} has no trainable parameters")
        optimizers[name] = OPTIMIZERS[settings.optimizer](
            params, lr=rates[name], weight_decay=settings.weight_decay
        )
    return optimizers


def _permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffle of epoch ``epoch``: a CPU permutation ``[n]`` seeded by ``(seed, epoch)``."""
    digest = hashlib.blake2b(f"{seed}:{epoch}".encode(), digest_size=8).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)
    return torch.randperm(n, generator=generator)


# =========================================================================== RNG state
def _rng_state() -> dict[str, Any]:
    """Every global RNG state, as tensors, numbers and lists (``weights_only``-safe)."""
    version, words, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": [version, list(words), gauss],
        "numpy": [torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`_rng_state`."""
    torch.set_rng_state(state["torch"])
    version, words, gauss = state["python"]
    random.setstate((version, tuple(words), gauss))
    keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _clone_state(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A detached copy of a model ``state_dict`` (on the same device)."""
    return {k: v.detach().clone() for k, v in state_dict.items()}


def _clone_tree(obj: Any) -> Any:
    """A copy of nested dicts / lists / tuples whose tensors are detached clones (an optimiser
    ``state_dict``); other leaves are immutable and shared. Much cheaper than ``deepcopy``,
    which matters when an epoch is a single step."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_clone_tree(v) for v in obj)
    return obj


# =========================================================================== the run
@dataclass
class _Run:
    """One training run: the model, its optimisers, the data and the run's state."""

    model: GenerativeModel
    objective: Objective
    train: torch.Tensor
    val: torch.Tensor | None
    settings: _Settings
    optimizers: dict[str, torch.optim.Optimizer]
    out_dir: Path | None
    extra: dict | None
    history: History = field(default_factory=History)
    epoch: int = 0  #: epochs completed
    best_state: dict[str, torch.Tensor] | None = None
    best_val: float = math.inf
    best_epoch: int | None = None
    bad_epochs: int = 0  #: epochs since the last validation improvement
    last_good: dict[str, Any] = field(default_factory=dict)
    train_kwargs: dict[str, torch.Tensor] = field(default_factory=dict)  #: per-datum, [N, ...]
    val_kwargs: dict[str, torch.Tensor] = field(default_factory=dict)  #: per-datum, [M, ...]

    @classmethod
    def start(
        cls,
        model: GenerativeModel,
        objective: Objective,
        train: torch.Tensor,
        val: torch.Tensor | None,
        settings: _Settings,
        device: Any,
        out_dir: str | Path | None,
        extra: dict | None,
    ) -> _Run:
        """Move model and data to the device (once) and build the optimisers."""
        device = resolve_device(device)
        model.to(device)
        val = None if val is None else val.to(device)
        optimizers = _make_optimizers(objective.param_groups(model), settings)
        out = None if out_dir is None else Path(out_dir)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        run = cls(model, objective, train.to(device), val, settings, optimizers, out, extra)
        run.last_good = run.snapshot()
        return run

    def set_kwargs(
        self,
        train_kwargs: dict[str, torch.Tensor] | None,
        val_kwargs: dict[str, torch.Tensor] | None,
    ) -> None:
        """Move the per-datum keyword arguments to the device (once)."""
        self.train_kwargs = {k: v.to(self.device) for k, v in (train_kwargs or {}).items()}
        self.val_kwargs = {k: v.to(self.device) for k, v in (val_kwargs or {}).items()}

    @property
    def device(self) -> torch.device:
        return self.train.device

    @property
    def checkpoint_path(self) -> Path:
        assert self.out_dir is not None
        return self.out_dir / "checkpoint.pt"

    # ------------------------------------------------------------------ the loop
    def fit(self, progress: bool) -> History:
        """Run the remaining epochs, restore the best state and write ``model.pt``."""
        epochs = self.settings.epochs
        logger.info(
            "training %s for epochs %d..%d on %s",
            self.model.name,
            self.epoch + 1,
            epochs,
            self.device,
        )
        with tqdm(
            total=epochs, initial=self.epoch, disable=None if progress else True, unit="epoch"
        ) as bar:
            while self.epoch < epochs and not self.stopped():
                record = self.run_epoch(self.epoch + 1)
                bar.update(1)
                bar.set_postfix(_postfix(record), refresh=False)
        return self.finish()

    def stopped(self) -> bool:
        """Whether early stopping has triggered."""
        patience = self.settings.patience
        if self.val is None or patience is None or self.bad_epochs < patience:
            return False
        logger.info("early stopping: no improvement for %d epochs", self.bad_epochs)
        return True

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        """Train and validate one epoch (1-based); record, check and checkpoint it."""
        start = time.perf_counter()
        rates = self.set_lr(epoch - 1)
        try:
            metrics = self.train_epoch(epoch)
            val_loss = self.validate()
        except (ValueError, RuntimeError) as err:  # e.g. a distribution refusing NaN params
            if self.parameters_finite():
                raise
            self.diverge(epoch, ["parameters"], err)
        values = self.summarise(metrics, val_loss)
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            self.diverge(epoch, bad)
        record = {"epoch": epoch, **values, "seconds": time.perf_counter() - start, **rates}
        self.accept(record)
        return record

    def set_lr(self, epoch: int) -> dict[str, float]:
        """Apply the schedule for the 0-based ``epoch``; returns the rates for the record."""
        factor = _schedule(self.settings.lr_schedule)(epoch, self.settings.epochs)
        lr = self.settings.lr
        rates = {}
        for name, optimizer in self.optimizers.items():
            rate = (lr[name] if isinstance(lr, dict) else lr) * factor
            for group in optimizer.param_groups:
                group["lr"] = rate
            rates[name] = rate
        if len(rates) == 1:
            return {"lr": next(iter(rates.values()))}
        return {f"lr_{name}": rate for name, rate in rates.items()}

    def train_epoch(self, epoch: int) -> dict[str, torch.Tensor]:
        """One pass over the shuffled data; batch-size-weighted metric means, on device."""
        self.model.train()
        order = _permutation(len(self.train), self.settings.seed, epoch).to(self.device)
        sums: dict[str, torch.Tensor] = {}
        for index in order.split(self.settings.batch_size):
            batch = self.train[index]
            kwargs = {k: v[index] for k, v in self.train_kwargs.items()}
            metrics = self.objective.step(
                self.model, batch, self.optimizers, self.settings.max_grad_norm, **kwargs
            )
            for name, value in metrics.items():
                weighted = value.detach() * len(index)
                sums[name] = sums[name] + weighted if name in sums else weighted
        return {name: total / len(self.train) for name, total in sums.items()}

    @torch.no_grad()
    def validate(self) -> torch.Tensor | None:
        """Mean validation loss over ``val`` (a device scalar), or ``None`` without ``val``."""
        if self.val is None:
            return None
        self.model.eval()
        total = torch.zeros((), device=self.device)
        size = self.settings.batch_size
        for i, chunk in enumerate(self.val.split(size)):
            kwargs = {k: v[i * size : (i + 1) * size] for k, v in self.val_kwargs.items()}
            losses = self.objective.validation_loss(self.model, chunk, **kwargs)
            if losses.shape != (len(chunk),):
                raise TrainingError(
                    f"{type(self.objective).__name__}.validation_loss must return per-datum "
                    f"values [{len(chunk)}], got shape {list(losses.shape)}"
                )
            total = total + losses.sum()
        return total / len(self.val)

    def summarise(
        self, metrics: dict[str, torch.Tensor], val_loss: torch.Tensor | None
    ) -> dict[str, float]:
        """The epoch's numbers on the host: the one synchronisation of the epoch."""
        named = {f"train_{k}": v for k, v in metrics.items()}
        if val_loss is not None:
            named["val_loss"] = val_loss
        finite = torch.stack([torch.isfinite(p).all() for p in self.model.parameters()]).all()
        values = list(named.values()) + [finite]
        dtype = torch.float64 if any(v.dtype == torch.float64 for v in values) else torch.float32
        host = torch.stack([v.reshape(()).to(dtype) for v in values]).tolist()
        result = dict(zip(named, host))
        if host[-1] != 1.0:
            result["parameters"] = math.nan
        return result

    def parameters_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.model.parameters())

    # ------------------------------------------------------------------ bookkeeping
    def accept(self, record: dict[str, Any]) -> None:
        """Record a good epoch, track the best state and write the checkpoint."""
        self.epoch = record["epoch"]
        self.history.append(record)
        val_loss = record.get("val_loss")
        if val_loss is not None and val_loss < self.best_val:
            self.best_val, self.best_epoch, self.bad_epochs = val_loss, self.epoch, 0
            self.best_state = _clone_state(self.model.state_dict())
        elif val_loss is not None:
            self.bad_epochs += 1
        self.last_good = self.snapshot()
        if self.out_dir is not None:
            atomic_save(self.checkpoint(), self.checkpoint_path)
            self.history_now().to_csv(self.out_dir / "history.csv")

    def snapshot(self) -> dict[str, Any]:
        """Copies of the model and optimiser states (the NaN guard's restore point)."""
        return {
            "model_state": _clone_state(self.model.state_dict()),
            "optimizers": {k: _clone_tree(o.state_dict()) for k, o in self.optimizers.items()},
        }

    def diverge(self, epoch: int, what: list[str], cause: BaseException | None = None) -> None:
        """Restore the last good state and raise a :class:`TrainingError` that says what to try."""
        self.model.load_state_dict(self.last_good["model_state"])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(_clone_tree(self.last_good["optimizers"][name]))
        where = f"the end of epoch {epoch - 1}" if epoch > 1 else "their state before training"
        saved = str(self.checkpoint_path) if self.out_dir is not None and epoch > 1 else "none"
        raise TrainingError(
            f"training diverged in epoch {epoch}: {', '.join(what)} became non-finite (NaN or "
            f"inf). The model and optimisers were restored to {where}; last good checkpoint: "
            f"{saved}. Try a lower learning rate (lr={self.settings.lr}), gradient clipping "
            "(e.g. max_grad_norm=1.0), or check the data"
        ) from cause

    def history_now(self) -> History:
        best_val = None if self.best_epoch is None else self.best_val
        return History(self.history.records, self.best_epoch, best_val)

    def finish(self) -> History:
        """Restore the best state (with validation) and write ``model.pt``."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        history = self.history_now()
        if self.out_dir is not None:
            training = {"objective": self.objective.get_config(), **history.to_dict()}
            training.pop("records")
            save_model(
                self.model,
                self.out_dir / "model.pt",
                extra={**(self.extra or {}), "training": training},
            )
        logger.info("training done: %d epochs, best epoch %s", len(history), history.best_epoch)
        return history

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self) -> dict[str, Any]:
        """The resumable state: plain tensors, numbers, strings, lists and dicts only."""
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            **self.identity(),
            **self.last_good,
            "epoch": self.epoch,
            "best_state": self.best_state,
            "best_epoch": self.best_epoch,
            "best_val": None if self.best_epoch is None else self.best_val,
            "bad_epochs": self.bad_epochs,
            "history": self.history.records,
            "rng": _rng_state(),
        }

    def identity(self) -> dict[str, str]:
        """What a checkpoint must match to be resumed by this run."""
        return {
            "model": self.model.name,
            "model_config": json.dumps(self.model.get_config(), sort_keys=True),
            "objective_config": json.dumps(self.objective.get_config(), sort_keys=True),
            "settings": self.settings.to_json(),
        }

    def restore(self, payload: Any) -> None:
        """Continue from a checkpoint written by :meth:`checkpoint` (RNG states included)."""
        self.check_resumable(payload)
        self.model.load_state_dict(payload["model_state"])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(payload["optimizers"][name])
        self.epoch, self.bad_epochs = payload["epoch"], payload["bad_epochs"]
        self.history = History(payload["history"])
        self.best_epoch = payload["best_epoch"]
        self.best_val = math.inf if payload["best_val"] is None else payload["best_val"]
        best = payload["best_state"]
        self.best_state = None if best is None else {k: v.to(self.device) for k, v in best.items()}
        self.last_good = self.snapshot()
        _set_rng_state(payload["rng"])
        logger.info("resuming %s after epoch %d", self.model.name, self.epoch)

    def check_resumable(self, payload: Any) -> None:
        """Refuse a checkpoint of another format, model, config or objective."""
        path = self.checkpoint_path
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(
                f"{str(path)!r} is not a ppgen training checkpoint: cannot resume"
            )
        mine = self.identity()
        for key in ("model", "model_config", "objective_config"):
            if payload.get(key) != mine[key]:
                raise CheckpointError(
                    f"cannot resume from {str(path)!r}: it was written for {key.replace('_', ' ')} "
                    f"{payload.get(key)}, this run has {mine[key]}. Use the same model and "
                    "objective, another out_dir, or resume=False to start afresh"
                )
        if payload.get("settings") != mine["settings"]:
            logger.warning(
                "resuming with different settings (was %s, now %s): the result will differ from "
                "an uninterrupted run",
                payload.get("settings"),
                mine["settings"],
            )


def _postfix(record: dict[str, Any]) -> dict[str, str]:
    """The progress bar's numbers: the training loss(es) and the validation loss."""
    keys = [k for k in record if k.startswith("train_") or k == "val_loss"]
    return {k.removeprefix("train_"): f"{record[k]:.4g}" for k in keys}
