"""``ppgen evaluate``: the NLL table of a saved model on a split or a file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ppgen.cli import options, runs
from ppgen.cli.checks import UsageError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score a saved model on a data split",
        description="Print the test (or train/val) NLL table of a model written by `ppgen fit` "
        "and write DIR/eval-<split>.json (nats per datum, lower is better); or score every row "
        "of --data FILE (any model, also one saved from Python) into DIR/eval-file-<name>.json. "
        "A class-conditional model scores each row given its own label.",
    )
    p.add_argument("dir", help="folder written by `ppgen fit` (or holding a saved model.pt)")
    p.add_argument("--split", choices=["train", "val", "test"],
                   help="split of the run's recorded data (default test)")
    p.add_argument("--data", help="score this .npy/.csv file instead of a split")
    p.add_argument("--labels", help="class label of each row of --data (.npy or .csv), for a "
                   "class-conditional model")
    options.add_evaluation_options(p)
    options.add_common(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import pyro

    from ppgen.conditions import take_rows
    from ppgen.evaluate import nll_report, showing_progress
    from ppgen.protocol import ModelKind

    model, extra = runs.load_run(args.dir)
    cluster = runs.cluster()  # under torchrun each rank scores a block of rows
    device = cluster.device(args.device)
    x, labels, source, name = _evaluation_rows(model, extra, args)
    x = x.to(device)
    model.to(device).eval()
    kwargs = runs.label_kwargs(model, labels)  # p(x | own label)
    # likelihoods are means over rows, so each rank scores a block; sample metrics compare
    # whole samples, so every rank computes them on all rows (rank 0 writes them)
    rows = slice(None) if model.kind == ModelKind.IMPLICIT else cluster.block(len(x))
    pyro.set_rng_seed(args.seed)  # the same command and seed, the same estimate
    with showing_progress(f"scoring ({model.name})",
                          enabled=not args.no_progress and cluster.is_main):
        report = nll_report(model, x[rows], num_particles=args.particles,
                            batch_size=args.batch_size, **take_rows(kwargs, rows))
    if rows != slice(None):
        means = {k: v for k, v in report.items() if k in LIKELIHOOD_KEYS}
        report.update(cluster.weighted_mean(means, report["n"]))
    if not cluster.is_main:
        return 0
    split = None if args.data else args.split or "test"
    report.update(model=model.name, split=split, data=source, seed=args.seed)
    runs.write_json(runs.run_folder(args.dir) / f"eval-{name}.json", report)
    _print_report(report)
    return 0


def _evaluation_rows(model, extra: dict, args: argparse.Namespace):
    """``(x, labels, data record, file name part)`` of ``ppgen evaluate``: a split of the run's
    recorded data, or every row of ``--data FILE``."""
    from ppgen.data import file_record

    if args.data is None:
        if args.labels is not None:
            raise UsageError("--labels goes with --data FILE (a split brings its own labels)")
        split = args.split or "test"
        data = runs.run_data(extra, args.dir, "pass --data FILE to score a file")
        return data.split(split), runs.split_labels(model, data, split), extra.get("data"), split
    if args.split is not None:
        raise UsageError("--split picks a split of the run's data and --data scores a whole file: "
                     "pass one of them")
    x = runs.read_rows(model, extra, args.data)
    source = {"spec": args.data, **file_record(args.data)}
    return x, runs.score_labels(model, args), source, f"file-{Path(args.data).stem}"


#: the report's likelihood keys (nats per datum; under torchrun, means over all ranks' rows)
LIKELIHOOD_KEYS = ("nll", "elbo", "iwae", "bits_per_dim")
#: what the report says about itself rather than about the model
_ABOUT = {"model", "split", "data", "seed", "n", "num_particles", "features"}


def _print_report(report: dict[str, Any]) -> None:
    """The likelihood table (if the model has one), then every other number of the report
    (sample metrics, a bound's decomposition, ...) in the order the layer wrote them."""
    where = (f"the {report['split']} split" if report["split"] else
             Path(report["data"]["spec"]).name)
    print(f"{report['model']} on {where} (n = {report['n']})")
    likelihood = [k for k in (*LIKELIHOOD_KEYS, "num_particles") if k in report]
    if likelihood:
        print("  likelihood: nats per datum, lower is better")
        for key in likelihood:
            print(f"    {key:<14} {runs.fmt(report[key])}")
    other = [k for k, v in report.items() if k not in (*LIKELIHOOD_KEYS, *_ABOUT)
             and isinstance(v, int | float) and not isinstance(v, bool)]
    if other:
        features = report.get("features")
        print("  more" if features is None else f"  samples against the data ({features} "
              "features)")
        for key in other:
            print(f"    {key:<14} {runs.fmt(report[key])}")
