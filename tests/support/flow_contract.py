"""The contract every flow wrapped in :class:`~ppgen.distributions.FlowDistribution` must meet.

A reusable battery: each check takes a :class:`FlowCase` (a name, a builder of the nflows
``Flow``, the context shape of a conditional flow) and raises ``AssertionError`` on failure.
Apply it to a new family with::

    from flow_contract import CHECKS, FlowCase
    CASES = [FlowCase("my-flow", lambda: build_my_flow(), context_shape=None)]

    @pytest.mark.parametrize("check", CHECKS.values(), ids=list(CHECKS))
    @pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
    def test_contract(case, check):
        check(case)

Checks: shapes (``sample_shape`` ``()``, ``(3,)``, ``(2, 3)``, ``(0,)``, with and without a
batch or context), ``expand``, ``pyro.plate``, gradients of every parameter (and the context)
from ``rsample`` and ``log_prob``, ``log_prob`` against the change of variables computed by
hand, invertibility, log-determinant against the autograd Jacobian, grid normalisation in 2-D
(probability mass within ``GRID_TOL`` of one), ``state_dict`` save/load, and the fused
sample-and-log-prob cache. All run in float64 where numbers are compared, with fixed seeds.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyro
import pytest
import torch
from nflows.distributions import ConditionalDiagonalNormal, StandardNormal
from nflows.flows import Flow
from pyro import poutine

from ppgen.distributions import FlowDistribution

__all__ = [
    "FlowCase", "CHECKS", "count_module_calls", "default_dtype", "base_log_prob", "GRID_TOL",
]

#: |mass - 1| allowed by the 2-D grid normalisation: the grid spans the range of 20,000 draws
#: widened by 25% (expected mass outside it < 4e-4) at 200 x 200 midpoints.
GRID_TOL = 5e-3
SAMPLE_SHAPES = [(), (3,), (2, 3)]


@dataclass(frozen=True)
class FlowCase:
    """A flow under test.

    Attributes:
        name: test id.
        build: makes the nflows ``Flow`` (called after seeding torch, so it is deterministic).
        context_shape: shape of one context row for a conditional flow, ``None`` otherwise.
    """

    name: str
    build: Callable[[], Flow]
    context_shape: tuple[int, ...] | None = None

    def flow(self, seed: int = 0, dtype: torch.dtype = torch.float32) -> Flow:
        torch.manual_seed(seed)
        return self.build().to(dtype)

    def flow64(self, seed: int = 0) -> Flow:
        """The flow in float64 (use inside :func:`default_dtype`: nflows' Gaussian bases draw
        noise in torch's default dtype)."""
        return self.flow(seed, torch.float64)

    def context(self, batch_shape=(), seed: int = 1, dtype=torch.float32, device=None):
        if self.context_shape is None:
            return None
        g = torch.Generator().manual_seed(seed)
        ctx = torch.randn(tuple(batch_shape) + self.context_shape, generator=g, dtype=dtype)
        return ctx.to(device) if device is not None else ctx

    def dist(self, flow: Flow, batch_shape=(), **kwargs) -> FlowDistribution:
        """A distribution with ``batch_shape``: a context of that batch, or ``expand``."""
        dtype = next(flow.parameters()).dtype
        ctx = self.context(batch_shape, dtype=dtype, **kwargs)
        if ctx is None:
            d = FlowDistribution(flow)
            return d.expand(batch_shape) if batch_shape else d
        return FlowDistribution(flow, ctx, context_event_dims=len(self.context_shape))


# ---------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Temporarily set torch's default dtype (nflows' bases sample in it)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def float64(check: Callable[[FlowCase], None]) -> Callable[[FlowCase], None]:
    """Run a check with float64 as the default dtype."""

    def wrapped(case: FlowCase) -> None:
        with default_dtype(torch.float64):
            check(case)

    wrapped.__name__, wrapped.__doc__ = check.__name__, check.__doc__
    return wrapped


@contextlib.contextmanager
def count_module_calls(flow: torch.nn.Module) -> Iterator[list[int]]:
    """Count calls of every submodule of ``flow`` (``[count]`` updated in place)."""
    count = [0]

    def hook(module, args):
        count[0] += 1

    handles = [m.register_forward_pre_hook(hook) for m in flow.modules() if m is not flow]
    try:
        yield count
    finally:
        for h in handles:
            h.remove()


def base_log_prob(flow: Flow, noise: torch.Tensor, context: torch.Tensor | None):
    """``log p_base(noise)`` computed by hand for nflows' Gaussian bases: ``[n]``."""
    base = flow._distribution
    if isinstance(base, StandardNormal):
        mean, log_std = torch.zeros_like(noise), torch.zeros_like(noise)
    elif isinstance(base, ConditionalDiagonalNormal):
        params = base._context_encoder(context)
        half = params.shape[-1] // 2
        mean, log_std = params[:, :half].reshape(noise.shape), params[:, half:].reshape(noise.shape)
    else:
        pytest.skip(f"no hand-written density for the base {type(base).__name__}")
    z = (noise - mean) * torch.exp(-log_std)
    per_dim = -0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi)
    return per_dim.flatten(1).sum(-1)


