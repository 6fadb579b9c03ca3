"""The flow zoo's benchmarks: digits discrete bound, 2-D toys, and the adapter's overhead.

(a) Digits (BENCHMARKS.md protocol, categorical pixels 0..16): each flow dequantised
    (``Dequantized``, uniform or variational noise) and trained with its ``fit_defaults``;
    test −ELBO (the discrete bound ``E_q[-log p(y) + log q(u|x)] + 64 ln 17``; with uniform
    noise exactly ``E_u[-log p(y)] + 64 ln 17``) and the importance-weighted bound with
    K = 1000, nats per image.
(b) 2-D toys: test log-likelihood (nats per point, higher is better) of each flow beside the
    true density's value where it is known.
(c) Overhead: ``ppgen.log_likelihood`` through the Pyro program vs ``flow.log_prob`` on the
    same batch, alternating repeats in one process, median ratio (target <= 1.10).

    python benchmarks/flows.py digits --seeds 0 1 2
    python benchmarks/flows.py digits --models nsf --dequantizations uniform --seeds 0
    python benchmarks/flows.py toys
    python benchmarks/flows.py overhead
    python benchmarks/flows.py table --results flows-digits-a flows-digits-b  # merge seeds
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import pyro
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, write_results  # noqa: E402

import ppgen  # noqa: E402
import ppgen.models  # noqa: E402,F401
from ppgen.data import load_digits, load_toy, toy_log_density  # noqa: E402
from ppgen.evaluate import nll_report  # noqa: E402
from ppgen.protocol import model_class  # noqa: E402

FLOWS = ["realnvp", "maf", "nsf", "glow"]
DEQUANTIZATIONS = ["uniform", "variational"]
TOYS = ["two_moons", "eight_gaussians", "checkerboard", "rings"]
TOY_FLOWS = ["realnvp", "maf", "nsf"]
#: small flows and a short recipe for the 2-D toys (10,000 training points)
TOY_MODEL = {"hidden_features": 64, "dropout": 0.0}
TOY_FIT = {"epochs": 60, "batch_size": 256, "lr": 2e-3, "patience": 10, "weight_decay": 0.0}


# --------------------------------------------------------------------------- (a) digits
def run_digits(name: str, dequantization: str, seed: int, particles: int, device: str) -> dict:
    """Train one dequantised flow on the categorical digits and score the test set once."""
    digits = load_digits("categorical")
    pyro.set_rng_seed(seed)
    model = model_class(name).for_data(digits.info, dequantization=dequantization)
    start = time.perf_counter()
    history = ppgen.fit(model, digits.train, digits.val, seed=seed, device=device,
                        progress=False)
    seconds = time.perf_counter() - start
    torch.manual_seed(seed)
    report = nll_report(model.eval(), digits.test.to(model.device), num_particles=particles)
    return {**report, "model": name, "dequantization": dequantization, "seed": seed,
            "epochs": len(history), "best_epoch": history.best_epoch, "seconds": seconds,
            "seconds_per_epoch": seconds / len(history),
            "num_parameters": model.num_parameters()}


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def digits_table(runs: list[dict]) -> str:
    lines = ["| flow | dequantisation | −ELBO (discrete bound) | IWAE-1000 bound | seeds | "
             "epochs | s/epoch |", "|---|---|---|---|---|---|---|"]
    keys = sorted({(r["model"], r["dequantization"]) for r in runs})
    for name, dq in keys:
        rs = [r for r in runs if (r["model"], r["dequantization"]) == (name, dq)]
        lines.append(
            f"| {name} | {dq} | {_mean_sd([r['elbo'] for r in rs])} | "
            f"{_mean_sd([r['iwae'] for r in rs])} | {len(rs)} | "
            f"{', '.join(str(r['epochs']) for r in rs)} | "
            f"{statistics.mean(r['seconds_per_epoch'] for r in rs):.2f} |"
        )
    return "\n".join(lines)


def digits(args) -> None:
    runs = []
    for name in args.models or FLOWS:
        for dq in args.dequantizations:
            for seed in args.seeds:
                run = run_digits(name, dq, seed, args.particles, args.device)
                runs.append(run)
                print(f"{name:<8} {dq:<12} seed {seed}: -ELBO {run['elbo']:.2f}  "
                      f"IWAE-{args.particles} {run['iwae']:.2f}  ({run['epochs']} epochs, "
                      f"{run['seconds_per_epoch']:.2f} s/epoch)", flush=True)
    text = digits_table(runs)
    print(text)
    path = write_results(args.name or "flows-digits", {"runs": runs, "table": text}, args.seeds)
    print(f"wrote {path}")


def merged_table(args) -> None:
    """The digits table of the runs in several result files (seeds run separately)."""
    runs = []
    for name in args.results:
        path = RESULTS / f"{name}.json" if not name.endswith(".json") else Path(name)
        runs += json.loads(path.read_text())["runs"]
    if args.models:
        runs = [r for r in runs if r["model"] in args.models]
    print(digits_table(runs))


# --------------------------------------------------------------------------- (b) toys
def run_toy(toy: str, name: str, seed: int, device: str) -> dict:
    data = load_toy(toy, seed=seed)
    pyro.set_rng_seed(seed)
    model = model_class(name).for_data(data.info, **TOY_MODEL)
    start = time.perf_counter()
    history = ppgen.fit(model, data.train, data.val, seed=seed, device=device, progress=False,
                        **TOY_FIT)
    test = data.test.to(model.device)
    ll = float(ppgen.log_likelihood(model.eval(), test).mean())
    true = None if toy == "two_moons" else float(toy_log_density(toy, test).mean())
    return {"toy": toy, "model": name, "seed": seed, "test_ll": ll, "true_ll": true,
            "epochs": len(history), "seconds": time.perf_counter() - start}


def toys(args) -> None:
    runs = []
    for toy in TOYS:
        for name in args.models or TOY_FLOWS:
            for seed in args.seeds:
                runs.append(run_toy(toy, name, seed, args.device))
                r = runs[-1]
                print(f"{toy:<16} {name:<8} seed {seed}: test LL {r['test_ll']:.3f} "
                      f"(true {r['true_ll']})", flush=True)
    lines = ["| toy | " + " | ".join(args.models or TOY_FLOWS) + " | true density |",
             "|---|" + "---|" * (len(args.models or TOY_FLOWS) + 1)]
    for toy in TOYS:
        cells = [_mean_sd([r["test_ll"] for r in runs if (r["toy"], r["model"]) == (toy, n)])
                 for n in args.models or TOY_FLOWS]
        true = next(r["true_ll"] for r in runs if r["toy"] == toy)
        lines.append(f"| {toy} | " + " | ".join(cells) +
                     f" | {'—' if true is None else f'{true:.3f}'} |")
    text = "\n".join(lines)
    print(text)
    path = write_results(args.name or "flows-toys", {"runs": runs, "table": text}, args.seeds)
    print(f"wrote {path}")


# --------------------------------------------------------------------------- (c) overhead
def overhead(args) -> None:
    """Median of per-repeat time ratios, the two calls alternating on the same batch.

    Both wall-clock time and the thread's CPU time are recorded; on a machine shared with
    other work the CPU-time ratio is the steadier of the two (other processes do not count).
    """
    torch.manual_seed(0)
    x = load_digits("continuous").test  # [447, 64] in [0, 1)
    model = model_class(args.models[0] if args.models else "maf")(64, logit_alpha=0.05).eval()
    flow = model.flow
    clocks = {"wall": time.perf_counter, "cpu": time.thread_time}
    times = {(c, w): [] for c in clocks for w in ("ppgen", "direct")}
    with torch.no_grad():
        for _ in range(5):  # warm-up
            ppgen.log_likelihood(model, x)
            flow.log_prob(x)
        for _ in range(args.repeats):
            t0 = {c: f() for c, f in clocks.items()}
            a = ppgen.log_likelihood(model, x)
            t1 = {c: f() for c, f in clocks.items()}
            b = flow.log_prob(x)
            t2 = {c: f() for c, f in clocks.items()}
            for c in clocks:
                times[c, "ppgen"].append(t1[c] - t0[c])
                times[c, "direct"].append(t2[c] - t1[c])
    torch.testing.assert_close(a, b)
    payload = {"model": model.name, "batch": list(x.shape), "repeats": args.repeats,
               "threads": torch.get_num_threads()}
    for c in clocks:
        ratios = [p / d for p, d in zip(times[c, "ppgen"], times[c, "direct"])]
        payload[c] = {"median_ratio": statistics.median(ratios),
                      "median_seconds_ppgen": statistics.median(times[c, "ppgen"]),
                      "median_seconds_direct": statistics.median(times[c, "direct"])}
        r = payload[c]
        print(f"{model.name}: ppgen.log_likelihood / flow.log_prob on {list(x.shape)}, {c} time: "
              f"median ratio {r['median_ratio']:.3f} ({r['median_seconds_ppgen'] * 1e3:.2f} ms "
              f"vs {r['median_seconds_direct'] * 1e3:.2f} ms, {args.repeats} repeats)")
    path = write_results(args.name or "flows-overhead", payload, seed=0)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["digits", "toys", "overhead", "table"])
    parser.add_argument("--results", nargs="+", default=[],
                        help="table: result files (names in results/ or paths) to merge")
    parser.add_argument("--models", nargs="+", help="restrict to these flows")
    parser.add_argument("--dequantizations", nargs="+", default=DEQUANTIZATIONS,
                        choices=DEQUANTIZATIONS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--particles", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--name", help="results file name (default flows-<what>)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    {"digits": digits, "toys": toys, "overhead": overhead, "table": merged_table}[args.what](args)


if __name__ == "__main__":
    main()
