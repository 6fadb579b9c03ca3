"""The nflows adapter: any nflows ``Flow`` (conditional or not) as one ``pyro.sample`` site.

nflows flows are ``nn.Module`` s whose ``log_prob(inputs, context)`` takes exactly one batch
dimension and whose ``sample(num_samples, context)`` returns ``[context_rows, num_samples,
...]``. :class:`FlowDistribution` wraps one in torch's shape semantics (Papamakarios et al.,
2021, "Normalizing Flows for Probabilistic Modeling and Inference", arXiv:1912.02762):

* ``event_shape`` is the flow's data shape; ``batch_shape`` is ``()`` for an unconditional
  flow and the context's leading dimensions for a conditional one (``context: [*batch,
  *context_event]``), so the context lines up with the plates;
* ``log_prob`` flattens every leading dimension into nflows' single batch dimension (the
  context broadcast and repeated to match) and restores them;
* ``rsample`` is reparameterised (gradients reach the flow's parameters and the context) and
  is the flow's fused ``sample_and_log_prob`` pass; the log-density of the draw is cached, so
  ``log_prob`` of **that very tensor** costs nothing. Pyro's trace scores a guide by calling
  ``log_prob(value)`` on the value the site drew, which is what makes a sampling-fast flow
  (IAF, Kingma et al., 2016, arXiv:1606.04934) cheap as a guide: without the cache the
  density would need the flow's slow direction.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints

__all__ = ["FlowDistribution"]


class FlowDistribution(TorchDistribution):
    """A shape-correct ``TorchDistribution`` around an nflows ``Flow``.

    Args:
        flow: an ``nflows.flows.base.Flow`` (any nflows ``Distribution`` with ``log_prob``
            and ``sample_and_log_prob``).
        context: conditioning variables ``[*batch_shape, *context_event]`` for a conditional
            flow; ``None`` for an unconditional one.
        event_shape: shape of one value; inferred from the flow's base distribution
            (``flow._distribution._shape``, as nflows' ``StandardNormal`` and
            ``ConditionalDiagonalNormal`` store it) when not given.
        context_event_dims: how many trailing dimensions of ``context`` are its features.
        support: the support (default: unconstrained reals over the event dimensions).
        validate_args: torch's argument validation flag.

    Shapes:
        ``batch_shape`` is ``context.shape[:-context_event_dims]`` (``()`` without context);
        ``rsample(s)`` / ``sample(s)`` return ``[*s, *batch_shape, *event_shape]``;
        ``log_prob`` maps ``[*lead, *event_shape]`` to ``broadcast(lead, batch_shape)``.

    The cache: after :meth:`rsample` or :meth:`rsample_and_log_prob`, ``log_prob`` of the
    returned tensor (identity, not equality, like torch's transform cache) returns the log
    density computed with the draw; a copy of it is scored afresh. The cache holds one draw
    and is ignored when the draw was made under ``torch.no_grad()`` and gradients are now
    wanted. Draw again after changing the flow's parameters.

    Example:
        >>> from nflows.distributions import StandardNormal
        >>> from nflows.flows import Flow
        >>> from nflows.transforms import MaskedAffineAutoregressiveTransform
        >>> flow = Flow(MaskedAffineAutoregressiveTransform(2, 8), StandardNormal([2]))
        >>> d = FlowDistribution(flow).expand([5])
        >>> z, log_q = d.rsample_and_log_prob((3,))
        >>> z.shape, log_q.shape, d.log_prob(z) is log_q
        (torch.Size([3, 5, 2]), torch.Size([3, 5]), True)
    """

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(
        self,
        flow: torch.nn.Module,
        context: torch.Tensor | None = None,
        *,
        event_shape: Sequence[int] | None = None,
        context_event_dims: int = 1,
        support: constraints.Constraint | None = None,
        validate_args: bool | None = None,
    ) -> None:
        event_shape = _event_shape(flow, event_shape)
        batch_shape = _batch_shape(context, context_event_dims)
        self.flow = flow
        self.context = context
        self.context_event_dims = context_event_dims
        self._support = support
        self._cache: tuple[torch.Tensor, torch.Tensor, bool] | None = None
        super().__init__(batch_shape, event_shape, validate_args)

    # ----------------------------------------------------------------- properties
    @property
    def support(self) -> constraints.Constraint:
        if self._support is not None:
            return self._support
        if not self.event_shape:
            return constraints.real
        return constraints.independent(constraints.real, len(self.event_shape))

    @property
    def context_event_shape(self) -> torch.Size:
        """Shape of one context row (``()`` without context)."""
        if self.context is None:
            return torch.Size()
        return self.context.shape[self.context.dim() - self.context_event_dims :]

    def expand(self, batch_shape, _instance=None) -> FlowDistribution:
        """The same flow over a larger batch; a context is broadcast to ``[*batch_shape,
        *context_event]`` (a view, no copy)."""
        new = self._get_checked_instance(FlowDistribution, _instance)
        batch_shape = torch.Size(batch_shape)
        new.flow, new.context_event_dims, new._support = (
            self.flow, self.context_event_dims, self._support)
        new.context = None if self.context is None else self._expanded_context(batch_shape)
        new._cache = None
        super(FlowDistribution, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _expanded_context(self, batch_shape: torch.Size) -> torch.Tensor:
        try:
            return self.context.expand(batch_shape + self.context_event_shape)
        except RuntimeError as err:
            raise ValueError(
                f"cannot expand a FlowDistribution with batch_shape {tuple(self.batch_shape)} "
                f"(context {tuple(self.context.shape)}) to batch_shape {tuple(batch_shape)}: "
                "the new shape must broadcast the old one"
            ) from err

    # ----------------------------------------------------------------- densities
    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``log p(value)``: ``[*lead, *event_shape]`` -> ``broadcast(lead, batch_shape)``."""
        cached = self._cached_log_prob(value)
        if cached is not None:
            return cached
        shape = self._check_value(value)
        if self._validate_args and value.numel():  # torch's check fails on empty values
            self._validate_sample(value)
        k = len(self.event_shape)
        if shape.numel() == 0 or value.numel() == 0:  # nflows' splines fail on empty batches
            return value.new_zeros(shape)
        if self.context is None:
            lead = value.shape[: value.dim() - k]
            flat = value.reshape((-1,) + self.event_shape)
            return self._run(self.flow.log_prob, flat).reshape(lead).expand(shape)
        flat = value.expand(shape + self.event_shape).reshape((-1,) + self.event_shape)
        ctx = self.context.expand(shape + self.context_event_shape)
        ctx = ctx.reshape((-1,) + self.context_event_shape)
        return self._run(self.flow.log_prob, flat, context=ctx).reshape(shape)

    def _cached_log_prob(self, value: torch.Tensor) -> torch.Tensor | None:
        if self._cache is None or value is not self._cache[0]:
            return None
        _, log_prob, with_grad = self._cache
        if torch.is_grad_enabled() and not with_grad:
            return None
        return log_prob

    def _check_value(self, value: torch.Tensor) -> torch.Size:
        """The result's shape; a clear error for a wrong event or batch shape."""
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"FlowDistribution.log_prob expects a tensor, got {type(value)}")
        k = len(self.event_shape)
        if value.dim() < k or value.shape[value.dim() - k :] != self.event_shape:
            raise ValueError(
                f"value of shape {tuple(value.shape)} does not end in the flow's event shape: "
                f"expected [..., {', '.join(map(str, self.event_shape))}] (event_shape "
                f"{tuple(self.event_shape)}), got {tuple(value.shape)}"
            )
        lead = value.shape[: value.dim() - k]
        try:
            return _broadcast(lead, self.batch_shape)
        except ValueError as err:
            raise ValueError(
                f"value of shape {tuple(value.shape)} has leading shape {tuple(lead)}, which "
                f"does not broadcast with the batch_shape {tuple(self.batch_shape)}"
            ) from err

    # ----------------------------------------------------------------- sampling
    def rsample_and_log_prob(
        self, sample_shape: torch.Size | Sequence[int] = torch.Size()
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One fused pass: ``(value [*s, *batch, *event], log_prob [*s, *batch])``.

        Uses the flow's ``sample_and_log_prob`` (the sampling direction only) and caches the
        pair, so ``log_prob(value)`` afterwards returns ``log_prob`` without a flow call.
        """
        value, log_prob = self._draw(torch.Size(sample_shape))
        self._cache = (value, log_prob, torch.is_grad_enabled())
        return value, log_prob

    def rsample(self, sample_shape: torch.Size | Sequence[int] = torch.Size()) -> torch.Tensor:
        """Reparameterised draws ``[*sample_shape, *batch, *event]`` (log-density cached)."""
        return self.rsample_and_log_prob(sample_shape)[0]

    def sample(self, sample_shape: torch.Size | Sequence[int] = torch.Size()) -> torch.Tensor:
        """Draws without gradient ``[*sample_shape, *batch, *event]`` (nothing cached)."""
        with torch.no_grad():
            return self._draw(torch.Size(sample_shape))[0]

    def _draw(self, sample_shape: torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
        S, B = sample_shape.numel(), self.batch_shape.numel()
        shape = sample_shape + self.batch_shape
        if S * B == 0:  # nflows needs at least one draw and one context row
            like = self._like()
            return like.new_zeros(shape + self.event_shape), like.new_zeros(shape)
        if self.context is None:
            value, log_prob = self._run(self.flow.sample_and_log_prob, S * B)
        else:
            ctx = self.context.reshape((B,) + self.context_event_shape)
            value, log_prob = self._run(self.flow.sample_and_log_prob, S, context=ctx)
            # nflows gives [B, S, ...]: put the sample dimension first.
            value, log_prob = value.transpose(0, 1), log_prob.transpose(0, 1)
        return value.reshape(shape + self.event_shape), log_prob.reshape(shape)

    def _like(self) -> torch.Tensor:
        """A tensor with the device and dtype of draws: the context's, or the flow's."""
        if self.context is not None:
            return self.context
        tensors = [t for t in [*self.flow.parameters(), *self.flow.buffers()]
                   if t.is_floating_point()]
        return tensors[0] if tensors else torch.zeros(())

    def _run(self, method, *args, context: torch.Tensor | None = None):
        """Call the flow; a failure with a context is reported with the shapes involved."""
        if context is None:
            return method(*args)
        try:
            return method(*args, context=context)
        except RuntimeError as err:
            if isinstance(err, torch.OutOfMemoryError):
                raise
            raise ValueError(
                f"the flow failed on context rows of shape {tuple(self.context_event_shape)} "
                f"(context_event_dims={self.context_event_dims}, event_shape "
                f"{tuple(self.event_shape)}): check that the context's feature shape is the "
                f"flow's context shape ({err})"
            ) from err


# ---------------------------------------------------------------------------- helpers


def _broadcast(a: torch.Size, b: torch.Size) -> torch.Size:
    """``torch.broadcast_shapes(a, b)`` for two shapes, without its general machinery (this is
    on every ``log_prob`` call); ``ValueError`` if they do not broadcast."""
    if a == b:
        return a
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    if any(i != j and i != 1 and j != 1 for i, j in zip(a, b)):
        raise ValueError(f"shapes {a} and {b} do not broadcast")
    return torch.Size(i if j == 1 else j for i, j in zip(a, b))


def _event_shape(flow: torch.nn.Module, event_shape: Sequence[int] | None) -> torch.Size:
    if event_shape is not None:
        return torch.Size(event_shape)
    shape = getattr(getattr(flow, "_distribution", None), "_shape", None)
    if shape is None:
        raise ValueError(
            f"cannot infer the event shape of {type(flow).__name__}: its base distribution "
            "has no `_shape`; pass FlowDistribution(flow, event_shape=...)"
        )
    return torch.Size(shape)


def _batch_shape(context: torch.Tensor | None, context_event_dims: int) -> torch.Size:
    if context is None:
        return torch.Size()
    if not isinstance(context, torch.Tensor):
        raise TypeError(f"context must be a tensor [*batch, *context_event], got {type(context)}")
    if context_event_dims < 1 or context.dim() < context_event_dims:
        raise ValueError(
            f"context of shape {tuple(context.shape)} cannot have {context_event_dims} "
            "feature dimension(s): expected context [*batch, *context_event] with "
            "context_event_dims >= 1 trailing feature dimensions"
        )
    return context.shape[: context.dim() - context_event_dims]
