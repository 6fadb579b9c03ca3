"""A full joint table over every configuration of ``n`` discrete variables.

The distribution ``P(x) = softmax(logits)[index(x)]`` over ``x ∈ {0..K-1}^n``, where
``index(x) = sum_i x_i K^(n-1-i)`` is the mixed-radix (base-``K``) index of ``x`` with ``x_1``
the most significant digit. It is the saturated model of a contingency table (Bishop, 2006,
"Pattern Recognition and Machine Learning", §2.2 and §8.1): exact, but with ``K^n - 1`` free
parameters, so it only fits a handful of variables.
"""

from __future__ import annotations

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints
from torch.distributions.utils import lazy_property

__all__ = ["TabularJoint", "mixed_radix_index", "mixed_radix_decode", "unexpand", "sample_cells"]


def unexpand(t: torch.Tensor, num_batch_dims: int) -> torch.Tensor:
    """Undo ``expand`` on the leading ``num_batch_dims`` dimensions of ``t`` (a view).

    Dimensions that ``expand`` broadcast (stride 0) are narrowed to size 1, so that work on
    the parameters (``log_softmax``, sampling) costs what the unexpanded tensor costs, and the
    result broadcasts back to ``t.shape``. E.g. a table ``[C]`` expanded to ``[1, N, C]`` by a
    plate becomes ``[1, 1, C]``.
    """
    for d in range(num_batch_dims):
        if t.shape[d] > 1 and t.stride(d) == 0:
            t = t.narrow(d, 0, 1)
    return t


def sample_cells(
    logits: torch.Tensor, batch_shape: torch.Size, sample_shape: torch.Size
) -> torch.Tensor:
    """Categorical draws ``[*sample_shape, *batch_shape]`` from logits ``[*b, C]``.

    ``b`` broadcasts to ``batch_shape`` (each ``b_d`` is 1 or ``batch_shape[d]``); rows are
    never materialised for broadcast dimensions: the repeats are drawn as extra samples and
    interleaved back into place.
    """
    reps = torch.Size(b // c for b, c in zip(batch_shape, logits.shape[:-1]))
    categorical = torch.distributions.Categorical(logits=logits, validate_args=False)
    draws = categorical.sample(sample_shape + reps)  # [*S, *reps, *b]
    s, b = len(sample_shape), len(batch_shape)
    perm = list(range(s)) + [s + i + j * b for i in range(b) for j in (0, 1)]
    return draws.permute(perm).reshape(sample_shape + batch_shape)


def _place_values(num_dims: int, num_levels: int, device: torch.device) -> torch.Tensor:
    """``[K^(n-1), ..., K, 1]`` as ``long`` on ``device``."""
    powers = torch.arange(num_dims - 1, -1, -1, device=device)
    return torch.full((num_dims,), num_levels, dtype=torch.long, device=device) ** powers


def mixed_radix_index(x: torch.Tensor, num_levels: int) -> torch.Tensor:
    """Base-``K`` index of each configuration: ``x: [..., n]`` levels -> ``[...]`` ``long``.

    Example:
        >>> mixed_radix_index(torch.tensor([[1, 0, 1]]), 2)
        tensor([5])
    """
    place = _place_values(x.shape[-1], num_levels, x.device)
    return (x.long() * place).sum(-1)


def mixed_radix_decode(index: torch.Tensor, num_dims: int, num_levels: int) -> torch.Tensor:
    """Inverse of :func:`mixed_radix_index`: ``index: [...]`` -> levels ``[..., n]`` ``long``."""
    place = _place_values(num_dims, num_levels, index.device)
    return torch.div(index.unsqueeze(-1), place, rounding_mode="floor") % num_levels


class TabularJoint(TorchDistribution):
    """Categorical distribution over all ``K^n`` configurations of ``n`` variables.

    Args:
        logits: unnormalised log-probabilities ``[*batch_shape, K^n]``, indexed by
            :func:`mixed_radix_index` (``x_1`` is the most significant digit).
        num_levels: ``K``, the number of levels of each variable (2 for binary data).
        validate_args: torch's argument validation flag.

    Shapes: ``batch_shape = logits.shape[:-1]``, ``event_shape = (n,)``; ``sample(s)`` returns
    ``long`` levels ``[*s, *batch_shape, n]`` and ``log_prob`` maps ``[..., n]`` to ``[...]``.

    Example:
        >>> d = TabularJoint(torch.zeros(8), num_levels=2)
        >>> d.event_shape, d.sample((5,)).shape
        (torch.Size([3]), torch.Size([5, 3]))
        >>> d.log_prob(torch.tensor([1, 0, 1])).exp()
        tensor(0.1250)
    """

    arg_constraints = {"logits": constraints.real_vector}
    has_enumerate_support = False

    def __init__(
        self, logits: torch.Tensor, num_levels: int = 2, validate_args: bool | None = None
    ) -> None:
        if logits.dim() < 1:
            raise ValueError("logits must have at least one dimension: [*batch_shape, K^n]")
        self.logits = logits
        self.num_levels = int(num_levels)
        self.num_dims = _num_dims(logits.shape[-1], self.num_levels)
        super().__init__(logits.shape[:-1], torch.Size([self.num_dims]), validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=1)
    def support(self) -> constraints.Constraint:
        return constraints.independent(constraints.integer_interval(0, self.num_levels - 1), 1)

    @lazy_property
    def log_table(self) -> torch.Tensor:
        """Normalised log-probabilities ``[*b, K^n]``, ``b`` broadcastable to ``batch_shape``.

        Batch dimensions that :meth:`expand` broadcast stay of size 1 (see :func:`unexpand`).
        """
        logits = unexpand(self.logits, len(self.batch_shape))
        return torch.log_softmax(logits, dim=-1)

    @property
    def probs(self) -> torch.Tensor:
        """Probabilities of every configuration ``[*batch_shape, K^n]``."""
        return self.log_table.exp().expand(self.logits.shape)

    def expand(self, batch_shape, _instance=None) -> TabularJoint:
        new = self._get_checked_instance(TabularJoint, _instance)
        batch_shape = torch.Size(batch_shape)
        new.logits = self.logits.expand(batch_shape + self.logits.shape[-1:])
        new.num_levels = self.num_levels
        new.num_dims = self.num_dims
        super(TabularJoint, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``log P(value)``: ``[*sample, *batch, n]`` levels -> ``[*sample, *batch]``."""
        if self._validate_args:
            self._validate_sample(value)
        index = mixed_radix_index(value, self.num_levels)
        shape = torch.broadcast_shapes(index.shape, self.batch_shape)
        table = self.log_table.expand(shape + self.log_table.shape[-1:])
        return table.gather(-1, index.expand(shape).unsqueeze(-1)).squeeze(-1)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        """Draw a cell of the table and decode it: ``long`` ``[*sample_shape, *batch, n]``."""
        with torch.no_grad():
            cells = sample_cells(self.log_table, self.batch_shape, torch.Size(sample_shape))
        return mixed_radix_decode(cells, self.num_dims, self.num_levels)


def _num_dims(num_cells: int, num_levels: int) -> int:
    """``n`` with ``K^n == num_cells``; refuses a table whose size is not a power of ``K``."""
    if num_levels < 2:
        raise ValueError(f"num_levels must be at least 2, got {num_levels}")
    n, size = 0, 1
    while size < num_cells:
        n, size = n + 1, size * num_levels
    if size != num_cells or n == 0:
        raise ValueError(
            f"a table of {num_cells} cells is not {num_levels}^n for any n >= 1: pass logits "
            f"[*batch_shape, {num_levels}^n]"
        )
    return n
