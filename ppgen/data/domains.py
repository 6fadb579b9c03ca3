"""Image domains for translation: the digits under known transformations, and user images.

Translation models (CycleGAN, StarGAN) learn maps between *domains* of images. On the bundled
digits the domains are made by deterministic transformations of the 8x8 levels ``0..16``, so
every translation has a ground truth (:data:`DIGIT_DOMAINS`):

==============  ================================================================================
``original``    the digits as they are
``inverted``    ``16 - x``
``bold``        grey dilation (the maximum over a 3x3 cross: the pixel and its 4 neighbours)
``thin``        grey erosion (the minimum over a horizontal pair: the pixel and its right one)
``rotated``     rotated by 90° counter-clockwise
``mirrored``    flipped left to right
==============  ================================================================================

:func:`load_digit_domains` trains **unpaired**: the 1,000 training digits are dealt out by a
seeded permutation into one disjoint share per domain, so no digit is ever seen in two
domains. Validation and test are **paired**: the same 350 (447) digits in every domain, stacked
domain by domain, so row ``i`` of one domain's block and row ``i`` of another's are the same
digit and a translation can be scored against the truth.

:func:`load_image_domains` reads a user's domains: two or more arrays, ``.npy``/``.csv`` files
(through :func:`~ppgen.data.load_array`) or folders of PNG images, one per domain, each split
by a seeded permutation (unpaired everywhere).

Either way the data are a :class:`DomainSplits`: the images of every domain stacked, flat
``[N, H*W]``, with the domain index of each row as its label (``labels[split]``), which is
how the training engine feeds them to a model that declares the domain as its conditioning
input (``ppgen.fit(model, s.train, s.val, labels=s.labels["train"],
val_labels=s.labels["val"])``).

Example:
    >>> s = load_digit_domains(["original", "inverted"], "categorical")
    >>> s.train.shape, s.val.shape, s.domains
    (torch.Size([1000, 64]), torch.Size([700, 64]), ('original', 'inverted'))
    >>> bool((s.block("val", "inverted") == 16 - s.block("val", "original")).all())
    True
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ppgen.data.digits import DIGITS_LEVELS, load_digits
from ppgen.data.info import DataInfo, DataSplits
from ppgen.data.loaders import _random_split, load_array
from ppgen.data.transforms import dequantize, likelihood_of
from ppgen.data.validate import validate
from ppgen.errors import DataError

__all__ = [
    "DIGIT_DOMAINS",
    "DomainSplits",
    "transform_digits",
    "load_digit_domains",
    "load_image_domains",
    "load_images",
    "load_domains",
]

_TOP = DIGITS_LEVELS - 1
_CROSS = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))
_PAIR = ((0, 0), (0, 1))


def _shifted(x: torch.Tensor, offsets: Sequence[tuple[int, int]], fill: int) -> torch.Tensor:
    """``[len(offsets), N, H, W]``: ``x[n, i + di, j + dj]`` for each offset (``fill`` outside)."""
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), value=fill)
    h, w = x.shape[-2:]
    return torch.stack([padded[..., 1 + di: 1 + di + h, 1 + dj: 1 + dj + w] for di, dj in offsets])


def _dilate(x: torch.Tensor) -> torch.Tensor:
    return _shifted(x, _CROSS, 0).amax(0)


def _erode(x: torch.Tensor) -> torch.Tensor:
    return _shifted(x, _PAIR, _TOP).amin(0)


#: the digit domains: each maps levels ``[N, 8, 8]`` (``long``, ``0..16``) to levels
DIGIT_DOMAINS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "original": lambda x: x,
    "inverted": lambda x: _TOP - x,
    "bold": _dilate,
    "thin": _erode,
    "rotated": lambda x: torch.rot90(x, 1, (-2, -1)),
    "mirrored": lambda x: torch.flip(x, (-1,)),
}


@dataclass
class DomainSplits(DataSplits):
    """Train / val / test images of several domains, stacked domain by domain.

    Attributes:
        train, val, test: ``[N, H*W]`` images of every domain (see :class:`DataSplits`).
        info: what one image looks like (``image_shape`` set).
        labels: the domain index of each row per split (``{"train": [N], ...}``).
        domains: the domain names, in index order.
        paired: whether val and test are paired: the same images in every domain, in equal
            blocks (row ``i`` of each block is the same image).
        classes: the digit class of each row per split (the bundled digits only).
    """

    domains: tuple[str, ...] = ()
    paired: bool = False
    classes: dict[str, torch.Tensor] = field(default_factory=dict)

    def block(self, split: str, domain: str | int) -> torch.Tensor:
        """The rows of ``split`` in ``domain`` (a name or an index), in their order."""
        index = self.domains.index(domain) if isinstance(domain, str) else int(domain)
        return self.split(split)[self.labels[split] == index]


def transform_digits(levels: torch.Tensor, domain: str) -> torch.Tensor:
    """Digits ``[N, 64]`` (integer levels ``0..16``) in ``domain`` (:data:`DIGIT_DOMAINS`).

    Raises:
        DataError: an unknown domain, or data that are not 8x8 levels.
    """
    _check_names([domain])
    x = validate(levels, "categorical", num_levels=DIGITS_LEVELS, event_shape=(64,),
                 name="digits")
    return DIGIT_DOMAINS[domain](x.reshape(-1, 8, 8)).reshape(-1, 64)


def load_digit_domains(
    domains: Sequence[str] = ("original", "bold"),
    representation: str = "continuous",
    *,
    seed: int = 0,
) -> DomainSplits:
    """The digits in several domains: unpaired training, paired validation and test.

    Args:
        domains: two or more names of :data:`DIGIT_DOMAINS`, in index order.
        representation: ``"continuous"`` (dequantised to ``[0, 1)``, what the translation
            GANs train on; noise seeded with ``seed``) or ``"categorical"`` (levels ``0..16``).
        seed: seed of the training digits' deal into domains and of the dequantisation.

    Returns:
        :class:`DomainSplits`: ``train`` holds ``1000 // K`` (or one more) digits per domain,
        disjoint; ``val`` ``[350 K, 64]`` and ``test`` ``[447 K, 64]`` the same digits in every
        domain; ``classes`` the digit classes.

    Raises:
        DataError: fewer than two domains, a repeated or unknown name, or a representation
            other than continuous or categorical.
    """
    names = _check_names(domains, at_least=2)
    if representation not in ("continuous", "categorical"):
        raise DataError(f"digit domains are 'continuous' or 'categorical', not "
                        f"{representation!r}")
    digits = load_digits("categorical")
    train, train_domain, train_rows = _unpaired(digits.train, len(names), seed)
    parts: dict[str, Any] = {"train": (train, train_domain, digits.labels["train"][train_rows])}
    for split in ("val", "test"):
        x = getattr(digits, split)
        parts[split] = (x, torch.arange(len(names)).repeat_interleave(len(x)),
                        digits.labels[split].repeat(len(names)))
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for split, (x, domain, _) in parts.items():
        levels = _in_domains(x, domain, names, paired=split != "train")
        out[split] = (dequantize(levels, DIGITS_LEVELS, generator=generator)
                      if representation == "continuous" else levels)
    info = DataInfo(event_shape=(64,), likelihood=likelihood_of(representation),
                    num_levels=DIGITS_LEVELS, image_shape=(8, 8), name="digit-domains",
                    representation=representation)
    return DomainSplits(**out, info=info, labels={k: v[1] for k, v in parts.items()},
                        domains=names, paired=True, classes={k: v[2] for k, v in parts.items()})


def _unpaired(x: torch.Tensor, k: int, seed: int
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The training digits dealt into ``k`` disjoint shares by a seeded permutation: the
    digits (rows of ``x``) in share order, their domain index and their row in ``x``."""
    rows = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    domain = torch.arange(len(x)) % k
    order = torch.argsort(domain, stable=True)
    return x[rows[order]], domain[order], rows[order]


