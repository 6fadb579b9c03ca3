"""MADE: a masked multilayer perceptron, trained over several orderings and connectivities.

Each unit gets a degree: input dimension ``d`` the position ``1..D`` of ``d`` in an ordering,
hidden unit ``k`` of layer ``l`` a degree drawn uniformly from ``[min m^{l-1}, D - 1]``.
A hidden weight is kept when ``m^l(k) >= m^{l-1}(j)``, an output weight when the output's
degree is strictly larger, so output ``d`` sees only the dimensions before ``d`` in the
ordering (Germain, Gregor, Murray & Larochelle, 2015, "MADE: Masked Autoencoder for
Distribution Estimation", arXiv:1502.03509).

Order-agnostic training: ``num_masks`` orderings and connectivities are drawn once from
``seed`` (so a checkpoint rebuilds them from its configuration); each training step uses the
next one in turn. Evaluation and sampling use their uniform mixture,
``p(x) = (1/M) sum_m p_m(x)``, computed as the log-mean-exp of the per-ordering likelihoods.
Every ``p_m`` is a normalised autoregressive density, so the ensemble is itself a valid
(mixture) density and its likelihood is exact; sampling picks an ordering per draw.

Example:
    >>> made = MADE(10, hidden_dims=(16,), num_masks=4)
    >>> made.sample(3).shape
    torch.Size([3, 10])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from ppgen.distributions.autoregressive import AutoregressiveDistribution
from ppgen.distributions.heads import Head
from ppgen.errors import ModelError
from ppgen.models.autoregressive import (
    AutoregressiveModel,
    ConditionalNet,
    MaskedLinear,
    training_step,
)

__all__ = ["MADE", "made_masks"]


def made_masks(
    num_dims: int,
    hidden_dims: Sequence[int],
    num_features: int,
    num_params: int,
    num_masks: int,
    order_agnostic: bool,
    seed: int,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Orderings and connectivity masks of MADE, drawn on the CPU from ``seed``.

    Args:
        num_dims: ``D``.
        hidden_dims: widths of the hidden layers.
        num_features: ``F``, inputs per dimension (one-hot levels).
        num_params: ``P``, outputs per dimension.
        num_masks: ``M``, orderings and connectivities.
        order_agnostic: random orderings (else raster order for every mask).
        seed: seed of the generator.

    Returns:
        ``orders [M, D]`` (``orders[m, t]`` = the dimension at position ``t``) and one mask
        stack ``[M, out, in]`` per layer (hidden layers, then the output layer).
    """
    g = torch.Generator().manual_seed(seed)
    orders, per_mask = [], []
    for _ in range(num_masks):
        order = torch.randperm(num_dims, generator=g) if order_agnostic else torch.arange(num_dims)
        orders.append(order)
        per_mask.append(_one_mask(order, hidden_dims, num_features, num_params, g))
    layers = [torch.stack(masks) for masks in zip(*per_mask)]
    return torch.stack(orders), layers


def _one_mask(order, hidden_dims, num_features, num_params, g) -> list[torch.Tensor]:
    """The masks of every layer for one ordering: ``[out, in]`` float 0/1 each."""
    D = order.numel()
    degree = torch.empty(D, dtype=torch.long)
    degree[order] = torch.arange(1, D + 1)
    previous = degree.repeat_interleave(num_features)
    masks = []
    for width in hidden_dims:
        low = min(int(previous.min()), D - 1)
        hidden = torch.randint(low, D, (width,), generator=g) if D > 1 else torch.zeros(width)
        masks.append((hidden.unsqueeze(1) >= previous.unsqueeze(0)).float())
        previous = hidden.long()
    out = degree.repeat_interleave(num_params)
    masks.append((out.unsqueeze(1) > previous.unsqueeze(0)).float())
    return masks


