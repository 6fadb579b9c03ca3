"""Sample quality of every family on the digits, in the digits classifier's feature space
(issue 12 §3-4, BENCHMARKS.md "Sample quality").

Each model is built and trained with its zoo recipe (``model_class(name).for_data(info)`` and
``ppgen.fit`` with its ``fit_defaults``: early stopping on the validation split; ``--epochs``
caps the epochs, and the table then says so), then scored by ``ppgen.evaluate.nll_report(...,
samples=True, features="digits")``: its test NLL (exact, IWAE with ``--particles``, or the
diffusion bound) next to the sample metrics of 447 draws against the 447 test digits — Fréchet
distance, KID, precision / recall (k = 3), density / coverage (k = 5), the classes hit (of 10)
and the class histogram's KL to uniform. Diffusion models draw with DDIM-50 (their declared
sampler, ``ppgen.metrics.CHEAP_SAMPLER``). The first row is the real floor: the 350 validation
digits against the test split.

    python benchmarks/sample_quality.py                                # every model, seed 0
    python benchmarks/sample_quality.py --models vae pixelcnn --name sample-quality-a
    python benchmarks/sample_quality.py table --results sample-quality-a sample-quality-b
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pyro
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, write_results  # noqa: E402

import ppgen  # noqa: E402
import ppgen.models  # noqa: E402,F401
from ppgen.data import load_digits  # noqa: E402
from ppgen.evaluate import nll_report  # noqa: E402
from ppgen.metrics import sample_metrics  # noqa: E402
from ppgen.protocol import model_class  # noqa: E402

#: row -> (registered model, representation, constructor options on top of for_data)
MODELS = {
    "vae": ("vae", "categorical", {}),
    "nsf": ("nsf", "categorical", {"dequantization": "variational"}),
    "pixelcnn": ("pixelcnn", "categorical", {}),
    "dcgan": ("dcgan", "continuous", {}),
    "improved-ddpm": ("improved-ddpm", "categorical", {}),
    "ddpm": ("ddpm", "categorical", {}),
}
#: the table's columns: (report key, header, format)
COLUMNS = [("nll", "test NLL", "{:.2f}"), ("fd", "FD", "{:.3f}"), ("kid", "KID", "{:.4f}"),
           ("precision", "precision", "{:.3f}"), ("recall", "recall", "{:.3f}"),
           ("density", "density", "{:.3f}"), ("coverage", "coverage", "{:.3f}"),
           ("classes_hit", "classes hit", "{:d}"), ("class_kl", "class KL", "{:.3f}")]


def floor_row() -> dict:
    """The real floor: the validation digits scored as if they were samples."""
    digits = load_digits("categorical")
    return {"row": "real (val 350 vs test 447)", **sample_metrics(digits.test, digits.val,
                                                                  features="digits")}


def run_one(row: str, seed: int, particles: int, epochs: int | None) -> dict:
    """Train one model with its recipe and score the test split (NLL and sample metrics)."""
    name, representation, options = MODELS[row]
    digits = load_digits(representation, seed=seed)
    pyro.set_rng_seed(seed)  # the initial weights too
    model = model_class(name).for_data(digits.info, **options)
    fit = {} if epochs is None else {"epochs": epochs}
    start = time.perf_counter()
    history = ppgen.fit(model, digits.train, digits.val, seed=seed, progress=False, **fit)
    seconds = time.perf_counter() - start
    pyro.set_rng_seed(seed + 1000)
    start = time.perf_counter()
    particles = min(particles, model.evaluation_options()["num_particles"])  # diffusion: 1
    report = nll_report(model.eval(), digits.test, num_particles=particles, samples=True,
                        features="digits")
    return {"row": row, "model": name, "representation": representation, "options": options,
            **report, "seed": seed, "epochs": len(history), "epochs_cap": epochs,
            "best_epoch": history.best_epoch, "seconds": seconds,
            "score_seconds": time.perf_counter() - start}


def table(rows: list[dict]) -> str:
    header = "| model | " + " | ".join(h for _, h, _ in COLUMNS) + " | epochs |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 2)]
    for r in rows:
        cells = [fmt.format(r[k]) if k in r else "—" for k, _, fmt in COLUMNS]
        epochs = "—" if "epochs" not in r else (
            f"{r['epochs']}" + (f" (cap {r['epochs_cap']})" if r.get("epochs_cap") else ""))
        lines.append(f"| {r['row']} | " + " | ".join(cells) + f" | {epochs} |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> None:
    rows = [floor_row()]
    print(table(rows), flush=True)
    for row in args.models:
        result = run_one(row, args.seed, args.particles, args.epochs)
        rows.append(result)
        print(table(rows[-1:]).splitlines()[-1] + f"  ({result['seconds']:.0f} s)", flush=True)
        write_results(args.name, {"features": "digits", "rows": rows, "table": table(rows)},
                      args.seed)  # after every model: a long run keeps what it finished
    print(table(rows))
    print(f"wrote {RESULTS / (args.name + '.json')}")


def merged(args: argparse.Namespace) -> None:
    rows, seen = [], set()
    for name in args.results:
        for r in json.loads((RESULTS / f"{name}.json").read_text())["rows"]:
            if r["row"] not in seen:
                seen.add(r["row"])
                rows.append(r)
    print(table(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("run")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--particles", type=int, default=100,
                   help="importance particles of the latent models' test NLL")
    p.add_argument("--epochs", type=int, help="cap on the epochs (stated in the table)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--name", default="sample-quality", help="results file name")
    t = sub.add_parser("table")
    t.add_argument("--results", nargs="+", required=True)
    argv = sys.argv[1:] if sys.argv[1:2] in (["run"], ["table"]) else ["run", *sys.argv[1:]]
    args = parser.parse_args(argv)
    if args.command == "table":
        merged(args)
        return
    torch.set_num_threads(args.threads)
    run(args)


if __name__ == "__main__":
    main()
