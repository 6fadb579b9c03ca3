"""Priors an adversarial autoencoder can match: anything a user can sample.

An adversarial autoencoder (:mod:`ppgen.models.aae`) never scores its prior while it trains: its
latent critic only compares prior draws with codes. So any prior works that can *draw* codes
``[n, L]`` — a :class:`LatentPrior`:

* the named priors (:data:`NAMED_PRIORS`): ``"gaussian"`` (``N(0, I)``), ``"mixture10"`` (ten
  Gaussians on a circle in the first two coordinates, Makhzani et al., 2016, Fig. 4),
  ``"swiss-roll"`` (Fig. 5's spiral; draws only) and ``"uniform"`` (the box ``[-2, 2]^L``);
* :class:`CategoricalProduct`: a one-hot class ``Cat(C)`` beside any continuous prior, the code
  of the semi-supervised and clustering adversarial autoencoders (Makhzani et al., Sec. 5-6);
* any Pyro/torch distribution (:class:`DistributionPrior`) or Pyro program ``fn(n) -> [n, L]``
  (:class:`ProgramPrior`: draws only), built by :func:`make_prior`.

A prior that also has a density (:attr:`LatentPrior.has_density`) gives the autoencoder's
program a scorable latent site, so a Gaussian-encoder AAE gets importance-weighted likelihoods
from the evaluation layer. :class:`PriorDistribution` is a prior as the one sample site
``"z"`` of a program (batch ``[n]``, event ``[L]``).

Example:
    >>> prior = make_prior("mixture10", 2)
    >>> prior.sample(5).shape, prior.log_prob(torch.zeros(3, 2)).shape
    (torch.Size([5, 2]), torch.Size([3]))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import TorchDistribution
from torch import nn
from torch.distributions import constraints
from torch.nn import functional as F

from ppgen.errors import ModelError

__all__ = [
    "NAMED_PRIORS",
    "LatentPrior",
    "GaussianPrior",
    "MixturePrior",
    "SwissRollPrior",
    "UniformPrior",
    "CategoricalProduct",
    "DistributionPrior",
    "ProgramPrior",
    "PriorDistribution",
    "make_prior",
]

#: the priors an AAE can be built with by name (``AAE(prior="mixture10")``)
NAMED_PRIORS = ("gaussian", "mixture10", "swiss-roll", "uniform")


class LatentPrior(nn.Module):
    """A prior over codes ``[L]`` that draws on the device of its buffers.

    Subclasses implement :meth:`sample`; those with a density set ``has_density`` and
    implement :meth:`log_prob`.

    Attributes:
        dim: ``L``, the size of one code.
        has_density: whether :meth:`log_prob` exists.
    """

    has_density: bool = False

    def __init__(self, dim: int) -> None:
        super().__init__()
        if not isinstance(dim, int) or dim < 1:
            raise ModelError(f"a prior needs a code size >= 1, got {dim!r}")
        self.dim = dim
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    def sample(self, n: int) -> torch.Tensor:
        """``n`` draws ``[n, L]`` (no gradient needed: the critic's real side)."""
        raise NotImplementedError

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """``log p(z)`` ``[...]`` of codes ``z: [..., L]``.

        Raises:
            ModelError: the prior only draws (no density).
        """
        raise ModelError(f"the {type(self).__name__} prior only draws codes: it has no density, "
                         "so the autoencoder has no likelihood bound (compare its samples with "
                         "sample-based metrics instead)")

    def _normal(self, n: int, dim: int) -> torch.Tensor:
        return torch.randn(n, dim, dtype=self._anchor.dtype, device=self.device)


class GaussianPrior(LatentPrior):
    """``N(0, I_L)``."""

    has_density = True

    def sample(self, n: int) -> torch.Tensor:
        return self._normal(n, self.dim)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (z.square() + math.log(2 * math.pi)).sum(-1)


class MixturePrior(LatentPrior):
    """Ten (``num_components``) equally weighted Gaussians with means on a circle of radius
    ``radius`` in the first two coordinates and standard deviation ``scale`` there; the other
    coordinates (``L > 2``) are ``N(0, 1)``. ``L = 1`` puts the means on a line instead.

    Paper: Makhzani et al., 2016, "Adversarial Autoencoders" (arXiv:1511.05644), Fig. 4.
    """

    has_density = True

    def __init__(self, dim: int, num_components: int = 10, radius: float = 4.0,
                 scale: float = 0.5) -> None:
        super().__init__(dim)
        angle = 2 * math.pi * torch.arange(num_components, dtype=torch.float32) / num_components
        means = torch.zeros(num_components, dim)
        if dim == 1:
            means[:, 0] = torch.linspace(-radius, radius, num_components)
        else:
            means[:, 0], means[:, 1] = radius * angle.cos(), radius * angle.sin()
        scales = torch.ones(dim)
        scales[: min(dim, 2)] = scale
        self.register_buffer("means", means, persistent=False)
        self.register_buffer("scales", scales, persistent=False)

    def sample(self, n: int) -> torch.Tensor:
        k = torch.randint(len(self.means), (n,), device=self.device)
        return self.means[k] + self.scales * self._normal(n, self.dim)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """``log (1/M) Σ_m N(z; μ_m, diag s²)`` for ``z: [..., L]``."""
        u = (z.unsqueeze(-2) - self.means) / self.scales  # [..., M, L]
        log_normal = -0.5 * (u.square() + math.log(2 * math.pi)).sum(-1) - self.scales.log().sum()
        return torch.logsumexp(log_normal, -1) - math.log(len(self.means))


class SwissRollPrior(LatentPrior):
    """A spiral ``r(t) (cos t, sin t)``, ``t ~ U(1.5π, 4.5π)``, scaled to radius ≤ 4 and
    blurred by ``N(0, noise²)``, in the first two coordinates (``N(0, 1)`` in the others).
    Draws only: the density of a blurred curve has no closed form.

    Paper: Makhzani et al., 2016 (arXiv:1511.05644), Fig. 5.
    """

    def __init__(self, dim: int, noise: float = 0.1) -> None:
        if dim < 2:
            raise ModelError("the swiss-roll prior lives in >= 2 dimensions: use latent_dim >= 2")
        super().__init__(dim)
        self.noise = noise

    def sample(self, n: int) -> torch.Tensor:
        u = torch.rand(n, dtype=self._anchor.dtype, device=self.device)
        t = 1.5 * math.pi * (1 + 2 * u)
        r = 4.0 * t / (4.5 * math.pi)
        roll = torch.stack([r * t.cos(), r * t.sin()], dim=-1)
        z = self._normal(n, self.dim)
        return torch.cat([roll + self.noise * z[:, :2], z[:, 2:]], dim=-1)


class UniformPrior(LatentPrior):
    """The box ``[-half_width, half_width]^L`` (default ``[-2, 2]^L``); ``log p = -L log(2a)``
    inside, ``-inf`` outside."""

    has_density = True

    def __init__(self, dim: int, half_width: float = 2.0) -> None:
        super().__init__(dim)
        self.half_width = half_width

    def sample(self, n: int) -> torch.Tensor:
        u = torch.rand(n, self.dim, dtype=self._anchor.dtype, device=self.device)
        return self.half_width * (2 * u - 1)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        inside = (z.abs() <= self.half_width).all(-1)
        log_volume = self.dim * math.log(2 * self.half_width)
        return torch.where(inside, -log_volume, -math.inf).to(z.dtype)


class CategoricalProduct(LatentPrior):
    """``[onehot(y), s]`` with ``y ~ Cat(1/C)`` independent of the style ``s ~ style``: the code
    ``[C + L]`` of the semi-supervised and clustering adversarial autoencoders (Makhzani et al.,
    2016, Sec. 5-6). One critic on the joint code matches both factors and their independence.

    Args:
        num_classes: ``C``.
        style: the continuous factor (any :class:`LatentPrior`).
    """

    def __init__(self, num_classes: int, style: LatentPrior) -> None:
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ModelError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        super().__init__(num_classes + style.dim)
        self.num_classes = num_classes
        self.style = style

    def sample(self, n: int) -> torch.Tensor:
        y = torch.randint(self.num_classes, (n,), device=self.device)
        onehot = F.one_hot(y, self.num_classes).to(self._anchor.dtype)
        return torch.cat([onehot, self.style.sample(n)], dim=-1)


class DistributionPrior(LatentPrior):
    """A user's torch/Pyro distribution as a prior: event ``[L]`` (or batch ``[L]``, read as
    independent coordinates). Its density is the distribution's ``log_prob``. Build it on the
    model's device (its draws are moved there)."""

    has_density = True

    def __init__(self, distribution: torch.distributions.Distribution) -> None:
        fn = distribution
        if len(fn.event_shape) == 0 and len(fn.batch_shape) == 1:
            fn = dist.Independent(fn, 1) if isinstance(fn, TorchDistribution) else \
                torch.distributions.Independent(fn, 1)
        if len(fn.event_shape) != 1 or len(fn.batch_shape) != 0:
            raise ModelError(
                f"a prior distribution must have event shape [L] (got batch "
                f"{tuple(fn.batch_shape)}, event {tuple(fn.event_shape)}): use .to_event(1)")
        super().__init__(int(fn.event_shape[0]))
        self.distribution = fn

    def sample(self, n: int) -> torch.Tensor:
        return self.distribution.sample((n,)).to(self.device, self._anchor.dtype)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return self.distribution.log_prob(z)


class ProgramPrior(LatentPrior):
    """A Pyro program ``fn(n) -> [n, L]`` as a prior (draws only). Its sample sites are
    hidden from any trace around it (``poutine.block``)."""

    def __init__(self, program: Callable[[int], torch.Tensor], dim: int | None = None) -> None:
        if dim is None:
            with poutine.block():
                dim = _checked_draws(program, 2).shape[-1]
        super().__init__(dim)
        self.program = program

    def sample(self, n: int) -> torch.Tensor:
        with poutine.block():
            z = _checked_draws(self.program, n)
        if z.shape[-1] != self.dim:
            raise ModelError(f"the prior program drew codes of size {z.shape[-1]}, not {self.dim}")
        return z.to(self.device, self._anchor.dtype)


def _checked_draws(program: Callable[[int], Any], n: int) -> torch.Tensor:
    z = program(n)
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[0] != n:
        got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ModelError(f"a prior program must return n codes [n, L] when called with n; "
                         f"called with {n} it returned {got}")
    return z


def make_prior(prior: Any, dim: int) -> LatentPrior:
    """The :class:`LatentPrior` of ``prior``: a name of :data:`NAMED_PRIORS` (codes of size
    ``dim``), a :class:`LatentPrior`, a torch/Pyro distribution or a program ``fn(n)``.

    Raises:
        ModelError: an unknown name, or a prior whose code size is not ``dim``.
    """
    if isinstance(prior, str):
        named = {"gaussian": GaussianPrior, "mixture10": MixturePrior,
                 "swiss-roll": SwissRollPrior, "uniform": UniformPrior}
        if prior not in named:
            raise ModelError(f"unknown prior {prior!r}: use one of {NAMED_PRIORS}, a Pyro "
                             "distribution with event shape [L], or a program fn(n) -> [n, L]")
        return named[prior](dim)
    if isinstance(prior, LatentPrior):
        built = prior
    elif isinstance(prior, torch.distributions.Distribution):
        built = DistributionPrior(prior)
    elif callable(prior):
        built = ProgramPrior(prior)
    else:
        raise ModelError(f"a prior is a name, a distribution or a program, not "
                         f"{type(prior).__name__}")
    if built.dim != dim:
        raise ModelError(f"the prior draws codes of size {built.dim} but the model's latent_dim "
                         f"is {dim}: make them agree")
    return built


class PriorDistribution(TorchDistribution):
    """A :class:`LatentPrior` as a Pyro sample site: batch ``[n]``, event ``[L]``.

    ``sample`` draws from the prior; ``log_prob`` is its density (an error for a prior that only
    draws). Validation is off: a box prior scores codes outside it as ``-inf``.
    """

    arg_constraints: dict = {}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, prior: LatentPrior, batch_shape: tuple[int, ...] | torch.Size) -> None:
        self.prior = prior
        super().__init__(torch.Size(batch_shape), torch.Size([prior.dim]), validate_args=False)

    def expand(self, batch_shape, _instance=None) -> PriorDistribution:
        return PriorDistribution(self.prior, batch_shape)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        return self.prior.sample(shape.numel()).reshape(*shape, self.prior.dim)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.prior.log_prob(value)
