"""The analysis tools' variational fits, run by the one training engine (``ppgen.engine.train``).

The analysis tools fit small variational families: the per-datum best diagonal Gaussian ``q*``
of :mod:`ppgen.analysis.amortization` and the Pyro autoguides of :mod:`ppgen.analysis.vi`.
Both are full-batch Adam with a learning rate that decays exponentially from ``lr`` to
``lr / 100`` over the run, so the final state reflects the optimum rather than Adam's jitter.
Neither owns a loop: each hands an adapter :class:`~ppgen.GenerativeModel` (what is learned) and
an :class:`~ppgen.objective.Objective` (what is minimised) to :func:`fit_full_batch`, and the
engine owns the steps, the schedule, the NaN/inf guard (a non-finite loss or parameter raises
its :class:`~ppgen.errors.TrainingError` with the parameters restored) and the history — one
engine epoch is one full-batch step.

Example:
    >>> losses = fit_full_batch(q, objective, x, num_steps=300, lr=0.05)  # doctest: +SKIP
    >>> losses.shape  # doctest: +SKIP
    (300,)
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch

from ppgen import engine
from ppgen.objective import Objective
from ppgen.protocol import GenerativeModel

__all__ = ["decay_to_hundredth", "fit_full_batch"]


def decay_to_hundredth(epoch: int, epochs: int) -> float:
    """Learning-rate multiplier ``0.01 ** (epoch / epochs)``: 1 at the first step, ``1/100``
    at the end (what ``ExponentialLR(gamma=0.01 ** (1 / epochs))`` stepped once per epoch gives).
    """
    return 0.01 ** (epoch / epochs)


def fit_full_batch(
    model: GenerativeModel,
    objective: Objective,
    data: torch.Tensor,
    *,
    num_steps: int,
    lr: float,
    train_kwargs: dict[str, torch.Tensor] | None = None,
    progress: bool = False,
) -> np.ndarray:
    """``num_steps`` full-batch Adam steps of ``objective`` on ``model`` through the engine.

    The engine's seed is drawn from the caller's torch stream (seed it for reproducible fits);
    the global random states the engine re-seeds (torch, ``random``, NumPy) are restored
    afterwards, so the caller's streams go on as if the fit had drawn one number.

    Args:
        model: what is trained (in place, on ``data``'s device).
        objective: its loss for the batch ``[N, ...]`` (all of ``data``, in shuffled order).
        data: ``[N, ...]`` the engine's training rows.
        num_steps: optimisation steps (engine epochs); 0 leaves ``model`` as it is.
        lr: initial Adam learning rate (decays to ``lr / 100``, :func:`decay_to_hundredth`).
        train_kwargs: per-row tensors ``[N, ...]`` shuffled with ``data`` and passed to
            ``objective.loss`` (e.g. ``{"rows": arange(N)}``).
        progress: the engine's progress bar (one tick a step) on a terminal.

    Returns:
        ``[num_steps]`` the loss of each step (the engine history's ``train_loss``).

    Raises:
        TrainingError: a non-finite loss or parameter (``model`` is restored to the last
            finite step), or bad options.
    """
    if num_steps == 0:
        return np.empty(0)
    seed = int(torch.randint(2**31 - 1, ()))
    with _global_rng_kept(data.device):
        history = engine.train(
            model, objective, data, epochs=num_steps, batch_size=len(data), lr=lr,
            optimizer="adam", lr_schedule=decay_to_hundredth, seed=seed, device=data.device,
            progress=progress, train_kwargs=train_kwargs,
        )
    return np.asarray(history.column("train_loss"), dtype=float)


@contextlib.contextmanager
def _global_rng_kept(device: torch.device) -> Iterator[None]:
    """Restore torch's (CPU and ``device``), Python's and NumPy's random states on exit."""
    devices = [device.index or 0] if device.type == "cuda" else []
    python, numpy = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy)
