"""Distributions that make every model family one ``pyro.sample`` site."""

from __future__ import annotations

from ppgen.distributions.implicit import ImplicitDistribution

__all__ = ["ImplicitDistribution"]
