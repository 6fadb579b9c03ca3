"""The replay buffer of persistent chains (:class:`ReplayBuffer`).

Persistent contrastive divergence (Tieleman 2008) keeps its negative chains between steps; Du &
Mordatch (2019) keep many more than a batch in a buffer, start each step's chains from a random
subset of it and restart a small share (the re-initialisation rate, 5%) from fresh noise so the
buffer never loses the regions the chains have left. The buffer is an ``nn.Module`` whose state
(the chains and which slots hold one) travels with the objective that owns it, so checkpoints
resume it exactly. Slots are drawn without replacement (``randperm``) and written back with
``index_copy_``; nothing reads a value on the host.

Example:
    >>> buffer = ReplayBuffer(100, reinit=0.05)
    >>> buffer.resize((2,), torch.device("cpu"), torch.float32)
    >>> start, slots = buffer.draw(torch.randn(8, 2))  # first draws: all fresh
    >>> buffer.push(slots, start + 1.0)
    >>> int(buffer.filled.sum())
    8
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ReplayBuffer"]


class ReplayBuffer(nn.Module):
    """Persistent chains ``[size, *event_shape]`` with a re-initialisation rate.

    Args:
        size: number of chains kept (at least one batch).
        reinit: probability that a drawn chain restarts from the fresh points instead.

    Buffers (checkpointed): ``samples [size, *event_shape]`` and ``filled [size]`` (bool: the
    slot holds a chain; empty slots always restart from fresh points).
    """

    def __init__(self, size: int = 10_000, reinit: float = 0.05) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"the replay buffer needs size >= 1, got {size}")
        if not 0.0 <= reinit <= 1.0:
            raise ValueError(f"reinit is a probability in [0, 1], got {reinit}")
        self.size, self.reinit = size, reinit
        self.register_buffer("samples", torch.zeros(0))
        self.register_buffer("filled", torch.zeros(0, dtype=torch.bool))

    def resize(self, event_shape: tuple[int, ...], device: torch.device,
               dtype: torch.dtype) -> None:
        """Allocate empty slots for data of ``event_shape`` (a no-op when they fit already)."""
        shape = (self.size, *event_shape)
        if tuple(self.samples.shape) == shape and self.samples.device == device:
            return
        self.samples = torch.zeros(shape, device=device, dtype=dtype)
        self.filled = torch.zeros(self.size, device=device, dtype=torch.bool)

    def draw(self, fresh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Start points for ``n = len(fresh)`` chains: kept chains from ``n`` random slots,
        ``fresh: [n, *event_shape]`` where a slot is empty or restarts (probability
        ``reinit``). Returns ``(start [n, *event_shape], slots [n])``."""
        n = fresh.shape[0]
        if n > self.size:
            raise ValueError(f"a batch of {n} chains needs a replay buffer of at least {n} "
                             f"slots (size={self.size})")
        slots = torch.randperm(self.size, device=self.samples.device)[:n]
        restart = torch.rand(n, device=fresh.device) < self.reinit
        restart = restart | ~self.filled[slots]
        keep = self.samples[slots]
        mask = restart.reshape(n, *([1] * (fresh.dim() - 1)))
        return torch.where(mask, fresh.to(keep.dtype), keep), slots

    @torch.no_grad()
    def push(self, slots: torch.Tensor, x: torch.Tensor) -> None:
        """Write the chains ``x: [n, *event_shape]`` back to ``slots: [n]``."""
        self.samples.index_copy_(0, slots, x.detach().to(self.samples.dtype))
        self.filled.index_fill_(0, slots, True)

    def extra_repr(self) -> str:
        return f"size={self.size}, reinit={self.reinit}"
