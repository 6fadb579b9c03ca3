"""Distributions that make every model family one ``pyro.sample`` site."""

from __future__ import annotations

from ppgen.distributions.implicit import ImplicitDistribution
from ppgen.distributions.markov import MarkovChainDistribution
from ppgen.distributions.tabular import TabularJoint

__all__ = ["ImplicitDistribution", "TabularJoint", "MarkovChainDistribution"]
