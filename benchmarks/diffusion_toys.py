"""Diffusion models on the 2-D toys: the bound and the probability-flow likelihood beside the
true density, and the bound an exact denoiser reaches.

Each toy (10,000 training points) trains one model with :data:`TOY_FIT`; the 2,000 test points
are then scored three ways, per point and paired with the true density
(``ppgen.data.toy_log_density``), so the excess ``NLL - true NLL`` has a small standard error:

* ``bound``: the variational bound ``L_T + sum_t L_{t-1} + L_0`` (``model.bound_terms``, equal
  to ``-ppgen.elbo`` under one seed), averaged over ``draws`` draws of the forward process per
  point (one draw has a standard deviation of several nats per point on continuous data);
* ``ode``: the exact log-density of the model's probability-flow ODE
  (``model.ode_log_likelihood``, RK4 with ``ode_steps`` steps) — a density, not a bound;
* ``true``: the toy's own NLL of the same points (the floor of BENCHMARKS.md is its expectation).

:func:`exact_gap` answers "how far can the bound go?": the eight Gaussians have a closed-form
optimal denoiser (a Gaussian mixture's posterior mean), and plugging it into the model gives
the bound of a perfect network with the model's ``T``, schedule and reverse variance — and with
the optimal per-``x_t`` isotropic variance (``beta~_t + coef1^2 tr Cov(x_0 | x_t) / D``, what a
learned variance can at best reach).
"""

from __future__ import annotations

import math
import time

import pyro
import torch
from torch import nn

import ppgen
from ppgen.data import load_toy, toy_log_density
from ppgen.diffusion import GaussianDiffusion, ReverseStep
from ppgen.models import DDPM
from ppgen.protocol import model_class

__all__ = ["TOY_FLOORS", "TOY_OPTIONS", "TOY_FIT", "run_toy", "exact_gap"]

#: the toys with a closed-form density and their entropies (BENCHMARKS.md)
TOY_FLOORS = {"eight_gaussians": 1.698, "checkerboard": 2.079, "rings": 2.410}
#: a recipe for the toys (MLP denoiser; 10,000 training points). The first recipe (width 128,
#: 60 epochs of batch 256: 2,400 steps, data / 2) left the eight Gaussians' ODE NLL 0.95 nats
#: above the truth; 8,000 steps of width 256 halved that gap to 0.25; the fine structure (std
#: 0.1) is learnt at small noise, which uniform steps visit about twice as often with the data
#: at unit scale, so data_scale=1 and 10,000 steps of batch 512 with the weight average.
TOY_OPTIONS = {"data_scale": 1.0, "denoiser": {"kind": "mlp", "width": 256, "blocks": 3}}
TOY_FIT = {"epochs": 500, "batch_size": 512, "lr": 1e-3, "patience": False, "warmup_steps": 200,
           "ema": 0.999, "lr_schedule": "cosine"}


def paired(nll: torch.Tensor, true: torch.Tensor) -> dict:
    """Mean NLL, its standard error, and the excess over the true NLL with the paired
    standard error."""
    n = len(nll)
    diff = (nll - true).double()
    return {"nll": float(nll.mean()), "se": float(nll.double().std() / math.sqrt(n)),
            "excess": float(diff.mean()), "excess_se": float(diff.std() / math.sqrt(n))}


def score_toy(model, toy: str, x: torch.Tensor, seed: int, draws: int, ode_steps: int) -> dict:
    """The bound (averaged over ``draws``), its terms, and the ODE likelihood of ``x``."""
    model.eval()
    true = -toy_log_density(toy, x)
    totals, prior, steps, decoder = 0.0, 0.0, 0.0, 0.0
    for r in range(draws):
        pyro.set_rng_seed(seed + r)
        terms = model.bound_terms(x)
        totals = totals + terms.total / draws
        prior += float(terms.prior.mean()) / draws
        steps += float(terms.steps[:, 1:].sum(-1).mean()) / draws
        decoder += float(terms.steps[:, 0].mean()) / draws
    start = time.perf_counter()
    ode = -model.ode_log_likelihood(x, steps=ode_steps, batch_size=500)
    return {"true": float(true.mean()), "bound": paired(totals, true), "draws": draws,
            "prior": prior, "steps": steps, "decoder": decoder,
            "ode": paired(ode, true), "ode_steps": ode_steps,
            "ode_seconds": time.perf_counter() - start, "n": len(x)}


