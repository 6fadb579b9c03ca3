"""``ppgen score``: anomaly scores of new rows under a trained model (or its likelihood ratio
against a reference model)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ppgen.cli import options, runs
from ppgen.cli.checks import RATE, UsageError, check_output, real, refuse_inputs

#: what ``--contamination`` accepts: the share of the scored rows to flag
CONTAMINATION = real(lambda v: 0 < v <= 0.5, "in (0, 0.5]")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "score",
        help="anomaly scores of new data under a trained model",
        description="Score every row of --data with a model from `ppgen fit` (its "
        "log-likelihood: higher is more normal; with --reference, the log-likelihood ratio "
        "log p_model(x) - log p_ref(x)) and flag the rows below a threshold: --threshold on "
        "the score, --contamination, the share of the scored rows to flag (for data that hold "
        "their own anomalies), or --fpr, the share of the run's held-out normal data (its "
        "validation split) that may be flagged (default 0.05). Writes the CSV and a histogram "
        "of the scores beside it (same name, .png).",
    )
    p.add_argument("dir", help="folder written by `ppgen fit` (or a model.pt file)")
    p.add_argument("--data", required=True, help="rows to score, a .npy or .csv file")
    p.add_argument("--labels", help="class label of each row (.npy or .csv, one integer per "
                   "row): required by a class-conditional model, which scores p(x | label)")
    p.add_argument("--reference", metavar="RUN",
                   help="a second `ppgen fit` run (folder or model.pt) of the same kind of data, "
                   "usually a simpler model (e.g. independent-categorical beside a markov-chain "
                   "or a pixelcnn): the score becomes log p_model(x) - log p_ref(x), so what the "
                   "reference also explains (how simple a row is) cancels; --threshold and "
                   "--fpr then apply to the ratio")
    p.add_argument("--out", required=True, help="CSV to write: one line per row (never one of "
                   "the inputs)")
    flag = p.add_mutually_exclusive_group()
    flag.add_argument("--threshold", type=real(),
                      help="flag rows whose score (log-likelihood, or ratio) is below it")
    flag.add_argument("--fpr", type=RATE, help="target false-positive rate (default 0.05)")
    flag.add_argument("--contamination", type=CONTAMINATION, metavar="RATE",
                      help="flag this share of the scored rows, in (0, 0.5]: those with the "
                      "lowest scores (the threshold is the RATE quantile of the scores)")
    options.add_evaluation_options(p)
    options.add_common(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    check_output(out, "--out", (".csv",))
    picture = out.with_suffix(".png")
    reference_file = args.reference and runs.model_file(args.reference)
    refuse_inputs([out, picture],
                  [args.data, args.labels, runs.model_file(args.dir), reference_file])
    model, extra = runs.load_run(args.dir)
    x = runs.read_rows(model, extra, args.data)
    ref = _reference(args, model, extra, x)
    labels = _row_labels([model, ref], args)
    scores, parts = _ratio([model, ref], x, args, labels)
    threshold, how = _threshold(args, [model, ref], extra, scores)
    flagged = scores < threshold
    _write_scores(out, scores, flagged, parts)
    what = "log-likelihood" if ref is None else "log-likelihood ratio"
    title = model.name if ref is None else f"{model.name} / {ref.name}"
    _plot_scores(scores, flagged, threshold, picture, f"{title}: {Path(args.data).name}")
    print(f"scored {len(scores)} rows of {args.data}: {int(flagged.sum())} flagged as anomalies "
          f"({what} < {threshold:.3f}, {how}); wrote {args.out} and {picture}")
    return 0


def _reference(args: argparse.Namespace, model, extra: dict, x):
    """The ``--reference`` model, checked to take the rows ``x`` of the model's data (``None``
    without the option)."""
    from ppgen.cli.checks import _same_file
    from ppgen.errors import DataError

    if args.reference is None:
        return None
    given = runs.model_file(args.reference)
    if _same_file(given, runs.model_file(args.dir)):
        raise UsageError(f"--reference {args.reference} is the scored model itself: every "
                         "log-likelihood ratio would be 0; give a second, simpler run")
    ref, ref_extra = runs.load_run(args.reference)
    where = f"the reference {ref.name} ({args.reference})"
    if tuple(ref.event_shape) != tuple(model.event_shape):
        raise UsageError(f"{where} models rows of shape {tuple(ref.event_shape)} but "
                         f"{model.name} ({args.dir}) rows of shape {tuple(model.event_shape)}: "
                         "a likelihood ratio needs two models of the same data")
    for key in ("likelihood", "num_levels"):
        mine, theirs = ((e.get("info") or {}).get(key) for e in (extra, ref_extra))
        if None not in (mine, theirs) and mine != theirs:
            raise UsageError(f"{where} was fitted to data with {key} {theirs!r}, {model.name} "
                             f"({args.dir}) to {key} {mine!r}: a likelihood ratio needs two "
                             "models of the same kind of data")
    try:
        ref.check_data(x, Path(args.data).name)
    except DataError as err:
        raise UsageError(f"{where} cannot score {args.data}: {err}") from None
    return ref


def _row_labels(models: list, args: argparse.Namespace) -> list:
    """The rows' labels for each model (``None`` for an unconditional one, or no model):
    ``--labels`` is needed when one of them is class-conditional, refused otherwise."""
    conditional = [m for m in models if m is not None and runs.class_condition(m) is not None]
    labels = runs.score_labels(conditional[0] if conditional else models[0], args)
    return [labels if m in conditional else None for m in models]


def _ratio(models: list, x, args: argparse.Namespace, labels: list):
    """Scores ``[N]``: the first model's log-likelihood minus the reference's (the second,
    when there is one), and each model's log-likelihood (for the CSV)."""
    parts = [_scores(m, x, args, y) for m, y in zip(models, labels) if m is not None]
    return parts[0] - (parts[1] if len(parts) > 1 else 0.0), parts


