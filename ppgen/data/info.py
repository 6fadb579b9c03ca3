"""Descriptions of data sets: what one datum looks like and which likelihood fits it."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["DataInfo", "DataSplits", "LIKELIHOODS"]

#: Likelihood families a data representation can be modelled with.
LIKELIHOODS = ("categorical", "bernoulli", "continuous")


@dataclass(frozen=True)
class DataInfo:
    """What one datum looks like.

    Attributes:
        event_shape: shape of one datum, e.g. ``(64,)`` for flattened 8x8 digits.
        likelihood: ``"categorical"`` (integers ``0..num_levels-1``), ``"bernoulli"`` (0/1) or
            ``"continuous"`` (real values).
        num_levels: number of integer levels for categorical data (17 for digits).
        image_shape: ``(H, W)`` or ``(C, H, W)`` when a datum is an image (for plots).
        name: a short name of the data set, for reports.
        representation: how the data were derived (``"categorical"``, ``"binary"``, ...).
    """

    event_shape: tuple[int, ...]
    likelihood: str
    num_levels: int | None = None
    image_shape: tuple[int, ...] | None = None
    name: str = "data"
    representation: str = ""

    def to_dict(self) -> dict:
        """JSON-able form (see :meth:`from_dict`)."""
        return {
            "event_shape": list(self.event_shape),
            "likelihood": self.likelihood,
            "num_levels": self.num_levels,
            "image_shape": list(self.image_shape) if self.image_shape else None,
            "name": self.name,
            "representation": self.representation,
        }

    @classmethod
    def from_dict(cls, d: dict) -> DataInfo:
        d = dict(d)
        d["event_shape"] = tuple(d["event_shape"])
        d["image_shape"] = tuple(d["image_shape"]) if d.get("image_shape") else None
        return cls(**d)

    @property
    def num_dims(self) -> int:
        """Number of scalar dimensions of one datum."""
        n = 1
        for s in self.event_shape:
            n *= s
        return n


@dataclass
class DataSplits:
    """Train / validation / test tensors with their description and optional labels.

    Attributes:
        train, val, test: ``[N, *info.event_shape]`` tensors.
        info: the :class:`DataInfo` shared by the three splits.
        labels: optional class labels per split (``{"train": [N], ...}``).
    """

    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    info: DataInfo
    labels: dict[str, torch.Tensor] = field(default_factory=dict)

    def split(self, name: str) -> torch.Tensor:
        """The split called ``name`` (``"train"``, ``"val"`` or ``"test"``)."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}: use 'train', 'val' or 'test'")
        return getattr(self, name)
