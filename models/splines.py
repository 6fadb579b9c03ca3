"""Monotonic rational-quadratic splines without boolean masks: no host synchronisation.

nflows' ``unconstrained_rational_quadratic_spline`` (``tails="linear"``) splits its inputs into
the points inside ``[-B, B]`` and those outside by boolean-mask indexing, asks ``torch.any``
whether any point is inside, and checks the domain and (inverting) the discriminant with
``torch.min``/``assert (...).all()``. Every one of these is a data-dependent shape or a Python
``bool`` of a device tensor, so the host waits for the device about ten times per layer and
pass (some 55 times in a training step of the default NSF).

:func:`unconstrained_rational_quadratic_spline` here is the same function computed without them:
the spline is evaluated at every point with the input clamped into ``[-B, B]`` and the result
is chosen by ``torch.where`` (the identity with log-determinant 0 outside the bound, linear
tails, exactly as in nflows). Inside the bound it runs nflows' operations in nflows' order, so
the numbers agree to the last bit up to float reassociation. The two transforms use it in place
of nflows' function and keep nflows' constructors, ``Transform`` interface and parameters (the
same ``state_dict`` keys):

* :class:`PiecewiseRationalQuadraticCouplingTransform` (NSF, ``transform="coupling"``),
* :class:`MaskedPiecewiseRationalQuadraticAutoregressiveTransform` (``"autoregressive"``).

Paper: Durkan, Bekasov, Murray & Papamakarios, 2019, "Neural Spline Flows" (NeurIPS,
arXiv:1906.04032); the spline of Gregory & Delbourgo, 1982.

Example:
    >>> x = torch.tensor([[-6.0, 0.5, 5.0]])
    >>> params = torch.zeros(1, 3, 3 * 4 - 1)  # 4 bins: widths, heights, inner derivatives
    >>> y, logabsdet = unconstrained_rational_quadratic_spline(
    ...     x, params[..., :4], params[..., 4:8], params[..., 8:], tail_bound=5.0)
    >>> y.shape, logabsdet.shape
    (torch.Size([1, 3]), torch.Size([1, 3]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from nflows import transforms
from nflows.transforms.splines.rational_quadratic import (
    DEFAULT_MIN_BIN_HEIGHT,
    DEFAULT_MIN_BIN_WIDTH,
    DEFAULT_MIN_DERIVATIVE,
)
from nflows.utils import torchutils
from torch import nn
from torch.nn import functional as F

__all__ = [
    "unconstrained_rational_quadratic_spline",
    "rational_quadratic_spline",
    "PiecewiseRationalQuadraticCouplingTransform",
    "MaskedPiecewiseRationalQuadraticAutoregressiveTransform",
]


def unconstrained_rational_quadratic_spline(
    inputs: torch.Tensor,
    unnormalized_widths: torch.Tensor,
    unnormalized_heights: torch.Tensor,
    unnormalized_derivatives: torch.Tensor,
    inverse: bool = False,
    tail_bound: float = 1.0,
    min_bin_width: float = DEFAULT_MIN_BIN_WIDTH,
    min_bin_height: float = DEFAULT_MIN_BIN_HEIGHT,
    min_derivative: float = DEFAULT_MIN_DERIVATIVE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The spline on ``[-B, B]`` with linear tails (the identity) outside, mask-free.

    Args:
        inputs: ``[...]`` points (``x`` forward, ``y`` inverse).
        unnormalized_widths: ``[..., K]`` logits of the bin widths.
        unnormalized_heights: ``[..., K]`` logits of the bin heights.
        unnormalized_derivatives: ``[..., K - 1]`` pre-softplus derivatives at the inner
            knots (the derivative at ``-B`` and ``B`` is 1, matching the tails).
        inverse: evaluate the inverse spline.
        tail_bound: ``B``.
        min_bin_width, min_bin_height, min_derivative: floors, as in nflows.

    Returns:
        ``(outputs [...], logabsdet [...])``: elementwise values and ``log |d out / d in|``.
    """
    inside = (inputs >= -tail_bound) & (inputs <= tail_bound)
    constant = math.log(math.exp(1 - min_derivative) - 1)  # softplus(c) + min_derivative = 1
    derivatives = F.pad(unnormalized_derivatives, pad=(1, 1), value=constant)
    outputs, logabsdet = rational_quadratic_spline(
        inputs.clamp(-tail_bound, tail_bound),
        unnormalized_widths,
        unnormalized_heights,
        derivatives,
        inverse=inverse,
        left=-tail_bound,
        right=tail_bound,
        bottom=-tail_bound,
        top=tail_bound,
        min_bin_width=min_bin_width,
        min_bin_height=min_bin_height,
        min_derivative=min_derivative,
    )
    return torch.where(inside, outputs, inputs), torch.where(inside, logabsdet, 0.0)


