"""Data-parallel training on several processes: what changes when ``torchrun`` starts the run.

The same loop runs on one process or many (:mod:`ppgen.engine.loop`); this module is the whole
difference. A :class:`Cluster` reads torchrun's environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``), joins the process group (``nccl`` on CUDA, ``gloo`` on CPU) and then:

* every rank draws the same epoch shuffle (seeded by ``(seed, epoch)``) and takes its rows of
  each global batch (:meth:`Cluster.shard`): the same number of steps on every rank, no hang on
  the last batch;
* the bound loss module (never the bare model, never ``nn.DataParallel``: Pyro's effect stack is
  a process global) runs through one ``DistributedDataParallel`` wrapper per update, each
  synchronising the gradients of its own parameter groups (:meth:`Cluster.wrap`);
* epoch summaries are all-reduced as sums and counts (:meth:`Cluster.sum`), so early stopping,
  the best state and the NaN/inf guard decide the same on every rank;
* rank 0 alone writes files and shows the progress bar; :meth:`Cluster.barrier` keeps the
  others from running ahead of a checkpoint.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ppgen.devices import resolve_device
from ppgen.errors import TrainingError

__all__ = ["Cluster"]

logger = logging.getLogger(__name__)


@dataclass
class Cluster:
    """This process's place among the processes training one model.

    Attributes:
        rank: global rank (0 writes files).
        world_size: number of processes.
        local_rank: rank on this machine (picks ``cuda:LOCAL_RANK``).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Cluster:
        """The cluster torchrun describes (one process when ``WORLD_SIZE`` is unset or 1);
        joins the default process group if the script has not already."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1 and not (dist.is_available() and dist.is_initialized()):
            return cls()
        if not dist.is_available():
            raise TrainingError("WORLD_SIZE > 1 but torch.distributed is not available")
        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend=backend)
            logger.info("joined the %s process group: rank %d of %d", backend,
                        dist.get_rank(), dist.get_world_size())
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return cls(dist.get_rank(), dist.get_world_size(), local)

    @property
    def active(self) -> bool:
        """Whether more than one process trains."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes files (rank 0)."""
        return self.rank == 0

    def device(self, requested: Any) -> torch.device:
        """The device of this rank: ``"auto"`` is ``cuda:LOCAL_RANK`` on a GPU machine."""
        if self.active and requested in (None, "auto", "cuda") and torch.cuda.is_available():
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
            return device
        return resolve_device(requested)

    def check_backend(self, device: torch.device) -> None:
        """Refuse a process group whose backend cannot move tensors of ``device``."""
        if self.active and device.type == "cpu" and dist.get_backend() == "nccl":
            raise TrainingError(
                "the process group uses nccl, which cannot reduce CPU tensors: train on "
                "device='cuda' or start the group with backend='gloo'"
            )

    def shard(self, index: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a global batch ``[B]`` (rank r takes rows r, r + W, ...)."""
        return index[self.rank :: self.world_size] if self.active else index

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of ``tensor`` over all ranks (in place; unchanged on one process)."""
        if self.active:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order (``[obj]`` on one process)."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def sync_state(self, module: nn.Module, parameters: bool = True) -> None:
        """Every parameter (unless ``parameters=False``) and buffer of ``module`` as rank 0 has
        it: models built before the engine seeds start from different random weights on each
        rank, and buffers that training changes (running statistics) are rank 0's at the end of
        every epoch — once an epoch rather than, as ``DistributedDataParallel`` would, before
        every step (a MADE's masks alone are megabytes)."""
        if not self.active:
            return
        tensors = [*module.parameters()] if parameters else []
        with torch.no_grad():
            for tensor in tensors + [*module.buffers()]:
                dist.broadcast(tensor, src=0)

    def block(self, n: int) -> slice:
        """This rank's contiguous block of ``n`` rows (for sharded evaluation)."""
        size = -(-n // self.world_size)
        return slice(min(self.rank * size, n), min((self.rank + 1) * size, n))

    def weighted_mean(self, values: dict[str, float], n: int) -> dict[str, float]:
        """Means over all ranks' rows of per-rank means ``values`` of ``n`` rows each; ``n``
        becomes the total."""
        if not self.active:
            return {**values, "n": n}
        keys = list(values)
        vector = torch.tensor([float(n), *(n * float(values[k]) for k in keys)],
                              dtype=torch.float64)
        if dist.get_backend() == "nccl":
            vector = vector.cuda()
        total = self.sum(vector).tolist()
        return {"n": int(total[0]), **{k: total[i + 1] / total[0] for i, k in enumerate(keys)}}

    def close(self) -> None:
        """Wait for every rank, then leave the process group (at the end of a command)."""
        if self.active and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.active:
            dist.barrier()

    def wrap(self, module: nn.Module, keep: set[int], find_unused: bool = False) -> nn.Module:
        """``module`` in a ``DistributedDataParallel`` wrapper that synchronises the gradients
        of the parameters in ``keep`` (ids) only — one wrapper per update, so players that step
        separately each synchronise their own gradients. ``find_unused``: some of them may get
        no gradient in a step (costs a graph search per step). Unchanged on one process."""
        if not self.active:
            return module
        ignore = [name for name, p in module.named_parameters() if id(p) not in keep]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, ignore)
        device = next(iter(module.parameters())).device
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused,
                                       forward_sync_buffers=False)
