"""The model protocol every zoo model follows: :class:`GenerativeModel`.

A zoo model is a :class:`~pyro.nn.PyroModule` whose ``model(x=None)`` method is a Pyro program
with the data in a plate named ``"data"``; latent-variable models add ``guide(x)``. Networks are
plain ``torch.nn`` modules, so no parameter ever enters Pyro's global parameter store: the
model's ``state_dict`` is its whole state.

Subclasses register themselves under a command-line name (the class name in kebab case, or the
class attribute ``name``), which is how checkpoints and the CLI rebuild them
(:mod:`ppgen.registry`).

Capabilities are declared, not probed: a model declares its conditioning inputs
(:attr:`GenerativeModel.conditions`, :mod:`ppgen.conditions`), its sampler options
(:attr:`GenerativeModel.sample_options`, passed as ``sample(n, **options)``) and what one
evaluation pass can afford (:attr:`GenerativeModel.evaluation_defaults`); the engine, the
evaluation layer and the CLI read these words instead of looking for attributes.
"""

from __future__ import annotations

import inspect
import json
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

import pyro
import torch
from pyro import poutine

from ppgen.checkpoint import save_model
from ppgen.conditions import Conditions
from ppgen.errors import ModelError
from ppgen.registry import kebab_case, model_class, registered_models
from ppgen.registry import register as register_class

if TYPE_CHECKING:
    from ppgen.data import DataInfo

__all__ = [
    "GenerativeModel",
    "DistributionModel",
    "ModelKind",
    "registered_models",
    "model_class",
    "kebab_case",
    "DEFAULT_NUM_PARTICLES",
    "EVALUATION_OPTIONS",
]

#: importance particles of a latent model's evaluation unless the model declares otherwise
DEFAULT_NUM_PARTICLES = 1000

#: the options a model's ``evaluation_defaults`` may declare
EVALUATION_OPTIONS = ("num_particles", "batch_size")


