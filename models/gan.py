"""Generative adversarial networks: a generator program and the critic it is trained against.

The generative program is ``z ~ N(0, I_L)``, ``x = G(z)`` in the ``"data"`` plate: one sample
site whose distribution is implicit (:class:`~ppgen.distributions.ImplicitDistribution`: draws
through ``rsample``, no density). The model carries its critic ``D`` (``model.critic``), as a VAE
carries its encoder; the adversarial objective (:class:`ppgen.inference.Adversarial`, the
models' default) trains the two as players with their own optimisers, and the critic is saved
with the model. The training recipe — the loss, critic steps per generator step, the R1
weight — is part of the model's options (``ppgen fit gan --set loss=wgan-gp``) and reaches the
objective through :attr:`GANBase.objective_defaults`; its optimiser settings (Adam with the
loss's usual betas) through :attr:`GANBase.fit_defaults`.

* :class:`GAN` — MLP generator and critic, for 2-D toys and tabular data (Goodfellow et al.,
  2014, "Generative Adversarial Nets", arXiv:1406.2661).
* :class:`DCGAN` — transposed-convolution generator and strided-convolution critic for small
  images, sized by the image shape (8x8 digits, 28x28, ...) (Radford, Metz & Chintala, 2016,
  "Unsupervised Representation Learning with Deep Convolutional Generative Adversarial
  Networks", arXiv:1511.06434). The generator keeps DCGAN's batch normalisation; the critic has
  none, so every loss and gradient penalty applies to it (Gulrajani et al., 2017).

GANs model continuous data. Integer images (the digits' 17 levels) are trained in their
dequantised ``[0, 1)`` representation (``load_digits("continuous")``) with a sigmoid output;
``sample(n, quantized=True)`` maps draws back to the levels for display.

Example:
    >>> gan = GAN(2, latent_dim=4, hidden_dims=(16,), critic_dims=(16,))
    >>> gan.sample(5).shape
    torch.Size([5, 2])
    >>> gan.critic(gan.sample(3)).shape
    torch.Size([3, 1])
    >>> gan.objective_defaults["loss"]
    'non-saturating'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ppgen.data.transforms import quantize
from ppgen.data.validate import validate
from ppgen.distributions import ImplicitDistribution
from ppgen.energy.decoder import gaussian_log_prob
from ppgen.errors import DataError, ModelError
from ppgen.metrics.features import feature_space_names, features_for
from ppgen.models.gan_networks import ACTIVATIONS, ConvCritic, ConvGenerator, check_image, mlp
from ppgen.protocol import GenerativeModel, ModelKind

if TYPE_CHECKING:
    from ppgen.data import DataInfo

__all__ = ["GANBase", "GAN", "DCGAN", "OUTPUTS", "GAN_LOSSES"]

#: the generator's output activation: reals, ``(0, 1)`` or ``(-1, 1)``
OUTPUTS = ("identity", "sigmoid", "tanh")

#: the adversarial losses a GAN can be trained with (``ppgen.inference.AdversarialLoss``)
GAN_LOSSES = ("minimax", "non-saturating", "least-squares", "wgan-gp", "hinge")

_RANGES = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}


class GANBase(GenerativeModel, register=False):
    """What every GAN shares: the program, the recipe, the data checks and quantised samples.

    Subclasses build ``self.generator`` (``[n, L] -> [n, *event_shape]``) and ``self.critic``
    (``[n, *event_shape] -> [n, 1]``) and set the attributes of their constructor.
    """

    kind = ModelKind.IMPLICIT
    default_objective = "adversarial"
    sample_options: ClassVar[dict[str, Any]] = {"quantized": False}
    #: the default ``ema`` of the family's recipe (``None``: no weight average)
    weight_average: ClassVar[float | None] = None

    latent_dim: int
    output: str
    num_levels: int | None
    loss: str
    n_critic: int | None
    r1: float
    features: str | None

    def _setup(self, latent_dim: int, output: str, num_levels: int | None, loss: str,
               n_critic: int | None, r1: float, features: str | None = None) -> None:
        """Check and store the options every GAN takes."""
        if output not in OUTPUTS:
            raise ModelError(f"output must be one of {OUTPUTS}, got {output!r}")
        if loss not in GAN_LOSSES:
            raise ModelError(f"loss must be one of {GAN_LOSSES}, got {loss!r}")
        if num_levels is not None and output != "sigmoid":
            raise ModelError("num_levels (data dequantised to [0, 1)) needs output='sigmoid'")
        self.latent_dim, self.output, self.num_levels = latent_dim, output, num_levels
        self.loss, self.n_critic, self.r1 = loss, n_critic, r1
        self.features = _validation_space(features)
        self.register_buffer("noise_loc", torch.zeros(latent_dim))
        self.register_buffer("noise_scale", torch.ones(latent_dim))

    # ----------------------------------------------------------------- the recipe
    @property
    def objective_defaults(self) -> dict[str, Any]:  # type: ignore[override]
        """The adversarial objective's options: this model's loss, ``n_critic`` and R1, and
        the feature space of its validation metric when the data declare one (the digits)."""
        defaults = {"loss": self.loss, "n_critic": self.n_critic, "r1": self.r1}
        return defaults if self.features is None else {**defaults, "features": self.features}

    @property
    def fit_defaults(self) -> dict[str, Any]:  # type: ignore[override]
        """Adam for both players with the loss's usual betas (WGAN-GP: (0, 0.9), Gulrajani et
        al.; the others: (0.5, 0.999), Radford et al.), the family's weight average of the
        generator (:attr:`weight_average`) and early stopping on the validation metric (the
        Fréchet distance in the digits classifier's space for the digits, else the MMD). The
        rates reach the digits benchmark on CPU (lr 1e-3; 5e-4 for WGAN-GP, whose critic
        steps five times per generator step)."""
        wgan = self.loss == "wgan-gp"
        group = {"name": "adam", "lr": 5e-4 if wgan else 1e-3,
                 "betas": [0.0, 0.9] if wgan else [0.5, 0.999]}
        return {"optimizer": {"generator": dict(group), "critic": dict(group)},
                "batch_size": 64, "epochs": 300, "patience": 60, "ema": self.weight_average}

    # ----------------------------------------------------------------- the program
    def critic_network(self) -> nn.Module:
        """The critic this GAN carries (trained by the adversarial objective, saved with it)."""
        return self.critic

    def noise(self, n: int) -> dist.Distribution:
        """``N(0, I_L)`` for ``n`` draws: batch ``[n]``, event ``[L]``."""
        shape = (n, self.latent_dim)
        normal = dist.Normal(self.noise_loc.expand(shape), self.noise_scale.expand(shape),
                             validate_args=False)
        return normal.to_event(1)

    def model(self, x: torch.Tensor | None = None, num_samples: int | None = None
              ) -> torch.Tensor:
        """``x = G(z)``, ``z ~ N(0, I)``, in the ``"data"`` plate.

        Args:
            x: observed data ``[N, *event_shape]`` (they have no density: scoring them is an
                error), or ``None`` to generate.
            num_samples: ``N`` when generating (default 1).

        Returns:
            ``x`` (observed or generated).
        """
        n = x.shape[0] if x is not None else (num_samples or 1)
        implicit = self._implicit(n)
        with pyro.plate("data", n, device=self.noise_loc.device):
            return pyro.sample(self.data_site, implicit, obs=x)

    def _implicit(self, n: int) -> ImplicitDistribution:
        """The data site's distribution for ``n`` draws, built once per ``n`` (and per noise
        buffer: moving the model makes new ones) and reused every step: it holds the
        generator and the buffers, which it reads at draw time, so reusing it is exact."""
        loc, cache = self.noise_loc, self.__dict__.setdefault("_implicit_cache", {})
        buffer, implicit = cache.get(n, (None, None))
        if buffer is not loc:
            if len(cache) > 8:  # a few batch sizes (training, a last batch, validation)
                cache.clear()
            implicit = ImplicitDistribution(self.generator, self.noise(n), self.event_shape)
            cache[n] = (loc, implicit)
        return implicit

    def generate(self, n: int, quantized: bool = False, **conditions: Any) -> torch.Tensor:
        """``n`` draws ``[n, *event_shape]`` (given the checked conditioning values of a
        conditional GAN, ``y: [n]``); ``quantized=True`` maps draws in ``[0, 1)`` back to the
        ``num_levels`` integer levels (``floor(K y)``, for display)."""
        x = super().generate(n, **conditions)
        if not quantized:
            return x
        if self.num_levels is None:
            raise ModelError(f"{type(self).__name__} was not built for levels (num_levels): "
                             "sample without quantized=True")
        return quantize(x, self.num_levels)

    def decoder_log_prob(self, z: torch.Tensor, x: torch.Tensor,
                         noise_scale: float | None = None) -> torch.Tensor:
        """``log N(x; G(z), σ² I)`` ``[M]`` for ``z: [M, L]``, flat ``x: [M, D]``: the generator
        with Gaussian observation noise of scale ``σ = noise_scale`` (required: a GAN has no
        observation model of its own), the model AIS scores (Wu et al. 2017,
        :func:`ppgen.energy.decoder_log_likelihood`)."""
        if noise_scale is None or not noise_scale > 0:
            raise ModelError(f"{type(self).__name__} has no observation model: give the "
                             "Gaussian noise scale (noise_scale > 0) of x ~ N(G(z), σ² I)")
        mean = self.generator(z.to(self.noise_loc.dtype)).reshape(z.shape[0], -1)
        return gaussian_log_prob(mean, x, noise_scale)

    # ----------------------------------------------------------------- data
    def check_data(self, x: Any, name: str = "data") -> torch.Tensor:
        """Finite reals of shape ``[N, *event_shape]``, inside the generator's output range.

        Raises:
            DataError: integer levels (train on the dequantised representation), a wrong
                shape, non-finite values or values outside the output's range.
        """
        t = torch.as_tensor(x) if not isinstance(x, torch.Tensor) else x
        if not t.is_floating_point():
            raise DataError(f"{type(self).__name__} models continuous data but the {name} are "
                            "integers: dequantise them to [0, 1) (load_digits('continuous'), "
                            "ppgen fit ... --representation continuous)")
        x = validate(t, "continuous", event_shape=tuple(self.event_shape), name=name)
        bounds = _RANGES.get(self.output)
        if bounds is not None and (x.min() < bounds[0] or x.max() > bounds[1]):
            raise DataError(f"the {name} have values in [{float(x.min()):.3g}, "
                            f"{float(x.max()):.3g}] but output={self.output!r} generates values "
                            f"in {list(bounds)}: rescale the data or choose another output")
        return self.in_model_dtype(x)

    @staticmethod
    def _output_for(info: DataInfo) -> dict[str, Any]:
        """Sigmoid output and ``num_levels`` for dequantised levels, reals otherwise; the
        digits classifier's feature space for validating on the digits."""
        space = {"features": "digits"} if features_for(info) == "digits" else {}
        if info.likelihood != "continuous":
            raise ModelError("GANs model continuous data: load the data in the 'continuous' "
                             f"representation (got {info.likelihood!r} data; ppgen fit ... "
                             "--representation continuous)")
        if info.num_levels:
            return {"output": "sigmoid", "num_levels": info.num_levels, **space}
        return {"output": "identity", **space}


