"""What the probabilistic-programming layer costs: ppgen vs. hand-written PyTorch, one process.

(a) Time per training epoch of ppgen's VAE (``ppgen.engine.train`` with the model's default
    objective, through the trace-based evaluation layer) vs. a hand-written PyTorch loop with
    the same networks, batch size, optimiser and objective.
(b) Time of ``ppgen.log_likelihood`` with K = 1000 over the digits test set vs. a hand-written
    vectorised importance-weighted estimate with the same networks and chunking.

Both are ratios measured in the same run (median over repeats, alternating the two sides).
The last line prints the larger ratio. Target: <= 1.15.

    python benchmarks/overhead.py
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.distributions import Normal

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_results  # noqa: E402

import ppgen  # noqa: E402
from ppgen.data import load_digits  # noqa: E402
from ppgen.devices import resolve_device  # noqa: E402
from ppgen.distributions import DiscretizedLogisticMixtureHead  # noqa: E402
from ppgen.engine import train  # noqa: E402
from ppgen.evaluate import ROWS_PER_CHUNK  # noqa: E402
from ppgen.inference import make_objective  # noqa: E402
from ppgen.models import VAE  # noqa: E402


def hand_log_weights(vae: VAE, x: torch.Tensor, K: int) -> torch.Tensor:
    """``log p(x, z_k) - log q(z_k | x)``: ``[K, B]``, written directly against the networks."""
    loc, scale = vae.posterior(x)
    z = loc + scale * torch.randn((K, *loc.shape), device=x.device)
    log_q = Normal(loc, scale).log_prob(z).sum(-1)
    log_pz = Normal(0.0, 1.0).log_prob(z).sum(-1)
    return log_px(vae, x, z) + log_pz - log_q


def log_px(vae: VAE, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``log p(x | z)`` of the VAE's default decoder (discretised logistic mixture) by hand."""
    head = DiscretizedLogisticMixtureHead(vae.num_levels, vae.num_components)
    params = vae.decoder(z).reshape(*z.shape[:-1], vae.num_dims, head.num_params)
    return head.log_prob(params, x).sum(-1)


def hand_loss(vae: VAE, x: torch.Tensor, objective) -> torch.Tensor:
    """The same objective as ppgen's, by hand: IWAE-K, or the ELBO with closed-form KL."""
    K = objective.num_particles
    if objective.name == "iwae":
        log_w = hand_log_weights(vae, x, K)
        return -(torch.logsumexp(log_w, 0) - math.log(K)).mean()
    loc, scale = vae.posterior(x)
    z = loc + scale * torch.randn((K, *loc.shape), device=x.device)
    kl = 0.5 * (loc**2 + scale**2 - 1 - 2 * scale.log()).sum(-1)
    return -(log_px(vae, x, z).mean(0) - kl).mean()


def hand_epochs(vae, objective, x, epochs, batch_size, lr, seed) -> None:
    optimizer = torch.optim.Adam(vae.parameters(), lr=lr)
    for epoch in range(epochs):
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        for idx in torch.randperm(x.shape[0], generator=g).split(batch_size):
            optimizer.zero_grad(set_to_none=True)
            hand_loss(vae, x[idx], objective).backward()
            optimizer.step()


@torch.no_grad()
def hand_log_likelihood(vae: VAE, x: torch.Tensor, K: int) -> torch.Tensor:
    rows = max(1, ROWS_PER_CHUNK // K)
    parts = [torch.logsumexp(hand_log_weights(vae, xb, K), 0) - math.log(K)
             for xb in x.split(rows)]
    return torch.cat(parts)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure_training(digits, device, epochs, repeats, seed) -> dict:
    vae = VAE.for_data(digits.info).to(device)
    objective = make_objective(vae.default_objective, **vae.objective_defaults)
    batch_size, lr = vae.fit_defaults.get("batch_size", 128), vae.fit_defaults.get("lr", 1e-3)
    x = digits.train.to(device)
    ours, hand = [], []
    for _ in range(repeats):
        ours.append(timed(lambda: train(vae, objective, x, epochs=epochs, batch_size=batch_size,
                                        lr=lr, device=device, progress=False, seed=seed)))
        hand.append(timed(lambda: hand_epochs(vae, objective, x, epochs, batch_size, lr, seed)))
    return summary(ours, hand, epochs, "training epoch")


def measure_evaluation(digits, device, particles, repeats) -> dict:
    vae = VAE.for_data(digits.info).to(device).eval()
    x = digits.test.to(device)
    ours, hand = [], []
    for _ in range(repeats):
        ours.append(timed(lambda: _sync(ppgen.log_likelihood(vae, x, num_particles=particles))))
        hand.append(timed(lambda: _sync(hand_log_likelihood(vae, x, particles))))
    return summary(ours, hand, 1, f"log_likelihood K={particles}")


def _sync(t: torch.Tensor) -> torch.Tensor:
    if t.is_cuda:
        torch.cuda.synchronize()
    return t


def summary(ours: list[float], hand: list[float], per: int, what: str) -> dict:
    a, b = statistics.median(ours) / per, statistics.median(hand) / per
    return {"what": what, "ppgen_s": a, "hand_s": b, "ratio": a / b}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per timed training run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--particles", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    digits = load_digits("categorical")
    # warm-up: first calls pay for imports and allocator growth
    measure_training(digits, device, 1, 1, args.seed)
    rows = [measure_training(digits, device, args.epochs, args.repeats, args.seed),
            measure_evaluation(digits, device, args.particles, args.repeats)]
    for r in rows:
        print(f"{r['what']:<26} ppgen {r['ppgen_s'] * 1e3:9.1f} ms   hand-written "
              f"{r['hand_s'] * 1e3:9.1f} ms   ratio {r['ratio']:.3f}")
    worst = max(r["ratio"] for r in rows)
    path = write_results(f"overhead-{device.type}", {"rows": rows, "ratio": worst}, args.seed)
    print(f"written {path}")
    print(f"ratio {worst:.2f}")


if __name__ == "__main__":
    main()
