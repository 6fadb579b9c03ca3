"""A first-order Markov chain over ``n`` discrete variables with position-specific transitions.

``P(x) = p(x_1) prod_{i=2..n} p_i(x_i | x_{i-1})``, with an initial distribution and a separate
``K x K`` transition table for every position (an inhomogeneous chain; Bishop, 2006, "Pattern
Recognition and Machine Learning", §13.1; Murphy, 2012, "Machine Learning: A Probabilistic
Perspective", §17.2). ``log_prob`` is one vectorised gather; ``sample`` runs along the chain.
"""

from __future__ import annotations

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints
from torch.distributions.utils import lazy_property

from ppgen.distributions.tabular import sample_cells, unexpand

__all__ = ["MarkovChainDistribution"]


class MarkovChainDistribution(TorchDistribution):
    """Inhomogeneous first-order Markov chain over levels ``{0..K-1}^n``.

    Args:
        init_logits: unnormalised ``log p(x_1)``: ``[*batch_shape, K]``.
        trans_logits: unnormalised ``log p_i(x_i = b | x_{i-1} = a)`` at ``[..., i - 2, a, b]``
            for positions ``i = 2..n``: ``[*batch_shape, n - 1, K, K]`` (rows are normalised
            over the last dimension).
        validate_args: torch's argument validation flag.

    Shapes: ``batch_shape`` is the broadcast of ``init_logits.shape[:-1]`` and
    ``trans_logits.shape[:-3]``; ``event_shape = (n,)``. ``sample(s)`` returns ``long`` levels
    ``[*s, *batch_shape, n]``; ``log_prob`` maps ``[..., n]`` to ``[...]``.

    Example:
        >>> d = MarkovChainDistribution(torch.zeros(3), torch.zeros(4, 3, 3))
        >>> d.event_shape, d.sample((2,)).shape
        (torch.Size([5]), torch.Size([2, 5]))
        >>> round(float(d.log_prob(torch.zeros(5, dtype=torch.long)).exp() * 3**5), 4)
        1.0
    """

    arg_constraints = {
        "init_logits": constraints.real_vector,
        "trans_logits": constraints.independent(constraints.real, 3),
    }

    def __init__(
        self,
        init_logits: torch.Tensor,
        trans_logits: torch.Tensor,
        validate_args: bool | None = None,
    ) -> None:
        _check_shapes(init_logits, trans_logits)
        batch_shape = torch.broadcast_shapes(init_logits.shape[:-1], trans_logits.shape[:-3])
        self.init_logits = init_logits.expand(batch_shape + init_logits.shape[-1:])
        self.trans_logits = trans_logits.expand(batch_shape + trans_logits.shape[-3:])
        self.num_levels = init_logits.shape[-1]
        event_shape = torch.Size([trans_logits.shape[-3] + 1])
        super().__init__(batch_shape, event_shape, validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=1)
    def support(self) -> constraints.Constraint:
        return constraints.independent(constraints.integer_interval(0, self.num_levels - 1), 1)

    @lazy_property
    def log_init(self) -> torch.Tensor:
        """Normalised ``log p(x_1)``: ``[*b, K]`` (``b`` broadcasts to ``batch_shape``)."""
        return torch.log_softmax(unexpand(self.init_logits, len(self.batch_shape)), -1)

    @lazy_property
    def log_trans(self) -> torch.Tensor:
        """Normalised ``log p_i(x_i | x_{i-1})``: ``[*b, n - 1, K, K]``."""
        return torch.log_softmax(unexpand(self.trans_logits, len(self.batch_shape)), -1)

    def expand(self, batch_shape, _instance=None) -> MarkovChainDistribution:
        new = self._get_checked_instance(MarkovChainDistribution, _instance)
        batch_shape = torch.Size(batch_shape)
        new.init_logits = self.init_logits.expand(batch_shape + self.init_logits.shape[-1:])
        new.trans_logits = self.trans_logits.expand(batch_shape + self.trans_logits.shape[-3:])
        new.num_levels = self.num_levels
        super(MarkovChainDistribution, new).__init__(
            batch_shape, self.event_shape, validate_args=False
        )
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``log P(value)``: levels ``[*sample, *batch, n]`` -> ``[*sample, *batch]``."""
        if self._validate_args:
            self._validate_sample(value)
        x = value.long()
        shape = torch.broadcast_shapes(x.shape[:-1], self.batch_shape)
        x = x.expand(shape + self.event_shape)
        return self._log_p_first(x) + self._log_p_transitions(x).sum(-1)

    def _log_p_first(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x_1)``: ``x: [*shape, n]`` -> ``[*shape]``."""
        table = self.log_init.expand(x.shape[:-1] + self.log_init.shape[-1:])
        return table.gather(-1, x[..., :1]).squeeze(-1)

    def _log_p_transitions(self, x: torch.Tensor) -> torch.Tensor:
        """``log p_i(x_i | x_{i-1})`` for ``i = 2..n``: ``x: [*shape, n]`` -> ``[*shape, n-1]``."""
        K = self.num_levels
        pairs = x[..., :-1] * K + x[..., 1:]  # flat index of (x_{i-1}, x_i) in the K x K table
        table = self.log_trans.flatten(-2)  # [*b, n - 1, K * K]
        table = table.expand(pairs.shape + table.shape[-1:])
        return table.gather(-1, pairs.unsqueeze(-1)).squeeze(-1)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        """Ancestral sampling along the chain: ``long`` ``[*sample_shape, *batch_shape, n]``."""
        sample_shape = torch.Size(sample_shape)
        with torch.no_grad():
            x = sample_cells(self.log_init, self.batch_shape, sample_shape)
            chain = [x]
            for i in range(self.event_shape[0] - 1):
                chain.append(self._next_level(chain[-1], i))
        return torch.stack(chain, dim=-1)

    def _next_level(self, previous: torch.Tensor, i: int) -> torch.Tensor:
        """Draw ``x_{i+2} | x_{i+1} = previous``: ``previous: [*S, *batch]`` -> ``[*S, *batch]``."""
        K = self.num_levels
        table = self.log_trans[..., i, :, :]  # [*b, K, K]
        table = table.expand(previous.shape + (K, K))
        index = previous[..., None, None].expand(previous.shape + (1, K))
        rows = table.gather(-2, index).squeeze(-2)  # [*S, *batch, K]
        return torch.distributions.Categorical(logits=rows, validate_args=False).sample()


def _check_shapes(init_logits: torch.Tensor, trans_logits: torch.Tensor) -> None:
    """Refuse logits whose level counts disagree, with the expected shapes in the message."""
    K = init_logits.shape[-1] if init_logits.dim() else 0
    if init_logits.dim() < 1 or trans_logits.dim() < 3 or K < 1:
        raise ValueError(
            "expected init_logits [*batch_shape, K] and trans_logits [*batch_shape, n - 1, K, K]"
        )
    if tuple(trans_logits.shape[-2:]) != (K, K):
        raise ValueError(
            f"trans_logits has tables of shape {tuple(trans_logits.shape[-2:])} but init_logits "
            f"has {K} levels: expected [*batch_shape, n - 1, {K}, {K}]"
        )
