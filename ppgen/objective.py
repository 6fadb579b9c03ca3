"""Objectives: loss modules the training engine runs (concrete objectives: ``ppgen.inference``).

An objective owns *what* is optimised; the engine (:mod:`ppgen.engine`) owns *how* a step runs:
``zero_grad``, ``backward``, gradient clipping, ``optimizer.step``, mixed precision, gradient
synchronisation across processes and the moving average of the weights. The pattern is Pyro's
(``Trace_ELBO()(model, guide)`` returns an ``ELBOModule``): an :class:`Objective` is an
``nn.Module`` whose own state — a critic network, a replay buffer, a running statistic — is
checkpointed with the run, and ``objective(model)`` binds it to a model as a :class:`LossModule`,
the ``nn.Module`` whose ``forward`` computes the losses of one step. The engine wraps that bound
module (never the model) in ``DistributedDataParallel`` when it runs on several processes.

* Single-loss objectives (maximum likelihood, ELBO, IWAE, the diffusion loss) implement
  :meth:`Objective.loss` and :meth:`Objective.validation_loss`; everything else has a default.
* Several players (adversarial training) name their parameter groups in
  :meth:`Objective.param_groups`, say which groups update on which global step in
  :meth:`Objective.updates` (e.g. a critic five times per generator step), and compute each
  update's loss in :meth:`Objective.losses`, which receives a :class:`StepContext`.
* Models without a density validate on a scalar metric (:meth:`Objective.validation_metric`).

Example:
    >>> objective = MyObjective()                # doctest: +SKIP
    >>> bound = objective(model)                 # a LossModule: model + objective state
    >>> out = bound(batch, StepContext(step=0, epoch=1, update=("model",)))  # doctest: +SKIP
    >>> out["loss"].backward()                   # the engine does this, not the objective
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

__all__ = ["Objective", "LossModule", "StepContext"]


@dataclass(frozen=True)
class StepContext:
    """Where a training step stands, handed to :meth:`Objective.losses`.

    Attributes:
        step: the global step (0-based, counted over the whole run and checkpointed, so a
            resumed run continues a k-step cycle where it stopped).
        epoch: the 1-based epoch the step belongs to.
        update: the parameter groups this loss updates (one entry of
            :meth:`Objective.updates`).
        rank: this process's rank (0 on one process).
        world_size: the number of processes training together (1 on one process).
    """

    step: int
    epoch: int
    update: tuple[str, ...]
    rank: int = 0
    world_size: int = 1


class Objective(nn.Module):
    """Base class of training objectives (an ``nn.Module``: its state is checkpointed).

    Subclasses implement :meth:`loss` (a scalar to minimise for one batch) and
    :meth:`validation_loss` (per-datum values, lower is better, used for early stopping and
    model selection — a negative log-likelihood or bound in nats wherever one exists).
    """

    #: the name ``ppgen.fit(objective=...)`` and models' ``default_objective`` use
    name: str = "objective"
    #: how :meth:`loss` reduces over the batch: ``"mean"`` or ``"sum"``; the engine uses it to
    #: make the gradient of a run on several processes equal to that of one process
    loss_reduction: ClassVar[str] = "mean"
    #: whether some parameters of an update may get no gradient in a step; on several
    #: processes the engine must then search the autograd graph every step to tell
    #: ``DistributedDataParallel`` (every zoo model uses all of its parameters)
    unused_parameters: ClassVar[bool] = False

    def __new__(cls, *args: Any, **kwargs: Any) -> Objective:
        # Objectives written before they became modules set attributes without calling
        # ``super().__init__()``; initialise the module first so they keep working.
        self = super().__new__(cls)
        nn.Module.__init__(self)
        return self

    def forward(self, model: nn.Module) -> LossModule:
        """Bind this objective to ``model``: ``objective(model)`` is a :class:`LossModule`."""
        return LossModule(model, self)

    # ----------------------------------------------------------------- players
    def param_groups(self, model: nn.Module) -> dict[str, Iterable[nn.Parameter]]:
        """Parameter groups by name, one optimiser each (default: one group ``"model"`` with
        every parameter of the model and of the objective)."""
        return {"model": [*model.parameters(), *self.parameters()]}

    def updates(self, step: int, groups: tuple[str, ...]) -> list[tuple[str, ...]]:
        """The updates of global step ``step``, in order: each is a tuple of parameter groups
        stepped together from one loss. ``groups`` are the names :meth:`param_groups` gave;
        the default steps them all together, once.

        Example (a critic five times per generator step, one batch each)::

            def updates(self, step, groups):
                return [("critic",)] + ([("generator",)] if step % 5 == 4 else [])
        """
        return [groups]

    def ema_parameters(self, model: nn.Module) -> Iterable[tuple[str, nn.Parameter]]:
        """The ``(name, parameter)`` pairs of the model averaged with ``ema`` (default: all)."""
        return model.named_parameters()

    # ----------------------------------------------------------------- losses
    def loss(self, model: nn.Module, batch: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Scalar training loss for one batch ``[B, ...]``.

        ``kwargs`` are per-datum keyword arguments of the programs (e.g. class labels
        ``y: [B]``), batched with the data by the engine; objectives forward them to the
        evaluation layer. The engine passes them only when there are any.
        """
        raise NotImplementedError

    def losses(
        self, model: nn.Module, batch: torch.Tensor, context: StepContext, **kwargs: Any
    ) -> dict[str, torch.Tensor]:
        """The losses of one update: ``{"loss": scalar to minimise, **detached metrics}``.

        The default is ``{"loss": self.loss(model, batch, **kwargs)}``; objectives with several
        players override this and branch on ``context.update``.
        """
        return {"loss": self.loss(model, batch, **kwargs)}

    def validation_loss(self, model: nn.Module, batch: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Per-datum validation loss ``[B]`` (lower is better); ``kwargs`` as in :meth:`loss`."""
        raise NotImplementedError

    def validation_metric(
        self, model: nn.Module, data: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor | None:
        """A scalar validation metric over the whole validation set (lower is better), for
        models without a density; ``None`` (the default) validates on the mean of
        :meth:`validation_loss` instead."""
        return None

    def get_config(self) -> dict:
        """JSON-able options of this objective (recorded with training runs)."""
        return {"name": self.name}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")


class LossModule(nn.Module):
    """A model bound to an objective (``objective(model)``): the module the engine runs and,
    on several processes, wraps in ``DistributedDataParallel``.

    Its parameters are the model's and the objective's, so gradients of a Pyro program that
    calls its networks directly still pass through the wrapper's ``forward``.

    Args:
        model: the model being trained.
        objective: the objective (its state travels with this module).
    """

    def __init__(self, model: nn.Module, objective: Objective) -> None:
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(
        self, batch: torch.Tensor, context: StepContext, kwargs: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """The losses of one update (:meth:`Objective.losses`)."""
        return self.objective.losses(self.model, batch, context, **kwargs)