def _in_domains(x: torch.Tensor, domain: torch.Tensor, names: tuple[str, ...], paired: bool
                ) -> torch.Tensor:
    """Levels ``[N, 64]``: row ``i`` of ``x`` (repeated per domain when ``paired``) in
    domain ``names[domain[i]]``."""
    if paired:
        x = x.repeat(len(names), 1)
    out = torch.empty_like(x)
    for index, name in enumerate(names):
        rows = domain == index
        out[rows] = transform_digits(x[rows], name)
    return out


def _check_names(domains: Sequence[str], at_least: int = 1) -> tuple[str, ...]:
    names = tuple(domains)
    unknown = [d for d in names if d not in DIGIT_DOMAINS]
    if unknown:
        raise DataError(f"unknown digit domain(s) {', '.join(map(repr, unknown))}: use "
                        f"{', '.join(DIGIT_DOMAINS)}")
    if len(names) < at_least or len(set(names)) != len(names):
        raise DataError(f"give at least {at_least} different domains, got {list(names)}")
    return names


# --------------------------------------------------------------------------- user images
#: image files a domain folder may hold
IMAGE_SUFFIXES = (".png",)


def load_image_domains(
    sources: Sequence[Any],
    names: Sequence[str] | None = None,
    *,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
) -> DomainSplits:
    """A user's image domains: one array, ``.npy``/``.csv`` file or folder of PNGs per domain.

    Every source is read and validated at the boundary: finite numbers in ``[0, 1]`` (images
    scaled to the unit interval), images ``[N, H, W]`` or flat ``[N, H*W]`` of square images,
    the same image shape in every domain. Each domain is split into train / val / test by a
    permutation seeded with ``seed`` (unpaired everywhere: the validation metric of the
    translation models is then the cycle error).

    Args:
        sources: two or more arrays, file paths or folder paths, one per domain.
        names: the domain names (default: the file or folder names without suffix, else
            ``"A"``, ``"B"``, ...).
        seed: seed of the splits.
        val_fraction, test_fraction: shares of each domain's images in val and test.

    Returns:
        :class:`DomainSplits` with float32 images ``[N, H*W]`` and ``info.image_shape``.

    Raises:
        DataError: fewer than two sources, an unreadable source, NaN/inf, values outside
            ``[0, 1]``, images of different shapes in two domains, or bad names.
    """
    if len(sources) < 2:
        raise DataError(f"translation needs two or more image domains, got {len(sources)}: "
                        "pass one array, file or folder per domain")
    names = tuple(names) if names is not None else _default_names(sources)
    if len(names) != len(sources) or len(set(names)) != len(names):
        raise DataError(f"give one different name per domain: {len(sources)} domains, names "
                        f"{list(names)}")
    images = [_read_domain(src, name) for src, name in zip(sources, names)]
    shape = _common_shape(images, names)
    splits = [_random_split(x.reshape(len(x), -1), val_fraction, test_fraction, seed)
              for x in images]
    stacked = {s: torch.cat([p[s] for p in splits]) for s in ("train", "val", "test")}
    labels = {s: torch.cat([torch.full((len(p[s]),), i, dtype=torch.long)
                            for i, p in enumerate(splits)]) for s in stacked}
    info = DataInfo(event_shape=(stacked["train"].shape[1],), likelihood="continuous",
                    image_shape=shape, name="image-domains", representation="continuous")
    return DomainSplits(**stacked, info=info, labels=labels, domains=names, paired=False)


