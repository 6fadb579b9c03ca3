"""The training engine: one loop for every family, on one process or many (:func:`train`).

The engine owns *how* a model is trained; an :class:`~ppgen.objective.Objective` (a loss module,
concrete ones in ``ppgen.inference``) owns *what* is optimised. ``ppgen.fit`` picks the model's
objective and calls :func:`train`. The pieces, one module each:

* :mod:`~ppgen.engine.loop` — the loop: epochs, validation, early stopping with best-state
  restore, the NaN/inf guard, checkpoints, the progress bar;
* :mod:`~ppgen.engine.step` — one step: for each update the objective schedules (several
  players, e.g. a critic k times per generator step), ``zero_grad``, forward, ``backward``,
  clipping, ``optimizer.step`` and the weight average; nothing else does these;
* :mod:`~ppgen.engine.optim` — per-group optimisers from plain JSON, schedules with warm-up at
  step granularity;
* :mod:`~ppgen.engine.precision` — ``bf16``/``fp16`` autocast around the networks only;
* :mod:`~ppgen.engine.ema` — the exponential moving average of the weights;
* :mod:`~ppgen.engine.distributed` — what changes under ``torchrun``: sharded batches, one
  ``DistributedDataParallel`` wrapper per update around the bound loss module, all-reduced
  summaries, rank 0 writes;
* :mod:`~ppgen.engine.trained` — what training changes (weights, objective state, optimisers,
  weight average, loss scale): restore points, checkpoints, resume;
* :mod:`~ppgen.engine.state` — where a run stands (epochs, global step, best state, history)
  and what a checkpoint must match to be resumed.

Files written when ``out_dir`` is given (by rank 0):

* ``checkpoint.pt`` — everything needed to resume exactly (raw weights, objective state,
  optimiser states, weight average, global step, best state, every rank's RNG states, history,
  configs), rewritten atomically after every good epoch; loads with ``weights_only=True``;
* ``history.csv`` — one row per epoch (:class:`~ppgen.history.History`);
* ``model.pt`` — the final model (the best state; the weight average with ``ema``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ppgen.checkpoint import safe_load
from ppgen.engine.loop import Run, permutation
from ppgen.engine.optim import LR_SCHEDULES, OPTIMIZERS, Schedule
from ppgen.engine.precision import PRECISIONS
from ppgen.engine.settings import LearningRate, Settings, check_kwargs
from ppgen.history import History
from ppgen.objective import Objective, StepContext
from ppgen.protocol import GenerativeModel

__all__ = ["train", "History", "OPTIMIZERS", "LR_SCHEDULES", "PRECISIONS", "StepContext",
           "permutation"]


def train(
    model: GenerativeModel,
    objective: Objective,
    train: torch.Tensor,
    val: torch.Tensor | None = None,
    *,
    epochs: int = 100,
    batch_size: int = 128,
    lr: LearningRate = 1e-3,
    optimizer: str | dict[str, Any] = "adam",
    weight_decay: float = 0.0,
    max_grad_norm: float | None = None,
    patience: int | None = None,
    device: str | torch.device | None = "auto",
    seed: int = 0,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    lr_schedule: Schedule = None,
    warmup_steps: int = 0,
    ema: float | None = None,
    precision: str = "fp32",
    extra: dict | None = None,
    train_kwargs: dict[str, torch.Tensor] | None = None,
    val_kwargs: dict[str, torch.Tensor] | None = None,
) -> History:
    """Train ``model`` by minimising ``objective`` on ``train``; validate on ``val``.

    Started by ``torchrun --nproc_per_node=N``, the same call trains on N processes: each takes
    its rows of every global batch of ``batch_size`` rows, gradients are averaged, and the
    result equals a one-process run with the same global batch (to float tolerance).

    Args:
        model: the model; moved to ``device`` and trained in place.
        objective: what to minimise (:class:`~ppgen.objective.Objective`).
        train: training data ``[N, *event_shape]``, already checked by ``model.check_data``.
        val: validation data ``[M, *event_shape]``; enables early stopping and best-state
            restore (the lowest mean ``objective.validation_loss``, or
            ``objective.validation_metric`` for models without a density).
        epochs: total number of epochs (with ``resume``, including those already run).
        batch_size: global batch: data per optimisation step over all processes (the last
            batch of an epoch may be smaller).
        lr: learning rate, or a dict of rates by parameter group
            (``objective.param_groups(model)``).
        optimizer: ``"adam"``, ``"adamw"``, ``"sgd"`` or ``"rmsprop"`` for every group, or
            per-group settings as plain JSON, e.g. ``{"critic": {"name": "adam", "lr": 1e-4,
            "betas": [0.0, 0.9]}}`` (keys: ``name``, ``lr``, ``weight_decay``, ``schedule``,
            ``warmup_steps``, ``max_grad_norm``, and the torch optimiser's own options).
        weight_decay: L2 penalty (decoupled for ``"adamw"``).
        max_grad_norm: clip the gradient norm of each group to this value.
        patience: stop after this many epochs without a validation improvement.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...; under torchrun ``"auto"`` is
            ``cuda:LOCAL_RANK`` (see :func:`ppgen.devices.resolve_device`).
        seed: seeds torch, ``random`` and NumPy (``seed + rank``) at the start of a fresh run,
            and the shuffles (the same on every rank).
        out_dir: folder for ``checkpoint.pt``, ``history.csv`` and ``model.pt``.
        resume: continue from ``out_dir/checkpoint.pt`` exactly where it stopped.
        progress: show a progress bar over epochs (only on a terminal, only on rank 0).
        lr_schedule: ``None``, a name in :data:`LR_SCHEDULES`, or ``f(step, total_steps)``
            returning the multiplier of ``lr`` at the 0-based global step.
        warmup_steps: linear warm-up of the learning rate over the first steps.
        ema: decay of an exponential moving average of the weights (e.g. ``0.999``); the
            average is validated, kept as the best state and written to ``model.pt``.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` for the networks of a training step
            (likelihoods, log-determinants and bounds stay fp32; validation runs in fp32).
        extra: JSON-able metadata stored in ``model.pt`` (e.g. ``DataInfo.to_dict()``).
        train_kwargs: per-datum keyword arguments of the programs (e.g. ``{"y": labels}``),
            tensors ``[N, ...]`` batched with ``train`` (same shuffle, same batches) and passed
            to the objective as ``objective.loss(model, batch, **kwargs)``.
        val_kwargs: the same for ``val`` (``[M, ...]``, same chunks), passed to
            ``objective.validation_loss(model, chunk, **kwargs)``.

    Returns:
        The :class:`History`; the model holds the best state (lowest validation loss) when
        ``val`` is given, the last state (or its average with ``ema``) otherwise.

    Raises:
        TrainingError: bad arguments, or a non-finite loss or parameter (the model and
            optimisers are then restored to the last good epoch, which is also on disk).
        CheckpointError: ``resume`` without a usable checkpoint for this model and objective.

    Example:
        >>> history = train(model, objective, x_train, x_val, patience=5)  # doctest: +SKIP
        >>> history.best_epoch, history.best_val  # doctest: +SKIP
    """
    settings = Settings(epochs, batch_size, lr, optimizer, weight_decay, max_grad_norm,
                        patience, seed, lr_schedule, warmup_steps, ema, precision)
    settings.check(train, val, out_dir, resume)
    check_kwargs(train_kwargs, train, "train")
    check_kwargs(val_kwargs, val, "val")
    run = Run(model, objective, train, val, settings, device, out_dir, extra,
              (train_kwargs, val_kwargs))
    if resume:
        run.restore(safe_load(run.checkpoint_path, "cpu", what="training checkpoint"))
    else:
        run.start_fresh()
    return run.fit(progress)
