"""The training loop (:class:`Run`): epochs of steps, validation, early stopping, checkpoints.

What is checkpointed lives in :class:`~ppgen.engine.state.Progress` (where the run stands) and
:class:`~ppgen.engine.trained.Trained` (what it trains); how one step
runs lives in :class:`~ppgen.engine.step.Stepper`; what differs on several processes lives in
:class:`~ppgen.engine.distributed.Cluster`. What is left is the loop a newcomer reads:

``fit``: for each epoch, ``train_epoch`` (the shuffled global batches, this rank's rows of each,
one ``Stepper.step`` per batch) then ``validate`` (per-datum losses on this rank's rows, or the
objective's scalar metric, under the weight average), then ``summarise`` (the epoch's one host
synchronisation, all-reduced), then ``accept`` (best state, restore point, checkpoint) or
``diverge`` (restore the last good epoch and raise).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import time
from pathlib import Path
from typing import Any

import pyro
import torch
from tqdm.auto import tqdm

from ppgen.checkpoint import atomic_save, save_model
from ppgen.conditions import take_rows
from ppgen.engine.distributed import Cluster
from ppgen.engine.ema import EMA
from ppgen.engine.optim import Optimizers, group_specs
from ppgen.engine.precision import Precision
from ppgen.engine.rng import rng_state, set_rng_state
from ppgen.engine.settings import Settings
from ppgen.engine.state import FORMAT, VERSION, Progress, check_resumable, identity
from ppgen.engine.step import Stepper, loss_share
from ppgen.engine.trained import Trained
from ppgen.errors import TrainingError
from ppgen.history import History
from ppgen.objective import Objective
from ppgen.protocol import GenerativeModel

__all__ = ["Run", "permutation"]

logger = logging.getLogger(__name__)


def permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffle of epoch ``epoch``: a CPU permutation ``[n]`` seeded by ``(seed, epoch)``,
    the same on every rank."""
    digest = hashlib.blake2b(f"{seed}:{epoch}".encode(), digest_size=8).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)
    return torch.randperm(n, generator=generator)