def load_images(source: Any, name: str = "images") -> tuple[torch.Tensor, tuple[int, int]]:
    """One domain's images, checked as :func:`load_image_domains` checks each: flat float32
    ``[N, H*W]`` in ``[0, 1]`` and their ``(H, W)``.

    Args:
        source: an array, a ``.npy``/``.csv`` file or a folder of PNG images.
        name: how to call them in messages.

    Raises:
        DataError: what :func:`load_image_domains` refuses in one domain.
    """
    x = _read_domain(source, name, name)
    return x.reshape(len(x), -1), tuple(x.shape[1:])  # type: ignore[return-value]


def _default_names(sources: Sequence[Any]) -> tuple[str, ...]:
    stems = [Path(s).stem if isinstance(s, (str, os.PathLike)) else None for s in sources]
    if all(stems) and len(set(stems)) == len(stems):
        return tuple(stems)  # type: ignore[arg-type]
    return tuple(chr(ord("A") + i) for i in range(len(sources)))


def _read_domain(source: Any, name: str, what: str | None = None) -> torch.Tensor:
    """Images ``[N, H, W]`` in ``[0, 1]`` of one domain (flat square images reshaped)."""
    what = what or f"domain {name!r}"
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        x = _read_folder(Path(source), what)
    else:
        x = load_array(source, "continuous", name=f"{what} ({_label(source)})")
    x = x.to(torch.float32)
    if x.dim() == 2:
        side = round(x.shape[1] ** 0.5)
        if side * side != x.shape[1]:
            raise DataError(f"{what} has rows of {x.shape[1]} values, not square images: pass "
                            "images [N, H, W]")
        x = x.reshape(len(x), side, side)
    if x.dim() != 3:
        raise DataError(f"{what} has shape {tuple(x.shape)}: pass grey images [N, H, W] or flat "
                        "square images [N, H*W]")
    if float(x.min()) < 0 or float(x.max()) > 1:
        raise DataError(f"{what} has values in [{float(x.min()):.3g}, {float(x.max()):.3g}]: "
                        "scale the images to [0, 1] (e.g. divide 8-bit images by 255)")
    return x


