"""The model protocol every zoo model follows: :class:`GenerativeModel`.

A zoo model is a :class:`~pyro.nn.PyroModule` whose ``model(x=None)`` method is a Pyro program
with the data in a plate named ``"data"``; latent-variable models add ``guide(x)``. Networks are
plain ``torch.nn`` modules, so no parameter ever enters Pyro's global parameter store: the
model's ``state_dict`` is its whole state.

Subclasses register themselves under a command-line name (the class name in kebab case, or the
class attribute ``name``), which is how checkpoints and the CLI rebuild them.
"""

from __future__ import annotations

import inspect
import json
import re
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

import pyro
import torch
from pyro import poutine

from ppgen.errors import ModelError

if TYPE_CHECKING:
    from ppgen.data import DataInfo

__all__ = [
    "GenerativeModel",
    "DistributionModel",
    "ModelKind",
    "registered_models",
    "model_class",
    "kebab_case",
]

_REGISTRY: dict[str, type[GenerativeModel]] = {}


class ModelKind(str, Enum):
    """What a model can say about the density of its data."""

    EXACT = "exact"  #: exact log-likelihood (autoregressive, flows, tabular models)
    LATENT = "latent"  #: latent variables: ELBO and importance-weighted estimates
    IMPLICIT = "implicit"  #: samples only (GANs): no density
    ENERGY = "energy"  #: unnormalised density (energy-based models)


def kebab_case(name: str) -> str:
    """``"IndependentCategorical"`` -> ``"independent-categorical"``, ``"VAE"`` -> ``"vae"``."""
    words = re.findall(r"[A-Z]+(?=[A-Z][a-z]|\d|\b)|[A-Z]?[a-z]+|[A-Z]+|\d+", name)
    return "-".join(w.lower() for w in words)


def registered_models() -> dict[str, type[GenerativeModel]]:
    """All registered model classes by CLI name (import ``ppgen.models`` to fill the zoo)."""
    return dict(sorted(_REGISTRY.items()))