class MADENet(ConditionalNet):
    """The masked MLP ``f(x) [n, D F] -> ReLU ... -> [M, n, D, P]`` (all masks) or
    ``[n, D, P]`` (one mask, ``index``).

    Buffers: ``orders [M, D]`` and the layers' masks, rebuilt from the configuration.
    """

    def __init__(
        self,
        num_dims: int,
        head: Head,
        hidden_dims: Sequence[int],
        num_masks: int,
        order_agnostic: bool,
        seed: int,
    ) -> None:
        super().__init__(num_dims, head)
        orders, masks = made_masks(
            num_dims,
            hidden_dims,
            head.num_features,
            head.num_params,
            num_masks,
            order_agnostic,
            seed,
        )
        self.register_buffer("orders", orders, persistent=False)
        self.layers = nn.ModuleList(MaskedLinear(m) for m in masks)

    def forward(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """``x: [n, D]`` -> ``[M, n, D, P]``, or ``[n, D, P]`` with mask ``index``."""
        return self.forward_features(self.features(x), index)

    def forward_features(self, f: torch.Tensor, index: torch.Tensor | None = None):
        h = f.flatten(-2)
        for layer in self.layers[:-1]:
            h = torch.relu(layer(h, index))
        out = self.layers[-1](h, index)
        return out.unflatten(-1, (self.num_dims, self.head.num_params))


class MADE(AutoregressiveModel):
    """Masked autoencoder for distribution estimation, with an ensemble over orderings.

    Training (``model.train()`` with gradients on, as in ``ppgen.fit``) uses one
    ordering/connectivity per step, cycling through the ``num_masks`` of them; everywhere
    else (``ppgen.log_likelihood``, validation, sampling) the model is the uniform mixture of
    all ``num_masks`` autoregressive factorisations (see the module docstring). The cycle
    position is the buffer ``mask_step``, saved with the weights, so resumed training
    continues the cycle.

    Paper: Germain, Gregor, Murray & Larochelle, 2015, "MADE: Masked Autoencoder for
    Distribution Estimation" (arXiv:1502.03509).

    Args:
        num_dims: ``D``, the size of one flat datum.
        likelihood: ``"bernoulli"``, ``"categorical"``, ``"logistic-mixture"`` or
            ``"gaussian-mixture"``.
        num_levels: ``K`` for the level heads (17 for the digits).
        hidden_dims: widths of the masked hidden layers (ReLU).
        num_masks: ``M``, orderings/connectivities trained together and ensembled.
        order_agnostic: draw a random ordering per mask (else raster order, only the
            connectivity varies).
        num_components: ``C`` of the mixture heads.
        seed: seed of the masks (part of the configuration).

    Example:
        >>> made = MADE(6, likelihood="categorical", num_levels=3, hidden_dims=(8,))
        >>> made.log_prob_per_dim(torch.zeros(2, 6, dtype=torch.long)).shape
        torch.Size([2, 6])
    """

    data_heads: ClassVar[dict[str, str]] = {
        "categorical": "categorical",
        "bernoulli": "bernoulli",
        "continuous": "gaussian-mixture",
    }
    #: order-agnostic training over several masks matters on digits;
    #: benchmark numbers: ``python benchmarks/digits.py`` (benchmarks/RESULTS.md)

    def __init__(
        self,
        num_dims: int,
        likelihood: str = "bernoulli",
        num_levels: int | None = None,
        hidden_dims: Sequence[int] = (500,),
        num_masks: int = 8,
        order_agnostic: bool = True,
        num_components: int = 5,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if num_masks < 1 or not hidden_dims or any(h < 1 for h in hidden_dims):
            raise ModelError(
                "MADE needs num_masks >= 1 and at least one hidden layer of width >= 1"
            )
        self.num_dims = num_dims
        self.likelihood = likelihood
        self.num_levels = num_levels
        self.hidden_dims = list(hidden_dims)
        self.num_masks = num_masks
        self.order_agnostic = order_agnostic
        self.num_components = num_components
        self.seed = seed
        head = self._build_head()
        self.net = MADENet(num_dims, head, self.hidden_dims, num_masks, order_agnostic, seed)
        self.register_buffer("mask_step", torch.zeros((), dtype=torch.long))

    def distribution(self) -> AutoregressiveDistribution:
        """One ordering per training step (advancing the cycle); the ensemble otherwise."""
        if training_step(self):
            index = self.mask_step % self.num_masks
            self.mask_step.add_(1)
            order = self.net.orders.index_select(0, index.reshape(1)).squeeze(0)
            return AutoregressiveDistribution(
                lambda x: self.net(x, index), self.head, self.event_shape, order=order
            )
        return AutoregressiveDistribution(
            self.net, self.head, self.event_shape, order=self.net.orders
        )

    @property
    def orders(self) -> torch.Tensor:
        """``[M, D]``: the orderings (``orders[m, t]`` is generated at step ``t``)."""
        return self.net.orders
