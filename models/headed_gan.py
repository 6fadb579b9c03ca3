"""What the conditional and information-maximising GANs share: bodies chosen by the data's
shape, a critic with heads, and the generator's extra inputs.

``shape`` is ``D`` for flat data (GAN's MLP bodies: toys, tabular data) or ``(H, W)`` /
``(C, H, W)`` for flat images (DCGAN's convolutional bodies); ``network`` overrides the bodies'
options (:func:`~ppgen.models.gan_networks.network_options`). The generator reads
``[z, extra]`` — the noise and a one-hot label or codes — and the critic is a
:class:`~ppgen.models.gan_networks.HeadedCritic` whose auxiliary outputs a subclass turns into
distributions over the sites it recognises (:meth:`HeadedGAN.recognize`, read by the adversarial
objective through :meth:`~ppgen.GenerativeModel.critic_outputs`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ppgen.errors import ModelError
from ppgen.models.gan import GANBase
from ppgen.models.gan_networks import (
    HeadedCritic,
    check_image,
    critic_body,
    generator_body,
    network_options,
)

if TYPE_CHECKING:
    from ppgen.data import DataInfo
    from ppgen.protocol import GenerativeModel

__all__ = ["HeadedGAN", "shape_of"]


def shape_of(info: DataInfo) -> int | tuple[int, ...]:
    """The ``shape`` argument for data described by ``info``: the image shape of flat images,
    else the number of dimensions of flat data.

    Raises:
        ModelError: data that are neither flat nor flat images.
    """
    if len(info.event_shape) != 1:
        raise ModelError(f"the GANs model flat data [N, D] or flat images; these data have "
                         f"event shape {tuple(info.event_shape)}")
    return tuple(info.image_shape) if info.image_shape else info.num_dims


class HeadedGAN(GANBase, register=False):
    """A GAN whose generator takes extra inputs and whose critic has heads.

    Subclasses call :meth:`_build` in their constructor and override :meth:`recognize` when
    their critic has an auxiliary head.
    """

    shape: int | tuple[int, ...]
    network: dict[str, Any] | None
    image_shape: tuple[int, int, int] | None

    def _build(self, shape: int | Sequence[int], network: dict[str, Any] | None,
               extra_inputs: int, num_classes: int | None, aux_outputs: int) -> None:
        """Build the bodies and the critic's heads.

        Args:
            shape: ``D`` or an image shape (see the module docstring).
            network: body options overriding the defaults.
            extra_inputs: the generator's inputs besides the noise.
            num_classes: ``C`` of a projection critic (``None``: none).
            aux_outputs: outputs of the critic's auxiliary head (0: none).
        """
        self.shape = shape if isinstance(shape, int) else tuple(shape)
        self.network = None if network is None else _json_able(network)
        flat = isinstance(self.shape, int)
        options = network_options(None if flat else self.shape, self.network)
        self.image_shape = None if flat else check_image(self.shape, options["num_stages"])
        if flat and self.shape < 1:
            raise ModelError(f"shape must be a positive number of dimensions or an image "
                             f"shape, got {shape!r}")
        num_dims = self.shape if flat else math.prod(self.image_shape)
        self._num_dims = num_dims
        self.generator = generator_body(num_dims, self.image_shape,
                                        self.latent_dim + extra_inputs, options, self.output)
        body, width = critic_body(num_dims, options, self.image_shape)
        self.critic = HeadedCritic(body, width, num_classes, aux_outputs)

    @staticmethod
    def _default_output(shape: int | Sequence[int], output: str | None) -> str:
        """``output`` or the default for the shape: reals for flat data, ``(0, 1)`` for images."""
        if output is not None:
            return output
        return "identity" if isinstance(shape, int) else "sigmoid"

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size([self._num_dims])

    @property
    def weight_average(self) -> float | None:  # type: ignore[override]
        """DCGAN's generator average (0.99) for images; none for flat data (see DCGAN)."""
        return None if self.image_shape is None else 0.99

    # ----------------------------------------------------------------- the critic
    def critic_outputs(self, critic: nn.Module, x: torch.Tensor, **conditions: Any
                       ) -> tuple[torch.Tensor, dict[str, Any]]:
        """The critic's scores ``[N]`` and :meth:`recognize` of its auxiliary outputs, from one
        pass of its body (a critic other than this model's: its scores alone)."""
        if critic is not self.critic:
            return super().critic_outputs(critic, x, **conditions)
        score, aux = self.critic.heads(x, conditions.get("y"))
        return score, ({} if aux is None else self.recognize(aux))

    def recognize(self, aux: torch.Tensor) -> dict[str, Any]:
        """``{site: distribution}`` from the critic's auxiliary outputs ``[N, A]`` (default:
        nothing recognised)."""
        return {}

    @classmethod
    def for_data(cls, info: DataInfo, **kwargs: Any) -> GenerativeModel:
        """The model for flat data or flat images described by ``info`` (continuous; levels
        dequantised to ``[0, 1)`` get a sigmoid output)."""
        return cls(shape_of(info), **{**cls._output_for(info), **kwargs})


def _json_able(network: dict[str, Any]) -> dict[str, Any]:
    """The options as the saved config has them (sequences as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in network.items()}
