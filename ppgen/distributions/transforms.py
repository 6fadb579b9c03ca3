"""nflows transforms shared by the zoo's flows and the dequantisers (core: both families use them).

* :class:`LogitTransform`: the logit pre-transform that takes data in ``[0, 1]`` to the real line
  (Dinh et al., 2017, Sect. 4.1), also the squashing of the variational dequantiser's noise;
* :func:`alternating_mask`: the coupling masks of alternating parity.

Example:
    >>> import torch
    >>> z, logabsdet = LogitTransform(0.05)(torch.full((2, 3), 0.5))
    >>> z.shape, logabsdet.shape
    (torch.Size([2, 3]), torch.Size([2]))
"""

from __future__ import annotations

import math
from typing import Any

import torch
from nflows.transforms import Transform
from torch.nn import functional as F

from ppgen.errors import ModelError

__all__ = ["LogitTransform", "alternating_mask"]


class LogitTransform(Transform):
    """``y -> z = logit(alpha + (1 - 2 alpha) y)`` on ``[0, 1]`` (``(0, 1)`` when ``alpha = 0``).

    ``log |dz/dy| = log(1 - 2 alpha) - log s - log(1 - s)`` with ``s = alpha + (1 - 2 alpha) y``,
    summed over every non-batch dimension. Works on flat ``[N, D]`` and image ``[N, C, H, W]``
    inputs. Paper: Dinh, Sohl-Dickstein & Bengio, 2017, "Density estimation using Real NVP"
    (arXiv:1605.08803), Sect. 4.1.

    Args:
        alpha: the margin ``0 <= alpha < 0.5`` that keeps ``z`` finite at ``y = 0`` and ``1``.
            A negative ``alpha`` (``> -0.5``) does the opposite: the inverse (sampling)
            direction ``z -> y`` stays strictly inside ``(eps, 1 - eps)``,
            ``eps = -alpha / (1 - 2 alpha)``, even where ``sigmoid(z)`` rounds to 0 or 1 (the
            variational dequantiser's noise, :mod:`ppgen.models.dequantization`).
    """

    def __init__(self, alpha: float) -> None:
        super().__init__()
        if not -0.5 < alpha < 0.5:
            raise ModelError(f"logit alpha must lie in (-0.5, 0.5), got {alpha}")
        self.alpha = float(alpha)

    def _log_scale(self) -> float:
        return math.log1p(-2 * self.alpha)

    def forward(self, inputs: torch.Tensor, context: Any = None):
        s = self.alpha + (1 - 2 * self.alpha) * inputs
        log_s, log_1ms = torch.log(s), torch.log1p(-s)
        logabsdet = (self._log_scale() - log_s - log_1ms).flatten(1).sum(1)
        return log_s - log_1ms, logabsdet

    def inverse(self, inputs: torch.Tensor, context: Any = None):
        s = torch.sigmoid(inputs)
        log_s, log_1ms = -F.softplus(-inputs), -F.softplus(inputs)
        logabsdet = (log_s + log_1ms - self._log_scale()).flatten(1).sum(1)
        return (s - self.alpha) / (1 - 2 * self.alpha), logabsdet


def alternating_mask(num_dims: int, layer: int) -> torch.Tensor:
    """Coupling mask of layer ``layer``: dimensions of parity ``layer % 2`` are transformed."""
    return (torch.arange(num_dims) % 2 == layer % 2).to(torch.uint8)
