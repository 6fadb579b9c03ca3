"""``ppgen evaluate``: the NLL table of a saved model on a split or a file, and its samples
compared with the same rows (sample-quality metrics for every family)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NamedTuple

from ppgen.cli import options, runs
from ppgen.cli.checks import UsageError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score a saved model on a data split",
        description="Print the test (or train/val) NLL table of a model written by `ppgen fit` "
        "and write DIR/eval-<split>.json (nats per datum, lower is better); or score every row "
        "of --data FILE (any model, also one saved from Python) into DIR/eval-file-<name>.json. "
        "A class-conditional model scores each row given its own label. Every model also "
        "draws as many samples as rows and compares them with the rows (fd, fd_floor, kid, "
        "precision, recall, density, coverage; modes and high_quality on a mode toy) in the "
        "data's feature space: the digits classifier's for a digits run, the raw data "
        "otherwise and for --data FILE; diffusion models draw with DDIM-50. An implicit "
        "model (GAN) has only these.",
    )
    p.add_argument("dir", help="folder written by `ppgen fit` (or holding a saved model.pt)")
    p.add_argument("--split", choices=["train", "val", "test"],
                   help="split of the run's recorded data (default test)")
    p.add_argument("--data", help="score this .npy/.csv file instead of a split")
    p.add_argument("--labels", help="class label of each row of --data (.npy or .csv), for a "
                   "class-conditional model")
    p.add_argument("--no-samples", action="store_true",
                   help="skip the sample metrics of a model with a likelihood (no draws)")
    options.add_evaluation_options(p)
    options.add_common(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ppgen.protocol import ModelKind

    model, extra = runs.load_run(args.dir)
    implicit = model.kind == ModelKind.IMPLICIT
    if implicit and args.no_samples:
        raise UsageError(f"{model.name} is implicit: its sample metrics are all ppgen evaluate "
                         "reports; drop --no-samples")
    cluster = runs.cluster()  # under torchrun each rank scores a block of rows
    device = cluster.device(args.device)
    rows = _evaluation_rows(model, extra, args)
    x = rows.x.to(device)
    model.to(device).eval()
    kwargs = runs.label_kwargs(model, rows.labels)  # p(x | own label)
    report = {} if implicit else _likelihood(model, x, kwargs, cluster, args)
    if not cluster.is_main:
        return 0
    # sample metrics compare whole samples: rank 0 draws as many as there are rows and
    # compares them with every row (never a mean of per-shard metrics)
    if not args.no_samples:
        report.update(_sample_metrics(model, x, kwargs, rows.features, args.seed))
    split = None if args.data else args.split or "test"
    report.update(model=model.name, split=split, data=rows.source, seed=args.seed)
    runs.write_json(runs.run_folder(args.dir) / f"eval-{rows.name}.json", report)
    _print_report(report)
    return 0


def _likelihood(model, x, kwargs: dict, cluster, args: argparse.Namespace) -> dict[str, Any]:
    """The likelihood table of ``x`` (:func:`~ppgen.evaluate.nll_report` without samples):
    under torchrun each rank scores a contiguous block of rows, and the per-datum means
    (:func:`is_likelihood_key`) are weighted by rows over all ranks."""
    import pyro

    from ppgen.conditions import take_rows
    from ppgen.evaluate import nll_report, showing_progress

    rows = cluster.block(len(x))
    pyro.set_rng_seed(args.seed)  # the same command and seed, the same estimate
    with showing_progress(f"scoring ({model.name})",
                          enabled=not args.no_progress and cluster.is_main):
        report = nll_report(model, x[rows], num_particles=args.particles,
                            batch_size=args.batch_size, **take_rows(kwargs, rows))
    means = {k: v for k, v in report.items() if is_likelihood_key(k)}
    report.update(cluster.weighted_mean(means, report["n"]))
    return report


def _sample_metrics(model, x, kwargs: dict, features: str, seed: int) -> dict[str, Any]:
    """Draws of ``model`` against every row of ``x`` in the ``features`` space: an implicit
    model's report from the evaluation layer (its routed estimator), any other model's
    :func:`~ppgen.metrics.model_sample_metrics` (a diffusion model draws with DDIM-50).
    Seeded afresh, so the draws do not depend on how the likelihood pass was sharded."""
    import pyro

    from ppgen.evaluate import nll_report
    from ppgen.metrics import feature_space, model_sample_metrics
    from ppgen.protocol import ModelKind

    space = feature_space(features)  # built before seeding: building the digits classifier
    pyro.set_rng_seed(seed)  # initialises a network, which draws from the global generator
    if model.kind == ModelKind.IMPLICIT:
        return nll_report(model, x, features=space, **kwargs)
    return model_sample_metrics(model, x, features=space, **kwargs)


class _Rows(NamedTuple):
    """The rows ``ppgen evaluate`` scores and what goes with them."""

    x: Any  #: ``[N, *event_shape]``
    labels: Any  #: ``[N]`` class labels, or ``None``
    source: Any  #: the data record written to the report
    name: str  #: the report file's name part (``test``, ``file-<stem>``)
    features: str  #: the sample metrics' feature space


def _evaluation_rows(model, extra: dict, args: argparse.Namespace) -> _Rows:
    """A split of the run's recorded data (the feature space its data declare), or every row
    of ``--data FILE`` (raw features: a file's rows may be anything of the model's shape)."""
    from ppgen.data import file_record
    from ppgen.metrics import features_for

    if args.data is None:
        if args.labels is not None:
            raise UsageError("--labels goes with --data FILE (a split brings its own labels)")
        split = args.split or "test"
        data = runs.run_data(extra, args.dir, "pass --data FILE to score a file")
        return _Rows(data.split(split), runs.split_labels(model, data, split), extra.get("data"),
                     split, features_for(data.info))
    if args.split is not None:
        raise UsageError("--split picks a split of the run's data and --data scores a whole file: "
                     "pass one of them")
    x = runs.read_rows(model, extra, args.data)
    source = {"spec": args.data, **file_record(args.data)}
    return _Rows(x, runs.score_labels(model, args), source, f"file-{Path(args.data).stem}",
                 features_for(None))


#: the report's likelihood keys (nats per datum; under torchrun, means over all ranks' rows),
#: in the order printed: the headline, the bounds, and a diffusion bound's decomposition
#: (prior L_T + the steps' sum + decoder L_0 = elbo)
LIKELIHOOD_KEYS = ("nll", "nll_lower", "nll_upper", "nll_width", "nll_forward", "nll_reverse",
                   "elbo", "iwae", "bits_per_dim", "bound_prior", "bound_steps",
                   "bound_decoder")
#: what the report says about itself rather than about the model
_ABOUT = {"model", "split", "data", "seed", "n", "num_particles", "features"}


def is_likelihood_key(key: str) -> bool:
    """Whether ``key`` of a report is a per-datum likelihood mean: one of
    :data:`LIKELIHOOD_KEYS`, or a term ``bound_<term>`` of any model's declared decomposition."""
    return key in LIKELIHOOD_KEYS or key.startswith("bound_")


