"""ppgen: probabilistic programming for deep generative models.

Every model is a Pyro program; one trace-based evaluation layer gives exact likelihoods,
importance-weighted estimates and ELBOs for zoo models and for users' own programs alike.

Example:
    >>> import ppgen
    >>> from ppgen.data import load_digits
    >>> from ppgen.models import MarkovChain
    >>> digits = load_digits("categorical")
    >>> model = MarkovChain.for_data(digits.info)
    >>> history = ppgen.fit(model, digits.train, digits.val)
    >>> nll = -ppgen.log_likelihood(model, digits.test).mean()
"""

from __future__ import annotations

from ppgen.api import fit, load
from ppgen.errors import (
    ArgumentError,
    CheckpointError,
    DataError,
    ImplicitModelError,
    ModelError,
    PpgenError,
    TrainingError,
)
from ppgen.evaluate import elbo, log_likelihood
from ppgen.protocol import GenerativeModel, ModelKind
from ppgen.represent import represent

__version__ = "0.1.0"

__all__ = [
    "fit",
    "load",
    "log_likelihood",
    "elbo",
    "represent",
    "GenerativeModel",
    "ModelKind",
    "PpgenError",
    "ArgumentError",
    "DataError",
    "ModelError",
    "ImplicitModelError",
    "CheckpointError",
    "TrainingError",
]
