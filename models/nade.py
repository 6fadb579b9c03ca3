"""NADE and RNADE: one hidden layer shared by every conditional (the weight-sharing trick).

The hidden pre-activation of conditional ``i`` sums the input weights of the dimensions
before it, ``a_i = c + sum_{j<i} W_j f(x_j)``, so ``a_{i+1} = a_i + W_i f(x_i)``: all ``D``
hidden states cost one exclusive cumulative sum, ``O(D H)`` per datum instead of
``O(D^2 H)``. The conditional's parameters are ``V_i act(a_i) + b_i``.

Papers: Larochelle & Murray, 2011, "The Neural Autoregressive Distribution Estimator"
(AISTATS); Uria, Murray & Larochelle, 2013, "RNADE: The real-valued neural autoregressive
density-estimator" (NeurIPS, arXiv:1306.0186).

Example:
    >>> nade = NADE(64, likelihood="categorical", num_levels=17, hidden_dim=32)
    >>> nade.sample(2).shape
    torch.Size([2, 64])
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from ppgen.distributions.heads import Head
from ppgen.errors import ModelError
from ppgen.models.autoregressive import AutoregressiveModel, ConditionalNet

__all__ = ["NADE", "RNADE", "ACTIVATIONS"]

#: Hidden activations by name.
ACTIVATIONS = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh}


class NADENet(ConditionalNet):
    """The NADE network: ``params_i = V_i act(c + sum_{j<i} W_j f(x_j)) + b_i``.

    Shapes: ``W [D, F, H]``, ``c [H]``, ``V [D, H, P]``, ``b [D, P]``.

    Args:
        num_dims: ``D``.
        head: the output head (``F`` features, ``P`` parameters per dimension).
        hidden_dim: ``H``.
        activation: a name in :data:`ACTIVATIONS`.
    """

    def __init__(self, num_dims: int, head: Head, hidden_dim: int, activation: str) -> None:
        super().__init__(num_dims, head)
        D, F, P, H = num_dims, head.num_features, head.num_params, hidden_dim
        self.activation = ACTIVATIONS[activation]
        self.W = nn.Parameter(torch.randn(D, F, H) / math.sqrt(D * F))
        self.c = nn.Parameter(torch.zeros(H))
        self.V = nn.Parameter(torch.randn(D, H, P) / math.sqrt(H))
        self.b = nn.Parameter(torch.zeros(D, P))

    def hidden(self, f: torch.Tensor) -> torch.Tensor:
        """``act(a_i)`` for every ``i``: features ``[n, D, F]`` -> ``[n, D, H]``.

        The exclusive cumulative sum is built from the strict prefix (a zero row, then
        ``cumsum`` of rows ``0..D-2``), never as ``cumsum - own term``, so ``a_i`` does not
        depend on ``x_i`` even through rounding.
        """
        u = torch.einsum("ndf,dfh->ndh", f, self.W)
        past = torch.cumsum(u[:, :-1], dim=1)
        a = torch.cat([torch.zeros_like(u[:, :1]), past], dim=1) + self.c
        return self.activation(a)

    def forward_features(self, f: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ndh,dhp->ndp", self.hidden(f), self.V) + self.b


class _NADEBase(AutoregressiveModel, register=False):
    """Constructor and network shared by :class:`NADE` and :class:`RNADE`."""

    def _setup(self, hidden_dim: int, activation: str) -> None:
        if hidden_dim < 1:
            raise ModelError(f"hidden_dim must be >= 1, got {hidden_dim}")
        if activation not in ACTIVATIONS:
            raise ModelError(
                f"unknown activation {activation!r}: use one of {', '.join(ACTIVATIONS)}"
            )
        self.net = NADENet(self.num_dims, self._build_head(), hidden_dim, activation)


class NADE(_NADEBase):
    """Neural autoregressive distribution estimator for binary or integer-level data.

    ``p(x_i | x_<i)`` is Bernoulli (binary NADE), categorical over ``K`` levels (one-hot
    inputs, a softmax per pixel), or a discretised logistic mixture over the same levels;
    raster order. The hidden layer is shared across conditionals (see the module docstring).

    Paper: Larochelle & Murray, 2011, "The Neural Autoregressive Distribution Estimator".

    Args:
        num_dims: ``D``, the size of one flat datum.
        likelihood: ``"bernoulli"``, ``"categorical"`` or ``"logistic-mixture"``.
        num_levels: ``K`` for the level heads (17 for the digits).
        hidden_dim: ``H``, the shared hidden layer's width.
        activation: ``"sigmoid"`` (the paper's), ``"relu"`` or ``"tanh"``.
        num_components: ``C`` of the logistic-mixture head.

    Example:
        >>> NADE(10, hidden_dim=8).log_prob_per_dim(torch.ones(2, 10)).shape
        torch.Size([2, 10])
    """

    likelihoods = ("bernoulli", "categorical", "logistic-mixture")
    #: benchmark numbers: ``python benchmarks/digits.py`` (benchmarks/RESULTS.md)

    def __init__(
        self,
        num_dims: int,
        likelihood: str = "bernoulli",
        num_levels: int | None = None,
        hidden_dim: int = 250,
        activation: str = "sigmoid",
        num_components: int = 5,
    ) -> None:
        super().__init__()
        self.num_dims = num_dims
        self.likelihood = likelihood
        self.num_levels = num_levels
        self.hidden_dim = hidden_dim
        self.activation = activation
        self.num_components = num_components
        self._setup(hidden_dim, activation)


class RNADE(_NADEBase):
    """Real-valued NADE: a mixture of ``C`` Gaussians per conditional, for continuous data.

    ``p(x_i | x_<i) = sum_c pi_ic N(x_i | mu_ic, sigma_ic^2)`` with ``(pi, mu, sigma)`` from the
    shared hidden layer (ReLU units, as in the paper); raster order. For dequantised digits
    the discrete bound of BENCHMARKS.md applies (``ppgen.evaluate.dequantization_bound``).

    Paper: Uria, Murray & Larochelle, 2013, "RNADE: The real-valued neural autoregressive
    density-estimator" (arXiv:1306.0186). The paper's per-dimension activation rescaling
    ``rho_i`` is left out.

    Args:
        num_dims: ``D``, the size of one flat datum.
        likelihood: ``"gaussian-mixture"`` (the only one; kept for a uniform configuration).
        hidden_dim: ``H``.
        num_components: ``C``.
        activation: ``"relu"`` (the paper's), ``"sigmoid"`` or ``"tanh"``.

    Example:
        >>> RNADE(2, hidden_dim=8).sample(3).shape
        torch.Size([3, 2])
    """

    likelihoods = ("gaussian-mixture",)
    data_heads: ClassVar[dict[str, str]] = {"continuous": "gaussian-mixture"}
    #: for dequantised (continuous) data; no benchmark script covers RNADE yet
    fit_defaults: ClassVar[dict[str, Any]] = {**AutoregressiveModel.fit_defaults, "epochs": 100}

    def __init__(
        self,
        num_dims: int,
        likelihood: str = "gaussian-mixture",
        hidden_dim: int = 500,
        num_components: int = 5,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.num_dims = num_dims
        self.likelihood = likelihood
        self.num_levels = None
        self.hidden_dim = hidden_dim
        self.num_components = num_components
        self.activation = activation
        self._setup(hidden_dim, activation)
