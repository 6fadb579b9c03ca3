"""Output heads of autoregressive models: one conditional family per data type.

A head turns the parameters a network computes for one dimension, ``params: [..., P]``, into
the log-probability of a value of that dimension and into samples of it. It also says how a
value enters a network (:meth:`Head.features`) and which values are allowed
(:attr:`Head.support`). Heads hold no learned state; the network owns every parameter.

- :class:`BernoulliHead`: values ``{0, 1}`` (float); ``P = 1``; features: the value.
- :class:`CategoricalHead`: levels ``{0..K-1}`` (long); ``P = K``; level features.
- :class:`DiscretizedLogisticMixtureHead`: levels ``{0..K-1}`` (long); ``P = 3C``; level
  features.
- :class:`GaussianMixtureHead`: reals (float); ``P = 3C``; features: the value.

Level features (``F = K + 1``) are the one-hot level followed by the scaled level
``x / (K - 1)``.

The discretised logistic mixture is defined on the integer levels ``0..K-1`` (Salimans et
al., 2017, "PixelCNN++", arXiv:1701.05517): level ``k`` sits at ``y_k = 2k / (K - 1) - 1`` in
``[-1, 1]`` and gets the mass of a logistic mixture on ``[y_k - h, y_k + h]`` with
``h = 1 / (K - 1)``, the two edge bins extended to infinity. So it is a proper distribution
over the same discrete values as the categorical head (the 17 grey levels of the digits),
with ``3C`` parameters instead of ``K`` and an ordinal smoothness prior built in.

Example:
    >>> head = make_head("categorical", num_levels=3)
    >>> params = torch.zeros(2, head.num_params)
    >>> head.log_prob(params, torch.tensor([0, 2])).exp()
    tensor([0.3333, 0.3333])
"""

from __future__ import annotations

import math

import torch
from torch.distributions import constraints
from torch.nn import functional as F

__all__ = [
    "Head",
    "BernoulliHead",
    "CategoricalHead",
    "DiscretizedLogisticMixtureHead",
    "GaussianMixtureHead",
    "HEADS",
    "make_head",
]

#: Smallest log-scale of a logistic component (as in PixelCNN++): keeps bins resolvable.
_MIN_LOG_SCALE = -7.0


class Head:
    """The conditional family of one dimension: ``p(x_i | params_i)``.

    Attributes:
        num_params: ``P``, parameters per dimension the network must output.
        num_features: ``F``, network input features per dimension (:meth:`features`).
        support: constraint on one scalar value.
        is_discrete: whether values are integer levels (``long``) rather than floats.
    """

    num_params: int
    num_features: int
    support: constraints.Constraint
    is_discrete: bool = False

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``log p(x | params)``: ``params [..., P]``, ``x [...]`` (broadcast) -> ``[...]``."""
        raise NotImplementedError

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        """One draw per parameter vector: ``params [..., P]`` -> ``[...]`` (no gradient)."""
        raise NotImplementedError

    def features(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Network input of values: ``x [...]`` -> ``[..., F]`` in ``dtype``."""
        return x.to(dtype).unsqueeze(-1)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """``E[x | params]``: ``params [..., P]`` -> ``[...]``.

        Heads over levels sum ``k p(k)`` over every level; the others override this.
        """
        levels = torch.arange(self.num_levels, device=params.device)
        log_p = self.log_prob(params.unsqueeze(-2), levels)  # [..., K]
        return (log_p.exp() * levels.to(log_p.dtype)).sum(-1)

    def value_dtype(self, float_dtype: torch.dtype) -> torch.dtype:
        """The dtype of values: ``long`` for discrete heads, ``float_dtype`` otherwise."""
        return torch.long if self.is_discrete else float_dtype

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class BernoulliHead(Head):
    """``x_i ~ Bernoulli(sigmoid(params_i))``: one logit per dimension, float 0/1 values.

    The logistic conditional of the FVSBN (Frey, 1998) and of the binary NADE (Larochelle &
    Murray, 2011).
    """

    num_params = 1
    num_features = 1
    support = constraints.boolean

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logit = params[..., 0]
        return x * logit - F.softplus(logit)

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        probs = torch.sigmoid(params[..., 0])
        return torch.bernoulli(probs.detach())

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(params[..., 0])