def _embedded(flow: Flow, ctx):
    return None if ctx is None else flow._embedding_net(ctx)


def _points(case: FlowCase, flow: Flow, n: int, seed: int = 2):
    """``n`` draws of the flow (its typical set) and their context rows (or ``None``)."""
    torch.manual_seed(seed)
    d = case.dist(flow, (n,))
    with torch.no_grad():
        return d.sample(), d.context


def _nonzero_grads(flow: torch.nn.Module) -> list[str]:
    return [
        name for name, p in flow.named_parameters()
        if p.requires_grad and (p.grad is None or not bool(p.grad.abs().sum() > 0))
    ]


# ---------------------------------------------------------------------------- checks


def check_shapes(case: FlowCase) -> None:
    """``[*sample_shape, *batch, *event]`` draws and ``[*sample_shape, *batch]`` densities."""
    flow = case.flow()
    event = None
    for batch in [(), (4,), (2, 4)]:
        d = case.dist(flow, batch)
        event = d.event_shape
        assert d.batch_shape == batch
        for s in SAMPLE_SHAPES + [(0,)]:
            z, lp = d.rsample_and_log_prob(s)
            assert z.shape == torch.Size(s) + batch + event
            assert lp.shape == torch.Size(s) + batch
            assert d.log_prob(z.clone()).shape == lp.shape
        assert d.sample((2, 3)).shape == d.rsample((2, 3)).shape == (2, 3) + batch + event
        # A value with fewer leading dims broadcasts against the batch.
        z1 = d.sample((3,))[(slice(None),) + (slice(0, 1),) * len(batch)]
        assert d.log_prob(z1).shape == (3,) + batch
    assert event is not None and d.support.event_dim == len(event)
    assert d.has_rsample


@float64
def check_expand(case: FlowCase) -> None:
    """``expand`` broadcasts the context; densities agree with the unexpanded distribution."""
    flow = case.flow64()
    d = case.dist(flow, (4,))
    e = d.expand([2, 4])
    assert e.batch_shape == (2, 4) and e.event_shape == d.event_shape
    if d.context is not None:
        assert e.context.shape == (2, 4) + case.context_shape
    assert e.sample((3,)).shape == (3, 2, 4) + d.event_shape
    x = d.sample((2,))  # [2, 4, *event]
    torch.testing.assert_close(e.log_prob(x), d.log_prob(x))
    flat = x.reshape((-1,) + d.event_shape)
    ctx = None if d.context is None else d.context.repeat(2, *[1] * len(case.context_shape))
    torch.testing.assert_close(e.log_prob(x).reshape(-1), flow.log_prob(flat, context=ctx))
    if d.context is not None:
        with pytest.raises(ValueError, match="expand"):
            d.expand([3])


