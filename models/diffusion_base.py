"""What the diffusion families (:class:`~ppgen.models.DDPM` and its kin,
:class:`~ppgen.models.VDM`) share: flat data on levels or reals, the denoiser with its levels
head, and the checks of their common arguments.

Data: integer levels ``0..K-1`` live at ``-1 + 2k / (K - 1)`` in model space; real data are
divided by ``data_scale`` (their Gaussian decoder is back in data units). The network reads
``x_0`` directly or through :class:`~ppgen.models.denoisers.LevelPosterior` (the default for
levels data; ``denoiser={"head": "direct"}`` for the papers' network).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import pyro.distributions as dist
import torch
from torch import nn

from ppgen.data.validate import validate
from ppgen.errors import ModelError
from ppgen.models.denoisers import HEADS, LevelPosterior, build_denoiser
from ppgen.protocol import GenerativeModel, ModelKind

if TYPE_CHECKING:
    from ppgen.data import DataInfo

__all__ = ["DiffusionBase", "DIFFUSION_LIKELIHOODS", "SAMPLERS", "check_args", "check_sampler",
           "level_head", "denoiser_network"]

#: what the data are: integer levels (discretised decoder) or reals (Gaussian decoder)
DIFFUSION_LIKELIHOODS = ("categorical", "continuous")
#: the samplers of ``sample(n, sampler=...)``
SAMPLERS = ("ancestral", "ddim")


class DiffusionBase(GenerativeModel, register=False):
    """A diffusion model of flat data ``[N, D]``: its sizes, its data and its denoiser.

    Subclasses call ``super().__init__`` with the shared arguments (checked and stored here),
    then build their process or schedule and :meth:`build_denoiser`.

    Attributes:
        image_denoiser: the denoiser options :meth:`for_data` gives images (``None``: the
            default of :func:`~ppgen.models.denoisers.build_denoiser`, a U-Net).
    """

    kind = ModelKind.LATENT
    #: the bound costs one network pass per step: one particle, chunks of 128 rows
    evaluation_defaults: ClassVar[dict[str, Any]] = {"num_particles": 1, "batch_size": 128}
    image_denoiser: ClassVar[dict[str, Any] | None] = None

    def __init__(self, num_dims: int, num_steps: int, likelihood: str, num_levels: int | None,
                 image_shape: Sequence[int] | None, data_scale: float,
                 denoiser: dict[str, Any] | None) -> None:
        super().__init__()
        check_args(num_dims, num_steps, likelihood, num_levels, data_scale)
        self.num_dims, self.num_steps, self.likelihood = num_dims, num_steps, likelihood
        self.num_levels, self.data_scale = num_levels, data_scale
        self.image_shape = None if image_shape is None else tuple(image_shape)
        self.denoiser = None if denoiser is None else dict(denoiser)
        self.register_buffer("_zero", torch.zeros(()), persistent=False)
        self.register_buffer("_one", torch.ones(()), persistent=False)

    def build_denoiser(self, extra_outputs: int = 0, num_classes: int | None = None
                       ) -> tuple[LevelPosterior | None, nn.Module]:
        """``(head, network)`` from the ``denoiser`` options: the levels head or ``None``, and
        a network with ``D`` outputs (``K D`` through the head) plus ``extra_outputs``."""
        head = level_head(self.likelihood, self.num_dims, self.num_levels, self.denoiser)
        out = self.num_dims if head is None else self.num_dims * self.num_levels
        network = denoiser_network(self.num_dims, out + extra_outputs, self.image_shape,
                                   self.denoiser, num_classes)
        return head, network

    @property
    def event_shape(self) -> torch.Size:
        """``[D]``: one flat datum."""
        return torch.Size([self.num_dims])

    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        """Data ``[N, D]`` -> model space: levels to ``[-1, 1]``, reals divided by
        ``data_scale``."""
        x = x.to(self._one.dtype)
        if self.likelihood == "categorical":
            return 2 * x / (self.num_levels - 1) - 1
        return x / self.data_scale

    def gaussian_decoder(self, mean: torch.Tensor, scale: torch.Tensor
                         ) -> dist.TorchDistribution:
        """``N(mean, scale^2)`` of model space in data units (``data_scale`` times both):
        batch ``mean.shape[:-1]``, event ``[D]``."""
        scale = scale.expand_as(mean)
        return dist.Normal(self.data_scale * mean, self.data_scale * scale).to_event(1)

    def check_data(self, x: Any, name: str = "data") -> torch.Tensor:
        """Validate ``x: [N, D]``: integer levels ``0..K-1`` (returned ``long``) or reals.

        Raises:
            DataError: wrong shape, NaN/inf, or values outside the levels.
        """
        x = validate(x, self.likelihood, num_levels=self.num_levels,
                     event_shape=(self.num_dims,), name=name)
        return x if self.likelihood == "categorical" else self.in_model_dtype(x)

    def scoring_inputs(self, x: Any, y: Any = None
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Data checked and on the model's device, with the checked conditioning values."""
        x = self.check_data(x).to(self.device)
        return x, self.conditions.check({"y": y}, x.shape[0], device=self.device)

    @classmethod
    def for_data(cls, info: DataInfo, **kwargs: Any) -> DiffusionBase:
        """The model for flat data described by ``info``: levels (categorical, or binary as 2
        levels) or reals; ``info.image_shape`` selects the U-Net (options
        :attr:`image_denoiser`). ``kwargs`` override.

        Raises:
            ModelError: data with more than one event dimension (flatten them first).
        """
        if len(info.event_shape) != 1:
            raise ModelError(f"{cls.__name__} models flat data but one datum has shape "
                             f"{tuple(info.event_shape)}: flatten the data to [N, D] first")
        args: dict[str, Any] = {"num_dims": info.num_dims, "image_shape": info.image_shape}
        if info.image_shape is not None and cls.image_denoiser is not None:
            args["denoiser"] = dict(cls.image_denoiser)
        if info.likelihood == "continuous":
            args["likelihood"] = "continuous"
        else:
            args["likelihood"] = "categorical"
            args["num_levels"] = 2 if info.likelihood == "bernoulli" else info.num_levels
        return cls(**{**args, **kwargs})


