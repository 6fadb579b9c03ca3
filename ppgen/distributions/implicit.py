"""A distribution for implicit models: it samples, and refuses densities with a clear error."""

from __future__ import annotations

from collections.abc import Callable

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints

from ppgen.errors import ImplicitModelError

__all__ = ["ImplicitDistribution"]


class ImplicitDistribution(TorchDistribution):
    """Samples ``generator(noise)`` with ``noise ~ noise_dist``; has no density.

    Args:
        generator: maps noise ``[*batch, *noise_event]`` to data ``[*batch, *event_shape]``.
        noise: a distribution with ``rsample`` over the generator's input.
        event_shape: shape of one generated datum.

    Example:
        >>> import torch, pyro.distributions as dist
        >>> g = torch.nn.Linear(2, 3)
        >>> d = ImplicitDistribution(g, dist.Normal(torch.zeros(2), 1).to_event(1), (3,))
        >>> d.sample((5,)).shape
        torch.Size([5, 3])
    """

    arg_constraints: dict = {}
    support = constraints.real
    has_rsample = True

    def __init__(
        self,
        generator: Callable[[torch.Tensor], torch.Tensor],
        noise: TorchDistribution,
        event_shape: tuple[int, ...] | torch.Size,
        validate_args: bool | None = None,
    ) -> None:
        self.generator = generator
        self.noise = noise
        super().__init__(noise.batch_shape, torch.Size(event_shape), validate_args=False)

    def expand(self, batch_shape, _instance=None):
        if torch.Size(batch_shape) == self.batch_shape:
            return self  # Pyro's plates expand every site: nothing to build when it fits
        noise = self.noise.expand(batch_shape)
        return ImplicitDistribution(self.generator, noise, self.event_shape)

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        return self.generator(self.noise.rsample(sample_shape))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        raise ImplicitModelError(
            "an implicit (generator) distribution has no density: use sample-based metrics "
            "(FID / KID, precision-recall, MMD, classifier two-sample tests)"
        )
