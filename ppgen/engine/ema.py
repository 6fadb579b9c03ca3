"""An exponential moving average of chosen model weights (``ema=0.999``).

After every optimiser step the average moves towards the weights, ``avg <- decay * avg +
(1 - decay) * w``. The average is what validation scores, what the best state keeps and what
``model.pt`` holds; the raw weights stay in the training checkpoint so that a resumed run goes on
exactly. Which weights are averaged is the objective's choice
(:meth:`~ppgen.objective.Objective.ema_parameters`, e.g. a GAN's generator only).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
from torch import nn

from ppgen.errors import TrainingError

__all__ = ["EMA"]


class EMA:
    """The moving average of ``named`` parameters.

    Args:
        decay: in ``(0, 1)``; 0.999 averages over about the last thousand steps.
        named: ``(name, parameter)`` pairs of the model to average.
    """

    def __init__(self, decay: float, named: Iterable[tuple[str, nn.Parameter]]) -> None:
        if not (isinstance(decay, float | int) and 0.0 < decay < 1.0):
            raise TrainingError(f"ema must be a decay in (0, 1), e.g. 0.999, got {decay!r}")
        self.decay = float(decay)
        self.params: dict[str, nn.Parameter] = {}
        self.average: dict[str, torch.Tensor] = {}
        self.track(named)

    def track(self, named: Iterable[tuple[str, nn.Parameter]]) -> None:
        """Average these parameters (new ones — a grown network's — start at their value)."""
        params = dict(named)
        self.average = {
            name: self.average[name] if name in self.average and
            self.average[name].shape == p.shape else p.detach().clone()
            for name, p in params.items()
        }
        self.params = params

    @torch.no_grad()
    def update(self) -> None:
        """One step of the average (no host synchronisation)."""
        torch._foreach_lerp_(list(self.average.values()),
                             [p.detach() for p in self.params.values()], 1.0 - self.decay)

    @contextlib.contextmanager
    @torch.no_grad()
    def applied(self) -> Iterator[None]:
        """The averaged weights in the model inside the block, the raw ones after it."""
        raw = {name: p.detach().clone() for name, p in self.params.items()}
        for name, p in self.params.items():
            p.copy_(self.average[name])
        try:
            yield
        finally:
            for name, p in self.params.items():
                p.copy_(raw[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: v.clone() for name, v in self.average.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.params) - set(state)
        if missing:
            raise TrainingError(f"the checkpoint's weight average lacks {sorted(missing)}")
        self.average = {name: state[name].to(p.device).clone() for name, p in self.params.items()}