def _threshold(args: argparse.Namespace, models: list, extra: dict, scores):
    """The score below which a row is flagged, and how it was chosen."""
    from ppgen.anomaly.metrics import _finite_ranks, threshold_at_fpr

    if args.threshold is not None:
        return args.threshold, f"--threshold {args.threshold}"
    if args.contamination is not None:  # ranks unchanged; -inf rows stay the lowest
        rate = args.contamination
        return threshold_at_fpr(_finite_ranks(scores), rate), f"contamination {rate}"
    fpr = 0.05 if args.fpr is None else args.fpr
    fix = "pass --threshold T (on the score) or --contamination RATE instead"
    data = runs.run_data(extra, args.dir, fix)
    val_labels = [None if m is None else runs.split_labels(m, data, "val") for m in models]
    val_scores, _ = _ratio(models, data.val, args, val_labels)
    return threshold_at_fpr(val_scores, fpr), f"false-positive rate {fpr} on the run's " \
        "validation split"


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


def _write_scores(path: Path, scores, flagged, parts: list) -> None:
    """One line per row: its log-likelihood (with a reference: the model's and the
    reference's, and their difference), the anomaly score (its negative) and the flag."""
    import csv
    import io

    text = io.StringIO(newline="")
    writer = csv.writer(text)
    ratio = len(parts) > 1
    writer.writerow(["row", "log_likelihood",
                     *(["reference_log_likelihood", "log_likelihood_ratio"] if ratio else []),
                     "anomaly_score", "is_anomaly"])
    for i, (s, a) in enumerate(zip(scores, flagged)):
        extra = [f"{parts[1][i]:.6f}", f"{s:.6f}"] if ratio else []
        writer.writerow([i, f"{parts[0][i]:.6f}", *extra, f"{-s:.6f}", int(a)])
    runs.atomic(path, lambda f: f.write(text.getvalue().encode()))
