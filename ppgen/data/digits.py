"""The bundled 8x8 digits (scikit-learn) on the project's fixed, ordered benchmark split.

See BENCHMARKS.md ("Digits density estimation"): 1,797 images with integer pixels 0..16,
split in file order into train ``[:1000]``, val ``[1000:1350]`` and test ``[1350:]`` (447).
"""

from __future__ import annotations

from types import MappingProxyType

import torch

from ppgen.data.info import DataInfo, DataSplits
from ppgen.data.transforms import dequantize, likelihood_of
from ppgen.data.validate import validate

__all__ = ["DIGITS_LEVELS", "DIGITS_SPLITS", "load_digits"]

#: Number of pixel intensity levels (0..16).
DIGITS_LEVELS = 17

#: The ordered, unshuffled benchmark split (row ranges of ``sklearn.datasets.load_digits``).
DIGITS_SPLITS = MappingProxyType({"train": (0, 1000), "val": (1000, 1350), "test": (1350, 1797)})

_BINARY_THRESHOLD = 8


def load_digits(representation: str = "categorical", *, seed: int = 0) -> DataSplits:
    """The digits on the benchmark split, in one of three representations.

    - ``"categorical"``: ``torch.long`` pixels in ``0..16`` (likelihood ``"categorical"``,
      17 levels);
    - ``"binary"``: float32 ``pixel >= 8`` as 0/1 (likelihood ``"bernoulli"``);
    - ``"continuous"``: float32 ``y = (x + u) / 17``, ``u ~ U[0, 1)`` drawn from a generator
      seeded with ``seed``, values in ``[0, 1)`` (likelihood ``"continuous"``; ``num_levels``
      is 17, the levels the data were dequantised from; see :func:`~ppgen.data.dequantize`).

    Args:
        representation: ``"categorical"``, ``"binary"`` or ``"continuous"``.
        seed: seed of the dequantisation noise (only used by ``"continuous"``).

    Returns:
        :class:`DataSplits` with ``train [1000, 64]``, ``val [350, 64]``, ``test [447, 64]``
        (rows in the original order) and ``labels`` (``torch.long`` digit classes per split).

    Raises:
        DataError: an unknown representation.

    Example:
        >>> splits = load_digits("binary")
        >>> splits.train.shape, splits.info.likelihood
        (torch.Size([1000, 64]), 'bernoulli')
    """
    likelihood = likelihood_of(representation)
    pixels, targets = _raw_digits()
    x = _represent(pixels, representation, seed)
    info = DataInfo(
        event_shape=(64,),
        likelihood=likelihood,
        num_levels=2 if representation == "binary" else DIGITS_LEVELS,
        image_shape=(8, 8),
        name="digits",
        representation=representation,
    )
    return DataSplits(**_split(x), info=info, labels=_split(targets))


def _raw_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 images as ``long`` ``[1797, 64]`` pixels and ``long`` ``[1797]`` classes."""
    # Imported here so that ``import ppgen`` does not pay for importing scikit-learn.
    from sklearn.datasets import load_digits as sklearn_load_digits

    bunch = sklearn_load_digits()
    pixels = validate(
        bunch.data, "categorical", num_levels=DIGITS_LEVELS, event_shape=(64,), name="digits"
    )
    return pixels, torch.as_tensor(bunch.target, dtype=torch.long)


def _represent(pixels: torch.Tensor, representation: str, seed: int) -> torch.Tensor:
    """``[N, 64]`` pixels in the given representation (see :func:`load_digits`)."""
    if representation == "binary":
        return (pixels >= _BINARY_THRESHOLD).to(torch.float32)
    if representation == "continuous":
        generator = torch.Generator(device=pixels.device).manual_seed(seed)
        return dequantize(pixels, DIGITS_LEVELS, generator=generator)
    return pixels


def _split(t: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{"train", "val", "test"}`` row ranges of ``t`` (see :data:`DIGITS_SPLITS`)."""
    return {name: t[lo:hi] for name, (lo, hi) in DIGITS_SPLITS.items()}