def rational_quadratic_spline(
    inputs: torch.Tensor,
    unnormalized_widths: torch.Tensor,
    unnormalized_heights: torch.Tensor,
    unnormalized_derivatives: torch.Tensor,
    inverse: bool = False,
    left: float = 0.0,
    right: float = 1.0,
    bottom: float = 0.0,
    top: float = 1.0,
    min_bin_width: float = DEFAULT_MIN_BIN_WIDTH,
    min_bin_height: float = DEFAULT_MIN_BIN_HEIGHT,
    min_derivative: float = DEFAULT_MIN_DERIVATIVE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """nflows' ``rational_quadratic_spline`` without its host-side checks.

    The inputs must already lie in ``[left, right]`` (``[bottom, top]`` inverting); nflows
    checks this (and the discriminant) on the host, which is what this version leaves out.

    Args:
        inputs: ``[...]``.
        unnormalized_widths, unnormalized_heights: ``[..., K]``.
        unnormalized_derivatives: ``[..., K + 1]`` (every knot).
        inverse, left, right, bottom, top, min_bin_width, min_bin_height, min_derivative:
            as in nflows.

    Returns:
        ``(outputs [...], logabsdet [...])``.
    """
    num_bins = unnormalized_widths.shape[-1]
    if min_bin_width * num_bins > 1.0:
        raise ValueError("Minimal bin width too large for the number of bins")
    if min_bin_height * num_bins > 1.0:
        raise ValueError("Minimal bin height too large for the number of bins")
    cumwidths, widths = _knots(unnormalized_widths, min_bin_width, left, right)
    cumheights, heights = _knots(unnormalized_heights, min_bin_height, bottom, top)
    derivatives = min_derivative + F.softplus(unnormalized_derivatives)
    bin_idx = _bin_index(cumheights if inverse else cumwidths, inputs)

    def at_bin(t: torch.Tensor) -> torch.Tensor:
        return t.gather(-1, bin_idx)[..., 0]

    delta = heights / widths
    bin_ = _Bin(
        cumwidth=at_bin(cumwidths),
        width=at_bin(widths),
        cumheight=at_bin(cumheights),
        height=at_bin(heights),
        delta=at_bin(delta),
        d0=at_bin(derivatives),
        d1=derivatives[..., 1:].gather(-1, bin_idx)[..., 0],
    )
    return bin_.inverse(inputs) if inverse else bin_.forward(inputs)


def _knots(
    unnormalized: torch.Tensor, min_size: float, low: float, high: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(knots [..., K + 1], sizes [..., K])`` of the bins on ``[low, high]`` (nflows' code)."""
    num_bins = unnormalized.shape[-1]
    sizes = F.softmax(unnormalized, dim=-1)
    sizes = min_size + (1 - min_size * num_bins) * sizes
    knots = torch.cumsum(sizes, dim=-1)
    knots = F.pad(knots, pad=(1, 0), mode="constant", value=0.0)
    knots = (high - low) * knots + low
    knots[..., 0] = low
    knots[..., -1] = high
    return knots, knots[..., 1:] - knots[..., :-1]


def _bin_index(knots: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """``[..., 1]`` bin of each input in ``[knots_0, knots_K]``: the inner knots at or below it.

    nflows counts every knot ``<=`` the input, the last one raised by ``1e-6``, minus one; for
    inputs in the interval that is this count (and it cannot run past the last bin).
    """
    return torch.sum(inputs[..., None] >= knots[..., 1:-1], dim=-1, keepdim=True)


@dataclass(frozen=True)
class _Bin:
    """The rational-quadratic segment of each input's bin (nflows' formulas, in its order):
    its left knot and size along both axes, its slope ``delta`` and the derivatives at its two
    knots, all ``[...]``."""

    cumwidth: torch.Tensor
    width: torch.Tensor
    cumheight: torch.Tensor
    height: torch.Tensor
    delta: torch.Tensor
    d0: torch.Tensor
    d1: torch.Tensor

    def _log_derivative(self, t: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
        """``log`` of the forward derivative at ``theta = t`` with the given denominator."""
        numerator = self.delta.pow(2) * (
            self.d1 * t.pow(2) + 2 * self.delta * (t * (1 - t)) + self.d0 * (1 - t).pow(2)
        )
        return torch.log(numerator) - 2 * torch.log(denominator)

    def _denominator(self, theta_one_minus_theta: torch.Tensor) -> torch.Tensor:
        return self.delta + (self.d0 + self.d1 - 2 * self.delta) * theta_one_minus_theta

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        theta = (x - self.cumwidth) / self.width
        theta_one_minus_theta = theta * (1 - theta)
        numerator = self.height * (self.delta * theta.pow(2) + self.d0 * theta_one_minus_theta)
        denominator = self._denominator(theta_one_minus_theta)
        outputs = self.cumheight + numerator / denominator
        return outputs, self._log_derivative(theta, denominator)

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shifted = y - self.cumheight
        slope_sum = self.d0 + self.d1 - 2 * self.delta
        a = shifted * slope_sum + self.height * (self.delta - self.d0)
        b = self.height * self.d0 - shifted * slope_sum
        c = -self.delta * shifted
        discriminant = b.pow(2) - 4 * a * c
        root = (2 * c) / (-b - torch.sqrt(discriminant))
        outputs = root * self.width + self.cumwidth
        denominator = self._denominator(root * (1 - root))
        return outputs, -self._log_derivative(root, denominator)


# =========================================================================== transforms
def _logit_scale(net: nn.Module) -> float:
    """nflows divides the width and height logits by ``sqrt`` of the network's hidden size."""
    for name in ("hidden_features", "hidden_channels"):
        if hasattr(net, name):
            return math.sqrt(getattr(net, name))
    return 1.0


class _MaskFreeSpline:
    """The spline evaluation shared by both transforms (nflows' parameter layout)."""

    num_bins: int
    tails: str
    tail_bound: float
    min_bin_width: float
    min_bin_height: float
    min_derivative: float

    def _check_tails(self) -> None:
        if self.tails != "linear":
            raise ValueError(f"the mask-free spline has linear tails only, got {self.tails!r}")

    def _spline(
        self, inputs: torch.Tensor, params: torch.Tensor, net: nn.Module, inverse: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``params [..., 3K - 1]`` (widths, heights, inner derivatives) at ``inputs [...]``."""
        scale, k = _logit_scale(net), self.num_bins
        return unconstrained_rational_quadratic_spline(
            inputs,
            params[..., :k] / scale,
            params[..., k : 2 * k] / scale,
            params[..., 2 * k :],
            inverse=inverse,
            tail_bound=self.tail_bound,
            min_bin_width=self.min_bin_width,
            min_bin_height=self.min_bin_height,
            min_derivative=self.min_derivative,
        )


class PiecewiseRationalQuadraticCouplingTransform(
    _MaskFreeSpline, transforms.PiecewiseRationalQuadraticCouplingTransform
):
    """nflows' rational-quadratic coupling layer (same arguments and parameters), with the
    mask-free spline; ``tails="linear"`` only."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._check_tails()

    def _piecewise_cdf(self, inputs, transform_params, inverse=False):
        return self._spline(inputs, transform_params, self.transform_net, inverse)


class MaskedPiecewiseRationalQuadraticAutoregressiveTransform(
    _MaskFreeSpline, transforms.MaskedPiecewiseRationalQuadraticAutoregressiveTransform
):
    """nflows' rational-quadratic MADE layer (same arguments and parameters), with the
    mask-free spline; ``tails="linear"`` only."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._check_tails()

    def _elementwise(self, inputs, autoregressive_params, inverse=False):
        shape = (inputs.shape[0], inputs.shape[1], self._output_dim_multiplier())
        params = autoregressive_params.view(shape)
        outputs, logabsdet = self._spline(inputs, params, self.autoregressive_net, inverse)
        return outputs, torchutils.sum_except_batch(logabsdet)
