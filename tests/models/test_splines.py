"""The mask-free rational-quadratic spline is nflows' spline: values, inverse, log-determinants,
gradients and the transforms built on it (same parameters, same ``state_dict`` keys)."""

from __future__ import annotations

import pytest
import torch
from nflows import transforms
from nflows.nn.nets import ResidualNet
from nflows.transforms.splines import (
    unconstrained_rational_quadratic_spline as nflows_spline,
)

from ppgen.models import splines

B = 3.0  # tail bound
K = 5  # bins


def _params(shape: tuple[int, ...], seed: int, dtype: torch.dtype) -> list[torch.Tensor]:
    """Unnormalised widths, heights ``[..., K]`` and inner derivatives ``[..., K - 1]``."""
    g = torch.Generator().manual_seed(seed)
    raw = 2.0 * torch.randn(*shape, 3 * K - 1, generator=g, dtype=dtype)
    return [raw[..., :K], raw[..., K : 2 * K], raw[..., 2 * K :]]


def _points(n: int, seed: int, dtype: torch.dtype) -> torch.Tensor:
    """``[n, 4]``: random points on ``[-2B, 2B]``, and the bound itself, just inside and
    just outside it, and the centre."""
    g = torch.Generator().manual_seed(seed)
    x = 4 * B * torch.rand(n, 4, generator=g, dtype=dtype) - 2 * B
    eps = 1e-4
    edges = torch.tensor([-B, B, -B + eps, B - eps, -B - eps, B + eps, 0.0, -2 * B], dtype=dtype)
    x.view(-1)[: len(edges)] = edges
    return x


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("inverse", [False, True], ids=["forward", "inverse"])
def test_spline_equals_nflows(inverse: bool, dtype: torch.dtype) -> None:
    x = _points(64, 0, dtype)
    params = _params(x.shape, 1, dtype)
    ours = splines.unconstrained_rational_quadratic_spline(x, *params, inverse=inverse,
                                                           tail_bound=B)
    theirs = nflows_spline(x, *params, inverse=inverse, tails="linear", tail_bound=B)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)
    outside = x.abs() > B
    assert torch.equal(ours[0][outside], x[outside])
    assert torch.equal(ours[1][outside], torch.zeros_like(x[outside]))


def test_spline_gradients_equal_nflows() -> None:
    x = _points(32, 2, torch.float64)
    grads = []
    for fn in (splines.unconstrained_rational_quadratic_spline, nflows_spline):
        xs = x.clone().requires_grad_()
        params = [p.clone().requires_grad_() for p in _params(x.shape, 3, torch.float64)]
        kwargs = {"tail_bound": B} | ({"tails": "linear"} if fn is nflows_spline else {})
        y, logabsdet = fn(xs, *params, **kwargs)
        (y.sin().sum() + logabsdet.cos().sum()).backward()
        grads.append([xs.grad, *(p.grad for p in params)])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def test_spline_inverts_and_its_log_det_is_the_derivative() -> None:
    x = _points(16, 4, torch.float64).requires_grad_()
    params = _params(x.shape, 5, torch.float64)
    y, logabsdet = splines.unconstrained_rational_quadratic_spline(x, *params, tail_bound=B)
    x_back, inverse_logabsdet = splines.unconstrained_rational_quadratic_spline(
        y, *params, inverse=True, tail_bound=B
    )
    torch.testing.assert_close(x_back, x)
    torch.testing.assert_close(inverse_logabsdet, -logabsdet)
    (derivative,) = torch.autograd.grad(y.sum(), x)  # elementwise: the diagonal Jacobian
    torch.testing.assert_close(logabsdet, derivative.log())


def _coupling(cls: type) -> transforms.Transform:
    torch.manual_seed(0)
    net = lambda i, o: ResidualNet(i, o, hidden_features=8, num_blocks=1)  # noqa: E731
    return cls(torch.tensor([1, 0, 1, 0]), net, num_bins=K, tails="linear", tail_bound=B)


def _autoregressive(cls: type) -> transforms.Transform:
    torch.manual_seed(0)
    return cls(4, 8, num_bins=K, tails="linear", tail_bound=B, num_blocks=1)


PAIRS = {
    "coupling": (_coupling, splines.PiecewiseRationalQuadraticCouplingTransform,
                 transforms.PiecewiseRationalQuadraticCouplingTransform),
    "autoregressive": (
        _autoregressive,
        splines.MaskedPiecewiseRationalQuadraticAutoregressiveTransform,
        transforms.MaskedPiecewiseRationalQuadraticAutoregressiveTransform,
    ),
}


@pytest.mark.parametrize("kind", list(PAIRS))
def test_transforms_equal_nflows_and_load_its_state(kind: str) -> None:
    build, ours_cls, theirs_cls = PAIRS[kind]
    ours, theirs = build(ours_cls), build(theirs_cls)
    assert list(ours.state_dict()) == list(theirs.state_dict())  # checkpoints load as before
    with torch.no_grad():  # knots far from the identity, so that the spline matters
        for p in theirs.parameters():
            p.add_(0.5 * torch.randn_like(p))
    ours.load_state_dict(theirs.state_dict())
    ours.eval(), theirs.eval()
    x = 2 * B * torch.randn(64, 4)
    for method in ("forward", "inverse"):
        for a, b in zip(getattr(ours, method)(x), getattr(theirs, method)(x)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_only_linear_tails() -> None:
    with pytest.raises(ValueError, match="linear tails"):
        splines.MaskedPiecewiseRationalQuadraticAutoregressiveTransform(3, 8, tails=None)
