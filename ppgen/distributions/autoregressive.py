"""The autoregressive distribution: ``p(x) = prod_i p(x_i | x_<i)`` as one ``pyro.sample`` site.

A network computes the parameters of every conditional from ``x`` in one teacher-forced pass,
``net(x) -> params``; a :class:`~ppgen.distributions.heads.Head` turns them into
log-probabilities and samples. ``log_prob`` is that single pass; ``sample`` fills the
dimensions one at a time in the model's ordering, re-running the network on the partly filled
tensor (Larochelle & Murray, 2011; Germain et al., 2015). Every model of the family (FVSBN,
NADE, RNADE, MADE, and image networks such as PixelCNN, whose ``event_shape`` is
``(C, H, W)``) plugs in by supplying its own ``net``.

Orderings: ``order[t]`` is the (flat) dimension generated at step ``t`` (default: raster
order). Several orderings ``order: [M, D]`` make the uniform mixture of the ``M``
factorisations ``p(x) = (1/M) sum_m prod_t p_m(x_{o_m(t)} | x_{o_m(<t)})``; the network then
returns the parameters of all ``M`` at once (a leading dimension ``M``). Each factor is a
normalised distribution, so the mixture is one too: this is the order ensemble of MADE.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints

from ppgen.distributions.heads import Head

__all__ = ["AutoregressiveDistribution"]

Net = Callable[[torch.Tensor], torch.Tensor]


class AutoregressiveDistribution(TorchDistribution):
    """Exact autoregressive density with teacher-forced ``log_prob`` and sequential ``sample``.

    Args:
        net: ``x: [n, *event_shape]`` -> parameters ``[n, *event_shape, P]`` (``P =
            head.num_params``), or ``[M, n, *event_shape, P]`` with ``M`` orderings. The
            parameters of dimension ``order[t]`` may depend only on dimensions
            ``order[:t]`` (the autoregressive property).
        head: the conditional family of every dimension (:mod:`ppgen.distributions.heads`).
        event_shape: shape of one datum, e.g. ``(64,)`` or ``(C, H, W)``.
        order: ``long`` ``[D]`` generation order over the flattened event (default raster,
            ``0..D-1``), or ``[M, D]`` for the uniform mixture of ``M`` orderings.
        batch_shape: batch shape (the data plate gives ``[N]``); the network is evaluated on
            the values only, and results are broadcast to it.
        validate_args: torch's argument validation flag.

    Shapes: ``sample(s)`` returns ``[*s, *batch_shape, *event_shape]`` (``long`` for
    discrete heads); ``log_prob`` maps ``[..., *event_shape]`` to ``[...]`` broadcast with
    ``batch_shape``; :meth:`log_prob_per_dim` keeps the event dimensions.

    Device and dtype of samples follow ``order`` when it is given, otherwise the network's
    parameters (or buffers); float values take the network's parameter dtype.

    Example:
        >>> from ppgen.distributions.heads import BernoulliHead
        >>> net = lambda x: torch.zeros(x.shape + (1,))  # every pixel a fair coin
        >>> d = AutoregressiveDistribution(net, BernoulliHead(), (3,))
        >>> d.sample((5,)).shape, d.log_prob(torch.ones(3)).exp()
        (torch.Size([5, 3]), tensor(0.1250))
    """

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(
        self,
        net: Net,
        head: Head,
        event_shape: Sequence[int] | torch.Size,
        order: torch.Tensor | None = None,
        batch_shape: Sequence[int] | torch.Size = (),
        validate_args: bool | None = None,
    ) -> None:
        event_shape = torch.Size(event_shape)
        if len(event_shape) == 0:
            raise ValueError("an autoregressive distribution needs event_shape with >= 1 dim")
        self.net = net
        self.head = head
        self.order = _check_order(order, event_shape.numel())
        super().__init__(torch.Size(batch_shape), event_shape, validate_args)

    # ----------------------------------------------------------------- properties
    @property
    def support(self) -> constraints.Constraint:
        return constraints.independent(self.head.support, len(self.event_shape))

    @property
    def num_dims(self) -> int:
        """``D``: scalar dimensions of one datum."""
        return self.event_shape.numel()

    @property
    def num_orderings(self) -> int:
        """``M``: the orderings mixed (1 for a single factorisation)."""
        return 1 if self.order is None or self.order.dim() == 1 else self.order.shape[0]

    def expand(self, batch_shape, _instance=None) -> AutoregressiveDistribution:
        new = self._get_checked_instance(AutoregressiveDistribution, _instance)
        new.net, new.head, new.order = self.net, self.head, self.order
        super(AutoregressiveDistribution, new).__init__(
            torch.Size(batch_shape), self.event_shape, validate_args=False
        )
        new._validate_args = self._validate_args
        return new

    # ----------------------------------------------------------------- densities
    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``log p(value)``: ``[..., *event_shape]`` -> ``[...]`` (broadcast with the batch)."""
        if self._validate_args:
            self._validate_sample(value)
        per_dim, shape = self._component_log_probs(value)
        totals = per_dim.flatten(-len(self.event_shape)).sum(-1)  # [M, *lead]
        if self.num_orderings == 1:
            return totals[0].expand(shape)
        return (torch.logsumexp(totals, dim=0) - math.log(self.num_orderings)).expand(shape)

    def log_prob_per_dim(self, value: torch.Tensor) -> torch.Tensor:
        """Per-dimension contributions ``[..., *event_shape]`` that sum to :meth:`log_prob`.

        With one ordering these are the conditionals ``log p(x_i | x_<i)``. With ``M``
        orderings they are each ordering's conditionals weighted by its responsibility
        ``r_m = p_m(x) / sum_m' p_m'(x)``, plus the mixing term ``(H(r) - log M) / D`` spread
        evenly over the ``D`` dimensions (``H`` the entropy of ``r``), so the sum is exact:
        ``sum_m r_m log p_m(x) + H(r) - log M = log p(x)``.
        """
        if self._validate_args:
            self._validate_sample(value)
        per_dim, shape = self._component_log_probs(value)  # [M, *lead, *event]
        if self.num_orderings > 1:
            per_dim = self._mixture_per_dim(per_dim).unsqueeze(0)
        return per_dim[0].expand(shape + self.event_shape)

    def _mixture_per_dim(self, per_dim: torch.Tensor) -> torch.Tensor:
        """Responsibility-weighted conditionals plus the spread mixing term (see above)."""
        k = len(self.event_shape)
        log_r = torch.log_softmax(per_dim.flatten(-k).sum(-1), dim=0)  # [M, *lead]
        r = log_r.exp()
        entropy = -torch.special.xlogy(r, r).sum(0)
        mixing = (entropy - math.log(self.num_orderings)) / self.num_dims
        return (_right_pad(r, k) * per_dim).sum(0) + _right_pad(mixing, k)

    def _component_log_probs(self, value: torch.Tensor) -> tuple[torch.Tensor, torch.Size]:
        """``log p_m(x_i | x_<i)`` for every ordering, ``[M, *lead, *event_shape]``, and the
        shape ``[...]`` that results broadcast to.

        ``lead`` is the value's leading shape (left-padded with ones to the rank of the
        broadcast with ``batch_shape``): the network runs once, on the value's own rows,
        and callers expand after reducing.
        """
        k = len(self.event_shape)
        lead = value.shape[: value.dim() - k]
        shape = torch.broadcast_shapes(lead, self.batch_shape)
        x = value.reshape((-1,) + self.event_shape)
        params = self._params(x)  # [M, n, *event, P]
        log_p = self.head.log_prob(params, x)
        lead = (1,) * (len(shape) - len(lead)) + tuple(lead)
        return log_p.reshape((log_p.shape[0],) + lead + self.event_shape), shape

    def _params(self, x: torch.Tensor) -> torch.Tensor:
        """The network's parameters with the orderings dimension: ``[M, n, *event, P]``."""
        params = self.net(x)
        M = self.num_orderings
        expected = tuple(x.shape) + (self.head.num_params,)
        if M == 1 and tuple(params.shape) == expected:
            return params.unsqueeze(0)
        if tuple(params.shape) != (M,) + expected:
            want = list(expected if M == 1 else (M,) + expected)
            layout = "[n, *event_shape, P]" if M == 1 else "[M, n, *event_shape, P]"
            raise ValueError(
                f"the network returned parameters of shape {tuple(params.shape)}; expected "
                f"{layout} = {want} (P = {self.head.num_params} for {self.head!r})"
            )
        return params

    # ----------------------------------------------------------------- sampling
    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        """Ancestral sampling in the model's ordering: ``[*sample_shape, *batch, *event]``.

        Runs the network ``D`` times on the partly filled values (no gradient). With ``M``
        orderings each draw first picks its ordering uniformly at random.
        """
        shape = torch.Size(sample_shape) + self.batch_shape
        n = shape.numel()
        with torch.no_grad():
            x = self._empty(n)
            flat = x.view(n, self.num_dims)
            orders = self._orders(x.device)  # [M, D]
            m = torch.randint(self.num_orderings, (n,), device=x.device)
            rows = torch.arange(n, device=x.device)
            for t in range(self.num_dims):
                position = orders[m, t]  # [n]: the dimension each row fills now
                params = self._params(x).reshape(self.num_orderings, n, self.num_dims, -1)
                flat[rows, position] = self.head.sample(params[m, rows, position])
        return x.reshape(shape + self.event_shape)

    def _empty(self, n: int) -> torch.Tensor:
        device, dtype = _placement(self.net, self.order)
        value_dtype = self.head.value_dtype(dtype)
        return torch.zeros((n,) + self.event_shape, dtype=value_dtype, device=device)

    def _orders(self, device: torch.device) -> torch.Tensor:
        if self.order is None:
            return torch.arange(self.num_dims, device=device).unsqueeze(0)
        return self.order.reshape(self.num_orderings, self.num_dims).to(device)


