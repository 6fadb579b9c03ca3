"""Normalising flows of the zoo: RealNVP, MAF and NSF, and the shared :class:`FlowModel` base.

Every flow is an nflows :class:`~nflows.flows.base.Flow` (a transform from data to noise and a
standard-normal base) made one Pyro sample site by
:class:`~ppgen.distributions.flow.FlowDistribution`: the program is ``x ~ p_flow`` in the
``"data"`` plate, so ``ppgen.log_likelihood`` scores it exactly (change of variables) and
``ppgen.fit`` trains it by maximum likelihood, like every other exact model.

Three options are shared by all flows:

* ``logit_alpha``: for data in ``[0, 1]`` (continuous digits), a first transform
  ``y -> logit(alpha + (1 - 2 alpha) y)`` (Dinh et al., 2017, Sect. 4.1) takes the bounded
  support to the real line; its log-determinant is part of the flow, so the likelihood stays
  the density of ``y`` itself.
* ``num_classes``: a class-conditional flow ``p(x | y)``; the one-hot label is the nflows
  ``context`` of every layer and the program is ``model(x=None, y=None, num_samples=None)``.
  The flow declares ``y`` as its conditioning input (:attr:`FlowModel.conditions`, a
  :class:`~ppgen.conditions.Condition` of ``num_classes`` classes), so every caller validates
  and batches it the same way: train with ``ppgen.fit(model, x, x_val, labels=y,
  val_labels=y_val)``, score with ``ppgen.log_likelihood(model, x, y=y)``, draw a class with
  ``model.sample(n, y=3)``.
* ``normalization``: ``"actnorm"`` (Kingma & Dhariwal, 2018) or ``"batchnorm"`` (Dinh et al.,
  2017) after every layer, or ``"none"``.

Integer data (the categorical digits) are modelled through
:class:`~ppgen.models.dequantization.Dequantized`, which ``for_data`` builds automatically.

Example:
    >>> flow = MAF(2, num_layers=2, hidden_features=16)
    >>> flow.sample(5).shape
    torch.Size([5, 2])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import pyro
import torch
from nflows import transforms
from nflows.distributions import StandardNormal
from nflows.flows import Flow
from nflows.nn.nets import ResidualNet
from nflows.transforms import Transform
from torch.nn import functional as F

from ppgen.conditions import Condition, Conditions
from ppgen.data.validate import validate, value_range
from ppgen.distributions.flow import FlowDistribution
from ppgen.distributions.transforms import LogitTransform, alternating_mask
from ppgen.errors import DataError, ModelError
from ppgen.models import splines
from ppgen.models.autoregressive import eval_mode, training_step
from ppgen.models.dequantization import Dequantized
from ppgen.protocol import DistributionModel, GenerativeModel, ModelKind

if TYPE_CHECKING:
    from ppgen.data import DataInfo

__all__ = [
    "FlowModel",
    "RealNVP",
    "MAF",
    "NSF",
    "LogitTransform",
    "ActNorm",
    "BatchNorm",
    "NORMALIZATIONS",
    "DEFAULT_LOGIT_ALPHA",
]

#: Normalisation layers a flow can put after every layer.
NORMALIZATIONS = ("none", "actnorm", "batchnorm")

#: ``alpha`` of the logit pre-transform ``for_data`` uses for data in ``[0, 1)`` (RealNVP's).
DEFAULT_LOGIT_ALPHA = 0.05


# =========================================================================== transforms
class ActNorm(transforms.ActNorm):
    """nflows' ActNorm, initialised from the first *training* batch of more than one row.

    nflows initialises on the first forward pass in training mode, which may be the
    evaluation layer's one-row structure trace (no gradients): its standard deviation is
    NaN. Here initialisation waits for a :func:`~ppgen.models.autoregressive.training_step`.
    Works on ``[N, D]`` and ``[N, C, H, W]`` inputs. Paper: Kingma & Dhariwal, 2018.

    Whether the layer is initialised is the Python flag :attr:`is_initialized`, so a step never
    reads a device tensor (``bool(buffer)`` makes the host wait for the device, once per layer
    per step). The state stays in the ``state_dict`` under nflows' key ``initialized``: a
    buffer written on its own device (nflows swaps in a CPU tensor), from which loading a
    state dict sets the flag, so checkpoints restore it exactly, old ones included.

    Attributes:
        is_initialized: whether the scale and shift have been set from data.
    """

    def __init__(self, features: int) -> None:
        super().__init__(features)
        self.is_initialized = False

    def forward(self, inputs: torch.Tensor, context: Any = None):
        if training_step(self) and inputs.shape[0] > 1 and not self.is_initialized:
            self._initialize(inputs)
        scale, shift = self._broadcastable_scale_shift(inputs)
        pixels = inputs.shape[2] * inputs.shape[3] if inputs.dim() == 4 else 1
        logabsdet = pixels * self.log_scale.sum() * inputs.new_ones(inputs.shape[0])
        return scale * inputs + shift, logabsdet

    @torch.no_grad()
    def _initialize(self, inputs: torch.Tensor) -> None:
        """Zero mean and unit variance per feature (channel) after the layer, as in nflows."""
        if inputs.dim() == 4:
            inputs = inputs.permute(0, 2, 3, 1).reshape(-1, inputs.shape[1])
        std = inputs.std(dim=0)
        self.log_scale.copy_(-torch.log(std))
        self.shift.copy_(-(inputs / std).mean(dim=0))
        self.initialized.fill_(True)
        self.is_initialized = True

    def _load_from_state_dict(self, state_dict, prefix, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if not self.initialized.is_meta:  # a meta module keeps no values to read
            self.is_initialized = bool(self.initialized)  # once per load, not per step


class BatchNorm(transforms.BatchNorm):
    """Batch normalisation as a flow layer (Dinh et al., 2017), safe for evaluation.

    Batch statistics only in a :func:`~ppgen.models.autoregressive.training_step` on a batch of
    more than one row (running averages updated then); running statistics otherwise, so
    scoring and sampling are deterministic and invertible in either module mode. The running
    variance starts at one (nflows starts it at zero).
    """

    def __init__(self, features: int) -> None:
        super().__init__(features)
        self.running_var.fill_(1.0)

    def forward(self, inputs: torch.Tensor, context: Any = None):
        if training_step(self) and inputs.shape[0] > 1:
            mean, var = inputs.mean(0), inputs.var(0)
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(var.detach(), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        outputs = self.weight * (inputs - mean) / torch.sqrt(var + self.eps) + self.bias
        logabsdet = (torch.log(self.weight) - 0.5 * torch.log(var + self.eps)).sum()
        return outputs, logabsdet * inputs.new_ones(inputs.shape[0])

    def inverse(self, inputs: torch.Tensor, context: Any = None):
        std = torch.sqrt(self.running_var + self.eps)
        outputs = std * (inputs - self.bias) / self.weight + self.running_mean
        logabsdet = (0.5 * torch.log(self.running_var + self.eps) - torch.log(self.weight)).sum()
        return outputs, logabsdet * inputs.new_ones(inputs.shape[0])


def normalization_layer(name: str, features: int) -> list[Transform]:
    """``[]``, ``[ActNorm]`` or ``[BatchNorm]`` over ``features`` (channels for images)."""
    if name == "actnorm":
        return [ActNorm(features)]
    if name == "batchnorm":
        return [BatchNorm(features)]
    return []


# =========================================================================== the base
class FlowModel(DistributionModel, register=False):
    """Shared program, data checks, conditioning and ``for_data`` of the zoo flows.

    Subclasses store their constructor arguments, then call :meth:`_build`, which checks the
    shared options and assembles ``self.flow`` (an nflows ``Flow``) from the optional logit
    pre-transform and the layers of :meth:`_layers`.

    Attributes:
        flow: the nflows flow (data -> noise transform, standard-normal base ``[D]``).
    """

    kind = ModelKind.EXACT
    default_objective = "mle"
    #: digits recipe (continuous representation / dequantised): Adam with weight decay,
    #: gradient clipping, early stopping on the validation NLL
    fit_defaults: ClassVar[dict[str, Any]] = {
        "epochs": 200,
        "batch_size": 100,
        "lr": 1e-3,
        "weight_decay": 1e-5,
        "max_grad_norm": 10.0,
        "patience": 20,
    }
    num_dims: int
    normalization: str
    logit_alpha: float | None
    num_classes: int | None

    def _build(self) -> None:
        self._check_common()
        layers = [] if self.logit_alpha is None else [LogitTransform(self.logit_alpha)]
        layers += self._layers()
        self.flow = Flow(transforms.CompositeTransform(layers), StandardNormal([self.num_dims]))
        self.register_buffer("_one", torch.ones(()), persistent=False)

    def _layers(self) -> list[Transform]:
        """The flow's layers after the logit pre-transform (data -> noise order)."""
        raise NotImplementedError

    def _check_common(self) -> None:
        if not isinstance(self.num_dims, int) or self.num_dims < 1:
            raise ModelError(f"num_dims must be a positive integer, got {self.num_dims!r}")
        if self.normalization not in NORMALIZATIONS:
            raise ModelError(
                f"unknown normalization {self.normalization!r}: use one of {NORMALIZATIONS}"
            )
        if self.logit_alpha is not None and not 0.0 <= self.logit_alpha < 0.5:
            raise ModelError(
                f"logit_alpha must be None (data on the real line) or in [0, 0.5) for data in "
                f"[0, 1], got {self.logit_alpha}"
            )
        if self.num_classes is not None and (
            not isinstance(self.num_classes, int) or self.num_classes < 2
        ):
            raise ModelError(f"num_classes must be None or an integer >= 2, got "
                             f"{self.num_classes!r}")

    @property
    def conditions(self) -> Conditions:
        """``y``, class labels ``0..num_classes-1``, for a class-conditional flow; else none."""
        declared = [] if self.num_classes is None else [Condition.classes("y", self.num_classes)]
        return Conditions(declared, type(self).__name__)

    @property
    def context_features(self) -> int | None:
        """Size of the nflows context (the one-hot label), or ``None`` when unconditional."""
        return self.num_classes

    def _check_network(self, num_layers: int, hidden_features: int, num_blocks: int,
                       dropout: float) -> None:
        if num_layers < 1 or hidden_features < 1 or num_blocks < 1:
            raise ModelError("num_layers, hidden_features and num_blocks must be >= 1")
        if not 0.0 <= dropout < 1.0:
            raise ModelError(f"dropout must lie in [0, 1), got {dropout}")

    def _coupling_net(self):
        """The nflows ``transform_net_create_fn``: a residual MLP (with the label context)."""

        def create(in_features: int, out_features: int) -> ResidualNet:
            return ResidualNet(
                in_features,
                out_features,
                self.hidden_features,
                context_features=self.context_features,
                num_blocks=self.num_blocks,
                dropout_probability=self.dropout,
            )

        return create

    # ----------------------------------------------------------------- the program
    def distribution(self, y: torch.Tensor | None = None) -> FlowDistribution:
        """The flow as a distribution: batch ``[]`` (unconditional) or ``[N]`` for labels ``[N]``.

        Args:
            y: ``long`` class labels ``[N]`` of a class-conditional flow (``None`` otherwise).
        """
        return FlowDistribution(self.flow, self._context(y))

    def _context(self, y: torch.Tensor | None) -> torch.Tensor | None:
        if y is None:
            return None
        return F.one_hot(y.long(), self.num_classes).to(self._one.dtype)

    def model(
        self,
        x: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        num_samples: int | None = None,
    ) -> torch.Tensor:
        """The generative program ``x ~ p_flow(x)`` (or ``p_flow(x | y)``) in the ``"data"`` plate.

        Args:
            x: observed data ``[N, D]``, or ``None`` to generate.
            y: ``long`` labels ``[N]`` of a class-conditional flow; when generating without
                labels the classes are taken in turn (``0, 1, ..., C - 1, 0, ...``).
            num_samples: ``N`` when generating without labels (default 1).

        Returns:
            ``x`` (observed or generated), ``[N, D]``.
        """
        y = self.conditions.in_program({"y": y}, x, num_samples, self.device).get("y")
        n = x.shape[0] if x is not None else (len(y) if y is not None else (num_samples or 1))
        with pyro.plate("data", n, device=self.device):
            fn = self.distribution(y)
            if y is None:
                fn = fn.expand([n])
            return pyro.sample(self.data_site, fn, obs=x)

    @torch.no_grad()
    def encode(self, x: Any) -> torch.Tensor:
        """Base-space codes ``[N, D]``: the flow's data-to-noise map ``f(x)`` (logit
        pre-transform included; evaluation mode, no gradient), what :func:`ppgen.represent`
        returns. Images come back flattened.

        Args:
            x: data ``[N, *event_shape]`` (validated with :meth:`check_data`).

        Raises:
            ModelError: a class-conditional flow (its code depends on the label).
        """
        if self.num_classes is not None:
            raise ModelError(f"a class-conditional {type(self).__name__}'s base-space code "
                             "depends on the label, so it is no representation of x alone: "
                             "encode with an unconditional flow")
        x = self.check_data(x).to(self.device)
        with eval_mode(self):
            return self.flow._transform(x, context=None)[0].reshape(len(x), -1)

    def initialize(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """ActNorm layers take the statistics of this first training batch (Kingma &
        Dhariwal, 2018): one training-mode pass of ``log p(x | y)``, run by the engine on the
        same rows on every process. Nothing happens when every ActNorm is initialised (a
        resumed or already trained flow) or there is none.

        Args:
            x: the first training batch ``[B, D]``.
            y: its labels ``[B]`` for a class-conditional flow.
        """
        if not any(isinstance(m, ActNorm) and not m.is_initialized for m in self.modules()):
            return
        mode = self.training
        self.train()
        with torch.enable_grad():  # ActNorm initialises in a training step only
            self.distribution(y).log_prob(x)
        self.train(mode)

    # ----------------------------------------------------------------- data
    def check_data(self, x: Any, name: str = "data") -> torch.Tensor:
        """Validate ``x: [N, D]`` reals (in ``[0, 1]`` for a logit flow).

        Raises:
            DataError: wrong shape, NaN/inf, or values outside ``[0, 1]`` (``(0, 1)`` with
                ``logit_alpha=0``) for a flow with the logit pre-transform.
        """
        x = validate(x, "continuous", event_shape=(self.num_dims,), name=name)
        if self.logit_alpha is not None:
            _check_unit_interval(x, self.logit_alpha, name)
        return self.in_model_dtype(x)

    @classmethod
    def for_data(cls, info: DataInfo, **kwargs: Any) -> GenerativeModel:
        """The flow for flat data described by ``info``; ``kwargs`` override the arguments.

        * ``"continuous"`` data: the flow itself; with the logit pre-transform
          (``logit_alpha = 0.05``) when the data are dequantised levels in ``[0, 1)``
          (``info.num_levels`` set, as for the continuous digits).
        * ``"categorical"`` / ``"bernoulli"`` data: a :class:`~ppgen.models.dequantization.
          Dequantized` wrapper (``num_levels`` from ``info``) around a logit flow; the
          dequantisation options (``dequantization``, ``dequantizer_layers``,
          ``dequantizer_hidden``) in ``kwargs`` go to the wrapper.

        Raises:
            ModelError: data with more than one event dimension (flatten them first).
        """
        if len(info.event_shape) != 1:
            raise ModelError(
                f"{cls.__name__} models flat data but one datum has shape "
                f"{tuple(info.event_shape)}: flatten the data to [N, D] first"
            )
        return cls._build_for(info, info.num_dims, kwargs)

    @classmethod
    def _build_for(cls, info: DataInfo, shape: Any, kwargs: dict[str, Any]) -> GenerativeModel:
        """``cls(shape, ...)`` for continuous data, wrapped in ``Dequantized`` for levels."""
        wrapper = {k: kwargs.pop(k) for k in Dequantized.options if k in kwargs}
        if info.likelihood == "continuous":
            if wrapper:
                raise ModelError(f"{', '.join(wrapper)} only apply to discrete data")
            alpha = DEFAULT_LOGIT_ALPHA if info.num_levels else None
            return cls(shape, **{"logit_alpha": alpha, **kwargs})
        flow = cls(shape, **{"logit_alpha": DEFAULT_LOGIT_ALPHA, **kwargs})
        return Dequantized(flow, info.num_levels or 2, **wrapper)


def _check_unit_interval(x: torch.Tensor, alpha: float, name: str) -> None:
    lo, hi = value_range(x)
    closed = alpha > 0
    ok = (lo >= 0 and hi <= 1) if closed else (lo > 0 and hi < 1)
    if not ok:
        interval = "[0, 1]" if closed else "(0, 1)"
        raise DataError(
            f"{name} has values in [{lo:g}, {hi:g}] but this flow's logit pre-transform models "
            f"data in {interval}: rescale the data, or build the flow with logit_alpha=None for "
            "data on the real line"
        )


# =========================================================================== the flows
class RealNVP(FlowModel):
    """RealNVP: affine coupling layers with alternating masks (Dinh et al., 2017).

    Each layer keeps half of the dimensions (alternating parity) and scales and shifts the
    other half by a residual MLP of the kept half (nflows ``AffineCouplingTransform``);
    optional normalisation after every layer. Density and sampling both take one pass.

    Paper: Dinh, Sohl-Dickstein & Bengio, 2017, "Density estimation using Real NVP"
    (ICLR, arXiv:1605.08803).

    Args:
        num_dims: ``D >= 2``.
        num_layers: coupling layers.
        hidden_features: width of the residual MLPs.
        num_blocks: residual blocks per MLP.
        normalization: ``"none"``, ``"actnorm"`` or ``"batchnorm"``.
        dropout: dropout rate inside the MLPs (training mode only).
        logit_alpha: ``None`` for data on the real line, or the margin of the logit
            pre-transform for data in ``[0, 1]``.
        num_classes: ``C`` for a class-conditional flow ``p(x | y)``, else ``None``.

    Example:
        >>> RealNVP(4, num_layers=2, hidden_features=8).sample(3).shape
        torch.Size([3, 4])
    """

    name = "realnvp"

    def __init__(
        self,
        num_dims: int,
        num_layers: int = 8,
        hidden_features: int = 128,
        num_blocks: int = 2,
        normalization: str = "actnorm",
        dropout: float = 0.2,
        logit_alpha: float | None = None,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        self.num_dims = num_dims
        self.num_layers = num_layers
        self.hidden_features = hidden_features
        self.num_blocks = num_blocks
        self.normalization = normalization
        self.dropout = dropout
        self.logit_alpha = logit_alpha
        self.num_classes = num_classes
        self._check_network(num_layers, hidden_features, num_blocks, dropout)
        _require_coupling_dims(num_dims, type(self).__name__)
        self._build()

    def _layers(self) -> list[Transform]:
        layers: list[Transform] = []
        for i in range(self.num_layers):
            mask = alternating_mask(self.num_dims, i)
            layers.append(transforms.AffineCouplingTransform(mask, self._coupling_net()))
            layers += normalization_layer(self.normalization, self.num_dims)
        return layers


class MAF(FlowModel):
    """Masked autoregressive flow: MADE-parameterised affine autoregressive layers.

    Each layer is ``z_i = x_i * s_i(x_<i) + m_i(x_<i)`` with a residual MADE (nflows
    ``MaskedAffineAutoregressiveTransform``), the order reversed (or randomly permuted)
    between layers. The density takes one pass; sampling takes ``D`` passes per layer.

    Paper: Papamakarios, Pavlakou & Murray, 2017, "Masked Autoregressive Flow for Density
    Estimation" (NeurIPS, arXiv:1705.07057).

    Args:
        num_dims: ``D``.
        num_layers: autoregressive layers.
        hidden_features: width of the MADEs.
        num_blocks: residual blocks per MADE.
        permutation: ``"reverse"`` or ``"random"`` order between layers.
        normalization: ``"none"``, ``"actnorm"`` or ``"batchnorm"``.
        dropout: dropout rate inside the MADEs.
        logit_alpha: see :class:`RealNVP`.
        num_classes: see :class:`RealNVP`.

    Example:
        >>> MAF(3, num_layers=2, hidden_features=8).sample(2).shape
        torch.Size([2, 3])
    """

    name = "maf"
    permutations: ClassVar[tuple[str, ...]] = ("reverse", "random")

    def __init__(
        self,
        num_dims: int,
        num_layers: int = 5,
        hidden_features: int = 128,
        num_blocks: int = 2,
        permutation: str = "reverse",
        normalization: str = "none",
        dropout: float = 0.2,
        logit_alpha: float | None = None,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        self.num_dims = num_dims
        self.num_layers = num_layers
        self.hidden_features = hidden_features
        self.num_blocks = num_blocks
        self.permutation = permutation
        self.normalization = normalization
        self.dropout = dropout
        self.logit_alpha = logit_alpha
        self.num_classes = num_classes
        self._check_network(num_layers, hidden_features, num_blocks, dropout)
        _check_permutation(permutation, self.permutations)
        self._build()

    def _layers(self) -> list[Transform]:
        layers: list[Transform] = []
        for i in range(self.num_layers):
            if i > 0:
                layers.append(_permutation(self.permutation, self.num_dims))
            layers.append(
                transforms.MaskedAffineAutoregressiveTransform(
                    self.num_dims,
                    self.hidden_features,
                    context_features=self.context_features,
                    num_blocks=self.num_blocks,
                    dropout_probability=self.dropout,
                )
            )
            layers += normalization_layer(self.normalization, self.num_dims)
        return layers


class NSF(FlowModel):
    """Neural spline flow: monotonic rational-quadratic splines, coupling or autoregressive.

    Each layer maps every transformed dimension through a monotonic rational-quadratic spline
    with ``num_bins`` bins on ``[-tail_bound, tail_bound]`` (identity, linear tails outside),
    its knots given by a residual MLP of the kept half (``transform="coupling"``, nflows
    ``PiecewiseRationalQuadraticCouplingTransform``; one pass both ways) or by a residual MADE
    of the previous dimensions (``"autoregressive"``,
    ``MaskedPiecewiseRationalQuadraticAutoregressiveTransform``; ``D`` passes to sample).
    Coupling layers alternate their masks; a random (or reversing) permutation separates
    layers. Both transforms are nflows' with the mask-free spline of
    :mod:`ppgen.models.splines` (the same function, parameters and ``state_dict`` keys, and
    no host synchronisation in a training step).

    Paper: Durkan, Bekasov, Murray & Papamakarios, 2019, "Neural Spline Flows" (NeurIPS,
    arXiv:1906.04032).

    The defaults (autoregressive, 64 hidden units, dropout 0.2) are the digits recipe, the best
    flow of ``python benchmarks/flows.py``.

    Args:
        num_dims: ``D`` (``>= 2`` for coupling).
        transform: ``"coupling"`` or ``"autoregressive"``.
        num_layers: spline layers.
        hidden_features: width of the networks.
        num_blocks: residual blocks per network.
        num_bins: spline bins.
        tail_bound: ``B``: the splines act on ``[-B, B]``; the identity outside.
        permutation: ``"random"``, ``"reverse"`` or ``"none"`` between layers.
        normalization: ``"none"``, ``"actnorm"`` or ``"batchnorm"``.
        dropout: dropout rate inside the networks.
        logit_alpha: see :class:`RealNVP`.
        num_classes: see :class:`RealNVP`.

    Example:
        >>> NSF(2, num_layers=2, hidden_features=8).sample(4).shape
        torch.Size([4, 2])
    """

    name = "nsf"
    transform_kinds: ClassVar[tuple[str, ...]] = ("coupling", "autoregressive")
    permutations: ClassVar[tuple[str, ...]] = ("random", "reverse", "none")

    def __init__(
        self,
        num_dims: int,
        transform: str = "autoregressive",
        num_layers: int = 5,
        hidden_features: int = 64,
        num_blocks: int = 2,
        num_bins: int = 8,
        tail_bound: float = 5.0,
        permutation: str = "random",
        normalization: str = "none",
        dropout: float = 0.2,
        logit_alpha: float | None = None,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        self.num_dims = num_dims
        self.transform = transform
        self.num_layers = num_layers
        self.hidden_features = hidden_features
        self.num_blocks = num_blocks
        self.num_bins = num_bins
        self.tail_bound = tail_bound
        self.permutation = permutation
        self.normalization = normalization
        self.dropout = dropout
        self.logit_alpha = logit_alpha
        self.num_classes = num_classes
        self._check_network(num_layers, hidden_features, num_blocks, dropout)
        self._check_spline()
        self._build()

    def _check_spline(self) -> None:
        if self.transform not in self.transform_kinds:
            raise ModelError(f"unknown transform {self.transform!r}: use one of "
                             f"{self.transform_kinds}")
        if self.transform == "coupling":
            _require_coupling_dims(self.num_dims, "NSF(transform='coupling')")
        _check_permutation(self.permutation, self.permutations)
        if not isinstance(self.num_bins, int) or self.num_bins < 2:
            raise ModelError(f"num_bins must be an integer >= 2, got {self.num_bins!r}")
        if not self.tail_bound > 0:
            raise ModelError(f"tail_bound must be > 0, got {self.tail_bound!r}")

    def _layers(self) -> list[Transform]:
        layers: list[Transform] = []
        for i in range(self.num_layers):
            if i > 0 and self.permutation != "none":
                layers.append(_permutation(self.permutation, self.num_dims))
            layers.append(self._spline(i))
            layers += normalization_layer(self.normalization, self.num_dims)
        return layers

    def _spline(self, i: int) -> Transform:
        spline = {"num_bins": self.num_bins, "tails": "linear", "tail_bound": self.tail_bound}
        if self.transform == "coupling":
            return splines.PiecewiseRationalQuadraticCouplingTransform(
                alternating_mask(self.num_dims, i), self._coupling_net(), **spline
            )
        return splines.MaskedPiecewiseRationalQuadraticAutoregressiveTransform(
            self.num_dims,
            self.hidden_features,
            context_features=self.context_features,
            num_blocks=self.num_blocks,
            dropout_probability=self.dropout,
            **spline,
        )


# =========================================================================== helpers
def _require_coupling_dims(num_dims: int, what: str) -> None:
    if isinstance(num_dims, int) and num_dims < 2:
        raise ModelError(
            f"{what} needs num_dims >= 2 (a coupling layer splits the dimensions), got "
            f"{num_dims}: use MAF or NSF(transform='autoregressive') for 1-D data"
        )


def _check_permutation(permutation: str, allowed: tuple[str, ...]) -> None:
    if permutation not in allowed:
        raise ModelError(f"unknown permutation {permutation!r}: use one of {allowed}")


def _permutation(name: str, num_dims: int) -> Transform:
    if name == "random":
        return transforms.RandomPermutation(num_dims)
    return transforms.ReversePermutation(num_dims)
