"""ppgen: probabilistic programming for deep generative models.

Every model is a Pyro program; one trace-based evaluation layer gives exact likelihoods,
importance-weighted estimates and ELBOs for zoo models and for users' own programs alike.
"""

from __future__ import annotations

from ppgen.errors import (
    CheckpointError,
    DataError,
    ImplicitModelError,
    ModelError,
    PpgenError,
    TrainingError,
)
from ppgen.protocol import GenerativeModel, ModelKind

__version__ = "0.1.0"

__all__ = [
    "GenerativeModel",
    "ModelKind",
    "PpgenError",
    "DataError",
    "ModelError",
    "ImplicitModelError",
    "CheckpointError",
    "TrainingError",
]