def check_plate(case: FlowCase) -> None:
    """Inside nested ``pyro.plate`` s the site takes the plates' batch shape."""
    flow = case.flow()
    ctx = case.context((4,))

    def program():
        d = FlowDistribution(flow) if ctx is None else FlowDistribution(
            flow, ctx, context_event_dims=len(case.context_shape))
        with pyro.plate("outer", 2, dim=-2), pyro.plate("inner", 4, dim=-1):
            return pyro.sample("z", d)

    site = poutine.trace(program).get_trace().nodes["z"]
    event = site["fn"].event_shape
    assert site["fn"].batch_shape == (2, 4)
    assert site["value"].shape == (2, 4) + event
    assert site["fn"].log_prob(site["value"]).shape == (2, 4)


def check_gradients(case: FlowCase) -> None:
    """Every parameter (and the context) gets a nonzero gradient from both directions."""
    flow = case.flow()
    ctx = case.context((64,))
    ctx = None if ctx is None else ctx.requires_grad_()
    d = FlowDistribution(flow) if ctx is None else FlowDistribution(
        flow, ctx, context_event_dims=len(case.context_shape))
    torch.manual_seed(3)
    z = d.rsample((4,)) if ctx is not None else d.rsample((256,))
    z.sum().backward()
    assert not _nonzero_grads(flow), f"no gradient from rsample: {_nonzero_grads(flow)}"
    assert ctx is None or bool(ctx.grad.abs().sum() > 0)
    flow.zero_grad(set_to_none=True)
    if ctx is not None:
        ctx.grad = None
    d.log_prob(z.detach()).sum().backward()
    assert not _nonzero_grads(flow), f"no gradient from log_prob: {_nonzero_grads(flow)}"
    assert ctx is None or bool(ctx.grad.abs().sum() > 0)


@float64
def check_change_of_variables(case: FlowCase) -> None:
    """``log p(x) = log p_base(f(x)) + log |det df/dx|`` from the transform, by hand."""
    flow = case.flow64()
    x, ctx = _points(case, flow, 64)
    with torch.no_grad():
        noise, logabsdet = flow._transform(x, context=_embedded(flow, ctx))
        expected = base_log_prob(flow, noise, _embedded(flow, ctx)) + logabsdet
        got = case.dist(flow, (64,)).log_prob(x)
    torch.testing.assert_close(got, expected)


@float64
def check_invertibility(case: FlowCase) -> None:
    """``f^{-1}(f(x)) = x`` and the two log-determinants cancel."""
    flow = case.flow64()
    x, ctx = _points(case, flow, 64)
    emb = _embedded(flow, ctx)
    with torch.no_grad():
        noise, ld_fwd = flow._transform(x, context=emb)
        back, ld_inv = flow._transform.inverse(noise, context=emb)
    torch.testing.assert_close(back, x, atol=1e-7, rtol=1e-6)
    torch.testing.assert_close(ld_fwd + ld_inv, torch.zeros_like(ld_fwd), atol=1e-7, rtol=0)


@float64
def check_logdet_jacobian(case: FlowCase) -> None:
    """The transform's log |det| equals ``slogdet`` of the autograd Jacobian."""
    flow = case.flow64()
    x, ctx = _points(case, flow, 8)
    emb = _embedded(flow, ctx)
    with torch.no_grad():
        _, logabsdet = flow._transform(x, context=emb)
    event = x.shape[1:]
    for i in range(x.shape[0]):
        c = None if emb is None else emb[i : i + 1]

        def f(v, c=c):
            return flow._transform(v.reshape((1,) + event), context=c)[0].reshape(-1)

        J = torch.autograd.functional.jacobian(f, x[i].reshape(-1))
        torch.testing.assert_close(torch.linalg.slogdet(J)[1], logabsdet[i])