def check_sampler(sampler: str) -> None:
    """Refuse a sampler that is not one of :data:`SAMPLERS`."""
    if sampler not in SAMPLERS:
        raise ModelError(f"unknown sampler {sampler!r}: use one of {SAMPLERS}")


def check_args(num_dims: int, num_steps: int, likelihood: str, num_levels: int | None,
               data_scale: float) -> None:
    """Refuse sizes and likelihoods that cannot build a diffusion model."""
    if likelihood not in DIFFUSION_LIKELIHOODS:
        raise ModelError(f"unknown likelihood {likelihood!r}: use one of "
                         f"{DIFFUSION_LIKELIHOODS} (binary data are 2 levels)")
    if likelihood == "categorical" and (num_levels is None or num_levels < 2):
        raise ModelError("levels data need num_levels >= 2 (17 for the digits)")
    if num_dims < 1 or num_steps < 1:
        raise ModelError("num_dims and num_steps must be >= 1")
    if not data_scale > 0:
        raise ModelError(f"data_scale must be positive, got {data_scale}")


def level_head(likelihood: str, num_dims: int, num_levels: int | None,
               options: dict[str, Any] | None) -> LevelPosterior | None:
    """The level-posterior head (the default for levels data; ``options={"head": "direct"}``
    for the papers' direct network), or ``None`` for a direct network."""
    head = (options or {}).get("head", "levels" if likelihood == "categorical" else "direct")
    if head not in HEADS:
        raise ModelError(f"unknown denoiser head {head!r}: use one of {HEADS}")
    if head == "levels" and likelihood != "categorical":
        raise ModelError("the 'levels' head needs levels data (likelihood='categorical')")
    return LevelPosterior(num_dims, num_levels) if head == "levels" else None


def denoiser_network(num_dims: int, out: int, image_shape: Sequence[int] | None,
                     options: dict[str, Any] | None, num_classes: int | None = None
                     ) -> nn.Module:
    """:func:`~ppgen.models.denoisers.build_denoiser`, its refusals as :class:`ModelError`."""
    try:
        return build_denoiser(num_dims, out, image_shape, options, num_classes)
    except ValueError as err:
        raise ModelError(str(err)) from err
