"""Autoregressive models: the shared model program, masked layers, and the FVSBN.

Every autoregressive model of the zoo is a network ``net(x) -> params`` whose outputs for
dimension ``i`` depend only on the dimensions before ``i``, plus an output head; the model
program observes ``x ~ AutoregressiveDistribution(net, head)`` in the ``"data"`` plate, so the
evaluation layer scores it exactly like any other exact model and ``ppgen.fit`` trains it by
maximum likelihood. This module holds what they share (:class:`AutoregressiveModel`,
:class:`ConditionalNet`, :class:`MaskedLinear`) and the simplest member, the fully visible
sigmoid belief network (:class:`FVSBN`). NADE and RNADE live in :mod:`ppgen.models.nade`,
MADE in :mod:`ppgen.models.made`.

Likelihoods (output heads, :mod:`ppgen.distributions.heads`): ``"bernoulli"`` (0/1 data),
``"categorical"`` (integer levels ``0..K-1``), ``"logistic-mixture"`` (the same levels,
discretised logistic mixture) and ``"gaussian-mixture"`` (real data).

Example:
    >>> model = FVSBN(6, likelihood="categorical", num_levels=3)
    >>> model.sample(4).shape
    torch.Size([4, 6])
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from ppgen.data.validate import validate
from ppgen.distributions.autoregressive import AutoregressiveDistribution
from ppgen.distributions.heads import HEADS, Head, make_head
from ppgen.errors import ModelError
from ppgen.protocol import DistributionModel, GenerativeModel, ModelKind

if TYPE_CHECKING:
    from ppgen.data import DataInfo

__all__ = [
    "AutoregressiveModel",
    "ConditionalNet",
    "MaskedLinear",
    "FVSBN",
    "DATA_KINDS",
    "TrainingDropout",
    "training_step",
]

#: The data representation (``ppgen.data.validate`` likelihood) each head models.
DATA_KINDS = {
    "bernoulli": "bernoulli",
    "categorical": "categorical",
    "logistic-mixture": "categorical",
    "gaussian-mixture": "continuous",
}

#: ``DataInfo.likelihood`` -> head, for models of discrete data.
DISCRETE_HEADS = {"categorical": "categorical", "bernoulli": "bernoulli"}


def training_step(module: nn.Module) -> bool:
    """Whether ``module`` is being trained right now: training mode *and* gradients enabled.

    Stochastic regularisers (dropout, MADE's mask cycle) switch on only then, so evaluation
    without gradients (``ppgen.log_likelihood``, validation, sampling) is deterministic in
    either module mode.
    """
    return module.training and torch.is_grad_enabled()


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Dropout off for a deterministic pass (an encoder's mean, a sampler); the training flag
    restored afterwards."""
    training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(training)


class TrainingDropout(nn.Dropout):
    """Dropout only during a :func:`training_step`."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return super().forward(h) if training_step(self) else h


class AutoregressiveModel(DistributionModel, register=False):
    """Shared program, data checks and ``for_data`` of the autoregressive zoo models.

    Subclasses set :attr:`likelihoods` and :attr:`data_heads`, store ``num_dims``,
    ``likelihood``, ``num_levels`` and ``num_components``, call :meth:`_build_head` and
    build ``self.net`` (a :class:`ConditionalNet`); they may override :meth:`distribution`.
    """

    kind = ModelKind.EXACT
    default_objective = "mle"
    #: what trains the autoregressive models well on the digits: strong L2, early stopping
    fit_defaults: ClassVar[dict[str, Any]] = {
        "epochs": 150,
        "batch_size": 100,
        "lr": 3e-3,
        "weight_decay": 1e-2,
        "patience": 10,
    }
    #: the heads this model accepts (a subset of :data:`~ppgen.distributions.heads.HEADS`)
    likelihoods: ClassVar[tuple[str, ...]] = HEADS
    #: ``DataInfo.likelihood`` -> head used by :meth:`for_data`
    data_heads: ClassVar[dict[str, str]] = DISCRETE_HEADS
    num_dims: int
    likelihood: str
    num_levels: int | None
    num_components: int
    net: ConditionalNet

    def _build_head(self) -> Head:
        """Check ``num_dims`` / ``likelihood`` and build the head (stored as ``self.head``)."""
        if self.num_dims < 1:
            raise ModelError(f"num_dims must be >= 1, got {self.num_dims}")
        if self.likelihood not in self.likelihoods:
            raise ModelError(
                f"{type(self).__name__} has no {self.likelihood!r} likelihood: use one of "
                f"{', '.join(self.likelihoods)}"
            )
        try:
            self.head = make_head(self.likelihood, self.num_levels, self.num_components)
        except ValueError as err:
            raise ModelError(f"{type(self).__name__}: {err}") from err
        return self.head

    # ----------------------------------------------------------------- the program
    def distribution(self) -> AutoregressiveDistribution:
        """The distribution of one datum: batch ``[]``, event ``[D]``."""
        return AutoregressiveDistribution(self.net, self.head, self.event_shape)

    @torch.no_grad()
    def log_prob_per_dim(self, x: Any) -> torch.Tensor:
        """Per-dimension log-likelihood contributions ``[N, D]`` summing to ``log p(x_n)``.

        What explains an anomaly score: which pixels the model found unlikely given the
        ones before them (see :meth:`AutoregressiveDistribution.log_prob_per_dim`).
        """
        x = self.check_data(x).to(self.device)
        return self.distribution().log_prob_per_dim(x)

    # ----------------------------------------------------------------- data
    def check_data(self, x: Any, name: str = "data") -> torch.Tensor:
        """Validate ``x: [N, D]`` for the head: 0/1, integer levels ``0..K-1``, or reals.

        Raises:
            DataError: wrong shape, NaN/inf, or values outside the likelihood's support.
        """
        return validate(
            x,
            DATA_KINDS[self.likelihood],
            num_levels=self.num_levels,
            event_shape=(self.num_dims,),
            name=name,
        )

    @classmethod
    def for_data(cls, info: DataInfo, **kwargs: Any) -> GenerativeModel:
        """The model for flat data described by ``info``; ``kwargs`` override.

        The head follows :attr:`data_heads` (categorical data keep ``info.num_levels``).

        Raises:
            ModelError: multi-dimensional data, or a kind of data the model does not model.
        """
        if len(info.event_shape) != 1:
            raise ModelError(
                f"{cls.__name__} models flat data but one datum has shape "
                f"{tuple(info.event_shape)}: flatten the data to [N, D] first"
            )
        if info.likelihood not in cls.data_heads:
            raise ModelError(cls._unsupported_data_message(info.likelihood))
        head = cls.data_heads[info.likelihood]
        args: dict[str, Any] = {"num_dims": info.num_dims, "likelihood": head}
        if info.likelihood == "categorical":
            args["num_levels"] = info.num_levels
        return cls(**{**args, **kwargs})

    @classmethod
    def _unsupported_data_message(cls, likelihood: str) -> str:
        if likelihood == "continuous":
            return (
                f"{cls.__name__} models discrete data but these are continuous: use RNADE or "
                "MADE (Gaussian-mixture conditionals), or load a categorical or binary "
                "representation"
            )
        return (
            f"{cls.__name__} models continuous data but these are {likelihood!r}: use NADE or "
            "MADE for discrete data, or load the continuous (dequantised) representation"
        )


class ConditionalNet(nn.Module):
    """Base of the networks ``x -> params``: features from the head, then :meth:`forward_features`.

    Subclasses implement ``forward_features(f: [n, D, F]) -> [n, D, P]``; keeping the
    network a function of the real-valued features is what lets tests take autograd
    Jacobians (the autoregressive property) of discrete models.

    Args:
        num_dims: ``D``.
        head: the output head (gives ``F`` and ``P``).
    """

    def __init__(self, num_dims: int, head: Head) -> None:
        super().__init__()
        self.num_dims = num_dims
        self.head = head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Network input ``[n, D, F]`` of values ``x: [n, D]``, in the parameters' dtype."""
        dtype = next(self.parameters()).dtype
        return self.head.features(x, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Parameters of every conditional: ``x: [n, D]`` -> ``[n, D, P]``."""
        return self.forward_features(self.features(x))

    def forward_features(self, f: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class MaskedLinear(nn.Linear):
    """A linear layer with ``M`` fixed binary connectivity masks (Germain et al., 2015).

    ``forward(h)`` applies every mask: ``h: [n, in]`` or ``[M, n, in]`` -> ``[M, n, out]``;
    ``forward(h, index)`` applies mask ``index`` (a ``long`` scalar tensor, selected on the
    device without a host synchronisation): ``[n, in]`` -> ``[n, out]``. Masked weights
    are multiplied by exactly zero, so their outputs' gradients with respect to the masked
    inputs are exactly zero.

    Args:
        masks: ``[M, out, in]`` 0/1 masks (a non-persistent buffer: models rebuild them from
            their configuration).
    """

    def __init__(self, masks: torch.Tensor) -> None:
        super().__init__(masks.shape[2], masks.shape[1])
        self.register_buffer("masks", masks.to(self.weight.dtype), persistent=False)

    def forward(self, h: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        if index is not None:
            mask = self.masks.index_select(0, index.reshape(1)).squeeze(0)
            return nn.functional.linear(h, self.weight * mask, self.bias)
        weights = self.weight * self.masks  # [M, out, in]
        pattern = "ni,moi->mno" if h.dim() == 2 else "mni,moi->mno"
        return torch.einsum(pattern, h, weights) + self.bias.unsqueeze(-2)


class _FVSBNNet(ConditionalNet):
    """``params_i = b_i + sum_{j < i} W_ij f(x_j)``: one strictly block-lower masked layer."""

    def __init__(self, num_dims: int, head: Head) -> None:
        super().__init__(num_dims, head)
        D, F, P = num_dims, head.num_features, head.num_params
        dim_out = torch.arange(D).repeat_interleave(P)
        dim_in = torch.arange(D).repeat_interleave(F)
        mask = (dim_in.unsqueeze(0) < dim_out.unsqueeze(1)).unsqueeze(0)  # [1, D P, D F]
        self.linear = MaskedLinear(mask)
        nn.init.zeros_(self.linear.weight)
        self.register_buffer("_index", torch.zeros((), dtype=torch.long), persistent=False)

    def forward_features(self, f: torch.Tensor) -> torch.Tensor:
        out = self.linear(f.flatten(-2), self._index)
        return out.unflatten(-1, (self.num_dims, self.head.num_params))


class FVSBN(AutoregressiveModel):
    """Fully visible sigmoid belief network: logistic (or softmax) regression on the past.

    ``p(x_i = 1 | x_<i) = sigmoid(b_i + sum_{j<i} W_ij x_j)`` for binary data; for ``K``
    levels each conditional is a multinomial logistic regression on the one-hot past,
    ``softmax(b_i + sum_{j<i} W_ij onehot(x_j))``. Raster order; ``D (D - 1) / 2 + D``
    free parameters for binary data (the inherited :meth:`num_parameters` also counts the
    masked-out weights of the dense layer).

    Paper: Frey, 1998, "Graphical Models for Machine Learning and Digital Communication"
    (MIT Press); Neal, 1992, "Connectionist learning of belief networks".

    Args:
        num_dims: ``D``, the size of one flat datum.
        likelihood: ``"bernoulli"`` (logistic conditionals) or ``"categorical"`` (softmax).
        num_levels: ``K`` for categorical data (17 for the digits).

    Example:
        >>> FVSBN(10).sample(3).shape
        torch.Size([3, 10])
    """

    likelihoods = ("bernoulli", "categorical")
    #: digits recipe (a cosine schedule and strong L2 matter);
    #: benchmark numbers: ``python benchmarks/digits.py`` (benchmarks/RESULTS.md)
    fit_defaults: ClassVar[dict[str, Any]] = {
        "epochs": 150,
        "batch_size": 100,
        "lr": 1e-2,
        "weight_decay": 1e-2,
        "lr_schedule": "cosine",
        "patience": 10,
    }

    def __init__(
        self, num_dims: int, likelihood: str = "bernoulli", num_levels: int | None = None
    ) -> None:
        super().__init__()
        self.num_dims = num_dims
        self.likelihood = likelihood
        self.num_levels = num_levels
        self.num_components = 1
        self.net = _FVSBNNet(num_dims, self._build_head())
