"""How one training step runs — the only place that does it (:class:`Stepper`).

For every update the objective schedules at this global step (one for a single-loss objective;
e.g. critic, then generator, for an adversarial one) the stepper zeroes the gradients of the
groups being updated, runs the bound loss module under the run's precision (through the data-
parallel wrapper of that update on several processes), back-propagates, clips each group's
gradient norm, steps each optimiser (through the gradient scaler in fp16) and moves the weight
average. Nothing here reads a value on the host, so a step never synchronises with the device.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ppgen.engine.distributed import Cluster
from ppgen.engine.ema import EMA
from ppgen.engine.optim import Optimizers
from ppgen.engine.precision import Precision
from ppgen.errors import TrainingError
from ppgen.objective import LossModule, StepContext

__all__ = ["Stepper"]


class Stepper:
    """Runs the updates of one global step.

    Args:
        bound: the model bound to its objective (``objective(model)``).
        optimizers: one optimiser per parameter group.
        cluster: the processes training together.
        precision: the precision of the networks' forward passes.
        ema: the weight average, or ``None``.
    """

    def __init__(self, bound: LossModule, optimizers: Optimizers, cluster: Cluster,
                 precision: Precision, ema: EMA | None) -> None:
        self.bound, self.optimizers, self.cluster = bound, optimizers, cluster
        self.precision, self.ema = precision, ema
        self.reset()

    def reset(self) -> None:
        """Forget the per-update wrappers (after the parameters changed: a network grew)."""
        self.wrappers: dict[tuple[str, ...], nn.Module] = {}
        averaged = set() if self.ema is None else {id(p) for p in self.ema.params.values()}
        self.averages = {name: any(id(p) in averaged for p in params)
                         for name, params in self.optimizers.params.items()}

    def wrapper(self, update: tuple[str, ...]) -> nn.Module:
        """The module that runs ``update``'s loss (its data-parallel wrapper on several
        processes, synchronising the gradients of the update's groups only)."""
        if update not in self.wrappers:
            keep = {id(p) for g in update for p in self.optimizers.params[g]}
            unused = self.bound.objective.unused_parameters
            self.wrappers[update] = self.cluster.wrap(self.bound, keep, unused)
        return self.wrappers[update]

    def step(self, batch: torch.Tensor, kwargs: dict[str, torch.Tensor], step: int, epoch: int,
             share: float) -> dict[str, torch.Tensor]:
        """Run every update of global ``step``; returns the detached metrics by name.

        ``share`` scales the loss so that averaging gradients over processes gives the gradient
        of the whole global batch (1 on one process and for equal shards).
        """
        groups = tuple(self.optimizers.by_group)
        metrics: dict[str, torch.Tensor] = {}
        for update in self.bound.objective.updates(step, groups):
            context = StepContext(step, epoch, update, self.cluster.rank, self.cluster.world_size)
            out = self.update(batch, kwargs, context, share)
            for name, value in out.items():
                key = name if name != "loss" or update == groups else f"loss_{'_'.join(update)}"
                metrics[key] = value
        return metrics

    def update(self, batch: torch.Tensor, kwargs: dict[str, torch.Tensor],
               context: StepContext, share: float) -> dict[str, torch.Tensor]:
        """One update: zero_grad, forward, backward, clip, optimiser step, weight average."""
        optimizers = [self.optimizers.by_group[g] for g in context.update]
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        with self.precision.training():
            try:
                out = self.wrapper(context.update)(batch, context, kwargs)
            except RuntimeError as err:
                if "finished reduction in the prior iteration" not in str(err):
                    raise
                raise TrainingError(
                    f"some parameters of the update {context.update} got no gradient in the "
                    "previous step, which data-parallel training must be told about: set "
                    f"`unused_parameters = True` on {type(self.bound.objective).__name__}"
                ) from err
        loss = out["loss"]
        scaler = self.precision.scaler
        scaler.scale(loss * share if share != 1.0 else loss).backward()
        for group, optimizer in zip(context.update, optimizers):
            max_norm = self.optimizers.specs[group].max_grad_norm
            if max_norm is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(self.optimizers.params[group], max_norm)
            scaler.step(optimizer)
        scaler.update()
        if self.ema is not None and any(self.averages[g] for g in context.update):
            self.ema.update()
        return {k: v.detach() for k, v in out.items()}


def loss_share(objective: Any, n_local: int, n_global: int, world_size: int) -> float:
    """The factor that makes the average of the ranks' gradients the global batch's gradient:
    ``n_local * W / n_global`` for a mean over the batch, ``W`` for a sum."""
    if world_size == 1:
        return 1.0
    if objective.loss_reduction == "sum":
        return float(world_size)
    return n_local * world_size / n_global