def _print_report(report: dict[str, Any]) -> None:
    """The likelihood table (if the model has one) with its bound's decomposition, then the
    sample metrics (or any other number of the report) in the order they were written."""
    where = (f"the {report['split']} split" if report["split"] else
             Path(report["data"]["spec"]).name)
    print(f"{report['model']} on {where} (n = {report['n']})")
    _print_likelihood(report)
    other = [k for k, v in report.items() if not is_likelihood_key(k) and k not in _ABOUT
             and isinstance(v, int | float) and not isinstance(v, bool)]
    if other:
        print(_samples_heading(report))
        for key in other:
            print(f"    {key:<14} {runs.fmt(report[key])}")


def _print_likelihood(report: dict[str, Any]) -> None:
    keys = sorted((k for k in report if is_likelihood_key(k)), key=_print_order)
    if not keys:
        return
    print("  likelihood: nats per datum, lower is better")
    terms = [k for k in keys if k.startswith("bound_")]
    for key in [k for k in keys if k not in terms] + ["num_particles"] * ("num_particles" in
                                                                       report):
        print(f"    {key:<14} {runs.fmt(report[key])}")
    if terms:
        names = " + ".join(k.removeprefix("bound_") for k in terms)
        print(f"  the bound's decomposition: elbo = {names}")
        for key in terms:
            print(f"    {key:<14} {runs.fmt(report[key])}")


def _print_order(key: str) -> int:
    return LIKELIHOOD_KEYS.index(key) if key in LIKELIHOOD_KEYS else len(LIKELIHOOD_KEYS)


def _samples_heading(report: dict[str, Any]) -> str:
    features = report.get("features")
    if features is None:
        return "  more"
    sampler = report.get("sample_options")
    drawn = "" if not sampler else "; drawn with " + ", ".join(
        f"{k}={v}" for k, v in sampler.items())
    return f"  samples against the data ({features} features{drawn})"
