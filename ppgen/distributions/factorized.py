"""Independent dimensions, each with its own parameters and one shared head."""

from __future__ import annotations

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints

from ppgen.distributions.heads import Head

__all__ = ["FactorizedDistribution"]


class FactorizedDistribution(TorchDistribution):
    """``p(x) = prod_i head(x_i | params_i)``: a head applied to every dimension independently.

    The observation model of decoders (e.g. a VAE's ``p(x | z)``) built from the same heads the
    autoregressive models use (:mod:`ppgen.distributions.heads`), so a conditional family is
    written once.

    Args:
        head: the per-dimension family (Bernoulli, categorical, discretised logistic mixture,
            Gaussian mixture).
        params: ``[*batch_shape, *event_shape, P]`` with ``P = head.num_params``.
        event_dims: how many dimensions left of ``P`` form one datum (default 1).

    Example:
        >>> from ppgen.distributions import make_head
        >>> head = make_head("logistic-mixture", num_levels=17, num_components=3)
        >>> d = FactorizedDistribution(head, torch.zeros(5, 64, head.num_params))
        >>> d.batch_shape, d.event_shape, d.log_prob(torch.zeros(5, 64, dtype=torch.long)).shape
        (torch.Size([5]), torch.Size([64]), torch.Size([5]))
    """

    arg_constraints: dict = {}

    def __init__(
        self, head: Head, params: torch.Tensor, event_dims: int = 1, validate_args=None
    ) -> None:
        if params.shape[-1] != head.num_params:
            raise ValueError(
                f"params end in {params.shape[-1]} values but {head!r} takes {head.num_params}"
            )
        shape = params.shape[:-1]
        split = len(shape) - event_dims
        self.head, self.params, self.event_dims = head, params, event_dims
        super().__init__(shape[:split], shape[split:], validate_args=validate_args)

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:
        return constraints.independent(self.head.support, self.event_dims)

    def expand(self, batch_shape, _instance=None) -> FactorizedDistribution:
        shape = torch.Size(batch_shape) + self.event_shape + self.params.shape[-1:]
        return FactorizedDistribution(self.head, self.params.expand(shape), self.event_dims)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        lp = self.head.log_prob(self.params, value)
        return lp.sum(tuple(range(-self.event_dims, 0))) if self.event_dims else lp

    @torch.no_grad()
    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        params = self.params.expand(torch.Size(sample_shape) + self.params.shape)
        return self.head.sample(params)

    @property
    def mean(self) -> torch.Tensor:
        """``E[x_i]`` per dimension: ``[*batch_shape, *event_shape]``."""
        return self.head.mean(self.params)
