"""What the diffusion objectives and samplers need from a model, and the bound's terms.

A diffusion model (``ppgen.models.DDPM`` and its kin) satisfies :class:`DenoisingModel`: its
process, its network's output, its map from data to model space and its decoder. The
functions here compute, from those alone, the terms of the variational bound (Ho et al., 2020,
arXiv:2006.11239, eq. 5; Sohl-Dickstein et al., 2015)::

    -log p(x_0) <= L_T + sum_{t=2..T} L_{t-1} + L_0
    L_T     = KL(q(x_T | x_0) || N(0, I))
    L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))
    L_0     = -log p(x_0 | x_1)               (the decoder over the data's levels)

in nats per datum, the regression loss ``L_simple`` and a strided unbiased estimate of the
bound for validation. The model's Pyro programs give the same bound through
``ppgen.elbo(model, None, x)``; :func:`bound_terms` is the same sum written directly, term by
term, with the guide's draws in the guide's order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch.distributions import Distribution, Independent

from ppgen.diffusion.process import GaussianDiffusion, ReverseStep

__all__ = [
    "DenoisingModel",
    "BoundTerms",
    "reverse_step",
    "step_terms",
    "prior_term",
    "bound_terms",
    "bound_per_dim",
    "strided_bound",
    "strata_edges",
    "STRATA",
    "simple_loss",
    "hybrid_terms",
    "uniform_steps",
]


@runtime_checkable
class DenoisingModel(Protocol):
    """The words a diffusion model speaks to its objectives and samplers.

    Attributes:
        process: its :class:`~ppgen.diffusion.GaussianDiffusion` (``T`` steps).
    """

    process: GaussianDiffusion

    def denoise(self, x_t: torch.Tensor, s: int | torch.Tensor,
                process: GaussianDiffusion | None = None, **conditions: Any) -> torch.Tensor:
        """The network's output ``[..., D * process.output_multiplier]`` at ``x_t: [..., D]``
        and step index ``s`` of ``process`` (default: the model's own)."""
        ...

    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        """Data ``[N, ...]`` (levels, or reals) -> ``x_0: [N, D]`` in model space."""
        ...

    def decoder(self, mean: torch.Tensor, log_scale: torch.Tensor) -> Distribution:
        """``p(x_0 | x_1)`` over the data (batch ``mean.shape[:-1]``, event the datum's) from
        the Gaussian ``N(mean, exp(log_scale)^2)`` in model space."""
        ...


@dataclass(frozen=True)
class BoundTerms:
    """The terms of the variational bound of ``N`` data, in nats.

    Attributes:
        prior: ``[N]`` ``L_T``.
        steps: ``[N, T]``; column ``s`` is the term of step index ``s``: ``L_0`` (the decoder's
            negative log-likelihood) in column 0, ``L_s = KL(q(x_s | x_{s+1}, x_0) ||
            p(x_s | x_{s+1}))`` in column ``s >= 1``.
    """

    prior: torch.Tensor
    steps: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        """``[N]`` the bound ``L_T + sum_s L_s`` on ``-log p(x_0)``."""
        return self.prior + self.steps.sum(-1)


def reverse_step(model: DenoisingModel, x_t: torch.Tensor, s: int | torch.Tensor,
                 process: GaussianDiffusion | None = None, **conditions: Any) -> ReverseStep:
    """``p(x_{t-1} | x_t)`` of ``model`` at ``x_t`` and index ``s`` of ``process``."""
    process = model.process if process is None else process
    return process.p_mean_variance(model.denoise(x_t, s, process, **conditions), x_t, s)


def prior_term(process: GaussianDiffusion, x0: torch.Tensor) -> torch.Tensor:
    """``L_T`` per datum: ``[...]`` for ``x0: [..., D]``."""
    return process.prior_kl(x0).sum(-1)


def step_terms(model: DenoisingModel, x: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor,
               s: torch.Tensor, output: torch.Tensor | None = None,
               **conditions: Any) -> torch.Tensor:
    """The bound's term of step index ``s`` per datum: ``[B]`` nats.

    Args:
        x: data ``[B, ...]`` (for the decoder's term at ``s = 0``).
        x0: ``[B, D]`` the data in model space.
        x_t: ``[B, D]`` a draw of ``q(x_{s+1} | x_0)`` (or of the guide).
        s: ``[B]`` step indices.
        output: the network's output at ``(x_t, s)`` when the caller has it (e.g. with the
            mean's part detached, :meth:`GaussianDiffusion.freeze_mean`).
    """
    process = model.process
    if output is None:
        output = model.denoise(x_t, s, process, **conditions)
    step = process.p_mean_variance(output, x_t, s)
    kl = process.step_kl(x0, x_t, s, step).sum(-1)
    nll = -model.decoder(step.mean, 0.5 * step.log_variance).log_prob(x)
    return torch.where(s == 0, nll, kl)


def bound_terms(model: DenoisingModel, x: torch.Tensor, **conditions: Any) -> BoundTerms:
    """Every term of the bound for data ``x: [N, ...]``, one network pass per step.

    ``x_T ~ q(x_T | x_0)`` and then ``x_{t-1} ~ q(x_{t-1} | x_t, x_0)`` are drawn in the
    guide's order, so under the same seed the sum equals ``-ppgen.elbo(model, None, x)``
    (closed-form KL) exactly.
    """
    columns = _columns(model, x, conditions, per_dim=False)
    prior = next(columns).sum(-1)
    steps = [column.sum(-1) for column in columns]
    return BoundTerms(prior, torch.stack(steps[::-1], dim=-1))


def bound_per_dim(model: DenoisingModel, x: torch.Tensor, **conditions: Any) -> torch.Tensor:
    """The bound of ``x: [N, D]`` split over the data's dimensions: ``[N, D]`` nats summing
    to :func:`bound_terms`' total under the same seed.

    Every term factorises over dimensions (diagonal Gaussians, a decoder independent per
    dimension given ``x_1``), so dimension ``d``'s share is ``L_T,d + sum_t L_{t-1},d +
    L_0,d``: where the reverse chain failed to explain that pixel (the network itself sees all
    pixels, so a share is not a conditional likelihood).
    """
    return sum(_columns(model, x, conditions, per_dim=True))


def _columns(model: DenoisingModel, x: torch.Tensor, conditions: dict[str, Any],
             per_dim: bool) -> Iterator[torch.Tensor]:
    """The bound's terms per dimension ``[N, D]``: ``L_T``, then the steps from ``s = T - 1``
    down to the decoder's ``L_0`` (``[N, 1]`` unless ``per_dim``), with the guide's draws in
    the guide's order."""
    process = model.process
    x0 = model.to_model_space(x)
    T = process.num_timesteps
    yield process.prior_kl(x0)
    mean, _, log_var = process.q_mean_variance(x0, T - 1)
    x_t = torch.distributions.Normal(mean, torch.exp(0.5 * log_var)).rsample()
    for s in range(T - 1, 0, -1):
        step = reverse_step(model, x_t, s, **conditions)
        yield process.step_kl(x0, x_t, s, step)
        mean, _, log_var = process.q_posterior(x0, x_t, s)
        x_t = torch.distributions.Normal(mean, torch.exp(0.5 * log_var)).rsample()
    step = reverse_step(model, x_t, 0, **conditions)
    decoder = model.decoder(step.mean, 0.5 * step.log_variance)
    if not per_dim:
        yield -decoder.log_prob(x).unsqueeze(-1)
    elif isinstance(decoder, Independent):
        yield -decoder.base_dist.log_prob(x)
    else:
        raise TypeError("per-dimension terms need a decoder independent over dimensions "
                        "(a torch Independent)")


def uniform_steps(T: int, shape: tuple[int, ...], device: torch.device,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Step indices ``[*shape]`` drawn uniformly from ``0..T-1``."""
    return torch.randint(0, T, shape, device=device, generator=generator)


#: how :func:`strided_bound` cuts ``0..T-1`` into strata
STRATA = ("uniform", "geometric")


def strata_edges(T: int, k: int, strata: str = "geometric") -> list[int]:
    """Edges ``0 = e_0 < e_1 < ... < e_m = T`` of the strata of :func:`strided_bound`.

    ``"uniform"``: ``m = k`` strata of (nearly) equal width ``T / k``, ``e_j = round(j T / k)``.
    ``"geometric"``: ``e_j = round(T^(j / k))`` (duplicates dropped) after ``e_0 = 0``: widths
    that double, so the first steps — where the bound of discrete data concentrates — are
    their own strata and counted exactly (about ``k + 1`` strata).
    """
    if strata not in STRATA:
        raise ValueError(f"unknown strata {strata!r}: use one of {STRATA}")
    k = max(1, min(k, T))
    if strata == "uniform":
        points = [round(j * T / k) for j in range(k + 1)]
    else:
        points = [0] + [round(T ** (j / k)) for j in range(k + 1)]
    return sorted(set(points))


def strided_bound(model: DenoisingModel, x: torch.Tensor, num_steps: int = 1,
                  generator: torch.Generator | None = None, strata: str = "uniform",
                  **conditions: Any) -> torch.Tensor:
    """An unbiased estimate of the bound per datum from about ``k = num_steps`` network passes.

    ``0..T-1`` is cut into strata (:func:`strata_edges`); one step ``s_j`` is drawn uniformly in
    each stratum ``j`` of width ``w_j``, with ``x_t ~ q(x_t | x_0)`` drawn afresh, and the
    estimate is ``L_T + sum_j w_j L_{s_j}``: each step's term is counted with probability
    ``1 / w_j`` and weight ``w_j``, so the expectation is the full sum. ``"uniform"`` strata
    with ``k = 1`` are the plain ``T L_t``, ``t ~ U{1..T}``; ``"geometric"`` strata suit
    bounds dominated by the first steps (levels data) and have far lower variance there.

    Returns:
        ``[N]`` nats (a cheaper stand-in for :func:`bound_terms` in validation).
    """
    process = model.process
    x0 = model.to_model_space(x)
    T, n, D = process.num_timesteps, x0.shape[0], x0.shape[-1]
    edges = torch.tensor(strata_edges(T, num_steps, strata), device=x0.device)
    lo, width = edges[:-1], edges.diff()
    k = len(width)
    u = torch.rand((n, k), device=x0.device, dtype=x0.dtype, generator=generator)
    s = lo + (u * width).long().clamp(max=width - 1)
    noise = torch.randn((n, k, D), device=x0.device, dtype=x0.dtype, generator=generator)
    x0k = x0.unsqueeze(1).expand(n, k, D)
    x_t = process.q_sample(x0k, s, noise)
    expanded = {key: _repeat(value, k) for key, value in conditions.items()}
    terms = step_terms(model, _repeat(x, k), x0k.reshape(n * k, -1), x_t.reshape(n * k, -1),
                       s.reshape(-1), **expanded)
    return prior_term(process, x0) + (terms.reshape(n, k) * width.to(terms.dtype)).sum(-1)


def _repeat(value: torch.Tensor, k: int) -> torch.Tensor:
    """``[N, ...]`` -> ``[N * k, ...]``, each row ``k`` times in a row."""
    return value.repeat_interleave(k, dim=0)


def simple_loss(model: DenoisingModel, x0: torch.Tensor, s: torch.Tensor,
                noise: torch.Tensor | None = None, **conditions: Any) -> torch.Tensor:
    """Ho et al.'s ``L_simple`` per datum: ``[B]`` mean over dimensions of the squared error
    between the network's prediction and its target (the noise, ``x_0`` or ``v``).

    Args:
        x0: ``[B, D]`` data in model space.
        s: ``[B]`` step indices.
        noise: ``[B, D]`` the noise of ``x_t`` (drawn when ``None``).
    """
    return _regression(model, x0, s, noise, conditions)[2]


def hybrid_terms(model: DenoisingModel, x: torch.Tensor, s: torch.Tensor,
                 noise: torch.Tensor | None = None,
                 **conditions: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``L_simple`` and the bound's term ``L_s`` per datum from one network pass, the term
    with the stop-gradient on the reverse mean (Nichol & Dhariwal, 2021, section 3.1: only the
    learned variance learns from it).

    Args:
        x: data ``[B, ...]``.
        s: ``[B]`` step indices.
        noise: ``[B, D]`` the noise of ``x_t`` (drawn when ``None``).

    Returns:
        ``(mse [B], term [B])``: the squared error (mean over dimensions) and ``L_s`` in nats.
    """
    x0 = model.to_model_space(x)
    x_t, output, mse = _regression(model, x0, s, noise, conditions)
    frozen = model.process.freeze_mean(output)
    return mse, step_terms(model, x, x0, x_t, s, output=frozen, **conditions)


def _regression(model: DenoisingModel, x0: torch.Tensor, s: torch.Tensor,
                noise: torch.Tensor | None, conditions: dict[str, Any]):
    """``(x_t, output, mse)``: a draw of ``q(x_t | x_0)``, the network at it, the error."""
    process = model.process
    noise = torch.randn_like(x0) if noise is None else noise
    x_t = process.q_sample(x0, s, noise)
    output = model.denoise(x_t, s, process, **conditions)
    target = process.training_target(x0, noise, s)
    return x_t, output, (output[..., : x0.shape[-1]] - target).pow(2).mean(-1)
