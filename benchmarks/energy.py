"""Energy-based models (issue 15): AIS likelihoods with their reverse-AIS bracket.

(a) toys: an ``EBM`` per toy (eight Gaussians, checkerboard, rings; 10,000 training points,
the zoo's recipe ``EBM.fit_defaults`` with :data:`TOY_FIT` on top), then the 2,000 test points
scored by bidirectional AIS (:func:`ppgen.evaluate.nll_report`): the NLL with its interval in
nats per point, paired with the true density's NLL of the same points
(``ppgen.data.toy_log_density``, as ``benchmarks/diffusion_toys.py`` does) and beside the floor
of BENCHMARKS.md. Targets: interval width ≤ 0.02 nats, NLL within 0.10 nats of the floor.

(b) digits: an ``EBM`` on the dequantised digits (uniform dequantisation, y = (x + u) / 17) and
its discrete bound ``E_u[-log p(y)] + 64 ln 17`` in nats per image, with the AIS interval
(the dequantisation average is over one draw of u per test image). Targets: width ≤ 2 nats,
below the Markov chain's 101.8, ≤ 95.

(c) anomaly: protocols A and B of BENCHMARKS.md with ``Detector("ebm")`` (scores ``-E(x) -
log Ẑ``: the ranking of ``-E``; thresholds from held-out rows with ``fpr=``), on the splits of
``benchmarks/anomaly.py`` (imported, not copied) beside the same run's baselines.

(d) decoders: AIS estimates of ``log p(x)`` of decoder-based models on the digits (Wu et al.
2017, :func:`ppgen.energy.decoder_log_likelihood`): a VAE's decoder without its encoder, beside
its IWAE estimate, and a DCGAN's generator with Gaussian observation noise.

Every run pins one thread (``torch.set_num_threads(1)``: a shared machine).

    python benchmarks/energy.py toys --seeds 0 1 2
    python benchmarks/energy.py digits --seeds 0 1 2
    python benchmarks/energy.py anomaly --seeds 0 1 2
    python benchmarks/energy.py decoders --seeds 0
    python benchmarks/energy.py table
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table, mean_sd, read_results, write_results  # noqa: E402
from diffusion_toys import TOY_FLOORS, paired  # noqa: E402

import ppgen  # noqa: E402
from ppgen.data import load_toy, toy_log_density  # noqa: E402
from ppgen.energy import energies  # noqa: E402
from ppgen.evaluate import nll_report  # noqa: E402
from ppgen.models import EBM  # noqa: E402

#: (a) the training options over EBM.fit_defaults, and the AIS run of the test scores
TOY_MODEL: dict = {}
TOY_FIT: dict = {}
TOY_OBJECTIVE: dict = {}
TOY_AIS = {"num_distributions": 2000}
TOY_CHAINS = 1024
#: (a) targets: interval width and excess over the floor, nats per point
TOY_WIDTH, TOY_EXCESS = 0.02, 0.10


# --------------------------------------------------------------------------- (a) toys
def run_toy(toy: str, seed: int, epochs: int | None = None) -> dict:
    """Train an EBM on ``toy`` and score its test points by bidirectional AIS."""
    data = load_toy(toy, seed=seed)
    torch.manual_seed(seed)
    ebm = EBM.for_data(data.info, ais=TOY_AIS, **TOY_MODEL)
    start = time.perf_counter()
    history = ppgen.fit(ebm, data.train, data.val, seed=seed, progress=False,
                        objective_options=TOY_OBJECTIVE or None,
                        **{"epochs": epochs, **TOY_FIT})
    seconds = time.perf_counter() - start
    ebm.eval()
    torch.manual_seed(seed)
    start = time.perf_counter()
    report = nll_report(ebm, data.test, num_particles=TOY_CHAINS)
    ais_seconds = time.perf_counter() - start
    true = -toy_log_density(toy, data.test)
    model_nll = energies(ebm, data.test).double() + report["log_z_forward"]
    return {"toy": toy, "seed": seed, "floor": TOY_FLOORS[toy], "true": float(true.mean()),
            "paired": paired(model_nll, true.double()),
            **{k: report[k] for k in ("nll", "nll_lower", "nll_upper", "nll_width",
                                      "nll_forward", "nll_reverse", "num_distributions",
                                      "num_chains", "ais_ess", "ais_acceptance",
                                      "log_z_forward_se", "log_z_reverse_se")},
            "epochs": len(history), "best_epoch": history.best_epoch,
            "seconds": seconds, "ais_seconds": ais_seconds, "model": TOY_MODEL, "fit": TOY_FIT,
            "objective": TOY_OBJECTIVE, "ais": TOY_AIS}


def toys(args) -> None:
    runs = []
    for toy in args.toys or TOY_FLOORS:
        for seed in args.seeds:
            r = run_toy(toy, seed, args.epochs)
            runs.append(r)
            print(f"{toy:<16} seed {seed}: NLL {r['nll']:.3f} in [{r['nll_lower']:.3f}, "
                  f"{r['nll_upper']:.3f}] (width {r['nll_width']:.3f}); floor {r['floor']:.3f}, "
                  f"true NLL {r['true']:.3f}, excess {r['paired']['excess']:.3f} ± "
                  f"{r['paired']['excess_se']:.3f}; {r['epochs']} epochs {r['seconds']:.0f} s, "
                  f"AIS {r['ais_seconds']:.0f} s", flush=True)
    seeds = "".join(map(str, args.seeds))
    path = write_results(args.name or f"energy-toys-seeds{seeds}", {"runs": runs}, args.seeds)
    print(f"written {path}")


def toys_table(names: list[str]) -> str:
    header = ["toy", "seeds", "floor", "AIS NLL", "interval (lower, upper)", "width",
              "excess over floor", "paired excess over true NLL", f"width ≤ {TOY_WIDTH}",
              f"excess ≤ {TOY_EXCESS:.2f}"]
    runs = _runs(names)
    rows = []
    for toy in dict.fromkeys(r["toy"] for r in runs):
        rs = sorted((r for r in runs if r["toy"] == toy), key=lambda r: r["seed"])
        floor = rs[0]["floor"]
        widths = [r["nll_width"] for r in rs]
        excess = [r["nll"] - floor for r in rs]
        rows.append([toy, ", ".join(str(r["seed"]) for r in rs), f"{floor:.3f}",
                     mean_sd([r["nll"] for r in rs], "{:.3f}"),
                     "; ".join(f"({r['nll_lower']:.3f}, {r['nll_upper']:.3f})" for r in rs),
                     mean_sd(widths, "{:.3f}"), mean_sd(excess, "{:.3f}"),
                     mean_sd([r["paired"]["excess"] for r in rs], "{:.3f}"),
                     _verdict(max(widths), TOY_WIDTH),
                     _verdict(statistics.mean(excess), TOY_EXCESS)])
    return markdown_table(header, rows)


# --------------------------------------------------------------------------- tables
def _runs(names: list[str]) -> list[dict]:
    return [run for name in names for run in read_results(name)["runs"]]


def _verdict(value: float, target: float) -> str:
    return "met" if value <= target else "**missed**"


TABLE_RESULTS = {"toys": ["energy-toys-seeds012"]}
RESULT_TABLES = {"toys": toys_table}


def tables(args) -> None:
    for i, which in enumerate(args.tables):
        names = args.results or TABLE_RESULTS[which]
        if not all((Path(__file__).parent / "results" / f"{n}.json").exists() for n in names):
            continue
        print(("\n" if i else "") + f"{which} ({', '.join(names)}):")
        print(RESULT_TABLES[which](names))


def _override(settings: list[str]) -> None:
    """Apply ``WHAT.KEY=JSON`` overrides to the module's recipe dicts (tuning runs)."""
    for item in settings:
        name, _, value = item.partition("=")
        what, _, key = name.partition(".")
        globals()[what.upper()][key] = json.loads(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["toys", "table"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe")
    parser.add_argument("--toys", nargs="+", default=None, help="toys: a subset")
    parser.add_argument("--name", default=None, help="results file name")
    parser.add_argument("--tables", nargs="+", default=list(RESULT_TABLES),
                        choices=list(RESULT_TABLES), help="table: which tables")
    parser.add_argument("--results", nargs="+", default=None,
                        help="table: result files instead of TABLE_RESULTS")
    parser.add_argument("--set", nargs="+", default=[], metavar="WHAT.KEY=JSON",
                        help="tuning: override a recipe entry, e.g. toy_fit.epochs=60 "
                             "toy_model.hidden_dims=[256,256] toy_objective.steps=20")
    args = parser.parse_args()
    _override(args.set)
    torch.set_num_threads(1)  # a shared machine: one thread
    {"toys": toys, "table": tables}[args.what](args)


if __name__ == "__main__":
    main()