# ---------------------------------------------------------------------------- helpers


def _check_order(order: torch.Tensor | None, num_dims: int) -> torch.Tensor | None:
    """Accept ``None``, ``[D]`` or ``[M, D]`` long orderings (not checked to be permutations
    here: that would synchronise with the device; models build them as permutations)."""
    if order is None:
        return None
    if order.dim() not in (1, 2) or order.shape[-1] != num_dims or order.is_floating_point():
        raise ValueError(
            f"order must be a long tensor [D] or [M, D] with D = {num_dims}, got "
            f"{order.dtype} {tuple(order.shape)}"
        )
    return order


def _right_pad(t: torch.Tensor, k: int) -> torch.Tensor:
    return t.reshape(t.shape + (1,) * k)


def _placement(net: Net, order: torch.Tensor | None) -> tuple[torch.device, torch.dtype]:
    """Device and float dtype of samples: the ordering's device, the network's parameters."""
    module = net if isinstance(net, torch.nn.Module) else getattr(net, "__self__", None)
    tensors = []
    if isinstance(module, torch.nn.Module):
        tensors = [t for t in [*module.parameters(), *module.buffers()] if t.is_floating_point()]
    dtype = tensors[0].dtype if tensors else torch.get_default_dtype()
    if order is not None:
        return order.device, dtype
    return (tensors[0].device if tensors else torch.device("cpu")), dtype
