"""Exception types raised by ppgen for user-facing mistakes.

Every error a user can cause (bad data, a model program ppgen cannot evaluate, a broken
checkpoint, a diverged training run) is a :class:`PpgenError`, with a message that names the
problem and the fix, so scripts can ``except ppgen.PpgenError`` and the CLI can print one line.
"""

from __future__ import annotations

__all__ = [
    "PpgenError",
    "ArgumentError",
    "DataError",
    "ModelError",
    "ImplicitModelError",
    "CheckpointError",
    "TrainingError",
]


class PpgenError(Exception):
    """Base class of every error ppgen raises on purpose."""


class ArgumentError(PpgenError, ValueError, TypeError):
    """An argument of the wrong kind or out of range (``num_particles=0``, data where the
    guide goes). Also a ``ValueError`` and a ``TypeError``, the two built-in errors Python
    code raises for such a call."""


class DataError(PpgenError, ValueError):
    """Data with the wrong shape, dtype, non-finite values or values outside the support."""


class ModelError(PpgenError, ValueError):
    """A model program or guide that the evaluation layer cannot work with as written."""


class ImplicitModelError(ModelError):
    """An implicit model (a generator without a density) was asked for a likelihood."""


class CheckpointError(PpgenError, OSError):
    """A checkpoint file that is missing, truncated, corrupt, foreign or unsafe."""


class TrainingError(PpgenError, RuntimeError):
    """Training stopped: non-finite loss, or an unusable training configuration."""
