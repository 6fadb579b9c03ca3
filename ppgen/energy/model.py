"""Energy models as Pyro programs: :class:`EnergyModel` and its data site's distribution.

An energy model defines an unnormalised density ``p̃(x) = exp(-E(x))`` over flat data ``[D]``;
its program puts an :class:`EnergyDistribution` (``log_prob = -E``, no normaliser, no exact
sampler) as the observed site in the ``"data"`` plate, so ``poutine.trace`` of the program
carries ``exp(-E(x))`` like any other site. Because the normaliser ``Z = ∫ exp(-E)`` is unknown,
the model's kind is ``energy`` and the evaluation layer routes it to annealed importance
sampling (:mod:`ppgen.energy.estimate`) instead of reading the trace as an exact likelihood.

Every energy model carries a tractable base, a Gaussian ``q_0`` fitted to the data
(:meth:`EnergyModel.fit_base`, called by the training engine on the first batch through
:meth:`EnergyModel.initialize`) and stored as buffers, so it is saved with the model. AIS starts
from it, the samplers run in its whitened coordinates and the replay buffer restarts chains from
it. What AIS and the samplers read is the log-ratio ``h(x) = -E(x) - log q_0(x)``
(:meth:`EnergyModel.log_ratio`): the model's density is ``q_0(x) exp(h(x)) / Z``.

Subclasses store ``num_dims``, call :meth:`EnergyModel.setup_base` in their constructor and
implement :meth:`EnergyModel.energy` (or :meth:`EnergyModel.log_ratio`, when they are defined
relative to the base as the zoo's ``EBM`` is).
"""

from __future__ import annotations

from typing import Any, ClassVar

import pyro
import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints

from ppgen.energy.ais import AISSettings
from ppgen.energy.base import GaussianBase
from ppgen.energy.samplers import SAMPLERS, run_chain
from ppgen.errors import ModelError
from ppgen.protocol import GenerativeModel, ModelKind

__all__ = ["EnergyModel", "EnergyDistribution", "SAMPLE_OPTIONS"]

#: the sampler options of every energy model: Langevin chains from the base (whitened units)
#: (``transition``, not ``sampler``: a model declaring ``sampler`` and ``steps`` is drawn by
#: DDIM in sample metrics, ppgen.metrics.evaluation_sampler)
SAMPLE_OPTIONS: dict[str, Any] = {"steps": 200, "transition": "mala", "step_size": 0.01,
                                  "noise_scale": None}