class GAN(GANBase):
    """A GAN with MLP generator and critic, for flat data ``[N, D]`` (toys, tabular data).

    Paper: Goodfellow et al., 2014, "Generative Adversarial Nets" (arXiv:1406.2661).

    Args:
        num_dims: ``D``, the size of one datum.
        latent_dim: ``L``, the size of the noise ``z``.
        hidden_dims: hidden widths of the generator (ReLU).
        critic_dims: hidden widths of the critic (LeakyReLU 0.2, no normalisation).
        output: the generator's output activation: ``"identity"``, ``"sigmoid"`` (data in
            ``[0, 1]``) or ``"tanh"`` (data in ``[-1, 1]``).
        num_levels: ``K`` when the data are integer levels dequantised to ``[0, 1)``
            (``sample(n, quantized=True)`` returns levels).
        loss: the adversarial loss (:data:`GAN_LOSSES`).
        n_critic: critic steps per generator step (default: 5 for WGAN-GP, 1 otherwise).
        r1: weight ``γ`` of the R1 penalty on the critic.
        features: the feature space of the validation metric: ``"digits"`` (the Fréchet
            distance in the digits classifier's space; set by ``for_data`` for the
            digits) or ``None`` (the MMD on the data).
        pack: PacGAN's packing: the critic reads ``pack`` rows at once (``pack * D`` inputs;
            Lin et al., 2018, arXiv:1712.04086), which penalises a generator that drops modes.

    Example:
        >>> gan = GAN(2, latent_dim=4, hidden_dims=(16,), critic_dims=(16,), loss="hinge")
        >>> gan.fit_defaults["optimizer"]["critic"]["betas"]
        [0.5, 0.999]
    """

    def __init__(
        self,
        num_dims: int,
        latent_dim: int = 16,
        hidden_dims: Sequence[int] = (256, 256),
        critic_dims: Sequence[int] = (256, 256),
        output: str = "identity",
        num_levels: int | None = None,
        loss: str = "non-saturating",
        n_critic: int | None = None,
        r1: float = 0.0,
        pack: int = 1,
        features: str | None = None,
    ) -> None:
        super().__init__()
        self._setup(latent_dim, output, num_levels, loss, n_critic, r1, features)
        if not isinstance(pack, int) or pack < 1:
            raise ModelError(f"pack must be an integer >= 1, got {pack!r}")
        self.num_dims, self.pack = num_dims, pack
        self.hidden_dims, self.critic_dims = tuple(hidden_dims), tuple(critic_dims)
        self.generator = nn.Sequential(mlp([latent_dim, *self.hidden_dims, num_dims], nn.ReLU),
                                       ACTIVATIONS[output]())
        self.critic = mlp([num_dims * pack, *self.critic_dims, 1], lambda: nn.LeakyReLU(0.2))

    @property
    def objective_defaults(self) -> dict[str, Any]:  # type: ignore[override]
        """The GAN recipe, and the packing when the critic reads several rows at once."""
        defaults = super().objective_defaults
        return defaults if self.pack == 1 else {**defaults, "pack": self.pack}

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size([self.num_dims])

    @classmethod
    def for_data(cls, info: DataInfo, **kwargs: Any) -> GenerativeModel:
        """A GAN for flat data described by ``info`` (continuous; levels dequantised to
        ``[0, 1)`` get a sigmoid output)."""
        if len(info.event_shape) != 1:
            raise ModelError(f"GAN models flat data [N, D]; these have event shape "
                             f"{tuple(info.event_shape)}: use DCGAN for images")
        return cls(info.num_dims, **{**cls._output_for(info), **kwargs})


