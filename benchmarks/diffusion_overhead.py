"""What the Pyro layer costs a diffusion model: ppgen vs. hand-written PyTorch, one process.

(a) a training step through the engine (:class:`ppgen.engine.step.Stepper`: the bound loss
    module of ``"diffusion-simple"``, ``zero_grad``, ``backward``, Adam) vs. a hand-written
    ``L_simple`` step (Ho et al., 2020, Algorithm 1) with the same network, batch and optimiser;
(b) the full bound of a batch through the Pyro programs (``ppgen.elbo(model, None, x,
    analytic_kl=True)``: the guide traced, the model replayed on it, closed-form KL per site)
    vs. a hand-written loop over ``t`` with the same network, the process's buffers and the
    same decoder distribution, drawing the same noise in the same order (so the two numbers
    agree to float precision, checked).

The model is the digits DDPM (U-Net, ``T = 1000``) with the papers' direct noise-predicting
network (``denoiser={"head": "direct"}``), so the hand-written side is the textbook loop. The
two sides alternate within each repeat and the ratio is taken per repeat; the median over
repeats is reported for wall-clock and for the thread's CPU time (on a shared machine the CPU
ratio is the steadier). Targets: (a) <= 1.10, (b) <= 1.15.

    python benchmarks/diffusion.py overhead
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pyro
import torch
from torch.nn import functional as F

import ppgen
from ppgen.data import load_digits
from ppgen.diffusion import DiscretizedGaussian, normal_kl
from ppgen.engine.distributed import Cluster
from ppgen.engine.optim import Optimizers, group_specs
from ppgen.engine.precision import Precision
from ppgen.engine.step import Stepper
from ppgen.inference import make_objective
from ppgen.models import DDPM

__all__ = ["overhead_table"]

CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}


def _model(seed: int = 0) -> DDPM:
    torch.manual_seed(seed)
    return DDPM.for_data(load_digits("categorical").info, denoiser={"head": "direct"})


def hand_simple_step(model: DDPM, x: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
    """One ``L_simple`` step written directly: ``t ~ U``, ``x_t``, regress the noise."""
    p = model.process
    x0 = 2 * x.float() / (model.num_levels - 1) - 1
    s = torch.randint(0, p.num_timesteps, (x0.shape[0],))
    noise = torch.randn_like(x0)
    x_t = p.sqrt_alphas_cumprod[s, None] * x0 + p.sqrt_one_minus_alphas_cumprod[s, None] * noise
    loss = F.mse_loss(model.network(x_t, p.times[s]), noise)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


@torch.no_grad()
def hand_bound(model: DDPM, x: torch.Tensor) -> torch.Tensor:
    """``L_T + sum_t L_{t-1} + L_0`` per datum, a loop over ``t`` (epsilon prediction, clipped
    ``x_0``, fixed-large variance), the guide's draws in the guide's order."""
    p, T = model.process, model.process.num_timesteps
    x0 = 2 * x.float() / (model.num_levels - 1) - 1
    mean, log_var = p.sqrt_alphas_cumprod[-1] * x0, p.log_one_minus_alphas_cumprod[-1]
    total = normal_kl(mean, log_var, torch.zeros(()), torch.zeros(())).sum(-1)
    x_t = mean + torch.exp(0.5 * log_var) * torch.randn_like(x0)
    for s in range(T - 1, -1, -1):
        eps = model.network(x_t, p.times[s])
        x0_hat = (p.sqrt_recip_alphas_cumprod[s] * x_t
                  - p.sqrt_recipm1_alphas_cumprod[s] * eps).clamp(-1, 1)
        mean_p = p.posterior_mean_coef1[s] * x0_hat + p.posterior_mean_coef2[s] * x_t
        log_var_p = p.large_log_variance[s]
        if s == 0:
            decoder = DiscretizedGaussian(mean_p, torch.exp(0.5 * log_var_p), model.num_levels)
            return total - decoder.log_prob(x).sum(-1)
        mean_q = p.posterior_mean_coef1[s] * x0 + p.posterior_mean_coef2[s] * x_t
        log_var_q = p.posterior_log_variance_clipped[s]
        total = total + normal_kl(mean_q, log_var_q, mean_p, log_var_p).sum(-1)
        x_t = mean_q + torch.exp(0.5 * log_var_q) * torch.randn_like(x0)
    raise AssertionError("unreachable")


def _alternate(ours: Callable[[], object], hand: Callable[[], object], repeats: int) -> dict:
    """Median per-repeat ratios (wall and CPU) of ``ours`` vs ``hand``, run alternately."""
    times = {(c, w): [] for c in CLOCKS for w in ("ppgen", "hand")}
    for _ in range(repeats):
        t0 = {c: f() for c, f in CLOCKS.items()}
        ours()
        t1 = {c: f() for c, f in CLOCKS.items()}
        hand()
        t2 = {c: f() for c, f in CLOCKS.items()}
        for c in CLOCKS:
            times[c, "ppgen"].append(t1[c] - t0[c])
            times[c, "hand"].append(t2[c] - t1[c])
    out = {}
    for c in CLOCKS:
        ratios = [a / b for a, b in zip(times[c, "ppgen"], times[c, "hand"])]
        out[c] = {"median_ratio": statistics.median(ratios), "ratios": ratios,
                  "median_seconds_ppgen": statistics.median(times[c, "ppgen"]),
                  "median_seconds_hand": statistics.median(times[c, "hand"])}
    return out


def training_overhead(batch: int, steps: int, repeats: int) -> dict:
    """(a): ``steps`` engine steps vs ``steps`` hand-written steps, per repeat."""
    ours, theirs = _model(), _model()
    x = load_digits("categorical").train[:batch]
    objective = make_objective("diffusion-simple")
    bound = objective(ours)
    groups = objective.param_groups(ours)
    optimizers = Optimizers(group_specs(groups, "adam", 1e-3, 0.0, None, 0, None))
    optimizers.build(groups)
    stepper = Stepper(bound, optimizers, Cluster(), Precision("fp32", x.device), None)
    plain = torch.optim.Adam(theirs.network.parameters(), 1e-3)
    ours.train(), theirs.train()

    def engine() -> None:
        for step in range(steps):
            stepper.step(x, {}, step, 1, 1.0)

    def hand() -> None:
        for _ in range(steps):
            hand_simple_step(theirs, x, plain)

    engine(), hand()  # warm-up
    return {"what": "training step (L_simple)", "batch": batch, "steps": steps,
            "target": 1.10, **_alternate(engine, hand, repeats)}


def bound_overhead(rows: int, repeats: int) -> dict:
    """(b): the full bound of ``rows`` test images, Pyro programs vs. the loop over ``t``."""
    model = _model().eval()
    x = load_digits("categorical").test[:rows]
    pyro.set_rng_seed(0)
    ours = -ppgen.elbo(model, None, x, analytic_kl=True, batch_size=rows)
    pyro.set_rng_seed(0)
    hand = hand_bound(model, x)
    torch.testing.assert_close(ours, hand, rtol=1e-4, atol=1e-3)
    result = _alternate(lambda: ppgen.elbo(model, None, x, analytic_kl=True, batch_size=rows),
                        lambda: hand_bound(model, x), repeats)
    return {"what": "full bound (T = 1000)", "rows": rows, "target": 1.15,
            "bound_nats": float(ours.mean()), **result}


def overhead_table(batch: int = 100, steps: int = 20, rows: int = 128,
                   repeats: int = 7) -> dict:
    """Both rows; prints one line each."""
    table = {"training": training_overhead(batch, steps, repeats),
             "bound": bound_overhead(rows, max(3, repeats // 2)),
             "threads": torch.get_num_threads()}
    for key in ("training", "bound"):
        r = table[key]
        print(f"{r['what']:<28} ppgen/hand median ratio: wall {r['wall']['median_ratio']:.3f}, "
              f"cpu {r['cpu']['median_ratio']:.3f} ({r['cpu']['median_seconds_ppgen']:.3f} s vs "
              f"{r['cpu']['median_seconds_hand']:.3f} s CPU; target <= {r['target']})",
              flush=True)
    return table
