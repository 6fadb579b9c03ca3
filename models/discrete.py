"""Discrete baselines with exact likelihoods and closed-form smoothed maximum likelihood.

Four classical density models of ``n`` discrete variables, from the fewest to the most
dependencies they capture:

- :class:`IndependentBernoulli`: ``p(x) = prod_i Bernoulli(x_i | theta_i)``, binary data;
- :class:`IndependentCategorical`: ``p(x) = prod_i Cat(x_i | theta_i)``, levels ``0..K-1``;
- :class:`MarkovChain`: ``p(x_1) prod_{i>=2} p_i(x_i | x_{i-1})`` in raster order with a separate
  ``K x K`` transition table per position;
- :class:`FullJoint`: a table over all ``K^n`` configurations (tiny ``n`` only).

Each is a Pyro program with one observed site ``"x"`` (event ``[n]``) in the ``"data"`` plate,
parameterised by unconstrained logits (plain ``nn.Parameter`` attributes: nothing enters Pyro's
parameter store). They train by gradient (objective ``"mle"``) or, their default, in closed
form: the posterior mean under a symmetric Dirichlet(``alpha``) prior, i.e. counts plus
``alpha`` (additive smoothing; Murphy, 2012, "Machine Learning: A Probabilistic Perspective",
§3.3-3.4 and §17.2.2; Bishop, 2006, "Pattern Recognition and Machine Learning", §2.1-2.2).

Example:
    >>> import torch
    >>> x = torch.randint(0, 3, (100, 4))
    >>> model = MarkovChain(4, num_levels=3).fit_closed_form(x, alpha=1.0)
    >>> model.sample(5).shape
    torch.Size([5, 4])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import pyro.distributions as dist
import torch
from torch import nn

from ppgen.data.validate import validate
from ppgen.distributions.markov import MarkovChainDistribution
from ppgen.distributions.tabular import TabularJoint, mixed_radix_index
from ppgen.errors import ModelError
from ppgen.evaluate import log_likelihood
from ppgen.protocol import DistributionModel, GenerativeModel, ModelKind

if TYPE_CHECKING:
    from ppgen.data import DataInfo

__all__ = [
    "IndependentBernoulli",
    "IndependentCategorical",
    "FullJoint",
    "MarkovChain",
    "ALPHA_GRID",
    "DEFAULT_ALPHA",
    "MAX_TABLE_CELLS",
]

#: Dirichlet pseudo-counts tried by ``fit_closed_form(alpha="auto", val=...)``.
ALPHA_GRID = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)

#: Pseudo-count used by ``alpha="auto"`` without validation data: the Jeffreys prior
#: Dirichlet(1/2) (the Krichevsky-Trofimov estimator).
DEFAULT_ALPHA = 0.5

#: Largest table :class:`FullJoint` builds (``torch.multinomial``'s limit on categories).
MAX_TABLE_CELLS = 2**24


class _CountModel(DistributionModel, register=False):
    """Shared program, data checks and closed-form fitting of the count-based baselines.

    Subclasses set ``num_dims`` and ``num_levels`` and implement :meth:`distribution`,
    :meth:`sufficient_statistics`, :meth:`_load_counts` and :meth:`num_parameters`.
    """

    kind = ModelKind.EXACT
    default_objective = "closed-form"
    likelihood: ClassVar[str] = "categorical"
    num_dims: int
    num_levels: int

    # ----------------------------------------------------------------- data
    def check_data(self, x: Any, name: str = "data") -> torch.Tensor:
        """Validate ``x: [N, n]``: integer levels ``0..K-1`` (``long``) or 0/1 (Bernoulli).

        Raises:
            DataError: wrong width, NaN/inf, or values outside the levels.
        """
        return validate(
            x,
            self.likelihood,
            num_levels=self.num_levels,
            event_shape=(self.num_dims,),
            name=name,
        )

    @classmethod
    def for_data(cls, info: DataInfo, **kwargs: Any) -> GenerativeModel:
        """The model for flat discrete data described by ``info``; ``kwargs`` override.

        Categorical data keep ``info.num_levels`` levels, Bernoulli (0/1) data get 2.

        Raises:
            ModelError: continuous or multi-dimensional data.
        """
        _require_flat_discrete(cls, info)
        return cls(**{**cls._args_for(info), **kwargs})

    @classmethod
    def _args_for(cls, info: DataInfo) -> dict[str, Any]:
        levels = 2 if info.likelihood == "bernoulli" else info.num_levels
        return {"num_dims": info.num_dims, "num_levels": levels}

    # ----------------------------------------------------------------- closed form
    @torch.no_grad()
    def fit_closed_form(self, x: Any, alpha: float | str = "auto", val: Any = None) -> _CountModel:
        """Smoothed maximum likelihood: every table set to ``counts + alpha``, normalised.

        This is the posterior mean under symmetric Dirichlet(``alpha``) priors; ``alpha = 0``
        is the maximum-likelihood estimate (unseen events then get probability 0).

        Args:
            x: training data ``[N, n]``.
            alpha: pseudo-count ``>= 0``, or ``"auto"``: the value of :data:`ALPHA_GRID` with
                the lowest validation NLL when ``val`` is given, else :data:`DEFAULT_ALPHA`.
            val: validation data ``[M, n]`` for ``alpha="auto"``.

        Returns:
            ``self``, with ``alpha_`` (the pseudo-count used) and, after a grid search,
            ``alpha_scores_`` (validation NLL in nats per datum for each grid value).
        """
        counts = self.sufficient_statistics(self.check_data(x, "train").to(self.device))
        if alpha == "auto":
            alpha = self._select_alpha(counts, val) if val is not None else DEFAULT_ALPHA
        _check_alpha(alpha)
        self._load_counts(counts, float(alpha))
        self.alpha_ = float(alpha)
        return self

    def _select_alpha(self, counts: tuple[torch.Tensor, ...], val: Any) -> float:
        """The grid value with the lowest validation NLL (ties: the smallest)."""
        val = self.check_data(val, "val").to(self.device)
        scores = {}
        for alpha in ALPHA_GRID:
            self._load_counts(counts, alpha)
            scores[alpha] = float(-log_likelihood(self, val).mean())
        self.alpha_scores_ = scores
        return min(scores, key=scores.__getitem__)

    def sufficient_statistics(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Count tables of validated data ``x: [N, n]`` (in the parameters' dtype)."""
        raise NotImplementedError

    def _load_counts(self, counts: tuple[torch.Tensor, ...], alpha: float) -> None:
        """Set the logits to ``log(counts + alpha)`` (in place: optimisers keep their params)."""
        raise NotImplementedError

    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype


class IndependentBernoulli(_CountModel):
    """Independent Bernoulli pixels: ``p(x) = prod_i theta_i^x_i (1 - theta_i)^(1 - x_i)``.

    Parameterised by logits ``[n]`` (``theta = sigmoid(logits)``); ``n`` free parameters. The
    closed form is ``theta_i = (N_i1 + alpha) / (N + 2 alpha)`` (Murphy, 2012, §3.3).

    Args:
        num_dims: ``n``, the number of binary variables.

    Example:
        >>> model = IndependentBernoulli(64)
        >>> model.sample(3).shape, model.num_parameters()
        (torch.Size([3, 64]), 64)
    """

    likelihood = "bernoulli"
    num_levels = 2

    def __init__(self, num_dims: int) -> None:
        super().__init__()
        _check_size(num_dims, 2)
        self.num_dims = num_dims
        self.logits = nn.Parameter(torch.zeros(num_dims))

    def distribution(self) -> dist.TorchDistribution:
        """``Bernoulli(logits)`` over ``[n]`` (float 0/1 samples)."""
        return dist.Bernoulli(logits=self.logits).to_event(1)

    def num_parameters(self) -> int:
        """``n``."""
        return self.num_dims

    @classmethod
    def _args_for(cls, info: DataInfo) -> dict[str, Any]:
        if info.likelihood == "categorical" and info.num_levels != 2:
            raise ModelError(
                f"IndependentBernoulli models 0/1 data but these have {info.num_levels} levels: "
                "binarise them, or use IndependentCategorical"
            )
        return {"num_dims": info.num_dims}

    @torch.no_grad()
    def log_prob_per_dim(self, x: Any) -> torch.Tensor:
        """``log p(x_i)`` ``[N, n]``: the independent terms, summing to ``log p(x)``."""
        x = self.check_data(x).to(self.logits.device)
        return dist.Bernoulli(logits=self.logits).log_prob(x.to(self.logits.dtype))

    def sufficient_statistics(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(N_i0, N_i1)`` stacked: ``[n, 2]``."""
        ones = x.to(self._dtype()).sum(0)
        return (torch.stack([x.shape[0] - ones, ones], -1),)

    def _load_counts(self, counts: tuple[torch.Tensor, ...], alpha: float) -> None:
        log_c = (counts[0] + alpha).log()
        self.logits.copy_(log_c[:, 1] - log_c[:, 0])


class IndependentCategorical(_CountModel):
    """Independent categorical pixels: ``p(x) = prod_i theta_{i, x_i}``.

    Parameterised by logits ``[n, K]`` (softmax over levels); ``n (K - 1)`` free parameters.
    The closed form is ``theta_ik = (N_ik + alpha) / (N + K alpha)`` (Murphy, 2012, §3.4).

    Args:
        num_dims: ``n``, the number of variables.
        num_levels: ``K``, levels per variable (17 for the digits).

    Example:
        >>> IndependentCategorical(64, 17).num_parameters()
        1024
    """

    def __init__(self, num_dims: int, num_levels: int) -> None:
        super().__init__()
        _check_size(num_dims, num_levels)
        self.num_dims = num_dims
        self.num_levels = num_levels
        self.logits = nn.Parameter(torch.zeros(num_dims, num_levels))

    def distribution(self) -> dist.TorchDistribution:
        """``Categorical(logits [n, K])`` over ``[n]`` (``long`` samples)."""
        return dist.Categorical(logits=self.logits).to_event(1)

    def num_parameters(self) -> int:
        """``n (K - 1)``."""
        return self.num_dims * (self.num_levels - 1)

    @torch.no_grad()
    def log_prob_per_dim(self, x: Any) -> torch.Tensor:
        """``log theta_{i, x_i}`` ``[N, n]``: the independent terms, summing to ``log p(x)``."""
        x = self.check_data(x).to(self.logits.device)
        log_theta = torch.log_softmax(self.logits, -1)
        return log_theta.expand(x.shape[0], -1, -1).gather(-1, x.unsqueeze(-1)).squeeze(-1)

    def sufficient_statistics(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``N_ik``: ``[n, K]``."""
        return (_one_hot_counts(x, self.num_levels, self._dtype()),)

    def _load_counts(self, counts: tuple[torch.Tensor, ...], alpha: float) -> None:
        self.logits.copy_((counts[0] + alpha).log())


class FullJoint(_CountModel):
    """A table over all ``K^n`` configurations: ``p(x) = softmax(logits)[index(x)]``.

    The saturated model: it represents every distribution over ``{0..K-1}^n`` with
    ``K^n - 1`` free parameters, so only a handful of variables fit (Bishop, 2006, §8.1). The
    closed form is ``(N_x + alpha) / (N + K^n alpha)``. See :class:`~ppgen.distributions.
    TabularJoint` for the indexing.

    Args:
        num_dims: ``n``, the number of variables.
        num_levels: ``K``, levels per variable (2 for binary data).

    Raises:
        ModelError: ``K^n`` exceeds :data:`MAX_TABLE_CELLS` (the message gives the count).

    Example:
        >>> FullJoint(10).num_parameters()
        1023
    """

    def __init__(self, num_dims: int, num_levels: int = 2) -> None:
        super().__init__()
        _check_size(num_dims, num_levels)
        _check_table(num_dims, num_levels)
        self.num_dims = num_dims
        self.num_levels = num_levels
        self.logits = nn.Parameter(torch.zeros(num_levels**num_dims))

    def distribution(self) -> dist.TorchDistribution:
        """``TabularJoint(logits [K^n])`` over ``[n]`` (``long`` samples)."""
        return TabularJoint(self.logits, self.num_levels)

    def num_parameters(self) -> int:
        """``K^n - 1``."""
        return self.num_levels**self.num_dims - 1

    def sufficient_statistics(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``N_c`` for every configuration ``c``: ``[K^n]``."""
        index = mixed_radix_index(x, self.num_levels)
        counts = torch.bincount(index, minlength=self.logits.shape[0])
        return (counts.to(self._dtype()),)

    def _load_counts(self, counts: tuple[torch.Tensor, ...], alpha: float) -> None:
        self.logits.copy_((counts[0] + alpha).log())


class MarkovChain(_CountModel):
    """First-order Markov chain in raster order with position-specific transitions.

    ``p(x) = p(x_1) prod_{i=2..n} p_i(x_i | x_{i-1})``: logits ``[K]`` for ``x_1`` and one
    ``K x K`` table per position, ``[n - 1, K, K]``; ``(K - 1) + (n - 1) K (K - 1)`` free
    parameters (``2n - 1`` for binary data). The closed form normalises
    ``N_i(a, b) + alpha`` over ``b`` (Murphy, 2012, §17.2.2).

    Args:
        num_dims: ``n``, the chain length (64 for flattened 8x8 digits).
        num_levels: ``K``, levels per variable.

    Example:
        >>> MarkovChain(64, 2).num_parameters()
        127
    """

    def __init__(self, num_dims: int, num_levels: int) -> None:
        super().__init__()
        _check_size(num_dims, num_levels)
        self.num_dims = num_dims
        self.num_levels = num_levels
        self.init_logits = nn.Parameter(torch.zeros(num_levels))
        self.trans_logits = nn.Parameter(torch.zeros(num_dims - 1, num_levels, num_levels))

    def distribution(self) -> dist.TorchDistribution:
        """``MarkovChainDistribution(init_logits, trans_logits)`` over ``[n]``."""
        return MarkovChainDistribution(self.init_logits, self.trans_logits)

    def num_parameters(self) -> int:
        """``(K - 1) + (n - 1) K (K - 1)``."""
        K = self.num_levels
        return (K - 1) + (self.num_dims - 1) * K * (K - 1)

    @torch.no_grad()
    def log_prob_per_dim(self, x: Any) -> torch.Tensor:
        """``[log p(x_1), log p_2(x_2 | x_1), ...]`` ``[N, n]``, summing to ``log p(x)``: which
        pixel the chain found unlikely given the one before it."""
        x = self.check_data(x).to(self.init_logits.device)
        first = torch.log_softmax(self.init_logits, -1)[x[:, 0]]
        trans = torch.log_softmax(self.trans_logits, -1)  # [n - 1, K, K]
        position = torch.arange(self.num_dims - 1, device=x.device)
        rest = trans[position, x[:, :-1], x[:, 1:]]
        return torch.cat([first.unsqueeze(-1), rest], dim=-1)

    def sufficient_statistics(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``N(x_1 = a)``: ``[K]`` and ``N_i(x_{i-1} = a, x_i = b)``: ``[n - 1, K, K]``."""
        K, n, dtype = self.num_levels, self.num_dims, self._dtype()
        init = torch.bincount(x[:, 0], minlength=K).to(dtype)
        position = torch.arange(n - 1, device=x.device) * K * K
        cells = (position + x[:, :-1] * K + x[:, 1:]).reshape(-1)
        trans = torch.bincount(cells, minlength=(n - 1) * K * K).to(dtype)
        return init, trans.reshape(n - 1, K, K)

    def _load_counts(self, counts: tuple[torch.Tensor, ...], alpha: float) -> None:
        self.init_logits.copy_((counts[0] + alpha).log())
        self.trans_logits.copy_((counts[1] + alpha).log())


# ---------------------------------------------------------------------------- helpers


def _one_hot_counts(x: torch.Tensor, num_levels: int, dtype: torch.dtype) -> torch.Tensor:
    """``N_ik = #{rows with x_i = k}``: ``x: [N, n]`` -> ``[n, K]``."""
    n = x.shape[1]
    cells = (torch.arange(n, device=x.device) * num_levels + x).reshape(-1)
    counts = torch.bincount(cells, minlength=n * num_levels)
    return counts.reshape(n, num_levels).to(dtype)


def _check_size(num_dims: int, num_levels: int) -> None:
    if num_dims < 1 or num_levels < 2:
        raise ModelError(
            f"need num_dims >= 1 and num_levels >= 2, got num_dims={num_dims}, "
            f"num_levels={num_levels}"
        )


def _check_table(num_dims: int, num_levels: int) -> None:
    cells = num_levels**num_dims
    if cells > MAX_TABLE_CELLS:
        raise ModelError(
            f"FullJoint needs a table of {num_levels}^{num_dims} = {cells} configurations, "
            f"more than the {MAX_TABLE_CELLS} cells it can hold: use MarkovChain or an "
            "autoregressive model for this many dimensions"
        )


def _check_alpha(alpha: Any) -> None:
    if isinstance(alpha, str) or not alpha >= 0:
        raise ModelError(f"alpha must be a pseudo-count >= 0 or 'auto', got {alpha!r}")


def _require_flat_discrete(cls: type, info: DataInfo) -> None:
    if info.likelihood not in ("categorical", "bernoulli"):
        raise ModelError(
            f"{cls.__name__} models discrete data but these are {info.likelihood!r}: load a "
            "categorical or binary representation"
        )
    if len(info.event_shape) != 1:
        raise ModelError(
            f"{cls.__name__} models flat data but one datum has shape "
            f"{tuple(info.event_shape)}: flatten the data to [N, D] first"
        )
