"""Digits density estimation: the project's main quality benchmark (BENCHMARKS.md).

Trains each model with its defaults (``Model.fit_defaults``: early stopping on validation NLL),
touches the test set once, and reports test NLL in nats per image — exact for exact models, the
importance-weighted estimate with K = 1000 (and the −ELBO) for latent models — over 3 seeds.

    python benchmarks/digits.py                       # everything, 3 seeds
    python benchmarks/digits.py --models vae --seeds 0
    python benchmarks/digits.py --merge digits-a digits-b --name digits-ab   # one table of both
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

from common import read_results, write_results  # noqa: E402

import ppgen  # noqa: E402
import ppgen.models  # noqa: E402,F401
from ppgen.data import load_digits  # noqa: E402
from ppgen.evaluate import nll_report  # noqa: E402
from ppgen.protocol import model_class  # noqa: E402

#: which models run on which representation
SUITE = {
    "categorical": [
        "independent-categorical", "markov-chain", "vae", "fvsbn", "nade", "made", "pixelcnn",
        "vae-iaf-flow-prior", "pixelrnn", "ladder-vae",
    ],
    "binary": [
        "independent-bernoulli", "markov-chain", "vae", "fvsbn", "nade", "made", "pixelcnn",
        "pixelrnn",
    ],
}

#: rows that are a registered model with options: row name -> (model, constructor options,
#: fit options on top of the model's fit_defaults)
VARIANTS = {
    "vae-iaf-flow-prior": ("vae", {"posterior_flow": "iaf", "prior_flow": "maf"},
                           {"patience": 60, "objective_options": {"num_particles": 10}}),
}

#: reference test NLLs (BENCHMARKS.md), nats per image; the autoregressive rows are compared with
#: the autoregressive reference (causal 1-D convolutions, categorical outputs)
REFERENCES = {
    ("categorical", "independent-categorical"): 106.3,
    ("categorical", "markov-chain"): 101.8,
    ("categorical", "vae"): 93.1,
    ("categorical", "fvsbn"): 86.4,
    ("categorical", "nade"): 86.4,
    ("categorical", "made"): 86.4,
    ("categorical", "pixelcnn"): 86.4,
    ("categorical", "pixelrnn"): 86.4,
}


def run_one(name, digits, seed, device, particles) -> dict:
    """Train one model with one seed and score the test set."""
    pyro.set_rng_seed(seed)  # the initial weights too
    base, options, fit_options = VARIANTS.get(name, (name, {}, {}))
    model = model_class(base).for_data(digits.info, **options)
    start = time.perf_counter()
    history = ppgen.fit(model, digits.train, digits.val, seed=seed, device=device,
                        progress=False, **fit_options)
    seconds = time.perf_counter() - start
    torch.manual_seed(seed)
    report = nll_report(model, digits.test.to(model.device), num_particles=particles)
    return {**report, "seed": seed, "epochs": len(history), "best_epoch": history.best_epoch,
            "seconds": seconds, "num_parameters": model.num_parameters()}


def summarise(runs: list[dict], key: str) -> str:
    values = [r[key] for r in runs if key in r]
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def table(results: dict) -> str:
    lines = ["| data | model | test NLL (nats/image) | −ELBO | reference | seeds | epochs |",
             "|---|---|---|---|---|---|---|"]
    for (rep, name), runs in results.items():
        ref = REFERENCES.get((rep, name))
        lines.append(
            f"| {rep} | {name} | {summarise(runs, 'nll')} | {summarise(runs, 'elbo')} | "
            f"{ref if ref else '—'} | {len(runs)} | "
            f"{', '.join(str(r['epochs']) for r in runs)} |"
        )
    return "\n".join(lines)


def merged(names: list[str]) -> dict:
    """The runs of several result files (e.g. seeds run in parallel processes), by row."""
    results: dict = {}
    for name in names:
        for key, runs in read_results(name)["runs"].items():
            results.setdefault(tuple(key.split("/", 1)), []).extend(runs)
    return results


def record(results: dict, name: str, seeds: list[int]) -> None:
    """Print the table of ``results`` and write it with the runs to ``results/<name>.json``."""
    print()
    print(table(results))
    payload = {"table": table(results),
               "runs": {f"{rep}/{row}": runs for (rep, row), runs in results.items()}}
    print(f"\nwritten {write_results(name, payload, seeds)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", help="restrict to these model names")
    parser.add_argument("--representations", nargs="+", default=list(SUITE))
    parser.add_argument("--particles", type=int, default=1000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--name", default="digits", help="results file name")
    parser.add_argument("--merge", nargs="+", metavar="RESULTS",
                        help="train nothing: one table of the runs in these result files")
    args = parser.parse_args()
    if args.merge:
        results = merged(args.merge)
        record(results, args.name, sorted({r["seed"] for runs in results.values() for r in runs}))
        return
    results: dict = {}
    for rep in args.representations:
        digits = load_digits(rep)
        for name in SUITE[rep]:
            if args.models and name not in args.models:
                continue
            base = VARIANTS.get(name, (name,))[0]
            deterministic = model_class(base).default_objective == "closed-form"
            seeds = args.seeds[:1] if deterministic else args.seeds
            results[(rep, name)] = [run_one(name, digits, s, args.device, args.particles)
                                    for s in seeds]
            print(f"{rep:<12} {name:<24} {summarise(results[(rep, name)], 'nll')}", flush=True)
    record(results, args.name, args.seeds)


if __name__ == "__main__":
    main()
