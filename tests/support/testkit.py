"""Helpers shared by the test modules (on the path via ``pythonpath = ["tests/support"]``)."""

from __future__ import annotations

import itertools

import torch

__all__ = ["P_MIN", "all_configs", "randomize", "data_for", "NORMAL_MODEL_SOURCE"]

#: failure rate of each goodness-of-fit test under a correct implementation
P_MIN = 1e-3


def all_configs(n: int, K: int) -> torch.Tensor:
    """``[K^n, n]``: every configuration, first variable most significant."""
    return torch.tensor(list(itertools.product(range(K), repeat=n)))


def randomize(model: torch.nn.Module, seed: int = 0, scale: float = 1.0) -> torch.nn.Module:
    """Overwrite every parameter (biases included) with ``scale * N(0, 1)`` draws, seeded."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g))
    return model


def data_for(model, x: torch.Tensor) -> torch.Tensor:
    """Configurations as the model's data: floats for Bernoulli models, levels otherwise."""
    return x.float() if model.likelihood == "bernoulli" else x


#: a user's model file for the ``ppgen posterior`` CLI tests: ``mu ~ N(0, 10)``, ``x ~ N(mu, 1)``
NORMAL_MODEL_SOURCE = (
    "import pyro, pyro.distributions as dist\n"
    "def model(x):\n"
    "    mu = pyro.sample('mu', dist.Normal(0.0, 10.0))\n"
    "    with pyro.plate('data', x.shape[0]):\n"
    "        pyro.sample('x', dist.Normal(mu, 1.0), obs=x)\n"
)