class EnergyDistribution(TorchDistribution):
    """The unnormalised density ``exp(-E(x))`` of flat data as one site: batch ``[N]``, event
    ``[D]``; ``log_prob(x) = -E(x)`` (no normaliser). It has no exact sampler: draws come from
    the model's Langevin chains (``model.sample``).

    Args:
        energy: ``E(x) -> [N]`` for ``x: [N, D]``.
        batch_shape: ``[N]``.
        event_shape: ``[D]``.
    """

    arg_constraints: dict = {}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, energy, batch_shape, event_shape, validate_args: bool | None = None):
        self.energy = energy
        super().__init__(torch.Size(batch_shape), torch.Size(event_shape), validate_args=False)

    def expand(self, batch_shape, _instance=None):
        if torch.Size(batch_shape) == self.batch_shape:
            return self
        return EnergyDistribution(self.energy, batch_shape, self.event_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``-E(value)``: ``[N]`` unnormalised log-densities."""
        flat = value.reshape(-1, *self.event_shape)
        return -self.energy(flat).reshape(value.shape[: value.dim() - len(self.event_shape)])

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        raise ModelError("an energy model's data site has no exact sampler: draw with "
                         "model.sample(n, steps=...) (Langevin chains from the base)")


class EnergyModel(GenerativeModel, register=False):
    """Base class of energy-based models over flat data ``[N, D]``.

    Attributes:
        ais: AIS settings of this model (a dict of :class:`~ppgen.energy.ais.AISSettings`
            fields), over :attr:`ais_defaults`; part of the config.

    Buffers: ``base_loc [D]``, ``base_scale_tril [D, D]`` (the Gaussian base, standard normal
    until fitted).
    """

    kind = ModelKind.ENERGY
    default_objective = "contrastive-divergence"
    sample_options: ClassVar[dict[str, Any]] = SAMPLE_OPTIONS
    evaluation_defaults: ClassVar[dict[str, Any]] = {"num_particles": 256}
    #: the family's AIS settings (fields of :class:`~ppgen.energy.ais.AISSettings`)
    ais_defaults: ClassVar[dict[str, Any]] = {}

    num_dims: int
    ais: dict[str, Any] | None

    def setup_base(self, num_dims: int, ais: dict[str, Any] | None = None) -> None:
        """Store ``num_dims`` and ``ais`` (checked) and register the standard-normal base."""
        cls = type(self)
        if cls.energy is EnergyModel.energy and cls.log_ratio is EnergyModel.log_ratio:
            raise ModelError(f"{cls.__name__} must implement energy(x) or log_ratio(x)")
        self.num_dims, self.ais = num_dims, None if ais is None else dict(ais)
        try:
            self.ais_settings()
        except ValueError as err:
            raise ModelError(f"{type(self).__name__}: {err}") from err
        self.register_buffer("base_loc", torch.zeros(num_dims))
        self.register_buffer("base_scale_tril", torch.eye(num_dims))

    # ----------------------------------------------------------------- the density
    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """``E(x) = -log p̃(x)``, ``[N]`` for ``x: [N, D]``."""
        return -self.log_ratio(x) - self.base().log_prob(x)

    def log_ratio(self, x: torch.Tensor) -> torch.Tensor:
        """``h(x) = -E(x) - log q_0(x)``, ``[N]``: what AIS and the samplers read."""
        return -self.energy(x) - self.base().log_prob(x)

    def white_log_ratio(self, z: torch.Tensor) -> torch.Tensor:
        """``h`` at the whitened points ``z: [K, D]`` (``x = loc + L z``)."""
        return self.log_ratio(self.base().to_data(z))

    def base(self) -> GaussianBase:
        """The Gaussian base ``q_0`` (views of the buffers)."""
        return GaussianBase(self.base_loc, self.base_scale_tril)

    @torch.no_grad()
    def fit_base(self, x: torch.Tensor) -> None:
        """Fit the base to data ``x: [N, D]`` (mean, shrunk covariance)."""
        base = GaussianBase.fit(x.reshape(x.shape[0], -1).to(self.base_loc))
        self.base_loc.copy_(base.loc)
        self.base_scale_tril.copy_(base.scale_tril)

    def initialize(self, x: torch.Tensor, **kwargs: Any) -> None:
        """The engine's data-dependent initialisation: fit the base to the first batch."""
        self.fit_base(x)

    def ais_settings(self) -> AISSettings:
        """This model's :class:`~ppgen.energy.ais.AISSettings` (defaults, then ``ais``)."""
        return AISSettings.from_dict({**self.ais_defaults, **(self.ais or {})})

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size([self.num_dims])

    # ----------------------------------------------------------------- the program
    def model(self, x: torch.Tensor | None = None, num_samples: int | None = None) -> Any:
        """``x ~ exp(-E(x)) / Z`` in the ``"data"`` plate (observed; the site has no sampler).

        Args:
            x: observed data ``[N, D]``.
            num_samples: ``N`` when generating (refused: use :meth:`sample`).
        """
        n = x.shape[0] if x is not None else (num_samples or 1)
        site = EnergyDistribution(self.energy, (n,), self.event_shape)
        with pyro.plate("data", n, device=self.base_loc.device):
            return pyro.sample(self.data_site, site, obs=x)

    # ----------------------------------------------------------------- sampling
    def generate(self, n: int, steps: int = 200, transition: str = "mala",
                 step_size: float = 0.01, noise_scale: float | None = None) -> torch.Tensor:
        """``n`` draws ``[n, D]``: ``steps`` transitions (``"langevin"``, ``"mala"``,
        ``"hmc"``) from the base, in its whitened coordinates."""
        return self.sample_chains(n, steps=steps, transition=transition, step_size=step_size,
                                  noise_scale=noise_scale)[-1]

    def sample_chains(self, n: int, record_every: int | None = None, **options: Any
                      ) -> torch.Tensor:
        """The Langevin chains of :meth:`sample` as a path ``[frames, n, D]`` (data units): the
        start, every ``record_every``-th state and the last (only the last without it).

        Args:
            n: number of chains.
            record_every: keep every this many states.
            **options: the sampler options (:attr:`sample_options`).
        """
        settings = self.sample_arguments(n, options)
        if settings["transition"] not in SAMPLERS:
            raise ModelError(f"unknown transition {settings['transition']!r}: use one of "
                             f"{SAMPLERS}")
        base = self.base()
        run = run_chain(self.white_log_ratio, base.sample_white(n), settings["steps"],
                        settings["transition"], settings["step_size"], settings["noise_scale"],
                        record_every=record_every)
        path = run.path if run.path is not None else run.state.z.unsqueeze(0)
        return base.to_data(path.reshape(-1, self.num_dims)).reshape(path.shape).detach()