class CategoricalHead(Head):
    """``x_i ~ Categorical(softmax(params_i))`` over levels ``0..K-1``.

    Features: the one-hot level and the scaled level (``K + 1`` per dimension).

    Args:
        num_levels: ``K`` (17 for the digits' grey levels).
    """

    is_discrete = True

    def __init__(self, num_levels: int) -> None:
        _check_levels(num_levels)
        self.num_levels = num_levels
        self.num_params = num_levels
        self.num_features = num_levels + 1
        self.support = constraints.integer_interval(0, num_levels - 1)

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        log_p = torch.log_softmax(params, dim=-1)
        shape = torch.broadcast_shapes(log_p.shape[:-1], x.shape)
        index = x.long().expand(shape).unsqueeze(-1)
        return log_p.expand(shape + log_p.shape[-1:]).gather(-1, index).squeeze(-1)

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        return torch.distributions.Categorical(logits=params.detach(), validate_args=False).sample()

    def features(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return _level_features(x, self.num_levels, dtype)

    def __repr__(self) -> str:
        return f"CategoricalHead(num_levels={self.num_levels})"


class DiscretizedLogisticMixtureHead(Head):
    """A mixture of ``C`` logistics discretised onto the levels ``0..K-1`` (PixelCNN++).

    ``params_i = (mixture logits [C], locations [C], log-scales [C])``, locations in the
    ``[-1, 1]`` coordinates of the levels (see the module docstring); log-scales are floored
    at -7. Every bin probability is computed in log space without thresholds:
    ``log(sigmoid(a) - sigmoid(b)) = a + log(-expm1(b - a)) - softplus(a) - softplus(b)``.

    Paper: Salimans, Karpathy, Chen & Kingma, 2017, "PixelCNN++" (arXiv:1701.05517).

    Args:
        num_levels: ``K``, the integer levels (``x in {0..K-1}``).
        num_components: ``C``, the mixture components.
    """

    is_discrete = True

    def __init__(self, num_levels: int, num_components: int = 5) -> None:
        _check_levels(num_levels)
        _check_components(num_components)
        self.num_levels = num_levels
        self.num_components = num_components
        self.num_params = 3 * num_components
        self.num_features = num_levels + 1
        self.support = constraints.integer_interval(0, num_levels - 1)

    def _split(self, params: torch.Tensor):
        logits, loc, log_scale = params.unflatten(-1, (3, self.num_components)).unbind(-2)
        return torch.log_softmax(logits, -1), loc, log_scale.clamp(min=_MIN_LOG_SCALE)

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        log_w, loc, log_scale = self._split(params)
        K, h = self.num_levels, 1.0 / (self.num_levels - 1)
        y = (2.0 * h * x.to(loc.dtype) - 1.0).unsqueeze(-1)  # [..., 1] in [-1, 1]
        inv_s = torch.exp(-log_scale)
        upper = (y + h - loc) * inv_s  # standardised bin edges a > b
        lower = (y - h - loc) * inv_s
        middle = upper - F.softplus(upper) - F.softplus(lower)
        middle = middle + torch.log(-torch.expm1(lower - upper))
        first = F.logsigmoid(upper)  # level 0: the bin (-inf, y_0 + h]
        last = -F.softplus(lower)  # level K - 1: the bin [y_{K-1} - h, inf)
        level = x.long().unsqueeze(-1)
        log_bin = torch.where(level == 0, first, torch.where(level == K - 1, last, middle))
        return torch.logsumexp(log_w + log_bin, dim=-1)

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        log_w, loc, log_scale = self._split(params.detach())
        y = _mixture_draw(log_w, loc, log_scale, _standard_logistic)
        level = torch.round((y + 1.0) * (self.num_levels - 1) / 2.0)
        return level.clamp(0, self.num_levels - 1).long()

    def features(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return _level_features(x, self.num_levels, dtype)

    def __repr__(self) -> str:
        return (
            f"DiscretizedLogisticMixtureHead(num_levels={self.num_levels}, "
            f"num_components={self.num_components})"
        )


class GaussianMixtureHead(Head):
    """A mixture of ``C`` Gaussians per dimension, for real values (RNADE).

    ``params_i = (mixture logits [C], means [C], raw scales [C])`` with standard deviations
    ``softplus(raw) + min_scale``.

    Paper: Uria, Murray & Larochelle, 2013, "RNADE: The real-valued neural autoregressive
    density-estimator" (arXiv:1306.0186).

    Args:
        num_components: ``C``.
        min_scale: floor of every standard deviation (keeps densities bounded).
    """

    num_features = 1
    support = constraints.real

    def __init__(self, num_components: int = 5, min_scale: float = 1e-3) -> None:
        _check_components(num_components)
        self.num_components = num_components
        self.min_scale = min_scale
        self.num_params = 3 * num_components

    def _split(self, params: torch.Tensor):
        logits, loc, raw = params.unflatten(-1, (3, self.num_components)).unbind(-2)
        return torch.log_softmax(logits, -1), loc, F.softplus(raw) + self.min_scale

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        log_w, loc, scale = self._split(params)
        z = (x.unsqueeze(-1) - loc) / scale
        log_n = -0.5 * z.square() - scale.log() - 0.5 * math.log(2 * math.pi)
        return torch.logsumexp(log_w + log_n, dim=-1)

    def cdf(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``P(X <= x | params)``: the Rosenblatt transform of one dimension, ``[...]``."""
        log_w, loc, scale = self._split(params)
        z = (x.unsqueeze(-1) - loc) / scale
        return (log_w.exp() * torch.special.ndtr(z)).sum(-1)

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        log_w, loc, scale = self._split(params.detach())
        return _mixture_draw(log_w, loc, scale.log(), torch.randn)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        log_w, loc, _ = self._split(params)
        return (log_w.exp() * loc).sum(-1)

    def __repr__(self) -> str:
        return f"GaussianMixtureHead(num_components={self.num_components})"


#: Likelihood names that :func:`make_head` builds.
HEADS = ("bernoulli", "categorical", "logistic-mixture", "gaussian-mixture")


def make_head(likelihood: str, num_levels: int | None = None, num_components: int = 5) -> Head:
    """The head called ``likelihood`` (one of :data:`HEADS`).

    Args:
        likelihood: ``"bernoulli"``, ``"categorical"``, ``"logistic-mixture"`` (integer levels)
            or ``"gaussian-mixture"`` (reals).
        num_levels: ``K`` for the two heads over levels.
        num_components: ``C`` for the two mixture heads.

    Raises:
        ValueError: an unknown name, or missing / invalid sizes.
    """
    if likelihood == "bernoulli":
        return BernoulliHead()
    if likelihood == "categorical":
        return CategoricalHead(_require_levels(likelihood, num_levels))
    if likelihood == "logistic-mixture":
        levels = _require_levels(likelihood, num_levels)
        return DiscretizedLogisticMixtureHead(levels, num_components)
    if likelihood == "gaussian-mixture":
        return GaussianMixtureHead(num_components)
    raise ValueError(f"unknown likelihood {likelihood!r}: use one of {', '.join(HEADS)}")


# ---------------------------------------------------------------------------- helpers


def _level_features(x: torch.Tensor, num_levels: int, dtype: torch.dtype) -> torch.Tensor:
    """One-hot levels plus the scaled level ``x / (K - 1)``: ``[...]`` -> ``[..., K + 1]``.

    The one-hot part lets a network treat every level on its own; the scaled level tells it
    that levels are ordered (on the digits it lowers NADE's test NLL by about one nat).
    """
    onehot = F.one_hot(x.long(), num_levels).to(dtype)
    scaled = x.to(dtype).unsqueeze(-1) / (num_levels - 1)
    return torch.cat([onehot, scaled], dim=-1)


def _standard_logistic(shape: torch.Size, dtype: torch.dtype, device: torch.device):
    """Standard logistic noise ``log u - log(1 - u)``, ``u ~ U[0, 1)`` (``u = 0`` gives -inf,
    which the discretisation maps to level 0, exactly as the edge bin's mass says)."""
    u = torch.rand(shape, dtype=dtype, device=device)
    return torch.log(u) - torch.log1p(-u)


def _mixture_draw(log_w, loc, log_scale, noise) -> torch.Tensor:
    """``loc_c + exp(log_scale_c) * eps`` for a component ``c ~ Categorical(exp(log_w))``."""
    c = torch.distributions.Categorical(logits=log_w, validate_args=False).sample()
    c = c.unsqueeze(-1)
    eps = noise(c.shape[:-1], dtype=loc.dtype, device=loc.device)
    return loc.gather(-1, c).squeeze(-1) + log_scale.gather(-1, c).squeeze(-1).exp() * eps


def _check_levels(num_levels: int) -> None:
    if num_levels < 2:
        raise ValueError(f"num_levels must be at least 2, got {num_levels}")


def _check_components(num_components: int) -> None:
    if num_components < 1:
        raise ValueError(f"num_components must be at least 1, got {num_components}")


def _require_levels(likelihood: str, num_levels: int | None) -> int:
    if num_levels is None:
        raise ValueError(f"the {likelihood!r} head needs num_levels (17 for the digits)")
    return num_levels
