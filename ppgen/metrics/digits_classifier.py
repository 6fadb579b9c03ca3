"""The digits feature classifier: a small convnet of the 10 digit classes, and its inputs.

Sample metrics of images need a feature space in which distances mean something. ImageNet's
Inception network is the usual one, but it needs a download and knows nothing of 8x8 digits;
ppgen ships its own: :class:`DigitsClassifier`, trained deterministically on the bundled
training split (:mod:`ppgen.metrics.digits_training`; ``benchmarks/feature_classifier.py``
rebuilds it and records its test accuracy). Its penultimate layer (:data:`NUM_FEATURES` ReLU
units) is the feature map, as Inception's pool layer is FID's.

**One canonical input** (:func:`digits_intensity`): intensities in ``[0, 1]`` on the data's 17
levels, ``level / 16``. Every representation a model produces maps onto it:

* integers (``categorical`` digits, levels ``0..16``) → ``level / 16``;
* floats are read on the unit scale and quantised back to the 17 levels first
  (``floor(17 y)``, clamped to ``0..16``): dequantised data ``y = (x + u) / 17`` (``continuous``
  digits, GANs, flows on continuous data), intensities ``x / 16``, and ``binary`` digits
  (``0`` → 0, ``1`` → 1) all land on their level exactly, so the dequantisation noise never
  reaches the features.

Example:
    >>> x = torch.tensor([[0, 8, 16] + [0] * 61])
    >>> digits_intensity(x)[0, :3].tolist()
    [0.0, 0.5, 1.0]
    >>> digits_intensity((x + 0.5) / 17)[0, :3].tolist()  # the same levels, dequantised
    [0.0, 0.5, 1.0]
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ppgen.errors import DataError

__all__ = ["DigitsClassifier", "digits_intensity", "NUM_FEATURES", "NUM_CLASSES", "LEVELS"]

#: width of the penultimate layer: the feature space's dimension
NUM_FEATURES = 32
#: digit classes
NUM_CLASSES = 10
#: intensity levels of the bundled digits (0..16)
LEVELS = 17
#: how far outside ``[0, 1]`` a float may stray (a GAN's identity output) before it is refused
_SLACK = 0.25


def digits_intensity(x: torch.Tensor) -> torch.Tensor:
    """The canonical input of :class:`DigitsClassifier`: float32 ``[N, 64]`` in ``[0, 1]``.

    Args:
        x: digits ``[N, 64]``, ``[N, 8, 8]`` or ``[N, 1, 8, 8]``: integer levels ``0..16``, or
            floats on the unit scale (dequantised ``(x + u) / 17``, ``x / 16`` or binary 0/1),
            quantised to the 17 levels (see the module docstring).

    Returns:
        ``level / 16`` per pixel, on ``x``'s device.

    Raises:
        DataError: not 64 pixels per image, NaN/inf, integers outside ``0..16``, or floats far
            outside ``[0, 1]`` (e.g. data scaled to ``[-1, 1]`` or raw levels as floats).
    """
    if x.ndim < 2 or x[0].numel() != 64:
        raise DataError(f"the digits feature space takes 8x8 images [N, 64], got shape "
                        f"{tuple(x.shape)}")
    x = x.reshape(len(x), 64)
    if x.is_floating_point():
        return _levels_of_unit_scale(x) / (LEVELS - 1)
    if len(x) and (int(x.min()) < 0 or int(x.max()) >= LEVELS):
        raise DataError(f"integer digits must be levels 0..{LEVELS - 1}, got values in "
                        f"[{int(x.min())}, {int(x.max())}]")
    return x.to(torch.float32) / (LEVELS - 1)


def _levels_of_unit_scale(y: torch.Tensor) -> torch.Tensor:
    """Float32 levels ``floor(17 y)`` clamped to ``0..16`` of unit-scale floats ``y``."""
    if not bool(torch.isfinite(y).all()):
        raise DataError("the digits to featurise contain NaN or inf")
    if len(y) and (float(y.min()) < -_SLACK or float(y.max()) > 1 + _SLACK):
        raise DataError(
            f"float digits are read on the unit scale [0, 1] (dequantised levels (x + u) / 17 "
            f"or x / 16), got values in [{float(y.min()):.3g}, {float(y.max()):.3g}]: pass "
            "integer levels 0..16, or rescale to [0, 1]"
        )
    return torch.floor(y.to(torch.float32) * LEVELS).clamp_(0, LEVELS - 1)


class DigitsClassifier(nn.Module):
    """A convnet of the 10 digit classes on 8x8 intensities; its penultimate layer is the
    feature map of ppgen's digits sample metrics.

    ``[N, 64]`` → 3x3 conv (12 channels) → ReLU → 3x3 conv, stride 2 (24 channels, 4x4) →
    ReLU → linear to :data:`NUM_FEATURES` → ReLU (the hidden layer) → linear to 10 logits.
    15,386 parameters. The features are the hidden layer divided by ``feature_scale`` (a
    buffer: the root mean square of the hidden units over the training split, set after
    training), so the training features have unit mean square per unit and the metrics'
    numbers (KID's cubic kernel ``(a·b / D + 1)³`` above all) have a sensible scale.

    Inputs are canonical intensities (:func:`digits_intensity`); :meth:`features` and
    :meth:`forward` convert any representation first.

    Example:
        >>> net = DigitsClassifier()
        >>> net.features(torch.zeros(5, 64, dtype=torch.long)).shape
        torch.Size([5, 32])
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 12, 3, padding=1)
        self.conv2 = nn.Conv2d(12, 24, 3, stride=2, padding=1)
        self.hidden = nn.Linear(24 * 4 * 4, NUM_FEATURES)
        self.out = nn.Linear(NUM_FEATURES, NUM_CLASSES)
        self.register_buffer("feature_scale", torch.ones(()))

    def hidden_of_intensity(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, NUM_FEATURES]`` penultimate activations of canonical intensities ``[N, 64]``."""
        h = F.relu(self.conv1(x.reshape(-1, 1, 8, 8)))
        h = F.relu(self.conv2(h))
        return F.relu(self.hidden(h.flatten(1)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, NUM_FEATURES]`` features of digits in any representation."""
        return self._hidden(x) / self.feature_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 10]`` class logits of digits in any representation."""
        return self.out(self._hidden(x))

    def _hidden(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden_of_intensity(digits_intensity(x).to(self.out.weight))