def _label(source: Any) -> str:
    return Path(source).name if isinstance(source, (str, os.PathLike)) else "array"


def _read_folder(folder: Path, what: str) -> torch.Tensor:
    """The PNG images of a folder, in name order, as grey ``[N, H, W]`` in ``[0, 1]``."""
    import numpy as np
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{what}: the folder {str(folder)!r} holds no .png images")
    images = []
    for path in files:
        try:
            with Image.open(path) as image:
                images.append(np.asarray(image.convert("L"), dtype=np.float32) / 255.0)
        except OSError as err:
            raise DataError(f"{what}: {path.name} is not a readable PNG image ({err})") from None
    shapes = {a.shape for a in images}
    if len(shapes) > 1:
        raise DataError(f"{what}: the images in {str(folder)!r} have different sizes "
                        f"{sorted(shapes)}: resize them to one size")
    return validate(np.stack(images), "continuous", name=what)


def _common_shape(images: list[torch.Tensor], names: Sequence[str]) -> tuple[int, int]:
    shapes = {name: tuple(x.shape[1:]) for name, x in zip(names, images)}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{n} {s}" for n, s in shapes.items())
        raise DataError(f"the domains have images of different shapes ({listed}): resize them "
                        "to one shape")
    return next(iter(shapes.values()))  # type: ignore[return-value]


# --------------------------------------------------------------------------- one entry point
#: the data spec of the bundled digit domains (``digits-domains`` or ``digits-domains:a,b``)
DIGIT_DOMAINS_SPEC = "digits-domains"


def load_domains(
    spec: Any,
    more: Sequence[Any] = (),
    domains: Sequence[str] | None = None,
    *,
    seed: int = 0,
) -> DomainSplits:
    """Resolve what the command line's ``--data`` (and ``--data-b``) give to domain splits.

    Args:
        spec: ``"digits-domains"`` (the domains ``domains``), ``"digits-domains:a,b,..."``
            (those digit domains), or the first domain's array, file or folder.
        more: the other domains' sources (user data only).
        domains: the domain names (digits: which domains; user data: their names).
        seed: seed of the splits (and of the digits' dequantisation).

    Raises:
        DataError: a mix of digits and user data, or anything the loaders refuse.
    """
    if isinstance(spec, str) and spec.split(":")[0] == DIGIT_DOMAINS_SPEC:
        if more:
            raise DataError(f"--data {DIGIT_DOMAINS_SPEC} takes no --data-b: name the digit "
                            f"domains instead ({DIGIT_DOMAINS_SPEC}:original,bold)")
        named = spec.split(":", 1)[1].split(",") if ":" in spec else None
        if named and domains and tuple(named) != tuple(domains):
            raise DataError(f"the data name the domains {named} but domains={list(domains)}: "
                            "give them once")
        return load_digit_domains(named or domains or ("original", "bold"), seed=seed)
    return load_image_domains([spec, *more], domains, seed=seed)