@float64
def check_grid_normalisation(case: FlowCase) -> None:
    """In 2-D, ``exp(log_prob)`` integrates to one on a grid covering the draws."""
    flow = case.flow64()
    d = case.dist(flow, (1,))
    if d.event_shape != (2,):
        pytest.skip("grid normalisation is checked for 2-D flows")
    torch.manual_seed(4)
    with torch.no_grad():
        draws = d.sample((20_000,)).reshape(-1, 2)
        lo, hi = draws.min(0).values, draws.max(0).values
        lo, hi = lo - 0.25 * (hi - lo), hi + 0.25 * (hi - lo)
        n = 200
        axes = [lo[j] + (torch.arange(n, dtype=torch.float64) + 0.5) * (hi[j] - lo[j]) / n
                for j in range(2)]
        grid = torch.cartesian_prod(*axes).unsqueeze(1)  # [n*n, 1, 2] against batch [1]
        log_p = d.log_prob(grid).squeeze(1)
        mass = log_p.exp().sum() * ((hi - lo) / n).prod()
    assert abs(float(mass) - 1.0) < GRID_TOL, f"grid mass {float(mass):.5f}"
    # Not vacuous: the flow is not the standard normal it starts from.
    std = -0.5 * (grid.squeeze(1) ** 2).sum(-1) - math.log(2 * math.pi)
    assert float((log_p - std).abs().max()) > 0.05


def check_save_load(case: FlowCase) -> None:
    """A ``state_dict`` round trip (``weights_only``) gives the same densities."""
    flow = case.flow(seed=0)
    x, _ = _points(case, flow, 16)
    buffer = io.BytesIO()
    torch.save(flow.state_dict(), buffer)
    buffer.seek(0)
    other = case.flow(seed=5)
    other.load_state_dict(torch.load(buffer, weights_only=True))
    with torch.no_grad():
        lp = case.dist(flow, (16,)).log_prob(x)
        lp_other = case.dist(other, (16,)).log_prob(x)
    torch.testing.assert_close(lp_other, lp, rtol=0, atol=0)


def check_cache(case: FlowCase) -> None:
    """``log_prob`` of the tensor just drawn is the fused pass's value and runs no module;
    a copy is recomputed and agrees; a draw without gradient is not reused with gradient."""
    flow = case.flow()
    d = case.dist(flow, (5,))
    with count_module_calls(flow) as calls:
        z, lp = d.rsample_and_log_prob((3,))
        assert calls[0] > 0
        calls[0] = 0
        assert d.log_prob(z) is lp and calls[0] == 0
        again = d.log_prob(z.clone())
        assert calls[0] > 0
    torch.testing.assert_close(again, lp, atol=1e-4, rtol=1e-4)
    z2 = d.rsample()
    assert d.log_prob(z2).shape == d.batch_shape and d.log_prob(z) is not lp  # one entry
    with torch.no_grad():
        z3 = d.rsample()
    assert d.log_prob(z3).requires_grad  # recomputed with gradient
    z4 = d.sample()
    with count_module_calls(flow) as calls:
        d.log_prob(z4)
        assert calls[0] > 0  # sample() caches nothing


def check_bad_input(case: FlowCase) -> None:
    """A value or context of the wrong shape is a ``ValueError`` naming expected and got."""
    flow = case.flow()
    d = case.dist(flow, (4,))
    event = tuple(d.event_shape)
    wrong = event[:-1] + (event[-1] + 1,)
    with pytest.raises(ValueError, match=r"expected .* got"):
        d.log_prob(torch.zeros((4,) + wrong))
    with pytest.raises(ValueError, match="broadcast"):
        d.log_prob(torch.zeros((3,) + event))
    if case.context_shape is not None:
        bad = case.context_shape[:-1] + (case.context_shape[-1] + 1,)
        d_bad = FlowDistribution(flow, torch.zeros((4,) + bad),
                                 context_event_dims=len(case.context_shape))
        with pytest.raises(ValueError, match="context"):
            d_bad.log_prob(torch.zeros((4,) + event))
        with pytest.raises(ValueError, match="context"):
            FlowDistribution(flow, torch.zeros(()))


CHECKS: dict[str, Callable[[FlowCase], None]] = {
    "shapes": check_shapes,
    "expand": check_expand,
    "plate": check_plate,
    "gradients": check_gradients,
    "change_of_variables": check_change_of_variables,
    "invertibility": check_invertibility,
    "logdet_jacobian": check_logdet_jacobian,
    "grid_normalisation": check_grid_normalisation,
    "save_load": check_save_load,
    "cache": check_cache,
    "bad_input": check_bad_input,
}
