"""The model zoo (installed as ``ppgen.models``): one family per module."""

from __future__ import annotations

from ppgen.models.discrete import (
    FullJoint,
    IndependentBernoulli,
    IndependentCategorical,
    MarkovChain,
)
from ppgen.models.vae import VAE

__all__ = ["IndependentBernoulli", "IndependentCategorical", "FullJoint", "MarkovChain", "VAE"]
