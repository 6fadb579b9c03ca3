"""Dequantisation: continuous flows as models of integer data, with uniform or learned noise.

Integer levels ``x in {0..K-1}^D`` are modelled through a continuous density ``p_y`` (a zoo
flow) of ``y = (x + u) / K`` with noise ``u in [0, 1)^D``. :class:`Dequantized` writes this as
a latent-variable Pyro program:

* model: ``u ~ Uniform(0, 1)^D`` (density 1) and ``x ~ DequantizedLikelihood``, whose
  ``log p(x | u) = log p_y((x + u) / K) - D log K``; the product is the joint density of
  ``(x, u)`` when ``y ~ p_y`` is split into ``x = floor(K y)`` and ``u = K y - x``, so
  ``P(x) = ∫ p(x | u) du`` is the probability ``p_y`` puts on the bin of ``x``;
* guide ``q(u | x)``: ``Uniform(0, 1)^D`` (uniform dequantisation, Theis et al., 2016), or a
  conditional flow squashed into ``(0, 1)^D`` whose context is ``x`` (variational
  dequantisation, Ho et al., 2019, "Flow++", arXiv:1902.00275), trained jointly.

So the shared evaluation layer gives the numbers BENCHMARKS.md asks for without a line of
special code: ``ppgen.elbo`` is the discrete bound ``-E_q[-log p_y(y) + log q(u | x)] - D log
K`` (with the uniform guide exactly ``-(E_u[-log p_y(y)] + D log K)``, see
:func:`ppgen.evaluate.dequantization_bound`), ``ppgen.log_likelihood`` with ``K`` particles is
the tighter importance-weighted bound, and training is the ELBO objective with fresh noise
every step. The generative path (``x=None``) draws ``y ~ p_y`` and quantises it,
``x = floor(K y)`` (:func:`ppgen.data.quantize`); the noise site is then an unused draw.

Class-conditional data ``p(x | y)``: wrap a flow built with ``num_classes=C``. The label goes
to the flow's context, ``log p(x | u, y) = log p_y((x + u) / K | y) - D log K``; the wrapper
declares the flow's conditioning inputs as its own (:attr:`Dequantized.conditions`), so the
programs take ``y`` like every conditional zoo flow (``model(x, y=None, num_samples=None)``,
``ppgen.fit(model, x, x_val, labels=y, val_labels=y_val)``, ``ppgen.elbo(model, None, x, y=y)``,
``ppgen.log_likelihood(model, x, y=y)``, ``model.sample(n, y=c)``) and the labels are checked
by that one declaration (:mod:`ppgen.conditions`). The variational noise
``q(u | x)`` ignores ``y``: any ``q`` gives a valid bound, the noise only describes where ``x``
sits inside its own bins (a local property the data already pin down; the digits' pixels
determine their class almost surely), and so a conditional and an unconditional model share one
dequantiser architecture and can be compared bound for bound.

With a logit pre-transform of margin ``alpha > 0`` the flow's density of ``y`` reaches slightly
beyond ``[0, 1]`` and the bins hold a little less than all the mass: the bound is then
conservative (it bounds the NLL of a sub-normalised model), never optimistic.

Example:
    >>> from ppgen.models import MAF
    >>> model = Dequantized(MAF(4, num_layers=2, hidden_features=8, logit_alpha=0.05), 17)
    >>> model.sample(3).dtype
    torch.int64
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import pyro
import pyro.distributions as dist
import torch
from nflows import transforms
from nflows.distributions import StandardNormal
from nflows.flows import Flow
from nflows.nn.nets import ResidualNet
from pyro.distributions import TorchDistribution
from torch import nn
from torch.distributions import constraints

from ppgen.conditions import Conditions
from ppgen.data.transforms import quantize
from ppgen.data.validate import validate
from ppgen.distributions.flow import FlowDistribution
from ppgen.distributions.transforms import LogitTransform, alternating_mask
from ppgen.errors import ModelError
from ppgen.evaluate.bounds import dequantization_bound
from ppgen.protocol import DistributionModel, GenerativeModel, ModelKind, model_class

if TYPE_CHECKING:
    from ppgen.data import DataInfo

__all__ = ["Dequantized", "DequantizedLikelihood", "DEQUANTIZATIONS", "dequantizer_flow"]

#: Noise distributions ``q(u | x)``.
DEQUANTIZATIONS = ("uniform", "variational")

#: ``eps``: the variational noise stays in ``[eps, 1 - eps]`` even where a sigmoid saturates
_NOISE_MARGIN = 1e-5


class DequantizedLikelihood(TorchDistribution):
    """``p(x | u) = p_y((x + u) / K) K^{-D}`` for integer levels ``x``, given the noise ``u``.

    Args:
        density: the distribution of ``y`` (event ``[D]``, e.g. a
            :class:`~ppgen.distributions.flow.FlowDistribution`).
        noise: ``u``, ``[*batch, D]`` in ``[0, 1]``; sets the batch shape.
        num_levels: ``K``.

    ``log_prob(x)``: ``x: [*lead, D]`` integer levels -> ``[*batch]``; ``sample()`` ignores the
    noise and returns ``floor(K y)``, ``y ~ density`` (the marginal of ``x``).
    """

    arg_constraints: dict = {}

    def __init__(
        self, density: Any, noise: torch.Tensor, num_levels: int, validate_args=None
    ) -> None:
        self.density, self.noise, self.num_levels = density, noise, num_levels
        super().__init__(noise.shape[:-1], noise.shape[-1:], validate_args=validate_args)

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:
        return constraints.independent(constraints.integer_interval(0, self.num_levels - 1), 1)

    def expand(self, batch_shape, _instance=None) -> DequantizedLikelihood:
        noise = self.noise.expand(torch.Size(batch_shape) + self.event_shape)
        return DequantizedLikelihood(self.density, noise, self.num_levels)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        y = (value + self.noise) / self.num_levels
        log_density = self.density.log_prob(y)
        return -dequantization_bound(log_density, self.event_shape[0], self.num_levels)

    @torch.no_grad()
    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        y = self.density.expand(self.batch_shape).sample(sample_shape)
        return quantize(y.reshape(-1, *self.event_shape), self.num_levels).reshape(y.shape)


def dequantizer_flow(num_dims: int, num_layers: int, hidden_features: int) -> Flow:
    """The variational noise ``q(u | x)``: a conditional affine-coupling flow on ``(0, 1)^D``.

    Data -> noise: ``u -> logit`` (strictly inside ``(0, 1)`` in the sampling direction), then
    ``num_layers`` affine couplings with alternating masks whose residual MLPs see an
    embedding of the context ``x / (K - 1)``; standard-normal base. Both directions take one
    pass, and the guide's own draws are scored from the adapter's cache.
    """
    if num_dims < 2:
        raise ModelError("variational dequantisation needs num_dims >= 2 (coupling layers); "
                         "use dequantization='uniform' for 1-D data")

    def net(in_features: int, out_features: int) -> ResidualNet:
        return ResidualNet(in_features, out_features, hidden_features,
                           context_features=hidden_features, num_blocks=1)

    margin = -_NOISE_MARGIN / (1 - 2 * _NOISE_MARGIN)
    layers: list[transforms.Transform] = [LogitTransform(margin)]
    layers += [
        transforms.AffineCouplingTransform(alternating_mask(num_dims, i), net)
        for i in range(num_layers)
    ]
    embedding = nn.Sequential(
        nn.Linear(num_dims, hidden_features), nn.ReLU(), nn.Linear(hidden_features, hidden_features)
    )
    return Flow(transforms.CompositeTransform(layers), StandardNormal([num_dims]), embedding)


class Dequantized(GenerativeModel):
    """A continuous flow as a model of integer levels ``0..K-1``, with dequantisation noise.

    See the module docstring for the program. ``ppgen.fit`` trains it with the ELBO (fresh
    noise every step); ``ppgen.elbo`` is the discrete bound of BENCHMARKS.md and
    ``ppgen.log_likelihood`` the importance-weighted one. The zoo flows' ``for_data`` builds
    this wrapper for categorical and binary data.

    Args:
        flow: the density of ``y`` in ``[0, 1]^D``: a continuous exact
            :class:`~ppgen.protocol.DistributionModel` whose ``distribution(**conditions)`` is
            that density — a zoo flow (:class:`~ppgen.models.flows.FlowModel`, normally with a
            logit pre-transform; class-conditional when built with ``num_classes``, which makes
            this a model of ``p(x | y)``) — or its ``{"name": ..., "config": ...}`` description
            (what :meth:`get_config` saves).
        num_levels: ``K``.
        dequantization: ``"uniform"`` or ``"variational"``.
        dequantizer_layers: coupling layers of the variational noise flow.
        dequantizer_hidden: width of its networks (and of the embedding of ``x``).

    Example:
        >>> from ppgen.models import RealNVP
        >>> flow = RealNVP(4, num_layers=2, hidden_features=8, logit_alpha=0.05)
        >>> Dequantized(flow, 3, dequantization="variational").sample(2).shape
        torch.Size([2, 4])
        >>> cflow = RealNVP(4, num_layers=2, hidden_features=8, logit_alpha=0.05, num_classes=2)
        >>> Dequantized(cflow, 3).sample(3, y=1).shape
        torch.Size([3, 4])
    """

    kind = ModelKind.LATENT
    default_objective = "elbo"
    #: the ELBO with one noise draw per datum; validation on the importance-weighted bound
    objective_defaults: ClassVar[dict[str, Any]] = {"num_particles": 1, "validation_particles": 4}
    #: the keyword arguments of the wrapper (``FlowModel.for_data`` routes them here)
    options: ClassVar[tuple[str, ...]] = (
        "dequantization", "dequantizer_layers", "dequantizer_hidden"
    )

    def __init__(
        self,
        flow: DistributionModel | dict[str, Any],
        num_levels: int,
        dequantization: str = "uniform",
        dequantizer_layers: int = 4,
        dequantizer_hidden: int = 64,
    ) -> None:
        super().__init__()
        self.flow_model = _build_flow(flow)
        self.num_dims = self.flow_model.num_dims
        self.num_levels = num_levels
        self.dequantization = dequantization
        self.dequantizer_layers = dequantizer_layers
        self.dequantizer_hidden = dequantizer_hidden
        self._check()
        if dequantization == "variational":
            self.dequantizer = dequantizer_flow(self.num_dims, dequantizer_layers,
                                                dequantizer_hidden)
        # the flow's recipe is the wrapper's (an instance attribute shadows the class default)
        self.fit_defaults = dict(type(self.flow_model).fit_defaults)
        self.register_buffer("_zero", torch.zeros(()), persistent=False)
        self.register_buffer("_one", torch.ones(()), persistent=False)

    def _check(self) -> None:
        if not isinstance(self.num_levels, int) or self.num_levels < 2:
            raise ModelError(f"num_levels must be an integer >= 2, got {self.num_levels!r}")
        if self.dequantization not in DEQUANTIZATIONS:
            raise ModelError(f"unknown dequantization {self.dequantization!r}: use one of "
                             f"{DEQUANTIZATIONS}")
        if self.dequantizer_layers < 1 or self.dequantizer_hidden < 1:
            raise ModelError("dequantizer_layers and dequantizer_hidden must be >= 1")

    # ----------------------------------------------------------------- configuration
    def get_config(self) -> dict[str, Any]:
        """The wrapper's arguments, the flow as ``{"name": ..., "config": ...}``."""
        flow = {"name": self.flow_model.name, "config": self.flow_model.get_config()}
        return {
            "flow": flow,
            "num_levels": self.num_levels,
            "dequantization": self.dequantization,
            "dequantizer_layers": self.dequantizer_layers,
            "dequantizer_hidden": self.dequantizer_hidden,
        }

    @classmethod
    def for_data(cls, info: DataInfo, flow: str = "maf", **kwargs: Any) -> GenerativeModel:
        """The flow ``flow`` (a zoo name) dequantised for the integer data ``info`` describes."""
        if info.likelihood == "continuous":
            raise ModelError("these data are continuous: fit the flow itself, not Dequantized")
        built = model_class(flow).for_data(info, **kwargs)
        if not isinstance(built, Dequantized):
            raise ModelError(f"{flow!r} is not a flow of the zoo")
        return built

    @property
    def event_shape(self) -> torch.Size:
        """``[D]``: one flat datum."""
        return torch.Size([self.num_dims])

    @property
    def num_classes(self) -> int | None:
        """``C`` of a class-conditional flow (a model of ``p(x | y)``), else ``None``."""
        return self.flow_model.num_classes

    @property
    def conditions(self) -> Conditions:
        """The wrapped flow's conditioning inputs (``y`` of a class-conditional flow)."""
        return Conditions(tuple(self.flow_model.conditions), type(self).__name__)

    # ----------------------------------------------------------------- Pyro programs
    def _uniform(self, n: int) -> dist.TorchDistribution:
        return dist.Uniform(self._zero, self._one).expand([n, self.num_dims]).to_event(1)

    def model(
        self,
        x: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        num_samples: int | None = None,
    ) -> torch.Tensor:
        """``u ~ U(0, 1)^D``, ``x ~ DequantizedLikelihood(p_y(. | y), u, K)`` in the ``"data"``
        plate.

        Args:
            x: observed levels ``[N, D]``, or ``None`` to generate (``x = floor(K y)``,
                ``y ~ p_y``; the noise site is then an unused draw).
            y: ``long`` labels ``[N]`` of a class-conditional flow (refused otherwise); when
                generating without labels the classes are taken in turn, as for the flows.
            num_samples: ``N`` when generating without labels (default 1).

        Returns:
            ``x`` ``[N, D]`` (``long``).
        """
        values = self.conditions.in_program({"y": y}, x, num_samples, self.device)
        y = values.get("y")
        n = x.shape[0] if x is not None else (len(y) if y is not None else (num_samples or 1))
        with pyro.plate("data", n, device=self.device):
            u = pyro.sample("u", self._uniform(n))
            density = self.flow_model.distribution(**values)
            likelihood = DequantizedLikelihood(density, u, self.num_levels)
            return pyro.sample(self.data_site, likelihood, obs=x)

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``q(u | x)``: uniform, or the conditional noise flow (context ``x / (K - 1)``).

        The labels ``y`` of a class-conditional model are accepted and ignored (see the module
        docstring: any ``q`` gives a valid bound, and the noise is local to ``x``'s bins).
        """
        with pyro.plate("data", x.shape[0], device=self.device):
            if self.dequantization == "uniform":
                return pyro.sample("u", self._uniform(x.shape[0]))
            context = x.to(self._one.dtype) / (self.num_levels - 1)
            return pyro.sample("u", FlowDistribution(self.dequantizer, context))

    def initialize(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """The wrapped density's data-dependent initialisation on uniformly dequantised
        ``(x + u) / K`` of the first training batch ``x: [B, D]``."""
        u = torch.rand(x.shape, dtype=self._one.dtype, device=x.device)
        values = {} if y is None else {"y": y}
        self.flow_model.initialize((x + u) / self.num_levels, **values)

    # ----------------------------------------------------------------- representation
    @torch.no_grad()
    def encode(self, x: Any) -> torch.Tensor:
        """The wrapped flow's base-space codes ``[N, D]`` of the bins' midpoints ``(x + 1/2) /
        K`` (a deterministic code of the levels ``x: [N, D]``)."""
        x = self.check_data(x).to(self.device)
        return self.flow_model.encode((x.to(self._one.dtype) + 0.5) / self.num_levels)

    # ----------------------------------------------------------------- data
    def check_data(self, x: Any, name: str = "data") -> torch.Tensor:
        """Validate integer levels ``[N, D]`` in ``0..K-1`` (returned as ``long``)."""
        return validate(x, "categorical", num_levels=self.num_levels,
                        event_shape=(self.num_dims,), name=name)


def _build_flow(flow: DistributionModel | dict[str, Any]) -> DistributionModel:
    """The wrapped density model, rebuilt from its description when given one.

    Any continuous exact :class:`~ppgen.protocol.DistributionModel` fits (its distribution's
    support is not discrete); the zoo flows are the ones that ``for_data`` wraps.
    """
    if isinstance(flow, dict):
        try:
            flow = model_class(flow["name"]).from_config(flow["config"])
        except (KeyError, TypeError) as err:
            raise ModelError(f"flow must be a zoo flow or {{'name', 'config'}}: {err}") from err
    if not _is_continuous_density(flow):
        raise ModelError(f"Dequantized wraps a continuous density of flat data, a zoo flow "
                         f"(RealNVP, MAF, NSF, Glow), not {type(flow).__name__}")
    return flow


def _is_continuous_density(flow: Any) -> bool:
    if not isinstance(flow, DistributionModel) or flow.kind != ModelKind.EXACT:
        return False
    return not flow.distribution().support.is_discrete
