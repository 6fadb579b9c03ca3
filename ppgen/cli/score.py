"""``ppgen score``: anomaly scores of new rows under a trained model."""

from __future__ import annotations

import argparse
from pathlib import Path

from ppgen.cli import options, runs
from ppgen.cli.checks import RATE, check_output, real, refuse_inputs


def add_parser(sub) -> None:
    p = sub.add_parser(
        "score",
        help="anomaly scores of new data under a trained model",
        description="Score every row of --data with a model from `ppgen fit` (its "
        "log-likelihood: higher is more normal) and flag the rows below a threshold: "
        "--threshold on the log-likelihood, or --fpr, the share of the run's held-out normal "
        "data (its validation split) that may be flagged (default 0.05). Writes the CSV and a "
        "histogram of the scores beside it (same name, .png).",
    )
    p.add_argument("dir", help="folder written by `ppgen fit` (or a model.pt file)")
    p.add_argument("--data", required=True, help="rows to score, a .npy or .csv file")
    p.add_argument("--labels", help="class label of each row (.npy or .csv, one integer per "
                   "row): required by a class-conditional model, which scores p(x | label)")
    p.add_argument("--out", required=True, help="CSV to write: one line per row (never one of "
                   "the inputs)")
    flag = p.add_mutually_exclusive_group()
    flag.add_argument("--threshold", type=real(), help="flag rows with log-likelihood below it")
    flag.add_argument("--fpr", type=RATE, help="target false-positive rate (default 0.05)")
    options.add_evaluation_options(p)
    options.add_common(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ppgen.anomaly.metrics import threshold_at_fpr

    out = Path(args.out)
    check_output(out, "--out", (".csv",))
    picture = out.with_suffix(".png")
    refuse_inputs([out, picture], [args.data, args.labels, runs.model_file(args.dir)])
    model, extra = runs.load_run(args.dir)
    x = runs.read_rows(model, extra, args.data)
    scores = _scores(model, x, args, runs.score_labels(model, args))
    threshold, how = args.threshold, f"--threshold {args.threshold}"
    if threshold is None:
        fpr = 0.05 if args.fpr is None else args.fpr
        data = runs.run_data(extra, args.dir, "pass --threshold T (a log-likelihood) instead")
        val_scores = _scores(model, data.val, args, runs.split_labels(model, data, "val"))
        threshold = threshold_at_fpr(val_scores, fpr)
        how = f"false-positive rate {fpr} on the run's validation split"
    flagged = scores < threshold
    _write_scores(out, scores, flagged)
    _plot_scores(scores, flagged, threshold, picture, f"{model.name}: {Path(args.data).name}")
    print(f"scored {len(scores)} rows of {args.data}: {int(flagged.sum())} flagged as anomalies "
          f"(log-likelihood < {threshold:.3f}, {how}); wrote {args.out} and {picture}")
    return 0


def _plot_scores(scores, flagged, threshold: float, path: Path, title: str) -> None:
    """The anomaly scores (``-log p``) of the flagged and the other rows, threshold marked."""
    from ppgen import plots
    from ppgen.anomaly.plots import score_histogram

    fig = score_histogram(flagged, -scores, threshold=-threshold, title=title,
                          names=("not flagged", "flagged"))
    plots.save(fig, path)


def _scores(model, x, args: argparse.Namespace, labels=None):
    import torch

    from ppgen.devices import resolve_device
    from ppgen.evaluate import log_likelihood, showing_progress

    device = resolve_device(args.device)
    model.to(device).eval()
    torch.manual_seed(args.seed)
    with showing_progress(f"scoring ({model.name})", enabled=not args.no_progress):
        ll = log_likelihood(model, x.to(device), num_particles=args.particles,
                            batch_size=args.batch_size, **runs.label_kwargs(model, labels))
    return ll.double().cpu().numpy()


def _write_scores(path: Path, scores, flagged) -> None:
    import csv
    import io

    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["row", "log_likelihood", "anomaly_score", "is_anomaly"])
    for i, (s, a) in enumerate(zip(scores, flagged)):
        writer.writerow([i, f"{s:.6f}", f"{-s:.6f}", int(a)])
    runs.atomic(path, lambda f: f.write(text.getvalue().encode()))

