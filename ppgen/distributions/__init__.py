"""Distributions that make every model family one ``pyro.sample`` site."""

from __future__ import annotations

from ppgen.distributions.autoregressive import AutoregressiveDistribution
from ppgen.distributions.factorized import FactorizedDistribution
from ppgen.distributions.flow import FlowDistribution
from ppgen.distributions.heads import (
    HEADS,
    BernoulliHead,
    CategoricalHead,
    DiscretizedLogisticMixtureHead,
    GaussianMixtureHead,
    Head,
    make_head,
)
from ppgen.distributions.implicit import ImplicitDistribution
from ppgen.distributions.markov import MarkovChainDistribution
from ppgen.distributions.tabular import TabularJoint

__all__ = [
    "ImplicitDistribution",
    "TabularJoint",
    "MarkovChainDistribution",
    "AutoregressiveDistribution",
    "FactorizedDistribution",
    "FlowDistribution",
    "Head",
    "BernoulliHead",
    "CategoricalHead",
    "DiscretizedLogisticMixtureHead",
    "GaussianMixtureHead",
    "HEADS",
    "make_head",
]
