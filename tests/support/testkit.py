"""Helpers shared by the test modules (on the path via ``pythonpath = ["tests/support"]``)."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pyro
import pyro.distributions as dist
import torch

from ppgen.protocol import GenerativeModel, ModelKind

__all__ = [
    "P_MIN",
    "all_configs",
    "randomize",
    "data_for",
    "load_example",
    "TinyGaussian",
    "NORMAL_MODEL_SOURCE",
]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

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


def small_image_model(
    cls: type, shape: Any, likelihood: str = "bernoulli", K: int = 3, scale: float = 0.5,
    **kwargs: Any,
) -> GenerativeModel:
    """A pixel model ``cls(shape, likelihood=...)`` with random weights (biases included) of
    standard deviation ``scale``: ``K`` levels unless Bernoulli, two logistic components for the
    mixture head, no dropout."""
    kwargs.setdefault("dropout", 0.0)
    if likelihood == "logistic-mixture":
        kwargs.setdefault("num_components", 2)
    levels = None if likelihood == "bernoulli" else K
    return randomize(cls(shape, likelihood=likelihood, num_levels=levels, **kwargs), scale=scale)


def data_for(model, x: torch.Tensor) -> torch.Tensor:
    """Configurations as the model's data: floats for Bernoulli models, levels otherwise."""
    return x.float() if model.likelihood == "bernoulli" else x


def load_example(name: str) -> ModuleType:
    """The script ``examples/<name>.py`` as a module (imported once, ``main`` not run)."""
    module_name = f"_ppgen_example_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


class TinyGaussian(GenerativeModel):
    """Diagonal Gaussian ``x ~ N(loc, exp(log_scale)^2)``, ``x: [N, dim]``: the smallest zoo-like
    model, for the engine and checkpoint tests.

    The parameters start at zero (deterministic: two fresh models train identically); the
    ``count`` buffer checks that buffers travel with the state. ``label`` is a second,
    non-tensor constructor argument for config round trips.
    """

    kind = ModelKind.EXACT

    def __init__(self, dim: int = 3, label: str = "g") -> None:
        super().__init__()
        self.dim, self.label = dim, label
        self.loc = torch.nn.Parameter(torch.zeros(dim))
        self.log_scale = torch.nn.Parameter(torch.zeros(dim))
        self.register_buffer("count", torch.arange(dim))

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size([self.dim])

    def model(self, x: torch.Tensor | None = None, num_samples: int | None = None) -> Any:
        n = len(x) if x is not None else num_samples
        with pyro.plate("data", n, device=self.loc.device):
            normal = dist.Normal(self.loc, self.log_scale.exp()).expand([n, self.dim])
            return pyro.sample("x", normal.to_event(1), obs=x)


#: a user's model file for the ``ppgen posterior`` CLI tests: ``mu ~ N(0, 10)``, ``x ~ N(mu, 1)``
NORMAL_MODEL_SOURCE = (
    "import pyro, pyro.distributions as dist\n"
    "def model(x):\n"
    "    mu = pyro.sample('mu', dist.Normal(0.0, 10.0))\n"
    "    with pyro.plate('data', x.shape[0]):\n"
    "        pyro.sample('x', dist.Normal(mu, 1.0), obs=x)\n"
)
