"""The objective interface the training engine runs (concrete objectives: ``ppgen.inference``).

An objective owns *what* is optimised; the engine (:mod:`ppgen.engine`) owns *how*: batching,
epochs, validation, early stopping, checkpoints, devices and seeds. One engine runs every family:

* single-loss objectives (maximum likelihood, ELBO, IWAE, the diffusion loss) implement
  :meth:`Objective.loss` and inherit :meth:`Objective.step`;
* multi-optimiser objectives (adversarial training) return several parameter groups from
  :meth:`Objective.param_groups` and override :meth:`Objective.step` to update them in turn.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

__all__ = ["Objective"]


class Objective:
    """Base class of training objectives.

    Subclasses implement :meth:`loss` (a scalar to minimise for one batch) and
    :meth:`validation_loss` (per-datum values, lower is better, used for early stopping and
    model selection — a negative log-likelihood or bound in nats wherever one exists).
    """

    #: the name ``ppgen.fit(objective=...)`` and models' ``default_objective`` use
    name: str = "objective"

    def param_groups(self, model: torch.nn.Module) -> dict[str, Iterable[torch.nn.Parameter]]:
        """Parameter groups, one optimiser each (default: one group with every parameter)."""
        return {"model": model.parameters()}

    def loss(self, model: torch.nn.Module, batch: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Scalar training loss for one batch ``[B, ...]``.

        ``kwargs`` are per-datum keyword arguments of the programs (e.g. class labels
        ``y: [B]``), batched with the data by the engine; objectives forward them to the
        evaluation layer. The engine passes them only when there are any.
        """
        raise NotImplementedError

    def validation_loss(
        self, model: torch.nn.Module, batch: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        """Per-datum validation loss ``[B]`` (lower is better); ``kwargs`` as in :meth:`loss`."""
        raise NotImplementedError

    def step(
        self,
        model: torch.nn.Module,
        batch: torch.Tensor,
        optimizers: dict[str, torch.optim.Optimizer],
        max_grad_norm: float | None = None,
        **kwargs: Any,
    ) -> dict[str, torch.Tensor]:
        """One optimisation step; returns detached scalar metrics (no host synchronisation).

        ``kwargs``: per-datum keyword arguments of the batch, passed on to :meth:`loss`.
        """
        (optimizer,) = optimizers.values()
        optimizer.zero_grad(set_to_none=True)
        loss = self.loss(model, batch, **kwargs)
        loss.backward()
        if max_grad_norm is not None:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()
        return {"loss": loss.detach()}

    def get_config(self) -> dict:
        """JSON-able options of this objective (recorded with training runs)."""
        return {"name": self.name}