def run_toy(toy: str, name: str, seed: int, device: str, draws: int = 8,
            ode_steps: int = 100) -> dict:
    """Train ``name`` on ``toy`` with the recipe and score its test points."""
    data = load_toy(toy, seed=seed)
    pyro.set_rng_seed(seed)
    model = model_class(name).for_data(data.info, **TOY_OPTIONS)
    start = time.perf_counter()
    history = ppgen.fit(model, data.train, data.val, seed=seed, device=device, progress=False,
                        **TOY_FIT)
    seconds = time.perf_counter() - start
    result = score_toy(model, toy, data.test.to(model.device), seed, draws, ode_steps)
    return {"toy": toy, "model": name, "seed": seed, "floor": TOY_FLOORS[toy], **result,
            "epochs": len(history), "best_epoch": history.best_epoch, "seconds": seconds,
            "options": TOY_OPTIONS, "fit": TOY_FIT}


# --------------------------------------------------------------------------- the exact gap
class EightGaussiansDenoiser(nn.Module):
    """The optimal noise prediction for the eight Gaussians (model space: data / scale), and
    the posterior's mean spread ``tr Cov(x_0 | x_t) / D`` it leaves in :attr:`spread`."""

    def __init__(self, process: GaussianDiffusion, scale: float) -> None:
        super().__init__()
        angles = torch.arange(8, dtype=torch.float64) * 2 * math.pi / 8
        self.register_buffer("means", torch.stack([angles.cos(), angles.sin()], -1) * 2 / scale)
        self.var, self.process = 0.04 / scale**2, process
        self.spread = torch.zeros(())

    def forward(self, x_t: torch.Tensor, s: int) -> torch.Tensor:
        abar = self.process.alphas_cumprod[s].double()
        total = abar * self.var + 1 - abar
        d = x_t.double().unsqueeze(-2) - abar.sqrt() * self.means  # [N, 8, 2]
        w = torch.softmax(-(d**2).sum(-1) / (2 * total), -1).unsqueeze(-1)
        x0_k = self.means + abar.sqrt() * self.var / total * d
        x0 = (w * x0_k).sum(-2)
        inner = self.var * (1 - abar) / total
        self.spread = inner + (w * (x0_k - x0.unsqueeze(-2)) ** 2).sum(-2).mean(-1, True)
        return ((x_t.double() - abar.sqrt() * x0) / (1 - abar).sqrt()).to(x_t.dtype)


def exact_gap(num_steps: int = 1000, schedule: str = "cosine", scale: float = 2.0,
              draws: int = 8, n: int = 2000, seed: int = 0) -> dict:
    """The bound of the optimal network on the eight Gaussians' test points, per variance
    choice (``fixed-small``, ``fixed-large``, and ``optimal``: the per-``x_t`` variance of the
    true reverse step), beside their true NLL."""
    x = load_toy("eight_gaussians", seed=seed).test[:n]
    true = -toy_log_density("eight_gaussians", x)
    out = {"num_steps": num_steps, "schedule": schedule, "data_scale": scale, "draws": draws,
           "true": float(true.mean())}
    for variance in ("fixed-small", "fixed-large", "optimal"):
        model = _exact_model(num_steps, schedule, scale, variance)
        total = 0.0
        for r in range(draws):
            pyro.set_rng_seed(seed + r)
            total = total + model.bound_terms(x).total / draws
        out[variance] = paired(total, true)
    return out


def _exact_model(num_steps: int, schedule: str, scale: float, variance: str) -> DDPM:
    fixed = "fixed-large" if variance == "optimal" else variance
    model = DDPM(2, num_steps=num_steps, schedule=schedule, likelihood="continuous",
                 data_scale=scale, variance=fixed, denoiser={"width": 8, "blocks": 1})
    net = EightGaussiansDenoiser(model.process, scale)
    model.denoise = lambda x_t, s, process=None, **conditions: net(x_t, s)
    if variance == "optimal":
        process, plain = model.process, model.process.p_mean_variance

        def optimal(output, x_t, s):
            step = plain(output, x_t, s)
            var = (process.posterior_variance[s] + process.posterior_mean_coef1[s] ** 2
                   * net.spread.to(x_t.dtype))
            return ReverseStep(step.mean, var.log().expand_as(step.mean), step.x0, step.eps)

        process.p_mean_variance = optimal
    return model