class DCGAN(GANBase):
    """A deep convolutional GAN for small images, flat ``[N, C*H*W]`` (``image.reshape(-1)``).

    Generator: ``z -> Linear -> [c_0, H/2^s, W/2^s]`` (batch-normalised, ReLU), then ``s``
    stages of a stride-2 transposed convolution (kernel 4), batch normalisation and ReLU that
    double the size and halve the channels, then a 3x3 convolution to ``C`` channels and the
    output activation.
    Critic: a 3x3 convolution, then ``s`` stride-2 convolutions (kernel 4) with LeakyReLU 0.2
    that halve the size and double the channels, then a linear layer to one output.

    The recipe averages the generator's weights (``ema=0.99``), which on the digits lowers the
    Fréchet distance; the MLP GAN does not (on multi-modal toys a generator that hops between
    modes averages to one in the middle of them).

    Paper: Radford, Metz & Chintala, 2016 (arXiv:1511.06434).

    Args:
        image_shape: ``(C, H, W)``, or ``(H, W)`` for grey images; ``H`` and ``W`` divisible
            by ``2^num_stages``.
        latent_dim: ``L``, the size of the noise ``z``.
        channels: the channels at full resolution (``channels * 2^s`` at the smallest).
        num_stages: ``s``, the up- (and down-) sampling stages.
        output: ``"sigmoid"`` (images in ``[0, 1]``), ``"tanh"`` or ``"identity"``.
        num_levels: ``K`` for integer images dequantised to ``[0, 1)``.
        loss: the adversarial loss (:data:`GAN_LOSSES`).
        n_critic: critic steps per generator step (default: 5 for WGAN-GP, 1 otherwise).
        r1: weight ``γ`` of the R1 penalty on the critic.
        features: the feature space of the validation metric: ``"digits"`` (the Fréchet
            distance in the digits classifier's space; set by ``for_data`` for the
            digits) or ``None`` (the MMD on the data).

    Example:
        >>> gan = DCGAN((8, 8), latent_dim=8, channels=4)
        >>> gan.sample(3).shape
        torch.Size([3, 64])
    """

    weight_average = 0.99

    def __init__(
        self,
        image_shape: Sequence[int],
        latent_dim: int = 32,
        channels: int = 32,
        num_stages: int = 2,
        output: str = "sigmoid",
        num_levels: int | None = None,
        loss: str = "non-saturating",
        n_critic: int | None = None,
        r1: float = 0.0,
        features: str | None = None,
    ) -> None:
        super().__init__()
        self._setup(latent_dim, output, num_levels, loss, n_critic, r1, features)
        self.image_shape = tuple(image_shape)
        self.channels, self.num_stages = channels, num_stages
        shape = check_image(self.image_shape, num_stages)
        self.generator = ConvGenerator(shape, latent_dim, channels, num_stages, output)
        self.critic = ConvCritic(shape, channels, num_stages)

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size([math.prod(self.image_shape)])

    @classmethod
    def for_data(cls, info: DataInfo, **kwargs: Any) -> GenerativeModel:
        """A DCGAN for the flat images described by ``info`` (``info.image_shape``)."""
        if not info.image_shape or len(info.event_shape) != 1:
            raise ModelError("DCGAN models flat images [N, C*H*W] with DataInfo.image_shape "
                             f"set; these data have event shape {tuple(info.event_shape)}: use "
                             "GAN for other data")
        return cls(tuple(info.image_shape), **{**cls._output_for(info), **kwargs})


def _validation_space(features: str | None) -> str | None:
    """``features`` (the validation metric's feature space) checked: ``None`` or a name."""
    if features is not None and features not in feature_space_names():
        raise ModelError(f"features must be None or one of {feature_space_names()}, got "
                         f"{features!r}")
    return features