class Run:
    """One training run: the bound model, its optimisers, the data and where it stands."""

    def __init__(self, model: GenerativeModel, objective: Objective, train: torch.Tensor,
                 val: torch.Tensor | None, settings: Settings, device: Any,
                 out_dir: str | Path | None, extra: dict | None,
                 kwargs: tuple[dict | None, dict | None] = (None, None)) -> None:
        self.cluster = Cluster.from_env()
        self.device = self.cluster.device(device)
        self.cluster.check_backend(self.device)
        self.model, self.objective, self.settings = model, objective, settings
        self.bound = objective(model.to(self.device)).to(self.device)
        self.train, self.val = train.to(self.device), None if val is None else val.to(self.device)
        self.train_kwargs = {k: v.to(self.device) for k, v in (kwargs[0] or {}).items()}
        self.val_kwargs = {k: v.to(self.device) for k, v in (kwargs[1] or {}).items()}
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.extra = extra
        groups = objective.param_groups(model)
        self.optimizers = Optimizers(group_specs(
            groups, settings.optimizer, settings.lr, settings.weight_decay,
            settings.lr_schedule, settings.warmup_steps, settings.max_grad_norm))
        self.optimizers.build(groups)
        self.precision = Precision(settings.precision, self.device)
        self.precision.install(self.bound)
        self.ema = None if settings.ema is None else EMA(settings.ema,
                                                         objective.ema_parameters(model))
        self.stepper = Stepper(self.bound, self.optimizers, self.cluster, self.precision, self.ema)
        self.trained = Trained(model, objective, self.optimizers, self.ema, self.precision.scaler)
        self.progress = Progress()
        self.batches = self._batches_per_epoch()
        if self.out_dir is not None and self.cluster.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self.last_good = self.trained.snapshot(self.progress.step)

    def _batches_per_epoch(self) -> int:
        n, size, world = len(self.train), self.settings.batch_size, self.cluster.world_size
        batches = math.ceil(n / size)
        if world > 1 and n % size and n % size < world:
            batches -= 1  # a last global batch smaller than the world is dropped
        if batches < 1:
            raise TrainingError(f"{n} training rows cannot feed {world} processes: use more "
                                "data or fewer processes")
        return batches

    @property
    def checkpoint_path(self) -> Path:
        assert self.out_dir is not None
        return self.out_dir / "checkpoint.pt"

    # ------------------------------------------------------------------ start
    def start_fresh(self) -> None:
        """Seed (``seed + rank``) and run the model's data-dependent initialisation on the
        first global batch, the same rows on every rank, before any step."""
        pyro.set_rng_seed(self.settings.seed + self.cluster.rank)
        self.cluster.sync_state(self.bound)
        index = permutation(len(self.train), self.settings.seed, 1)[: self.settings.batch_size]
        index = index.to(self.device)
        with torch.random.fork_rng(devices=self._cuda_devices()), torch.no_grad():
            self.model.initialize(self.train[index], **take_rows(self.train_kwargs, index))
        self.last_good = self.trained.snapshot(self.progress.step)

    def _cuda_devices(self) -> list[int]:
        return [self.device.index or 0] if self.device.type == "cuda" else []

    def rebuild(self) -> None:
        """The parameters changed (a network grew): new optimisers (old state carried over),
        weight average, autocast layers and data-parallel wrappers."""
        self.cluster.sync_state(self.bound)
        self.optimizers.build(self.objective.param_groups(self.model))
        if self.ema is not None:
            self.ema.track(self.objective.ema_parameters(self.model))
        self.precision.install(self.bound)
        self.stepper.reset()

    # ------------------------------------------------------------------ the loop
    def fit(self, progress: bool) -> History:
        """Run the remaining epochs, restore the best state and write ``model.pt``."""
        epochs = self.settings.epochs
        logger.info("training %s for epochs %d..%d on %s%s", self.model.name,
                    self.progress.epoch + 1, epochs, self.device,
                    f" (rank {self.cluster.rank} of {self.cluster.world_size})"
                    if self.cluster.active else "")
        show = progress and self.cluster.is_main
        try:
            with tqdm(total=epochs, initial=self.progress.epoch, disable=None if show else True,
                      unit="epoch") as bar:
                while self.progress.epoch < epochs and not self.stopped():
                    record = self.run_epoch(self.progress.epoch + 1)
                    bar.update(1)
                    bar.set_postfix(_postfix(record), refresh=False)
            return self.finish()
        finally:
            self.precision.remove()

    def stopped(self) -> bool:
        stop = self.progress.stopped(self.settings.patience, self.val is not None)
        if stop:
            logger.info("early stopping: no improvement for %d epochs", self.progress.bad_epochs)
        return stop

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        """Train and validate one epoch (1-based); record, check and checkpoint it."""
        start = time.perf_counter()
        try:
            sums, counts, rates = self.train_epoch(epoch)
            val = self.validate()
        except (ValueError, RuntimeError) as err:  # e.g. a distribution refusing NaN params
            if all(bool(torch.isfinite(p).all()) for p in self.bound.parameters()):
                raise
            self.diverge(epoch, ["parameters"], err)
        values = self.summarise(sums, counts, val)
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            self.diverge(epoch, bad)
        record = {"epoch": epoch, **values, "seconds": time.perf_counter() - start, **rates}
        self.accept(record)
        return record

    def train_epoch(self, epoch: int) -> tuple[dict, dict, dict[str, float]]:
        """One pass over the shuffled global batches; metric sums and row counts (on device)."""
        self.bound.train()
        size, total = self.settings.batch_size, self.settings.epochs * self.batches
        order = permutation(len(self.train), self.settings.seed, epoch).to(self.device)
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        rates: dict[str, float] = {}
        for i in range(self.batches):
            step = self.progress.step
            if self.model.grow_to(step):
                self.rebuild()
            applied = self.optimizers.set_step(step, total)
            rates = rates or applied  # the history records each epoch's first rates
            index = order[i * size : (i + 1) * size]
            local = self.cluster.shard(index)
            share = loss_share(self.objective, len(local), len(index), self.cluster.world_size)
            metrics = self.stepper.step(self.train[local],
                                        take_rows(self.train_kwargs, local),
                                        step, epoch, share)
            for name, value in metrics.items():
                weighted = value * len(local)
                sums[name] = sums[name] + weighted if name in sums else weighted
                counts[name] = counts.get(name, 0) + len(local)
            self.progress.step = step + 1
        self.cluster.sync_state(self.bound, parameters=False)  # running statistics: rank 0's
        return sums, counts, _rate_names(rates)

    @torch.no_grad()
    def validate(self) -> tuple[torch.Tensor, int] | None:
        """The sum of this rank's validation losses and their count, or the objective's scalar
        metric (count 1); ``None`` without validation data. Runs in fp32 under the average."""
        if self.val is None:
            return None
        self.bound.eval()
        with self.ema.applied() if self.ema is not None else contextlib.nullcontext():
            metric = self.objective.validation_metric(self.model, self.val, **self.val_kwargs)
            if metric is not None:
                return metric.detach().reshape(()), 1
            return self._validation_sum()

    def _validation_sum(self) -> tuple[torch.Tensor, int]:
        val, kwargs = self.val, self.val_kwargs
        if self.cluster.active:
            rows = self.cluster.shard(torch.arange(len(val), device=self.device))
            val, kwargs = val[rows], take_rows(kwargs, rows)
        total = torch.zeros((), device=self.device)
        size = self.settings.batch_size
        for i, chunk in enumerate(val.split(size)):
            chunk_kwargs = take_rows(kwargs, slice(i * size, (i + 1) * size))
            losses = self.objective.validation_loss(self.model, chunk, **chunk_kwargs)
            if losses.shape != (len(chunk),):
                raise TrainingError(
                    f"{type(self.objective).__name__}.validation_loss must return per-datum "
                    f"values [{len(chunk)}], got shape {list(losses.shape)}; objectives of "
                    "models without a density implement validation_metric instead"
                )
            total = total + losses.sum()
        return total, len(val)

    def summarise(self, sums: dict[str, torch.Tensor], counts: dict[str, int],
                  val: tuple[torch.Tensor, int] | None) -> dict[str, float]:
        """The epoch's numbers on the host, summed over ranks: its one synchronisation."""
        finite = torch.stack([torch.isfinite(p).all() for p in self.bound.parameters()]).all()
        values = [*sums.values(), finite]
        if val is not None:
            values.append(val[0])
        host_counts = [*counts.values(), 1] + ([val[1]] if val is not None else [])
        vector = torch.stack([v.reshape(()).to(torch.float64) for v in values])
        vector = torch.cat([vector, torch.tensor(host_counts, dtype=torch.float64,
                                                 device=self.device)])
        host = self.cluster.sum(vector).tolist()
        n = len(values)
        totals, sizes = host[:n], host[n:]
        result = {f"train_{k}": totals[i] / sizes[i] for i, k in enumerate(sums)}
        if val is not None:
            result["val_loss"] = totals[-1] / sizes[-1]
        if totals[len(sums)] != self.cluster.world_size:
            result["parameters"] = math.nan
        return result

    # ------------------------------------------------------------------ bookkeeping
    def accept(self, record: dict[str, Any]) -> None:
        """Record a good epoch, track the best state and write the checkpoint."""
        self.progress.record(record, self.trained.averaged)
        self.last_good = self.trained.snapshot(self.progress.step)
        if self.out_dir is None:
            return
        payload = self.checkpoint()  # every rank: the RNG states are gathered
        if self.cluster.is_main:
            atomic_save(payload, self.checkpoint_path)
            self.progress.history_now().to_csv(self.out_dir / "history.csv")
        self.cluster.barrier()

    def diverge(self, epoch: int, what: list[str], cause: BaseException | None = None) -> None:
        """Restore the last good state and raise a :class:`TrainingError` that says what to try."""
        self.progress.step = self.trained.load(self.last_good)
        where = f"the end of epoch {epoch - 1}" if epoch > 1 else "their state before training"
        saved = str(self.checkpoint_path) if self.out_dir is not None and epoch > 1 else "none"
        raise TrainingError(
            f"training diverged in epoch {epoch}: {', '.join(what)} became non-finite (NaN or "
            f"inf). The model and optimisers were restored to {where}; last good checkpoint: "
            f"{saved}. Try a lower learning rate (lr={self.settings.lr}), gradient clipping "
            "(e.g. max_grad_norm=1.0), or check the data"
        ) from cause

    def finish(self) -> History:
        """Restore the best state (the average without validation) and write ``model.pt``."""
        best = self.progress.best_state
        if best is not None and best.keys() == self.model.state_dict().keys():
            self.model.load_state_dict(best)
        elif best is not None:
            logger.warning("the network grew after its best epoch: keeping the last state")
        elif self.ema is not None:
            self.model.load_state_dict(self.trained.averaged())
        history = self.progress.history_now()
        if self.out_dir is not None and self.cluster.is_main:
            training = {"objective": self.objective.get_config(), **history.to_dict()}
            training.pop("records")
            save_model(self.model, self.out_dir / "model.pt",
                       extra={**(self.extra or {}), "training": training})
        self.cluster.barrier()
        logger.info("training done: %d epochs, best epoch %s", len(history), history.best_epoch)
        return history

    # ------------------------------------------------------------------ checkpoints
    def identity(self) -> dict[str, str]:
        return identity(self.model, self.objective,
                        self.settings.to_json(self.optimizers.to_json()))

    def checkpoint(self) -> dict[str, Any]:
        """The resumable state: plain tensors, numbers, strings, lists and dicts only."""
        return {
            "format": FORMAT,
            "version": VERSION,
            **self.identity(),
            **self.last_good,
            **self.progress.to_dict(),
            "world_size": self.cluster.world_size,
            "rng": self.cluster.gather(rng_state()),
        }

    def restore(self, payload: Any) -> None:
        """Continue from a checkpoint written by :meth:`checkpoint` (RNG states included)."""
        check_resumable(payload, self.checkpoint_path, self.identity())
        # the shape the weights were saved in: that of the last step taken (the loop grows to
        # the next step's shape itself, drawing any new weights from the restored RNG, as the
        # uninterrupted run did)
        if self.model.grow_to(max(payload["step"] - 1, 0)):
            self.rebuild()
        self.trained.load(payload)
        self.progress = Progress.from_dict(payload, self.device)
        self.last_good = self.trained.snapshot(self.progress.step)
        states = payload["rng"]
        if len(states) == self.cluster.world_size:
            set_rng_state(states[self.cluster.rank])
        else:
            logger.warning("the checkpoint was written by %d processes, this run has %d: random "
                           "streams restart from the seed", len(states), self.cluster.world_size)
            pyro.set_rng_seed(self.settings.seed + self.cluster.rank + 7919 * self.progress.epoch)
        logger.info("resuming %s after epoch %d (step %d)", self.model.name,
                    self.progress.epoch, self.progress.step)


def _rate_names(rates: dict[str, float]) -> dict[str, float]:
    """The history's learning-rate columns: ``lr`` for one group, ``lr_<group>`` for several."""
    if len(rates) == 1:
        return {"lr": next(iter(rates.values()))}
    return {f"lr_{name}": rate for name, rate in rates.items()}


def _postfix(record: dict[str, Any]) -> dict[str, str]:
    """The progress bar's numbers: the training loss(es) and the validation loss."""
    keys = [k for k in record if k.startswith("train_") or k == "val_loss"]
    return {k.removeprefix("train_"): f"{record[k]:.4g}" for k in keys}
