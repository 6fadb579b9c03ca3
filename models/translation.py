"""What the image-to-image translation models share: domains, the generator network, the data
checks and ``translate``.

A translation model maps an image of one domain to another domain (:class:`CycleGAN
<ppgen.models.CycleGAN>` between two, :class:`StarGAN <ppgen.models.StarGAN>` between any
number). It is implicit (no density) and trains with the ``"translation"`` objective
(:class:`ppgen.inference.translation.Translation`) on the images of every domain stacked, each
row labelled with its domain index: the domain is the model's declared conditioning input
(``Condition.classes("domain", K)``), so the engine batches it with the images
(``ppgen.fit(model, x, x_val, labels=domain, val_labels=domain_val)``, the layout
:class:`~ppgen.data.domains.DomainSplits` holds) and the objective splits each batch by domain
with per-row targets, with no data-dependent shapes (no host synchronisation in a step).

What the objective reads from the model (its translation protocol):

* :meth:`TranslationModel.translate_rows` — differentiable translations ``G(x, target)``;
* :meth:`~ppgen.GenerativeModel.critic_network` and
  :meth:`~ppgen.GenerativeModel.critic_outputs` with ``domain=`` — the critic's score of
  each row as an image of its domain, and what it recognises (StarGAN: the domain);
* ``num_domains``.

Images are flat ``[N, C*H*W]`` in ``[0, 1]`` (digits: the dequantised ``continuous``
representation); generators end in a sigmoid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from ppgen.conditions import Condition, Conditions
from ppgen.data.validate import as_tensor, validate
from ppgen.errors import DataError, ModelError
from ppgen.models.gan_networks import check_image
from ppgen.protocol import GenerativeModel, ModelKind

if TYPE_CHECKING:
    from ppgen.data import DataInfo

__all__ = ["TranslationModel", "ResnetGenerator", "GENERATOR_NETWORK"]

#: the options of the translation generators (``network=``) and their defaults; each model
#: class overrides them in ``generator_defaults``
GENERATOR_NETWORK: dict[str, Any] = {"channels": 16, "num_blocks": 1, "dense": False}


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=True)


class _ResidualBlock(nn.Module):
    """``x + IN(conv(ReLU(IN(conv(x)))))`` with 3x3 convolutions (He et al.; the papers')."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), _norm(channels),
                                  nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1),
                                  _norm(channels))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.body(h)


