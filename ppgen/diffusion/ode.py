"""The probability-flow ODE and the exact likelihood it gives (Song et al., 2021, "Score-Based
Generative Modeling through Stochastic Differential Equations", arXiv:2011.13456, sec. 4.3).

A diffusion model's noise prediction ``eps(x, t)`` defines a deterministic flow with the same
marginals ``q(x_t)`` as the forward process (for the optimal ``eps``). Written in the log
signal-to-noise ratio ``lambda = log(abar / (1 - abar))``, with ``sigma^2 = 1 - abar =
sigmoid(-lambda)``, the variance-preserving probability-flow ODE is::

    dx / dlambda = (sigma^2 x - sigma eps(x, lambda)) / 2

(the DDIM ODE ``dxbar / dsigmabar = eps`` of Song, Meng & Ermon, 2021, in ``x = alpha xbar``).
Integrating it from the data (``lambda`` high) to the noise (``lambda`` low) with the
instantaneous change of variables (Chen et al., 2018) gives the density of the flow::

    log p(x_0) = log N(x_T; 0, I) + int_{data}^{noise} div_x(dx / dlambda) dlambda

where ``div_x(dx/dlambda) = (D sigma^2 - sigma div_x eps) / 2`` and ``div_x eps`` is computed
exactly by autograd (``D`` backward passes: meant for small ``D``, the 2-D toys and tabular
data). The integrator is the classical fourth-order Runge-Kutta with fixed steps uniform in
``lambda``, written here (no ODE dependency).

Discrete-time models: their ``T`` steps sit at the times ``t_s = (s + 1) / T`` with
``lambda_s``; between the steps ``lambda`` is interpolated linearly in ``t``
(:func:`time_of_log_snr` is its inverse) and the network is asked at the time of the current
``lambda``. Above the first step (less noise than any the network was trained at) the score
``-eps / sigma`` is held at its value at ``lambda_1``, i.e. ``eps(x, lambda) = (sigma /
sigma_1) eps(x, lambda_1)``, which is exact to first order in ``sigma_1^2`` for data smooth at
that scale; the integration starts ``margin`` above ``lambda_1``, where ``sigma`` is
``e^{-margin/2}`` times smaller and the rest of the path to the data moves ``x`` by about
``2 sigma |eps|``.

Example:
    >>> from ppgen.diffusion import GaussianDiffusion, make_betas
    >>> process = GaussianDiffusion(make_betas("linear", 100))
    >>> eps = lambda x, time, log_snr: x * torch.sigmoid(-log_snr).sqrt()  # data ~ N(0, I)
    >>> x = torch.zeros(3, 2)
    >>> ode_log_likelihood(eps, x, process, steps=50)  # log N(0; 0, I) in 2-D
    tensor([-1.8379, -1.8379, -1.8379])
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ppgen.diffusion.process import GaussianDiffusion

__all__ = ["EpsilonFn", "log_snr_grid", "time_of_log_snr", "log_snr_at",
           "ode_log_likelihood", "flow_velocity"]

#: ``eps(x [N, D], time [], log_snr []) -> [N, D]``: the noise prediction at a continuous time
EpsilonFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

#: how far above the first step's log-SNR the integration starts (see the module docstring)
DEFAULT_MARGIN = 12.0


def log_snr_grid(process: GaussianDiffusion) -> torch.Tensor:
    """``[T]`` the log-SNR ``lambda_s = log(abar_s / (1 - abar_s))`` of each step (decreasing),
    in float64 on the process's device."""
    abar = process.alphas_cumprod.double()
    return torch.log(abar) - torch.log1p(-abar)


def time_of_log_snr(process: GaussianDiffusion, log_snr: torch.Tensor) -> torch.Tensor:
    """The time ``t`` in ``[t_1, 1]`` at which the piecewise-linear ``lambda(t)`` through the
    steps ``(t_s, lambda_s)`` equals ``log_snr`` (a scalar tensor; clamped to the grid)."""
    grid = log_snr_grid(process).flip(0)  # increasing
    times = process.times.double().flip(0)
    lam = log_snr.double().clamp(grid[0], grid[-1])
    i = torch.searchsorted(grid, lam.reshape(1)).clamp(1, len(grid) - 1)[0]
    if len(grid) == 1:
        return times[0]
    w = (lam - grid[i - 1]) / (grid[i] - grid[i - 1])
    return times[i - 1] + w * (times[i] - times[i - 1])