class ModelKind(str, Enum):
    """What a model can say about the density of its data."""

    EXACT = "exact"  #: exact log-likelihood (autoregressive, flows, tabular models)
    LATENT = "latent"  #: latent variables: ELBO and importance-weighted estimates
    IMPLICIT = "implicit"  #: samples only (GANs): no density
    ENERGY = "energy"  #: unnormalised density (energy-based models)


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
        sample_options: the sampler options of :meth:`sample` with their defaults
            (``{"num_steps": 1000}``); ``sample(n, num_steps=50)`` overrides one, an
            undeclared name is refused with the list of valid ones. Default: none.
        evaluation_defaults: what one evaluation pass can afford, read by
            :meth:`evaluation_options` whenever a caller does not say: ``num_particles``
            (importance samples per datum; a diffusion model whose pass costs 1,000 network
            calls declares a few) and ``batch_size`` (rows per chunk, ``None``: the layer's
            own sizing). Undeclared: 1 particle for exact models,
            :data:`DEFAULT_NUM_PARTICLES` otherwise.
    """

    kind: ClassVar[ModelKind] = ModelKind.EXACT
    name: ClassVar[str] = "generative-model"
    data_site: ClassVar[str] = "x"
    default_objective: ClassVar[str] = "mle"
    fit_defaults: ClassVar[dict[str, Any]] = {}
    objective_defaults: ClassVar[dict[str, Any]] = {}
    sample_options: ClassVar[dict[str, Any]] = {}
    evaluation_defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, register: bool = True, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = kebab_case(cls.__name__)
        unknown = sorted(set(cls.evaluation_defaults) - set(EVALUATION_OPTIONS))
        if unknown:
            raise ModelError(f"{cls.__name__}.evaluation_defaults declares {unknown}; the "
                             f"evaluation options are {list(EVALUATION_OPTIONS)}")
        if register and not inspect.isabstract(cls):
            register_class(cls)

    # ----------------------------------------------------------------- the program
    def model(self, x: torch.Tensor | None = None, num_samples: int | None = None) -> Any:
        """The generative program; ``x: [N, *event_shape]`` observed, or ``None`` to generate."""
        raise NotImplementedError

    def guide(self, x: torch.Tensor) -> Any:
        """The variational program q(z | x); only latent models have one."""
        raise ModelError(f"{type(self).__name__} has no latent variables and so no guide")

    def critic_network(self) -> torch.nn.Module | None:
        """The critic an implicit model is trained against, when it carries one (the
        adversarial counterpart of a guide: zoo GANs carry theirs and save it with the model);
        ``None`` otherwise, and adversarial objectives then need a critic of their own."""
        return None

    def critic_outputs(self, critic: torch.nn.Module, x: torch.Tensor, **conditions: Any
                       ) -> tuple[torch.Tensor, dict[str, Any]]:
        """The critic's scores ``[N]`` on ``x: [N, *event_shape]`` and what it recognises in
        ``x``: ``{site: distribution}`` over program sites or conditioning inputs, from the
        same pass (AC-GAN's classifier of the label ``y``, InfoGAN's ``Q`` network of the
        codes). The adversarial objective adds ``-λ log q(value | x)`` for every value it knows
        (on draws: the program's sites and the conditions; on data: the conditions) to the
        critic's loss, and on draws to the generator's. Default: the scores of
        ``critic(x, **conditions)`` and nothing recognised.
        """
        return critic(x, **conditions).reshape(len(x)), {}

    def data_for_critic(self, x: torch.Tensor) -> torch.Tensor:
        """The data ``x: [N, *event_shape]`` as the critic is shown them in a training step,
        where that differs from the data (a progressive GAN's images pooled to the current
        resolution and blended during a fade-in). Default: ``x`` itself."""
        return x

    def bound_decomposition(self, x: torch.Tensor, **conditions: Any
                            ) -> dict[str, torch.Tensor] | None:
        """The model's own split of its bound, when it declares one: ``{term: [N]}`` nats per
        datum of checked data ``x: [N, *event_shape]`` (and checked conditioning values), whose
        sum is ``-ppgen.elbo(model, None, x, analytic_kl=True)`` (one draw of the guide).

        :func:`~ppgen.evaluate.nll_report` reads it for the one-particle bound of a latent
        model (a diffusion model: ``{"prior", "steps", "decoder"}``), so the report shows the
        terms beside their sum from a single pass. Default: ``None`` (no decomposition; the
        report runs the evaluation layer's ELBO).
        """
        return None

    # ----------------------------------------------------------------- translation
    @property
    def num_domains(self) -> int:
        """``K``, the domains a translation model maps between (CycleGAN, StarGAN); ``0`` for
        every other model (what the translation objective checks before training)."""
        return 0

    def translate_rows(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Differentiable translations ``[N, *event_shape]`` of rows ``x`` into the domains
        ``target: [N]`` (``long`` indices), what the translation objective trains. Default:
        the model translates nothing (``ModelError``)."""
        raise ModelError(f"{type(self).__name__} is not a translation model (CycleGAN, "
                         "StarGAN): it has no domains to translate between")

    # ----------------------------------------------------------------- representation
    def encode(self, x: Any) -> torch.Tensor:
        """Features ``[N, F]`` of data ``x: [N, *event_shape]`` (no gradient, no dropout): what
        :func:`ppgen.represent` returns for the models that have an encoder (a VAE's or an
        adversarial autoencoder's posterior means, a BiGAN's encoder, PPCA's posterior mean, a
        flow's base-space code). Default: the model has none (``ModelError``)."""
        raise ModelError(f"{type(self).__name__} has no encoder, so no representation of the "
                         "data; models with one: VAE-like latent models, BiGAN/ALI, PPCA, flows")

    def decoder_log_prob(self, z: torch.Tensor, x: torch.Tensor,
                         noise_scale: float | None = None) -> torch.Tensor:
        """``log p(x | z)`` ``[M]`` of a decoder-based model for codes ``z: [M, latent_dim]``
        under the prior ``N(0, I)`` and flat data ``x: [M, D]`` (differentiable in ``z``):
        what :func:`ppgen.energy.decoder_log_likelihood` anneals to estimate ``log p(x)`` by
        AIS (Wu et al. 2017). A VAE reads its decoder's observation model; a GAN's generator
        has none, so ``noise_scale`` states the Gaussian noise ``N(G(z), σ² I)``. Default:
        the model has no decoder (``ModelError``)."""
        raise ModelError(f"{type(self).__name__} has no decoder from a N(0, I) code: AIS of a "
                         "decoder's likelihood serves VAEs and GANs/DCGANs")

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

        The engine calls it before every step and, when resuming, before loading the weights
        (with the last step taken: the shape they were saved in), and then rebuilds optimisers
        (old state carried over), the weight average and the data-parallel wrappers. Default:
        the network never changes shape.
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

    # ----------------------------------------------------------------- declared capabilities
    @property
    def conditions(self) -> Conditions:
        """The conditioning inputs the programs take (:mod:`ppgen.conditions`).

        Empty for an unconditional model. A model of ``p(x | y)`` returns its declared inputs,
        e.g. ``Conditions([Condition.classes("y", 10)], "MAF")``; ``ppgen.fit(labels=...)``,
        the evaluation layer, ``sample`` and the CLI validate and batch them through it.
        """
        return Conditions((), type(self).__name__)

    def evaluation_options(
        self, num_particles: int | None = None, batch_size: int | None = None
    ) -> dict[str, Any]:
        """The evaluation settings of one pass: explicit values, else the declaration.

        Args:
            num_particles: importance samples per datum, or ``None`` for the declared default.
            batch_size: rows per chunk, or ``None`` for the declared default.

        Returns:
            ``{"num_particles": K, "batch_size": B or None}`` (see ``evaluation_defaults``).
        """
        undeclared = 1 if self.kind == ModelKind.EXACT else DEFAULT_NUM_PARTICLES
        given = {"num_particles": num_particles, "batch_size": batch_size}
        return {"num_particles": undeclared, "batch_size": None, **self.evaluation_defaults,
                **{k: v for k, v in given.items() if v is not None}}

    @torch.no_grad()
    def sample(self, n: int, **options: Any) -> torch.Tensor:
        """Draw ``n`` samples ``[n, *event_shape]`` on the model's device.

        Args:
            n: number of draws.
            **options: values of the declared conditioning inputs (:attr:`conditions`, e.g.
                ``y=3`` or ``y=[n]`` labels; missing ones take their default, e.g. the classes
                in turn) and sampler options (:attr:`sample_options`; missing ones take their
                declared default).

        Raises:
            ModelError: an option the model does not declare (the message lists the valid
                ones).
            DataError: a conditioning value its condition refuses.

        Example:
            >>> from ppgen.models import MAF
            >>> MAF(2, num_layers=1, hidden_features=8, num_classes=3).sample(4, y=2).shape
            torch.Size([4, 2])
        """
        return self.generate(n, **self.sample_arguments(n, options))

    def sample_arguments(self, n: int, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` of :meth:`sample` checked and completed: the conditioning values of
        ``n`` draws and every declared sampler option (defaults filled in)."""
        conditions = self.conditions
        unknown = sorted(set(options) - set(conditions.names) - set(self.sample_options))
        if unknown:
            raise ModelError(self._unknown_options_message(unknown, conditions))
        given = {k: v for k, v in options.items() if k in conditions.names}
        values = conditions.for_sampling(given, n, self.device)
        settings = {k: options.get(k, v) for k, v in self.sample_options.items()}
        return {**values, **settings}

    def _unknown_options_message(self, unknown: list[str], conditions: Conditions) -> str:
        valid = [c.describe() for c in conditions]
        valid += [f"{k} (default {v!r})" for k, v in self.sample_options.items()]
        what = type(self).__name__
        if not valid:
            state = " is unconditional and" if not conditions else ""
            return (f"{what}.sample got unknown option(s) {', '.join(unknown)}: {what}{state} "
                    "declares no sampler options")
        return (f"{what}.sample got unknown option(s) {', '.join(unknown)}; valid options: "
                f"{', '.join(valid)}")

    def generate(self, n: int, **kwargs: Any) -> torch.Tensor:
        """Draw ``n`` samples given checked :meth:`sample` arguments ``kwargs`` (conditioning
        values ``[n, ...]`` and every sampler option). The default runs the program with
        ``x=None``, ``num_samples=n`` and ``kwargs``; a model whose sampler is not its program
        (a diffusion model's respaced reverse process) overrides this.

        Returns:
            ``[n, *event_shape]`` samples.
        """
        trace = poutine.trace(self.model).get_trace(None, num_samples=n, **kwargs)
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
