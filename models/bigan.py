"""BiGAN / ALI: a GAN with an encoder, trained by a critic of joint pairs ``(x, z)``.

The generative program is ``z ~ N(0, I_L)`` (site ``"z"``), ``x = G(z)`` (site ``"x"``, an
:class:`~ppgen.distributions.ImplicitDistribution`: no density), in the ``"data"`` plate; the
guide is the encoder ``E``: ``z = E(x)`` (deterministic, Donahue et al.) or ``z ~ N(μ(x),
σ(x)²)`` (stochastic, reparameterised, Dumoulin et al.). The model carries a joint critic
``D([x, z])`` and is trained by adversarially learned inference
(:class:`ppgen.inference.ALI`, the default objective): the critic tells encoder pairs
``(x, E(x))`` from generator pairs ``(G(z), z)``, and at the optimum ``E`` inverts ``G``.

The encoder is the model's representation: :meth:`BiGAN.encode` gives the codes of data (the
posterior mean for a stochastic encoder), :meth:`BiGAN.reconstruct` gives ``G(E(x))``. The model
is implicit: ``ppgen.log_likelihood`` refuses it and names the sample metrics to use.

The networks are the GAN zoo's (:mod:`ppgen.models.gan_networks`): MLP bodies for flat data,
DCGAN's convolutions for images; the critic's body reads ``x``, a small MLP reads ``z``, and a
joint MLP reads both (the architecture of Donahue et al.'s and Dumoulin et al.'s critics).

Papers: Donahue, Krähenbühl & Darrell, 2017, "Adversarial Feature Learning" (arXiv:1605.09782);
Dumoulin et al., 2017, "Adversarially Learned Inference" (arXiv:1606.00704).

Example:
    >>> model = BiGAN(2, latent_dim=3, network={"hidden_dims": (16,), "critic_dims": (16,)})
    >>> model.sample(5).shape, model.encode(torch.zeros(4, 2)).shape
    (torch.Size([5, 2]), torch.Size([4, 3]))
    >>> model.critic(torch.zeros(4, 2 + 3)).shape
    torch.Size([4, 1])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from ppgen.distributions import ImplicitDistribution
from ppgen.errors import ModelError
from ppgen.models.gan import GANBase
from ppgen.models.gan_networks import (
    check_image,
    critic_body,
    generator_body,
    mlp,
    network_options,
)
from ppgen.models.headed_gan import shape_of

if TYPE_CHECKING:
    from ppgen.data import DataInfo

__all__ = ["BiGAN", "JointCritic", "ENCODERS"]

#: the encoder kinds: ``z = E(x)`` or ``z ~ N(μ(x), σ(x)²)``
ENCODERS = ("deterministic", "stochastic")


class JointCritic(nn.Module):
    """``D([x, z]) -> [B, 1]``: a body on ``x``, an MLP on ``z``, a joint MLP on both.

    Args:
        x_body: ``[B, D] -> [B, F]`` and its width ``F``.
        num_dims: ``D``; the pair's first ``D`` columns are ``x``, the rest ``z``.
        latent_dim: ``L``.
        width: hidden width of the ``z`` MLP and of the joint MLP.
    """

    def __init__(self, x_body: tuple[nn.Module, int], num_dims: int, latent_dim: int,
                 width: int) -> None:
        super().__init__()
        self.num_dims = num_dims
        self.x_body, features = x_body
        act = lambda: nn.LeakyReLU(0.2)  # noqa: E731
        self.z_body = nn.Sequential(mlp([latent_dim, width, width], act), act())
        self.joint = mlp([features + width, width, 1], act)

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        x, z = pairs[:, : self.num_dims], pairs[:, self.num_dims:]
        return self.joint(torch.cat([self.x_body(x), self.z_body(z)], dim=1))


class BiGAN(GANBase):
    """A bidirectional GAN: generator ``G``, encoder ``E`` and a joint critic ``D``.

    Args:
        shape: ``D`` for flat data (MLPs), or an image shape ``(C, H, W)`` / ``(H, W)`` for
            images flattened to ``C*H*W`` (DCGAN's convolutions).
        latent_dim: ``L``.
        network: the bodies' options (:func:`~ppgen.models.gan_networks.network_options`:
            ``hidden_dims``/``critic_dims`` for MLPs, ``channels``/``num_stages`` for images).
        encoder: ``"deterministic"`` or ``"stochastic"`` (:data:`ENCODERS`).
        output: the generator's output activation (default: reals for flat data, ``(0, 1)``
            for images).
        num_levels: ``K`` for integer images dequantised to ``[0, 1)``.
        loss: the adversarial loss (``ppgen.models.gan.GAN_LOSSES``).
        n_critic: critic steps per generator step (default: 5 for WGAN-GP, 1 otherwise).
        r1: weight ``γ`` of the R1 penalty on the critic (on encoder pairs).
        features: the validation metric's feature space (``"digits"`` for the digits).
    """

    name = "bigan"
    default_objective = "ali"

    def __init__(
        self,
        shape: int | Sequence[int],
        latent_dim: int = 16,
        network: dict[str, Any] | None = None,
        encoder: str = "deterministic",
        output: str | None = None,
        num_levels: int | None = None,
        loss: str = "non-saturating",
        n_critic: int | None = None,
        r1: float = 0.0,
        features: str | None = None,
    ) -> None:
        super().__init__()
        flat = isinstance(shape, int)
        output = output or ("identity" if flat else "sigmoid")
        self._setup(latent_dim, output, num_levels, loss, n_critic, r1, features)
        if encoder not in ENCODERS:
            raise ModelError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        self.shape, self.encoder = (shape if flat else tuple(shape)), encoder
        self.network = None if network is None else {
            k: list(v) if isinstance(v, tuple) else v for k, v in network.items()}
        options = network_options(None if flat else self.shape, self.network)
        image = None if flat else check_image(self.shape, options["num_stages"])
        self.num_dims = shape if flat else math.prod(image)
        self.generator = generator_body(self.num_dims, image, latent_dim, options, output)
        body, width = critic_body(self.num_dims, options, image)
        outputs = latent_dim * (2 if encoder == "stochastic" else 1)
        self.encoder_net = nn.Sequential(body, nn.Linear(width, outputs))
        hidden = max(options.get("critic_dims", (128,))[-1], 2 * latent_dim)
        self.critic = JointCritic(critic_body(self.num_dims, options, image), self.num_dims,
                                  latent_dim, hidden)

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size([self.num_dims])

    # ----------------------------------------------------------------- the programs
    def model(self, x: torch.Tensor | None = None, num_samples: int | None = None
              ) -> torch.Tensor:
        """``z ~ N(0, I)``, ``x = G(z)`` in the ``"data"`` plate (``x: [N, D]`` observed, which
        has no density, or ``None`` to generate ``num_samples``)."""
        n = x.shape[0] if x is not None else (num_samples or 1)
        with pyro.plate("data", n, device=self.noise_loc.device):
            z = pyro.sample("z", self.noise(n))
            code = dist.Delta(z, event_dim=1, validate_args=False)
            decoded = ImplicitDistribution(self.generator, code, self.event_shape)
            return pyro.sample(self.data_site, decoded, obs=x)

    def guide(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder: ``z = E(x)`` or ``z ~ N(μ(x), σ(x)²)``, in the ``"data"`` plate."""
        with pyro.plate("data", x.shape[0], device=x.device):
            return pyro.sample("z", self._posterior(x))

    def _posterior(self, x: torch.Tensor) -> dist.Distribution:
        h = self.encoder_net(x)
        if self.encoder == "deterministic":
            return dist.Delta(h, event_dim=1, validate_args=False)
        loc, scale = h.chunk(2, dim=-1)
        return dist.Normal(loc, F.softplus(scale) + 1e-4, validate_args=False).to_event(1)

    # ----------------------------------------------------------------- representation
    @torch.no_grad()
    def encode(self, x: Any) -> torch.Tensor:
        """The codes ``[N, L]`` of data ``x: [N, D]`` (the posterior mean; no gradient)."""
        x = self.check_data(torch.as_tensor(x), "data").to(self.device)
        return self._posterior(x).mean

    @torch.no_grad()
    def reconstruct(self, x: Any) -> torch.Tensor:
        """``G(E(x))``: ``[N, D]`` reconstructions of data ``x: [N, D]``."""
        return self.generator(self.encode(x))

    # ----------------------------------------------------------------- configuration
    @classmethod
    def for_data(cls, info: DataInfo, **kwargs: Any) -> BiGAN:
        """A BiGAN for the data ``info`` describes: convolutional for flat images
        (``info.image_shape``), MLPs for other flat data (continuous; levels dequantised to
        ``[0, 1)`` get a sigmoid output)."""
        return cls(shape_of(info), **{**cls._output_for(info), **kwargs})
