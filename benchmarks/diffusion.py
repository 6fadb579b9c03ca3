"""Diffusion models: the discrete bound on the digits and the density bound on the 2-D toys.

(a) digits (BENCHMARKS.md, "Diffusion on the digits"): categorical 17 levels, the decoder over
the levels; each model trained with its ``fit_defaults`` (early stopping on the strided
validation bound), then the test set scored once: the full bound ``-ppgen.elbo(model, None, x,
analytic_kl=True)`` in nats per image (one pass per step, no strided estimate), its terms
(prior ``L_T``, ``sum_t L_{t-1}``, decoder ``L_0``) and the time per image of DDIM with
10/50/100 steps and of the ancestral sampler.

(b) toys: test bound in nats per point beside the toy's entropy (the floor of BENCHMARKS.md).

    python benchmarks/diffusion.py digits --models ddpm improved-ddpm --seeds 0
    python benchmarks/diffusion.py digits --models vdm --seeds 0 1 2
    python benchmarks/diffusion.py toys --models improved-ddpm --seeds 0
    python benchmarks/diffusion.py overhead

(c) overhead: a training step through the engine and the full bound through the Pyro programs,
each against hand-written PyTorch with the same network (``diffusion_overhead.py``).

VDM's digits rows add its continuous-time bound (the limit ``T -> infinity`` of its ``T``-step
bound, estimated at 100 times per image) and its learned schedule's endpoints.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pyro
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_results  # noqa: E402

import ppgen  # noqa: E402
import ppgen.models  # noqa: E402,F401
from ppgen.data import load_digits, load_toy  # noqa: E402
from ppgen.protocol import model_class  # noqa: E402

#: the toys with a closed-form density and their entropies (BENCHMARKS.md)
TOY_FLOORS = {"eight_gaussians": 1.698, "checkerboard": 2.079, "rings": 2.410}
#: a recipe for the toys (MLP denoiser; 10,000 training points)
TOY_OPTIONS = {"data_scale": 2.0, "denoiser": {"kind": "mlp", "width": 128, "blocks": 3}}
TOY_FIT = {"epochs": 60, "batch_size": 256, "lr": 2e-3, "patience": 20, "warmup_steps": 100}
#: DDIM step counts of the sampling-time rows
DDIM_STEPS = (10, 50, 100)


def score(model, x: torch.Tensor, seed: int) -> dict:
    """The full bound of ``x`` (nats per datum) through the evaluation layer, and its terms."""
    pyro.set_rng_seed(seed)
    model.eval()
    bound = -ppgen.elbo(model, None, x, analytic_kl=True, batch_size=128)
    pyro.set_rng_seed(seed)
    terms = model.bound_terms(x)
    return {"bound": float(bound.mean()), "prior": float(terms.prior.mean()),
            "steps": float(terms.steps[:, 1:].sum(-1).mean()),
            "decoder": float(terms.steps[:, 0].mean()), "n": len(x)}


def sampling_times(model, n: int = 64) -> dict:
    """Seconds per image of each sampler."""
    times = {}
    for name, options in [("ancestral", {}), *[(f"ddim{s}", {"sampler": "ddim", "steps": s})
                                               for s in DDIM_STEPS]]:
        start = time.perf_counter()
        model.sample(n, **options)
        times[name] = (time.perf_counter() - start) / n
    return times


def vdm_extras(model, x: torch.Tensor, seed: int) -> dict:
    """VDM's continuous-time bound (nats per datum) and its learned schedule's endpoints."""
    pyro.set_rng_seed(seed)
    continuous = model.continuous_bound(x, num_times=100)
    gamma_0, gamma_1 = (float(g) for g in model.schedule.endpoints())
    return {"continuous_bound": float(continuous.total.mean()),
            "continuous_diffusion": float(continuous.diffusion.mean()),
            "gamma_0": gamma_0, "gamma_1": gamma_1}


def run_digits(name: str, seed: int, device: str, epochs: int | None) -> dict:
    digits = load_digits("categorical")
    pyro.set_rng_seed(seed)
    model = model_class(name).for_data(digits.info)
    start = time.perf_counter()
    history = ppgen.fit(model, digits.train, digits.val, seed=seed, device=device,
                        progress=False, epochs=epochs)
    seconds = time.perf_counter() - start
    test = digits.test.to(model.device)
    extra = vdm_extras(model, test, seed) if name == "vdm" else {}
    return {"model": name, "seed": seed, **score(model, test, seed), **extra,
            "epochs": len(history),
            "best_epoch": history.best_epoch, "best_val": history.best_val,
            "seconds": seconds, "num_parameters": model.num_parameters(),
            "sampling_seconds_per_image": sampling_times(model)}


def run_toy(toy: str, name: str, seed: int, device: str) -> dict:
    data = load_toy(toy, seed=seed)
    pyro.set_rng_seed(seed)
    model = model_class(name).for_data(data.info, **TOY_OPTIONS)
    start = time.perf_counter()
    ppgen.fit(model, data.train, data.val, seed=seed, device=device, progress=False,
              **TOY_FIT)
    seconds = time.perf_counter() - start
    result = score(model, data.test.to(model.device), seed)
    return {"toy": toy, "model": name, "seed": seed, **result,
            "floor": TOY_FLOORS[toy], "excess": result["bound"] - TOY_FLOORS[toy],
            "seconds": seconds}


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def digits(args) -> None:
    runs = []
    for name in args.models:
        for seed in args.seeds:
            r = run_digits(name, seed, args.device, args.epochs)
            runs.append(r)
            print(f"{name:<14} seed {seed}: test bound {r['bound']:.2f} nats/image (prior "
                  f"{r['prior']:.3f}, steps {r['steps']:.2f}, decoder {r['decoder']:.2f}); "
                  f"{r['epochs']} epochs, {r['seconds']:.0f} s"
                  + (f"; continuous-time bound {r['continuous_bound']:.2f}"
                     if "continuous_bound" in r else ""), flush=True)
    lines = ["| model | test bound (nats/image) | prior | sum of steps | decoder |",
             "|---|---|---|---|---|"]
    for name in args.models:
        rows = [r for r in runs if r["model"] == name]
        cells = [_mean_sd([r[k] for r in rows]) for k in ("bound", "prior", "steps", "decoder")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    seeds = "-".join(map(str, args.seeds))
    path = write_results(args.name or f"diffusion-digits-seed{seeds}",
                         {"runs": runs, "table": text}, args.seeds)
    print(f"written {path}")


def toys(args) -> None:
    runs = []
    for toy in TOY_FLOORS:
        for name in args.models:
            for seed in args.seeds:
                r = run_toy(toy, name, seed, args.device)
                runs.append(r)
                print(f"{toy:<16} {name:<14} seed {seed}: test bound {r['bound']:.3f} "
                      f"(floor {r['floor']:.3f}, excess {r['excess']:.3f})", flush=True)
    path = write_results(args.name or "diffusion-toys", {"runs": runs}, args.seeds)
    print(f"written {path}")


def overhead(args) -> None:
    from diffusion_overhead import overhead_table

    torch.set_num_threads(1)  # a shared machine: one thread each side, CPU time comparable
    table = overhead_table(repeats=args.repeats)
    path = write_results(args.name or "diffusion-overhead", table, [0])
    print(f"written {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["digits", "toys", "overhead"])
    parser.add_argument("--models", nargs="+", default=["ddpm", "improved-ddpm"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=None, help="override fit_defaults")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--name", default=None, help="results file name")
    parser.add_argument("--repeats", type=int, default=7, help="overhead: alternating repeats")
    args = parser.parse_args()
    {"digits": digits, "toys": toys, "overhead": overhead}[args.what](args)


if __name__ == "__main__":
    main()