def model_class(name: str) -> type[GenerativeModel]:
    """Look a model class up by its CLI name; a clear error lists the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "(none registered)"
        raise ModelError(f"unknown model {name!r}; known models: {known}") from None


class GenerativeModel(pyro.nn.PyroModule):
    """Base class of every ppgen model.

    Subclasses set ``kind`` and implement ``model`` (and ``guide`` for latent models),
    ``event_shape`` and ``support``. Constructor arguments must be stored as attributes of the
    same name: that is what :meth:`get_config` saves and :meth:`from_config` passes back.

    Attributes:
        kind: what the model can say about densities (:class:`ModelKind`).
        name: the CLI and checkpoint name (the class name in kebab case unless set).
        data_site: the name of the observed sample site.
        default_objective: the name of the training objective ``ppgen.fit`` uses by default.
        fit_defaults: training-engine options that reach the model's benchmark number
            (``epochs``, ``lr``, ...); ``ppgen.fit`` and the CLI start from them.
        objective_defaults: options of the default objective (e.g. ``num_particles``).
    """

    kind: ClassVar[ModelKind] = ModelKind.EXACT
    name: ClassVar[str] = "generative-model"
    data_site: ClassVar[str] = "x"
    default_objective: ClassVar[str] = "mle"
    fit_defaults: ClassVar[dict[str, Any]] = {}
    objective_defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, register: bool = True, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = kebab_case(cls.__name__)
        if register and not inspect.isabstract(cls):
            _REGISTRY[cls.name] = cls

    # ----------------------------------------------------------------- the program
    def model(self, x: torch.Tensor | None = None, num_samples: int | None = None) -> Any:
        """The generative program; ``x: [N, *event_shape]`` observed, or ``None`` to generate."""
        raise NotImplementedError

    def guide(self, x: torch.Tensor) -> Any:
        """The variational program q(z | x); only latent models have one."""
        raise ModelError(f"{type(self).__name__} has no latent variables and so no guide")

    # ----------------------------------------------------------------- training hooks
    def initialize(self, x: torch.Tensor, **kwargs: Any) -> None:
        """Data-dependent initialisation (e.g. ActNorm) from the first training batch
        ``x: [B, *event_shape]``.

        The engine calls it once at the start of a fresh run, under ``no_grad`` and with the
        random state kept, on the same rows on every process before gradients are
        synchronised, so every parameter exists and agrees before the first step. Default:
        nothing to initialise.
        """

    def grow_to(self, step: int) -> bool:
        """Bring the network to its shape at global training step ``step`` (progressive
        growing); return ``True`` when its parameters changed.

        The engine calls it before every step and, when resuming, before loading the weights,
        and then rebuilds optimisers (old state carried over), the weight average and the
        data-parallel wrappers. Default: the network never changes shape.
        """
        return False

    @property
    def event_shape(self) -> torch.Size:
        """Shape of one datum."""
        raise NotImplementedError

    def check_data(self, x: Any, name: str = "data") -> torch.Tensor:
        """Validate data for this model and return it in the dtype the likelihood needs.

        The default accepts finite real data of shape ``[N, *event_shape]``; models with
        discrete likelihoods override it (see :func:`ppgen.data.validate`).

        Raises:
            DataError: wrong shape, non-finite values or values outside the support.
        """
        from ppgen.data.validate import validate

        x = validate(x, "continuous", event_shape=tuple(self.event_shape), name=name)
        return self.in_model_dtype(x)

    def in_model_dtype(self, x: torch.Tensor) -> torch.Tensor:
        """Real data in the dtype of the model's parameters (float64 NumPy arrays meet float32
        networks); integer data unchanged."""
        if not x.is_floating_point():
            return x
        for tensor in self.parameters():
            return x.to(tensor.dtype)
        return x

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters (or buffers)."""
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """Draw ``n`` samples: ``[n, *event_shape]`` on the model's device."""
        trace = poutine.trace(self.model).get_trace(None, num_samples=n)
        return trace.nodes[self.data_site]["value"]

    def num_parameters(self) -> int:
        """Number of free parameters."""
        return sum(p.numel() for p in self.parameters())

    # ----------------------------------------------------------------- configuration
    def get_config(self) -> dict[str, Any]:
        """JSON-able constructor arguments that rebuild this model (see :meth:`from_config`)."""
        config = {}
        for param in inspect.signature(type(self).__init__).parameters.values():
            if param.name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            value = getattr(self, param.name)
            config[param.name] = list(value) if isinstance(value, tuple) else value
        try:
            json.dumps(config)
        except TypeError as err:
            raise ModelError(f"{type(self).__name__} config is not JSON-able: {err}") from err
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> GenerativeModel:
        """Rebuild a model (with fresh parameters) from :meth:`get_config` output."""
        return cls(**config)

    @classmethod
    def for_data(cls, info: DataInfo, **kwargs: Any) -> GenerativeModel:
        """Build the model for a data set described by ``info`` (shape, levels, likelihood).

        Subclasses map the data description onto their constructor; ``kwargs`` override.
        """
        return cls(**kwargs)

    def save(self, path: str) -> None:
        """Save weights and config to ``path`` (load with :func:`ppgen.load`)."""
        from ppgen.checkpoint import save_model

        save_model(self, path)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())


class DistributionModel(GenerativeModel, register=False):
    """A model whose data are i.i.d. draws of one distribution over flat data ``[D]``.

    Subclasses store ``num_dims`` and implement :meth:`distribution`; the program puts that
    distribution in the ``"data"`` plate as the one observed site ``"x"``.
    """

    num_dims: int

    def distribution(self) -> Any:
        """The distribution of one datum: batch ``[]``, event ``[D]``."""
        raise NotImplementedError

    def model(self, x: torch.Tensor | None = None, num_samples: int | None = None) -> torch.Tensor:
        """The generative program: ``x ~ distribution()`` for every row, in the ``"data"`` plate.

        Args:
            x: observed data ``[N, D]``, or ``None`` to generate.
            num_samples: ``N`` when generating (default 1).

        Returns:
            ``x`` (observed or generated), ``[N, D]``.
        """
        n = x.shape[0] if x is not None else (num_samples or 1)
        with pyro.plate("data", n, device=self.device):
            return pyro.sample(self.data_site, self.distribution().expand([n]), obs=x)

    @property
    def event_shape(self) -> torch.Size:
        """``[D]``: one flat datum."""
        return torch.Size([self.num_dims])
