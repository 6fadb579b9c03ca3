"""Objectives by name: what ``ppgen.fit(objective="elbo")`` and models' defaults refer to."""

from __future__ import annotations

from typing import Any

from ppgen.errors import PpgenError
from ppgen.inference.adversarial import ADVERSARIAL_OBJECTIVES
from ppgen.inference.ali import ALI
from ppgen.inference.avb import AVB
from ppgen.inference.diffusion import DIFFUSION_OBJECTIVES
from ppgen.inference.likelihood import MaximumLikelihood
from ppgen.inference.variational import ELBO, IWAE
from ppgen.inference.vdm import VDM_OBJECTIVES
from ppgen.objective import Objective

__all__ = ["OBJECTIVES", "make_objective"]

OBJECTIVES: dict[str, type[Objective]] = {
    MaximumLikelihood.name: MaximumLikelihood,
    ELBO.name: ELBO,
    IWAE.name: IWAE,
    **DIFFUSION_OBJECTIVES,
    **ADVERSARIAL_OBJECTIVES,
    **VDM_OBJECTIVES,
    ALI.name: ALI,
    AVB.name: AVB,
}


def make_objective(objective: str | Objective, **options: Any) -> Objective:
    """Build an objective from its name (or pass an instance through unchanged).

    Raises:
        PpgenError: unknown name, or options the objective does not take.
    """
    if isinstance(objective, Objective):
        if options:
            raise PpgenError("objective options were given with an objective instance")
        return objective
    try:
        cls = OBJECTIVES[objective]
    except KeyError:
        known = ", ".join(sorted(OBJECTIVES))
        raise PpgenError(f"unknown objective {objective!r}; known: {known}") from None
    try:
        return cls(**options)
    except TypeError as err:
        raise PpgenError(f"bad options for objective {objective!r}: {err}") from err
