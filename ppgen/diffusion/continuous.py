"""Diffusion on a log-SNR schedule ``gamma(t)``, in continuous or discrete time: the formulas
and the bound of Variational Diffusion Models (Kingma, Salimans, Poole & Ho, 2021,
arXiv:2107.00630), apart from any network.

``q(z_t | x) = N(alpha_t x, sigma_t^2 I)`` with ``alpha_t^2 = sigmoid(-gamma_t)``, ``sigma_t^2 =
sigmoid(gamma_t)`` and ``SNR(t) = exp(-gamma_t)``. The bound on ``-log p(x)`` (eqs. 11-17)::

    L = KL(q(z_1 | x) || N(0, I))                      prior
      + E_{q(z_0 | x)} [-log p(x | z_0)]                reconstruction
      + L_diffusion                                     diffusion
    L_T        = sum_{i=1..T} E_{q(z_t | x)} [ 0.5 (SNR(s) - SNR(t)) ||x - x^(z_t)||^2 ],
                 s = (i - 1) / T, t = i / T             (T steps: a sum of Gaussian KLs)
    L_infinity = 0.5 E_{t ~ U(0, 1), eps} [ gamma'(t) ||eps - eps^(z_t)||^2 ]   (T -> infinity)

written with the data prediction ``x^``: ``||eps - eps^||^2 = SNR(t) ||x - x^||^2``, which stays
finite in float32 where ``sigma_t`` is tiny. ``L_T`` decreases towards ``L_infinity`` as ``T``
grows (the paper's section 4.1). The reverse step ``p(z_s | z_t) = q(z_s | z_t, x = x^(z_t))``
shares the forward posterior's variance, so each discrete term is that pair's KL.

A model speaks :class:`LogSNRModel`; :func:`continuous_terms` (training: the paper's
low-discrepancy times, optionally the variance-minimising gradient for the schedule's shape) and
:func:`discrete_estimate` (validation: a stratified unbiased estimate of ``L_T``) compute from it
alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch.distributions import Distribution
from torch.nn import functional as F

from ppgen.diffusion.denoising import strata_edges
from ppgen.diffusion.gaussians import normal_kl
from ppgen.diffusion.learned import LearnedSchedule

__all__ = [
    "LogSNRModel",
    "VDMTerms",
    "alpha_sigma",
    "q_sample",
    "q_posterior",
    "prior_kl",
    "low_discrepancy_times",
    "diffusion_loss",
    "discrete_term",
    "continuous_terms",
    "discrete_estimate",
]


@runtime_checkable
class LogSNRModel(Protocol):
    """The words a model on a log-SNR schedule speaks to its objective.

    Attributes:
        schedule: its :class:`~ppgen.diffusion.LearnedSchedule`.
    """

    schedule: LearnedSchedule

    def denoise(self, z_t: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        """``x^ = E[x | z_t]`` in model space, ``[..., D]``, at ``z_t: [..., D]`` and
        ``gamma`` (broadcastable to ``z_t``'s batch shape)."""
        ...

    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        """Data ``[N, ...]`` -> ``x: [N, D]`` in model space."""
        ...

    def decoder(self, z_0: torch.Tensor, gamma_0: torch.Tensor) -> Distribution:
        """``p(x | z_0)`` over the data (batch ``z_0.shape[:-1]``)."""
        ...


@dataclass(frozen=True)
class VDMTerms:
    """The terms of the bound of ``N`` data, in nats.

    Attributes:
        prior: ``[N]`` ``KL(q(z_1 | x) || N(0, I))``.
        reconstruction: ``[N]`` ``-log p(x | z_0)`` at one draw of ``z_0``.
        diffusion: ``[N]`` an estimate of the diffusion loss.
    """

    prior: torch.Tensor
    reconstruction: torch.Tensor
    diffusion: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        """``[N]`` the bound."""
        return self.prior + self.reconstruction + self.diffusion


def _column(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``value`` of ``like``'s batch shape (or a scalar) made to broadcast over its last dim."""
    return value.unsqueeze(-1) if value.dim() else value


def alpha_sigma(gamma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(alpha, sigma)`` with ``alpha^2 = sigmoid(-gamma)`` and ``sigma^2 = sigmoid(gamma)``."""
    return torch.sigmoid(-gamma).sqrt(), torch.sigmoid(gamma).sqrt()


def q_sample(x: torch.Tensor, gamma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``z_t = alpha_t x + sigma_t eps`` for ``x, noise: [..., D]``, ``gamma`` of the batch
    shape (or a scalar)."""
    alpha, sigma = alpha_sigma(_column(gamma, x))
    return alpha * x + sigma * noise


def q_posterior(x: torch.Tensor, z_t: torch.Tensor, gamma_s: torch.Tensor,
                gamma_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``q(z_s | z_t, x)`` for ``s < t``: ``(mean [..., D], log_variance)`` (the paper's
    appendix A): with ``c = 1 - SNR(t) / SNR(s) = -expm1(gamma_s - gamma_t)``, the mean is
    ``alpha_s / alpha_t (1 - c) z_t + alpha_s c x`` and the variance ``c sigma_s^2``. With
    ``x = x^(z_t)`` this is the reverse step ``p(z_s | z_t)``."""
    gamma_s, gamma_t = _column(gamma_s, x), _column(gamma_t, x)
    c = -torch.expm1(gamma_s - gamma_t)
    alpha_s, _ = alpha_sigma(gamma_s)
    alpha_t, _ = alpha_sigma(gamma_t)
    mean = alpha_s / alpha_t * (1 - c) * z_t + alpha_s * c * x
    return mean, torch.log(c) + F.logsigmoid(gamma_s)


def prior_kl(x: torch.Tensor, gamma_1: torch.Tensor) -> torch.Tensor:
    """``KL(q(z_1 | x) || N(0, I))`` per datum: ``[...]`` for ``x: [..., D]``."""
    alpha, _ = alpha_sigma(gamma_1)
    log_var = F.logsigmoid(gamma_1).expand_as(x)
    return normal_kl(alpha * x, log_var, torch.zeros_like(x), torch.zeros_like(x)).sum(-1)


def low_discrepancy_times(n: int, k: int, like: torch.Tensor,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """``[n, k]`` times in ``[0, 1)``: ``(u + j / (n k)) mod 1`` for ``j = 0..n k - 1`` and one
    ``u ~ U(0, 1)`` (the paper's appendix I.1): each is uniform, together they cover
    ``[0, 1)`` evenly, which lowers the variance of a batch's estimate. Datum ``i`` gets
    ``j = i + n m``, ``m = 0..k-1``, so its ``k`` times are evenly spread too."""
    u = torch.rand((), device=like.device, dtype=like.dtype, generator=generator)
    j = torch.arange(n * k, device=like.device, dtype=like.dtype).reshape(k, n).T
    return torch.remainder(u + j / (n * k), 1.0)


def diffusion_loss(x: torch.Tensor, x_hat: torch.Tensor, gamma: torch.Tensor,
                   slope: torch.Tensor) -> torch.Tensor:
    """The continuous-time integrand ``0.5 gamma'(t) ||eps - eps^||^2 = 0.5 gamma'(t) SNR(t)
    ||x - x^||^2`` per datum: ``[...]``."""
    return 0.5 * slope * torch.exp(-gamma) * (x - x_hat).pow(2).sum(-1)


def discrete_term(x: torch.Tensor, x_hat: torch.Tensor, gamma_s: torch.Tensor,
                  gamma_t: torch.Tensor) -> torch.Tensor:
    """One step's ``KL(q(z_s | z_t, x) || p(z_s | z_t)) = 0.5 (SNR(s) - SNR(t)) ||x - x^||^2``
    per datum: ``[...]``."""
    return 0.5 * torch.exp(-gamma_t) * torch.expm1(gamma_t - gamma_s) * (x - x_hat).pow(2).sum(-1)


def _endpoint_terms(model: LogSNRModel, x: torch.Tensor, x0: torch.Tensor,
                    generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The prior and reconstruction terms ``[N]`` (one draw of ``z_0``)."""
    gamma_0, gamma_1 = model.schedule.endpoints()
    noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
    z_0 = q_sample(x0, gamma_0, noise)
    return prior_kl(x0, gamma_1), -model.decoder(z_0, gamma_0).log_prob(x)


def continuous_terms(model: LogSNRModel, x: torch.Tensor, num_times: int = 1,
                     variance_gradient: bool = False,
                     generator: torch.Generator | None = None, **conditions: Any) -> VDMTerms:
    """The continuous-time bound's terms of data ``x: [N, ...]``, the diffusion loss averaged
    over ``num_times`` low-discrepancy times per datum (:func:`low_discrepancy_times`).

    Args:
        model: a :class:`LogSNRModel`.
        x: data ``[N, ...]``.
        num_times: ``k`` times per datum.
        variance_gradient: route the gradient of ``E[L^2]`` instead of ``E[L]`` to the shape of
            the schedule (VDM's variance minimisation; the endpoints, the network and the values
            are unchanged): each time's gradient through ``g(t)``, ``g'(t)`` is multiplied by
            twice its loss, once that loss is known (a backward hook; a no-op without autograd).
        generator: for the draws (common random numbers in validation).

    Returns:
        :class:`VDMTerms`; ``.total`` is an unbiased estimate of ``L_infinity``'s bound.
    """
    x0 = model.to_model_space(x)
    prior, reconstruction = _endpoint_terms(model, x, x0, generator)
    n, D = x0.shape
    t = low_discrepancy_times(n, num_times, x0, generator)
    scale: list[torch.Tensor] = []
    hook = _deferred_scale(scale) if variance_gradient else None
    gamma, slope = model.schedule.gamma_and_slope(t, hook)
    noise = torch.randn((n, num_times, D), device=x0.device, dtype=x0.dtype, generator=generator)
    x0k = x0.unsqueeze(1).expand(n, num_times, D)
    x_hat = model.denoise(q_sample(x0k, gamma, noise), gamma, **_repeat(conditions, num_times))
    loss = diffusion_loss(x0k, x_hat, gamma, slope)
    scale.append(2 * loss.detach())
    return VDMTerms(prior, reconstruction, loss.mean(-1))


def _deferred_scale(scale: list[torch.Tensor]):
    """A ``shape_gradient`` map whose gradient factor ``scale[0]`` is filled in after the
    forward pass (the loss it depends on is computed from the map's output)."""
    def apply(value: torch.Tensor) -> torch.Tensor:
        if value.requires_grad:
            value.register_hook(lambda grad: grad * scale[0])
        return value
    return apply


def _repeat(conditions: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """Per-datum inputs ``[N, ...]`` -> ``[N, k, ...]``."""
    return {key: v.unsqueeze(1).expand(v.shape[0], k, *v.shape[1:])
            for key, v in conditions.items()}


def discrete_estimate(model: LogSNRModel, x: torch.Tensor, num_steps: int, k: int = 10,
                      generator: torch.Generator | None = None,
                      **conditions: Any) -> VDMTerms:
    """A stratified unbiased estimate of the ``T``-step bound (``T = num_steps``) from about
    ``k`` network passes per datum: ``1..T`` cut into ``k`` strata of (nearly) equal width
    ``w_j`` (:func:`~ppgen.diffusion.strata_edges`), one step ``i_j`` drawn in each, and
    ``L_T ~ sum_j w_j term(i_j)``; a learned schedule spreads the bound evenly over time, so
    even strata suit it.

    Returns:
        :class:`VDMTerms` (``diffusion`` is the estimate of ``L_T``).
    """
    x0 = model.to_model_space(x)
    prior, reconstruction = _endpoint_terms(model, x, x0, generator)
    n, D = x0.shape
    edges = torch.tensor(strata_edges(num_steps, k, "uniform"), device=x0.device)
    lo, width = edges[:-1], edges.diff()
    u = torch.rand((n, len(width)), device=x0.device, dtype=x0.dtype, generator=generator)
    i = lo + 1 + (u * width).long().clamp(max=width - 1)  # steps 1..T
    gamma_t = model.schedule(i.to(x0.dtype) / num_steps)
    gamma_s = model.schedule((i - 1).to(x0.dtype) / num_steps)
    noise = torch.randn((n, len(width), D), device=x0.device, dtype=x0.dtype,
                        generator=generator)
    x0k = x0.unsqueeze(1).expand_as(noise)
    x_hat = model.denoise(q_sample(x0k, gamma_t, noise), gamma_t,
                          **_repeat(conditions, len(width)))
    terms = discrete_term(x0k, x_hat, gamma_s, gamma_t)
    return VDMTerms(prior, reconstruction, (terms * width.to(terms.dtype)).sum(-1))
