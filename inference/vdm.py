"""The objective of Variational Diffusion Models (Kingma, Salimans, Poole & Ho, 2021,
arXiv:2107.00630): the continuous-time bound itself.

``"vdm"`` (:class:`VDMObjective`) minimises, per datum and in nats, ``KL(q(z_1 | x) || N(0, I))
- log p(x | z_0) + 0.5 gamma'(t) ||eps - eps^(z_t)||^2`` with ``t`` from the paper's
low-discrepancy sampler (:func:`~ppgen.diffusion.continuous.low_discrepancy_times`), so every
parameter — the network, the schedule's endpoints — follows the bound. The schedule's *shape*
does not change the continuous-time bound, only the variance of its estimate: by default it
follows the gradient of ``E[L^2]`` (the paper's section 5.2 and appendix I.2: with ``E[L]``
fixed, that is the gradient of the variance), routed by a backward hook that multiplies the
gradient reaching the shape by twice each time's loss.

The schedule's parameters are their own parameter group, ``"schedule"`` (no weight decay on
``gamma_0``, ``gamma_1``: set it per group, e.g. ``optimizer={"schedule": {"weight_decay":
0}}``), stepped together with ``"model"`` from the one loss.

Validation is a stratified unbiased estimate of the reported ``T``-step bound
(:func:`~ppgen.diffusion.continuous.discrete_estimate`; ``T`` = the model's ``num_steps``),
about ``validation_steps`` network passes per datum, under draws seeded the same way every
epoch (common random numbers), like the other diffusion objectives. It runs with argument
validation off (the engine validates the data once, up front), so a step never waits on the
host.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyro
import torch
from torch import nn

from ppgen.diffusion import LearnedSchedule
from ppgen.diffusion.continuous import LogSNRModel, continuous_terms, discrete_estimate
from ppgen.errors import ModelError
from ppgen.objective import Objective

__all__ = ["VDMObjective", "VDM_OBJECTIVES"]


def _log_snr_model(model: Any) -> LogSNRModel:
    if not (isinstance(model, LogSNRModel) and isinstance(model.schedule, LearnedSchedule)):
        raise ModelError(
            f"the 'vdm' objective trains models on a learned log-SNR schedule (VDM); "
            f"{type(model).__name__} has no schedule and denoiser of that kind: choose its own "
            "objective (model.default_objective)"
        )
    return model


class VDMObjective(Objective):
    """The continuous-time VDM bound, averaged over the batch.

    Args:
        num_times: times per datum in one step's diffusion loss.
        variance_gradient: the schedule's shape follows the gradient of the loss's variance
            (the paper's choice); ``False``: of the loss (in expectation zero).
        validation_steps: about this many network passes per datum in the validation bound.
        validation_seed: seed of the validation draws (``None``: the run's random state).
    """

    name = "vdm"

    def __init__(self, num_times: int = 1, variance_gradient: bool = True,
                 validation_steps: int = 10, validation_seed: int | None = 0) -> None:
        super().__init__()
        if num_times < 1 or validation_steps < 1:
            raise ValueError(f"num_times and validation_steps must be >= 1, got {num_times} "
                             f"and {validation_steps}")
        self.num_times, self.variance_gradient = num_times, variance_gradient
        self.validation_steps, self.validation_seed = validation_steps, validation_seed

    def param_groups(self, model: nn.Module) -> dict[str, Iterable[nn.Parameter]]:
        """``"model"`` (the network, its head, this objective's state) and ``"schedule"``."""
        schedule = {id(p) for p in _log_snr_model(model).schedule.parameters()}
        rest = [p for p in model.parameters() if id(p) not in schedule]
        return {"model": [*rest, *self.parameters()],
                "schedule": list(model.schedule.parameters())}

    def loss(self, model, batch: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        with pyro.validation_enabled(False):  # no host checks of the decoder's arguments
            terms = continuous_terms(_log_snr_model(model), batch, self.num_times,
                                     self.variance_gradient, **kwargs)
        return terms.total.mean()

    def validation_loss(self, model, batch: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """``[B]``: an unbiased estimate of the ``T``-step bound (nats per datum)."""
        generator = None
        if self.validation_seed is not None:
            generator = torch.Generator(device=batch.device).manual_seed(self.validation_seed)
        with pyro.validation_enabled(False):
            return discrete_estimate(_log_snr_model(model), batch, model.num_steps,
                                     self.validation_steps, generator, **kwargs).total

    def get_config(self) -> dict:
        return {"name": self.name, "num_times": self.num_times,
                "variance_gradient": self.variance_gradient,
                "validation_steps": self.validation_steps,
                "validation_seed": self.validation_seed}


#: the registry entries of this module
VDM_OBJECTIVES = {VDMObjective.name: VDMObjective}
