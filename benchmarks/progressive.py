"""Progressive GAN vs. DCGAN on the digits at the same number of generator updates (issue 13 §3).

Both models are built by ``for_data`` on the continuous digits (train ``[:1000]``, val
``[1000:1350]``) and trained with their zoo recipes (``fit_defaults``: the optimisers, the
generator's weight average, the validation metric — the Fréchet distance in the digits
classifier's space — and its best-state restore) for the same ``--epochs`` of 16 batches of 64,
so the same number of generator updates (both take one critic step per generator step);
early stopping is off (``patience=None``) so that neither stops sooner. The Progressive GAN's
schedule (its defaults): 2x2 → 4x4 → 8x8, ``stage_steps`` steps a stage with ``fade_steps`` of
fade-in, fully grown after 800 steps (50 epochs). The wall time is recorded, not the CPU time:
on a shared machine it says little. Scored on 447 draws against the 447 test digits in the digits
classifier's feature space (``features="digits"``): Fréchet distance, KID, precision / recall
(k = 3), density / coverage (k = 5) and the classes hit; the first row is the real floor (the
350 validation digits against the test split).

    python benchmarks/progressive.py run --seed 0   # results/progressive-<model>-s0.json
    python benchmarks/progressive.py run --seed 1 --models dcgan   # a process per model
    python benchmarks/progressive.py table          # seeds 0, 1, 2: the Markdown table
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pyro
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, markdown_table, mean_sd, read_results, write_results  # noqa: E402

import ppgen  # noqa: E402
import ppgen.models  # noqa: E402,F401
from ppgen.data import load_digits  # noqa: E402
from ppgen.metrics import sample_metrics  # noqa: E402
from ppgen.protocol import model_class  # noqa: E402

MODELS = ("progressive-gan", "dcgan")
#: (metric, header, format) of the table
COLUMNS = [("fd", "FD", "{:.2f}"), ("kid", "KID", "{:.3f}"), ("precision", "precision", "{:.3f}"),
           ("recall", "recall", "{:.3f}"), ("density", "density", "{:.3f}"),
           ("coverage", "coverage", "{:.3f}"), ("classes_hit", "classes hit", "{:.1f}")]
METRICS = [key for key, _, _ in COLUMNS]
STEPS_PER_EPOCH = 16  # 1,000 training digits in batches of 64


def floor() -> dict[str, float]:
    """The real floor: the 350 validation digits scored as if they were samples."""
    digits = load_digits("continuous")
    return _kept(sample_metrics(digits.test, digits.val, features="digits"))


def _kept(metrics: dict) -> dict[str, float]:
    return {k: float(metrics[k]) for k in METRICS}


def run_one(name: str, seed: int, epochs: int) -> dict:
    """Train one model with its recipe for ``epochs`` and score 447 draws."""
    digits = load_digits("continuous")
    pyro.set_rng_seed(seed)  # the initial weights too
    model = model_class(name).for_data(digits.info)
    start = time.perf_counter()
    history = ppgen.fit(model, digits.train, digits.val, epochs=epochs, patience=None,
                        seed=seed, progress=False)
    seconds = time.perf_counter() - start
    pyro.set_rng_seed(seed + 1000)
    metrics = sample_metrics(digits.test, model.eval().sample(447), features="digits")
    updates = epochs * STEPS_PER_EPOCH // (model.n_critic or 1)
    return {"model": name, "seed": seed, "epochs": epochs, "generator_updates": updates,
            "config": model.get_config(), "best_epoch": history.best_epoch,
            "best_val_fd": history.best_val, "seconds": seconds, **_kept(metrics)}


def run(args: argparse.Namespace) -> None:
    """One results file per model and seed: ``results/<name>-<model>-s<seed>.json`` (so the
    seeds and models can run as separate processes)."""
    torch.set_num_threads(args.threads)
    for name in args.models:
        row = run_one(name, args.seed, args.epochs)
        print({k: row[k] for k in ("model", "seconds", *METRICS)}, flush=True)
        path = write_results(f"{args.name}-{name}-s{args.seed}",
                             {"features": "digits", "floor": floor(), "rows": [row]}, args.seed)
        print(f"wrote {path}")


def table(args: argparse.Namespace) -> None:
    results = [read_results(f"{args.name}-{name}-s{seed}") for name in MODELS
               for seed in args.seeds if (RESULTS / f"{args.name}-{name}-s{seed}.json").exists()]
    if not results:
        raise SystemExit(f"no results {args.name}-<model>-s<seed>.json in {RESULTS}")
    floor_row = ["real (val 350 vs test 447)"] + [fmt.format(results[0]["floor"][k])
                                                  for k, _, fmt in COLUMNS] + ["—", "—", "—"]
    body = [floor_row]
    for name in MODELS:
        runs = [r for result in results for r in result["rows"] if r["model"] == name]
        if not runs:
            continue
        cells = [mean_sd([r[k] for r in runs], fmt) for k, _, fmt in COLUMNS]
        updates = ", ".join(map(str, sorted({r["generator_updates"] for r in runs})))
        minutes = mean_sd([r["seconds"] / 60 for r in runs], "{:.1f}")
        seeds = ", ".join(str(r["seed"]) for r in runs)
        body.append([name, *cells, updates, seeds, minutes])
    header = ["model", *(h for _, h, _ in COLUMNS), "generator updates", "seeds",
              "wall minutes"]
    print(markdown_table(header, body))
    commits = sorted({r["commit"] for r in results})
    print(f"\nmean ± sd over seeds; features: the digits classifier's; commit(s) "
          f"{', '.join(commits)}; machine: {results[0]['machine']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="train and score both models for one seed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=150,
                   help="epochs of 16 generator updates each, for both models")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--name", default="progressive", help="results file prefix")
    t = sub.add_parser("table", help="print the Markdown table of RESULTS.md")
    t.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    t.add_argument("--name", default="progressive", help="results file prefix")
    args = parser.parse_args()
    if args.command == "run":
        run(args)
    else:
        table(args)


if __name__ == "__main__":
    main()