class _Dense(nn.Module):
    """``h + W vec(h)``: a linear map of the whole feature map, residual (it lets a generator
    move content across the image, which convolutions alone, being translation-equivariant,
    cannot: a rotation)."""

    def __init__(self, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.shape = shape
        self.mix = nn.Linear(math.prod(shape), math.prod(shape))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.mix(h.flatten(1)).reshape(-1, *self.shape)


class ResnetGenerator(nn.Module):
    """The translation generator of CycleGAN and StarGAN, sized for small images.

    ``[N, C*H*W]`` (and ``[N, E]`` extra inputs broadcast as constant channels: StarGAN's
    target domain) → 3x3 convolution to ``c`` channels → one stride-2 convolution to ``2c``
    (half size) → ``num_blocks`` residual blocks → a transposed convolution back to ``c``
    channels at full size → 3x3 convolution to ``C`` channels → sigmoid. Instance
    normalisation and ReLU after every convolution but the last, as in both papers (their
    7x7 stems and two down-samplings shrink to 3x3 and one for 8x8 digits). The last
    convolution also reads the input (a U-Net-style skip at full size, not in the papers'
    generators): pixel-wise maps such as an inversion are then one layer away, which on the
    digits' small training budgets is the difference between translating and not.

    Args:
        shape: ``(C, H, W)`` with ``H`` and ``W`` even.
        extra: extra input features per image (0: none).
        channels: ``c``.
        num_blocks: residual blocks at half size.
        dense: a residual linear map of the whole half-size feature map before the blocks
            (not in the papers; for geometric translations such as a rotation).
    """

    def __init__(self, shape: tuple[int, int, int], extra: int = 0, channels: int = 32,
                 num_blocks: int = 3, dense: bool = False) -> None:
        super().__init__()
        c_in, h, w = shape
        self.shape, self.extra = shape, extra
        mix = [_Dense((2 * channels, h // 2, w // 2))] if dense else []
        self.net = nn.Sequential(
            nn.Conv2d(c_in + extra, channels, 3, padding=1), _norm(channels), nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 4, 2, 1), _norm(2 * channels), nn.ReLU(), *mix,
            *[_ResidualBlock(2 * channels) for _ in range(num_blocks)],
            nn.ConvTranspose2d(2 * channels, channels, 4, 2, 1), _norm(channels), nn.ReLU(),
        )
        self.out = nn.Sequential(nn.Conv2d(channels + c_in + extra, c_in, 3, padding=1),
                                 nn.Sigmoid())
        # the extra inputs again after the first normalisation, as a shift of its channels:
        # a constant input channel is all but removed by instance normalisation
        self.shift = nn.Linear(extra, channels) if extra else None

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        h = x.reshape(-1, *self.shape)
        if self.shift is None:
            return self.out(torch.cat([self.net(h), h], dim=1)).reshape(len(x), -1)
        maps = extra.to(h.dtype)[:, :, None, None].expand(-1, -1, *self.shape[1:])
        h = torch.cat([h, maps], dim=1)
        first = self.net[1](self.net[0](h)) + self.shift(extra.to(h.dtype))[:, :, None, None]
        return self.out(torch.cat([self.net[2:](first), h], dim=1)).reshape(len(x), -1)


class TranslationModel(GenerativeModel, register=False):
    """Base class of the translation models: domains, data checks, ``translate``.

    Subclasses build ``self.critic`` and implement :meth:`translate_rows` and
    :meth:`critic_outputs`; their constructors call :meth:`_setup`.
    """

    kind = ModelKind.IMPLICIT
    default_objective = "translation"
    #: the domains a model is built for when none are named (``for_data`` without ``domains``)
    default_domains: ClassVar[tuple[str, ...]] = ()
    #: the generator's network options unless ``network`` says otherwise
    generator_defaults: ClassVar[dict[str, Any]] = GENERATOR_NETWORK

    domains: tuple[str, ...]
    image_shape: tuple[int, ...]
    network: dict[str, Any] | None
    paired: bool

    def _setup(self, domains: Sequence[str], image_shape: Sequence[int],
               network: dict[str, Any] | None, paired: bool) -> tuple[int, int, int]:
        """Check and store the shared options; returns ``(C, H, W)``."""
        names = tuple(str(d) for d in domains)
        if len(names) < 2 or len(set(names)) != len(names):
            raise ModelError(f"{type(self).__name__} needs two or more different domain names, "
                             f"got {list(names)}")
        unknown = sorted(set(network or {}) - set(GENERATOR_NETWORK))
        if unknown:
            raise ModelError(f"unknown network option(s) {unknown}; the translation networks "
                             f"take {sorted(GENERATOR_NETWORK)}")
        self.domains, self.image_shape = names, tuple(image_shape)
        self.network, self.paired = (dict(network) if network else None), bool(paired)
        return check_image(self.image_shape, 1)

    @property
    def options(self) -> dict[str, Any]:
        """The generator's network options (:attr:`generator_defaults` with ``network``)."""
        return {**self.generator_defaults, **(self.network or {})}

    @property
    def num_domains(self) -> int:
        """``K``, the number of domains."""
        return len(self.domains)

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size([math.prod(self.image_shape)])

    @property
    def conditions(self) -> Conditions:
        """``domain``: the domain index ``0..K-1`` of each image."""
        return Conditions([Condition.classes("domain", self.num_domains)], type(self).__name__)

    # ----------------------------------------------------------------- translation
    def translate_rows(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Differentiable translations ``[N, D]`` of images ``x: [N, D]`` into the domains
        ``target: [N]`` (``long`` indices), what the objective trains."""
        raise NotImplementedError

    def domain_index(self, target: Any) -> int:
        """The index of a domain given by name or index.

        Raises:
            ModelError: an unknown name or an index out of range.
        """
        if isinstance(target, str):
            if target not in self.domains:
                raise ModelError(f"unknown domain {target!r}: {type(self).__name__} translates "
                                 f"between {', '.join(self.domains)}")
            return self.domains.index(target)
        if isinstance(target, bool) or not isinstance(target, int) or not (
                0 <= target < self.num_domains):
            raise ModelError(f"target must be a domain name ({', '.join(self.domains)}) or an "
                             f"index in 0..{self.num_domains - 1}, got {target!r}")
        return target

    @torch.no_grad()
    def translate(self, x: Any, target: str | int) -> torch.Tensor:
        """Translate images into the domain ``target``.

        Args:
            x: images ``[N, *event_shape]`` (or ``[N, H, W]``) in ``[0, 1]``, any array-like.
            target: the domain, by name (``"bold"``) or index.

        Returns:
            ``[N, *event_shape]`` translations on the model's device.

        Raises:
            ModelError: an unknown target domain.
            DataError: images of the wrong shape, non-finite or outside ``[0, 1]``.
        """
        index = self.domain_index(target)
        t = as_tensor(x, "images to translate")
        if t.dim() == len(self.image_shape) + 1 and tuple(t.shape[1:]) == self.image_shape:
            t = t.reshape(len(t), -1)
        rows = self.check_data(t, "images to translate").to(self.device)
        targets = torch.full((len(rows),), index, dtype=torch.long, device=rows.device)
        return self.translate_rows(rows, targets)

    def _not_a_sampler(self) -> ModelError:
        return ModelError(f"{type(self).__name__} translates images, it does not draw them from "
                          "noise: use model.translate(x, target='<domain>') (domains: "
                          f"{', '.join(self.domains)}) or `ppgen translate DIR --data X.npy "
                          "--to <domain>`")

    def model(self, x: torch.Tensor | None = None, domain: torch.Tensor | None = None,
              num_samples: int | None = None) -> torch.Tensor:
        """A translation model has no generative program of its own: its draws are
        translations of given images (:meth:`translate`). Raises :class:`ModelError`."""
        raise self._not_a_sampler()

    def sample(self, n: int, **options: Any) -> torch.Tensor:
        """Refused with a message that names :meth:`translate` (there is nothing to draw
        from without images)."""
        raise self._not_a_sampler()

    # ----------------------------------------------------------------- training
    def critic_network(self) -> nn.Module:
        """The critic(s) this model carries (trained by the objective, saved with it)."""
        return self.critic

    def check_data(self, x: Any, name: str = "data") -> torch.Tensor:
        """Finite floats ``[N, *event_shape]`` in ``[0, 1]`` (the generators' sigmoid range).

        Raises:
            DataError: integer levels (use the dequantised ``continuous`` representation), a
                wrong shape, non-finite values or values outside ``[0, 1]``.
        """
        t = as_tensor(x, name)
        if not t.is_floating_point():
            raise DataError(f"{type(self).__name__} translates images in [0, 1] but the {name} "
                            "are integers: use the continuous representation "
                            "(load_digit_domains(representation='continuous')) or scale to [0, 1]")
        t = validate(t, "continuous", event_shape=tuple(self.event_shape), name=name)
        lo, hi = torch.aminmax(t)
        if float(lo) < 0 or float(hi) > 1:
            raise DataError(f"the {name} have values in [{float(lo):.3g}, {float(hi):.3g}]: the "
                            "translation models take images scaled to [0, 1]")
        return self.in_model_dtype(t)

    @classmethod
    def for_data(cls, info: DataInfo, **kwargs: Any) -> GenerativeModel:
        """The model for the domain images described by ``info`` (``info.image_shape``);
        ``domains=`` names the domains (default :attr:`default_domains`), ``paired=`` says
        whether the validation data are paired (:class:`~ppgen.data.domains.DomainSplits`
        carries both)."""
        if not info.image_shape or len(info.event_shape) != 1:
            raise ModelError(f"{cls.__name__} translates flat images [N, H*W] with "
                             "DataInfo.image_shape set: use --data digits-domains, or --data "
                             "A.npy --data-b B.npy")
        if info.likelihood != "continuous":
            raise ModelError(f"{cls.__name__} translates images in [0, 1]: load them in the "
                             "'continuous' representation")
        kwargs.setdefault("domains", cls.default_domains)
        return cls(image_shape=tuple(info.image_shape), **kwargs)