def log_snr_at(process: GaussianDiffusion, time: torch.Tensor) -> torch.Tensor:
    """``lambda(t)``: the log-SNR at times ``time`` (any shape) interpolated linearly between
    the steps, constant outside ``[t_1, 1]`` (the inverse of :func:`time_of_log_snr`)."""
    grid, times = log_snr_grid(process), process.times.double()
    t = time.double().clamp(times[0], times[-1])
    i = torch.searchsorted(times, t.reshape(-1)).clamp(1, max(len(times) - 1, 1))
    if len(times) == 1:
        return grid[0].expand(t.shape)
    w = (t.reshape(-1) - times[i - 1]) / (times[i] - times[i - 1])
    return (grid[i - 1] + w * (grid[i] - grid[i - 1])).reshape(t.shape)


def flow_velocity(eps_fn: EpsilonFn, process: GaussianDiffusion, x: torch.Tensor,
                  log_snr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dx/dlambda [N, D], div_x dx/dlambda [N])`` at ``x`` and ``log_snr`` (exact
    divergence: one backward pass per dimension)."""
    sigma2 = torch.sigmoid(-log_snr).to(x.dtype)
    sigma = sigma2.sqrt()
    asked = log_snr.clamp(max=log_snr_grid(process)[0])  # no less noise than the first step
    time = time_of_log_snr(process, asked).to(x.dtype)
    held = (torch.sigmoid(-log_snr) / torch.sigmoid(-asked)).sqrt().to(x.dtype)
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        eps = held * eps_fn(x, time, asked.to(x.dtype))
        div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for i in range(x.shape[-1]):
            (grad,) = torch.autograd.grad(eps[:, i].sum(), x, retain_graph=i < x.shape[-1] - 1)
            div = div + grad[:, i]
    velocity = 0.5 * (sigma2 * x.detach() - sigma * eps.detach())
    return velocity, 0.5 * (x.shape[-1] * sigma2 - sigma * div)


def ode_log_likelihood(eps_fn: EpsilonFn, x0: torch.Tensor, process: GaussianDiffusion,
                       steps: int = 100, margin: float = DEFAULT_MARGIN) -> torch.Tensor:
    """``log p(x_0)`` of the probability-flow ODE of ``eps_fn`` (in model space).

    Args:
        eps_fn: the noise prediction at a continuous time (:data:`EpsilonFn`).
        x0: ``[N, D]`` data in model space.
        process: the diffusion (its schedule sets the ``lambda`` range and the times).
        steps: fixed RK4 steps, uniform in ``lambda`` (four ``eps`` evaluations each, each
            with ``D`` backward passes).
        margin: the integration starts at ``lambda_1 + margin``.

    Returns:
        ``[N]`` log-densities (nats) of ``x0`` under the flow with the prior ``N(0, I)``.

    Raises:
        ValueError: ``steps < 1`` or data that are not ``[N, D]``.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if x0.dim() != 2:
        raise ValueError(f"x0 must be [N, D], got shape {tuple(x0.shape)}")
    grid = log_snr_grid(process)
    hi, lo = grid[0] + margin, grid[-1]
    h = (lo - hi) / steps
    x, total = x0, torch.zeros(x0.shape[0], dtype=x0.dtype, device=x0.device)
    for k in range(steps):
        lam = hi + k * h
        x, change = _rk4_step(eps_fn, process, x, lam, h)
        total = total + change
    prior = -0.5 * (x.pow(2).sum(-1) + x.shape[-1] * math.log(2 * math.pi))
    return prior + total


def _rk4_step(eps_fn: EpsilonFn, process: GaussianDiffusion, x: torch.Tensor,
              lam: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One classical Runge-Kutta step of ``(x, int div)`` from ``lam`` by ``h``."""
    hx = h.to(x.dtype)
    v1, d1 = flow_velocity(eps_fn, process, x, lam)
    v2, d2 = flow_velocity(eps_fn, process, x + 0.5 * hx * v1, lam + 0.5 * h)
    v3, d3 = flow_velocity(eps_fn, process, x + 0.5 * hx * v2, lam + 0.5 * h)
    v4, d4 = flow_velocity(eps_fn, process, x + hx * v3, lam + h)
    x = x + hx / 6 * (v1 + 2 * v2 + 2 * v3 + v4)
    return x, hx / 6 * (d1 + 2 * d2 + 2 * d3 + d4)
