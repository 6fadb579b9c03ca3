"""The ``ppgen`` command line: ``fit``, ``evaluate``, ``sample``, ``score``, ``posterior``, ...

Every command has ``--help``; a user mistake (bad arguments, unreadable data, a broken
checkpoint, an output that would overwrite an input) exits with code 2 and one line on stderr; a
training run that diverges, or a disk that fills up while writing, exits 1 (one line, nothing
partial left behind). Results that scripts need are written as JSON/CSV, so nothing has to
parse the printed tables.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from ppgen.cli_checks import (
    POSITIVE,
    RATE,
    check_output,
    check_sets,
    count,
    options_help,
    parse_sets,
    real,
    refuse_inputs,
)
from ppgen.cli_checks import UsageError as _Usage

__all__ = ["main", "build_parser"]

EXIT_USAGE = 2
EXIT_FAILURE = 1

#: what ``ppgen sample --out`` can draw into
_IMAGE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg")


class _Parser(argparse.ArgumentParser):
    """argparse, with errors on one line (``ppgen fit: error: ...``) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _FitHelp(argparse.Action):
    """``ppgen fit MODEL --help``: the options, then MODEL's ``--set`` options with defaults."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS,
                 default: Any = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None) -> NoReturn:
        parser.print_help()
        print()
        print(_set_help(namespace.model) if getattr(namespace, "model", None) else
              "ppgen fit MODEL --help lists MODEL's --set options with their defaults.")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The ``ppgen`` argument parser with its sub-commands."""
    parser = _Parser(
        prog="ppgen",
        description="Probabilistic programming for deep generative models.",
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.set_defaults(command_line=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_fit(sub)
    _add_evaluate(sub)
    _add_sample(sub)
    _add_score(sub)
    _add_demo(sub)
    _add_posterior(sub)
    return parser


def _version() -> str:
    from ppgen import __version__

    return f"ppgen {__version__}"


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _add_verbose(p)


def _add_verbose(p: argparse.ArgumentParser) -> None:
    """``-v`` after the sub-command too (``ppgen fit ... -v``); it leaves ``ppgen -v`` alone."""
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="log progress details")


def _add_fit(sub) -> None:
    p = sub.add_parser(
        "fit",
        help="train a model and save it",
        description="Train a zoo model on bundled or user data; writes DIR/model.pt, "
        "DIR/history.csv, DIR/metrics.json and DIR/curves.png. Defaults are each model's "
        "benchmark settings.",
        add_help=False,
    )
    p.add_argument("-h", "--help", action=_FitHelp,
                   help="show this help (and MODEL's --set options) and exit")
    p.add_argument("model", nargs="?", help="model name in kebab case (see --list)")
    p.add_argument("--list", action="store_true", help="list the models and exit")
    p.add_argument("--data", default="digits", help="digits (default), a toy name, or a .npy/.csv")
    p.add_argument(
        "--representation",
        choices=["categorical", "binary", "continuous"],
        help="how to represent the data (digits default: categorical)",
    )
    p.add_argument("--out", help="output folder (required unless --list)")
    p.add_argument("--epochs", type=count(1), help="maximum number of epochs")
    p.add_argument("--batch-size", type=count(1), help="data per step")
    p.add_argument("--lr", type=POSITIVE, help="learning rate")
    p.add_argument("--patience", type=count(1), help="early-stopping patience in epochs")
    p.add_argument("--objective", help="training objective (mle, elbo, iwae, closed-form)")
    p.add_argument("--particles", type=count(1), help="particles of the objective (elbo/iwae)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model constructor option, e.g. --set latent_dim=8 (JSON values; "
        "ppgen fit MODEL --help lists them)",
    )
    p.add_argument("--optimizer", help="adam, adamw, sgd or rmsprop, or per-group settings as "
                   'JSON, e.g. \'{"model": {"name": "adam", "betas": [0.9, 0.99]}}\'')
    p.add_argument("--warmup-steps", type=count(0), help="linear learning-rate warm-up (steps)")
    p.add_argument("--ema", type=RATE, metavar="DECAY",
                   help="keep a moving average of the weights (e.g. 0.999): validated and saved")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"],
                   help="precision of the networks in training steps (likelihoods stay fp32)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    again.add_argument("--overwrite", action="store_true",
                       help="replace the run already in --out (refused without it)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_common(p)
    p.set_defaults(run=_cmd_fit)


def _add_evaluate(sub) -> None:
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
    _add_evaluation_options(p)
    _add_common(p)
    p.set_defaults(run=_cmd_evaluate)


def _add_evaluation_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--particles", type=count(1),
                   help="K for latent models (default: the model's evaluation_defaults; 1000 "
                   "for the zoo's latent models)")
    p.add_argument("--batch-size", type=count(1),
                   help="rows per evaluation chunk (default: the model's evaluation_defaults)")


def _add_sample(sub) -> None:
    p = sub.add_parser(
        "sample",
        help="draw samples from a saved model",
        description="Draw samples; writes a PNG (image grid or 2-D scatter) and optionally .npy. "
        "--set passes the model's declared sampler options (and conditioning inputs); an "
        "unknown one is an error that lists the valid ones.",
    )
    p.add_argument("dir", help="folder written by `ppgen fit` (or a model.pt file)")
    p.add_argument("-n", "--num-samples", type=int, default=64, help="number of samples (64)")
    p.add_argument("--out", default=None, help="PNG (or .pdf/.svg/.jpg) path (default "
                   "DIR/samples.png)")
    p.add_argument("--npy", default=None, help="also save the samples to this .npy file")
    p.add_argument("--label", type=int, default=None,
                   help="class to sample from a class-conditional model (default: every "
                   "class, one row of the grid each)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="sampler option, e.g. --set num_steps=50 (JSON values)")
    _add_common(p)
    p.set_defaults(run=_cmd_sample)


def _add_score(sub) -> None:
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
    _add_evaluation_options(p)
    _add_common(p)
    p.set_defaults(run=_cmd_score)


def _add_demo(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="the main job: baselines and a VAE on the bundled digits",
        description="Train the discrete baselines and a VAE on the bundled digits, print the "
        "test NLL table, and write sample grids, training curves, a latent plot and a report.",
    )
    p.add_argument("--out", default="ppgen-demo", help="output folder (default ./ppgen-demo)")
    p.add_argument("--epochs", type=count(1), help="VAE epochs (default: the benchmark recipe)")
    p.add_argument("--particles", type=count(1), default=1000,
                   help="K of the IWAE estimate (1000)")
    p.add_argument("--no-progress", action="store_true", help="hide progress (bars on a "
                   "terminal, plain lines on stderr otherwise)")
    _add_common(p)
    p.set_defaults(run=_cmd_demo)


def _add_posterior(sub) -> None:
    p = sub.add_parser(
        "posterior",
        help="posterior of your own Pyro model program, with ArviZ diagnostics",
        description="Run MCMC (or VI) on FUNCTION in FILE.py called as FUNCTION(data); writes "
        "DIR/posterior.nc (ArviZ InferenceData), DIR/report.txt and diagnostic PNGs.",
    )
    p.add_argument("spec", metavar="FILE.py:FUNCTION", help="the model program to analyse")
    p.add_argument("--data", required=True, help="observed data, a .npy or .csv file (a "
                   "one-column CSV is a vector [N])")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--method", choices=["nuts", "hmc", "svi"], default="nuts")
    p.add_argument("--guide", choices=["normal", "mvn", "flow"], default="normal",
                   help="variational family for --method svi (normal)")
    p.add_argument("--samples", type=count(4, " (ArviZ's diagnostics need 4 draws a chain)"),
                   default=1000, help="draws per chain (1000)")
    p.add_argument("--warmup", type=count(0), help="warm-up steps per chain (default: --samples)")
    p.add_argument("--chains", type=count(1), default=4, help="number of chains (4)")
    p.add_argument("--chain-method", choices=["auto", "parallel", "sequential"],
                   default="auto", help="run the chains in parallel processes or in turn "
                   "(auto: parallel when several CPUs are available); same draws either way")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--amortization-gap", action="store_true",
                   help="SPEC is instead a latent zoo model (a `ppgen fit` run folder or .pt "
                   "checkpoint): compare NUTS on p(z | x) with its encoder for the first "
                   "--rows data; writes amortization_gap.{txt,csv,png} and posterior.nc")
    p.add_argument("--rows", type=count(1), default=3,
                   help="data rows for --amortization-gap (the first 3)")
    _add_verbose(p)
    p.set_defaults(run=_cmd_posterior)


# --------------------------------------------------------------------------- commands


def _cmd_fit(args: argparse.Namespace) -> int:
    import ppgen.models  # noqa: F401  (fills the registry)
    from ppgen.protocol import registered_models

    if args.list:
        return _print_models(registered_models())
    if not args.model:
        raise _Usage("a model name is required (see ppgen fit --list)")
    if not args.out:
        raise _Usage("--out DIR is required")
    _check_run_folder(args)
    return _fit(args)


def _check_run_folder(args: argparse.Namespace) -> None:
    """``--out`` is a folder, and a run already in it is replaced only when asked."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise _Usage(f"--out {args.out} is a file: ppgen fit writes a run folder (model.pt, "
                     "history.csv, ...); choose a folder name")
    old = [out / name for name in ("model.pt", "checkpoint.pt") if (out / name).exists()]
    if old and not (args.resume or args.overwrite):
        what = "a finished run" if old[0].name == "model.pt" else "an interrupted run"
        raise _Usage(f"{args.out} already holds {what} ({old[0].name}): pass --overwrite to "
                     "replace it, --resume to continue it, or choose another --out")


def _clear_run_folder(args: argparse.Namespace) -> None:
    """``--overwrite``: the old run's files go just before training (so a mistake found
    earlier keeps them, and a failed new run leaves none of them beside its own)."""
    out = Path(args.out)
    if args.overwrite and out.is_dir():
        for name in (*_RUN_FILES, *(p.name for p in out.glob("eval-*.json"))):
            (out / name).unlink(missing_ok=True)


#: the files ``ppgen fit`` writes into a run folder
_RUN_FILES = ("model.pt", "checkpoint.pt", "history.csv", "metrics.json", "curves.png")


def _print_models(models: dict) -> int:
    width = max((len(name) for name in models), default=0)
    for name, cls in models.items():
        doc = (cls.__doc__ or "").strip().splitlines()
        print(f"{name:<{width}}  {cls.kind.value:<8}  {doc[0] if doc else ''}")
    return 0


def _fit(args: argparse.Namespace) -> int:
    import pyro

    import ppgen
    from ppgen import plots
    from ppgen.data import data_record, load_data
    from ppgen.protocol import model_class

    cls = model_class(args.model)
    options = check_sets(cls, parse_sets(args.set))
    data = load_data(args.data, args.representation, seed=args.seed)
    pyro.set_rng_seed(args.seed)  # the initial weights too: same command + seed, same files
    model = _build_model(cls, data.info, options)
    representation = args.representation or data.info.representation or None
    extra = {"data": data_record(args.data, representation, args.seed),
             "info": data.info.to_dict()}
    settings = _engine_options(args)
    _clear_run_folder(args)
    start = time.perf_counter()
    history = ppgen.fit(
        model, data.train, data.val, objective=args.objective,
        objective_options=_objective_options(args), device=args.device, seed=args.seed,
        out_dir=args.out, resume=args.resume or None, progress=not args.no_progress,
        extra=extra, labels=_split_labels(model, data, "train"),
        val_labels=_split_labels(model, data, "val"), **settings,
    )
    if not _cluster().is_main:  # under torchrun, rank 0 writes and reports
        return 0
    out = Path(args.out)
    metrics = _fit_metrics(model, history, time.perf_counter() - start, extra)
    metrics.update(seed=args.seed, settings=_settings_used(model, settings),
                   objective=_objective_used(model, args, out / "model.pt"),
                   run=_provenance(args))
    _write_json(out / "metrics.json", metrics)
    plots.save(plots.training_curves(history, title=f"{model.name} on {data.info.name}",
                                     objective=metrics["objective"]), out / "curves.png")
    print(f"trained {model.name} ({len(history)} epochs); best val loss "
          f"{_fmt(history.best_val)} at epoch {history.best_epoch}; saved {args.out}/model.pt")
    return 0


def _engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """The training options given on the command line (``None``: the model's default)."""
    return {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
            "patience": args.patience, "optimizer": _optimizer(args.optimizer),
            "warmup_steps": args.warmup_steps, "ema": args.ema, "precision": args.precision}


def _settings_used(model, options: dict[str, Any]) -> dict[str, Any]:
    """``model.fit_defaults`` with the given options on top, as ``ppgen.fit`` merges them."""
    return {**model.fit_defaults, **{k: v for k, v in options.items() if v is not None}}


def _objective_used(model, args: argparse.Namespace, saved: Path) -> dict[str, Any]:
    """The objective's config as the engine saved it with the model (a closed-form fit has
    none: its name)."""
    from ppgen.checkpoint import read_checkpoint

    training = read_checkpoint(saved)["extra"].get("training") or {}
    return training.get("objective") or {"name": args.objective or model.default_objective}


def _provenance(args: argparse.Namespace) -> dict[str, Any]:
    from ppgen.provenance import provenance

    return provenance(args.command_line)


def _cluster():
    """The processes this command runs on (one, or those torchrun started)."""
    from ppgen.engine.distributed import Cluster

    return Cluster.from_env()


def _optimizer(value: str | None) -> Any:
    """``--optimizer``: a name, or per-group settings as a JSON object."""
    if value is None or not value.lstrip().startswith("{"):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as err:
        raise _Usage(f"--optimizer is not valid JSON ({err.msg}): {value!r}") from None


def _class_condition(model):
    """The model's declared class-label input (``None`` for a model without one)."""
    from ppgen.conditions import ConditionKind

    return model.conditions.of_kind(ConditionKind.CLASS)


def _split_labels(model, data, split: str):
    """The labels of ``split`` for a class-conditional model (``--set num_classes=C``), else
    ``None``."""
    if _class_condition(model) is None:
        return None
    if not data.labels:
        raise _Usage(f"{model.name} is class-conditional and needs labelled data (e.g. --data "
                     "digits)")
    return data.labels[split]


def _label_kwargs(model, labels) -> dict[str, Any]:
    """``{name: labels}`` under the model's class-label keyword (``{}`` without labels)."""
    return {} if labels is None else {_class_condition(model).name: labels}


def _objective_options(args: argparse.Namespace) -> dict[str, Any] | None:
    return None if args.particles is None else {"num_particles": args.particles}


def _set_help(name: str) -> str:
    """``ppgen fit MODEL --help``: MODEL's ``--set`` options with their defaults."""
    import ppgen.models  # noqa: F401  (fills the registry)
    from ppgen.errors import PpgenError
    from ppgen.protocol import model_class

    try:
        cls = model_class(name)
    except PpgenError as err:
        return str(err)
    return options_help(cls)


def _build_model(cls, info, options: dict[str, Any]):
    """``cls.for_data(info, **options)``; a value the constructor refuses is a usage error."""
    from ppgen.errors import PpgenError

    try:
        return cls.for_data(info, **options)
    except PpgenError:
        raise
    except (TypeError, ValueError) as err:
        if not options:
            raise
        given = " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in options.items())
        raise _Usage(f"cannot build {cls.name} with --set {given}: {err}") from err


def _fit_metrics(model, history, seconds: float, extra: dict) -> dict[str, Any]:
    return {
        "model": model.name,
        "config": model.get_config(),
        "num_parameters": model.num_parameters(),
        "epochs": len(history),
        "best_epoch": history.best_epoch,
        "best_val_loss": history.best_val,
        "seconds": seconds,
        **extra,
    }


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import pyro

    from ppgen.conditions import take_rows
    from ppgen.evaluate import nll_report

    model, extra = _load_run(args.dir)
    cluster = _cluster()  # under torchrun each rank scores a block of rows
    device = cluster.device(args.device)
    x, labels, source, name = _evaluation_rows(model, extra, args)
    x = x.to(device)
    model.to(device).eval()
    kwargs = _label_kwargs(model, labels)  # p(x | own label)
    rows = cluster.block(len(x))
    pyro.set_rng_seed(args.seed)  # the same command and seed, the same estimate
    report = nll_report(model, x[rows], num_particles=args.particles,
                        batch_size=args.batch_size, **take_rows(kwargs, rows))
    means = {k: v for k, v in report.items() if k in ("nll", "elbo", "iwae", "bits_per_dim")}
    report.update(cluster.weighted_mean(means, report["n"]))
    if not cluster.is_main:
        return 0
    split = None if args.data else args.split or "test"
    report.update(model=model.name, split=split, data=source, seed=args.seed)
    _write_json(_run_folder(args.dir) / f"eval-{name}.json", report)
    _print_report(report)
    return 0


def _evaluation_rows(model, extra: dict, args: argparse.Namespace):
    """``(x, labels, data record, file name part)`` of ``ppgen evaluate``: a split of the run's
    recorded data, or every row of ``--data FILE``."""
    from ppgen.data import file_record

    if args.data is None:
        if args.labels is not None:
            raise _Usage("--labels goes with --data FILE (a split brings its own labels)")
        split = args.split or "test"
        data = _run_data(extra, args.dir, "pass --data FILE to score a file")
        return data.split(split), _split_labels(model, data, split), extra.get("data"), split
    if args.split is not None:
        raise _Usage("--split picks a split of the run's data and --data scores a whole file: "
                     "pass one of them")
    x = _read_rows(model, extra, args.data)
    source = {"spec": args.data, **file_record(args.data)}
    return x, _score_labels(model, args), source, f"file-{Path(args.data).stem}"


def _read_rows(model, extra: dict, path: str):
    """Rows of a user file for ``model``: read as the run's data were, checked by the model."""
    from ppgen.data import load_array

    info = extra.get("info") or {}
    x = load_array(path, info.get("likelihood", "continuous"),
                   num_levels=info.get("num_levels"), event_shape=tuple(model.event_shape))
    return model.check_data(x, Path(path).name)


def _print_report(report: dict[str, Any]) -> None:
    where = (f"the {report['split']} split" if report["split"] else
             Path(report["data"]["spec"]).name)
    print(f"{report['model']} on {where} (n = {report['n']}), "
          "nats per datum, lower is better")
    for key in ("nll", "elbo", "iwae", "bits_per_dim", "num_particles"):
        if key in report:
            print(f"  {key:<14} {_fmt(report[key])}")


def _cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ppgen.devices import resolve_device

    if args.num_samples < 1:
        raise _Usage("-n must be at least 1")
    out = Path(args.out) if args.out else _run_folder(args.dir) / "samples.png"
    npy = Path(args.npy) if args.npy else None
    check_output(out, "--out", _IMAGE_SUFFIXES)
    if npy is not None:
        check_output(npy, "--npy", (".npy",))
    refuse_inputs([out, npy], [_model_file(args.dir)])
    model, extra = _load_run(args.dir)
    model.to(resolve_device(args.device)).eval()
    torch.manual_seed(args.seed)
    options = parse_sets(args.set)
    if args.label is not None:
        if _class_condition(model) is None:
            raise _Usage(f"--label needs a class-conditional model; {model.name} is "
                         "unconditional")
        options.update(_label_kwargs(model, args.label))
    rows = _class_rows(model, args.num_samples, options)
    samples = model.sample(args.num_samples, **options).cpu()
    _plot_samples(samples, extra, out, model.name, model, rows)
    if npy is not None:
        _atomic(npy, lambda f: np.save(f, samples.numpy()))
    print(f"wrote {args.num_samples} samples to {out}" + (f" and {args.npy}" if args.npy else ""))
    return 0


def _class_rows(model, n: int, options: dict[str, Any]) -> tuple[int, list[str]] | None:
    """A class-conditional model sampled without a label: the classes in blocks, so that each
    row of the grid is one class; returns ``(images per row, row labels)`` (``options`` gets
    the labels). ``None`` for other models, or when a label was given."""
    import torch

    condition = _class_condition(model)
    if condition is None or options.get(condition.name) is not None:
        return None
    per_row = math.ceil(n / condition.num_classes)
    options[condition.name] = torch.arange(n) // per_row
    return per_row, [f"{condition.name}={c}" for c in range(math.ceil(n / per_row))]


def _plot_samples(samples, extra: dict, out: Path, name: str, model=None,
                  rows: tuple[int, list[str]] | None = None) -> None:
    from ppgen import plots

    info = extra.get("info") or {}
    shape = info.get("image_shape")
    if shape:
        top = (info.get("num_levels") or 2) - 1 if info.get("likelihood") != "continuous" else 1
        ncols, labels = rows or (None, None)
        fig = plots.image_grid(samples, tuple(shape), vmax=top, title=f"{name} samples",
                               ncols=ncols, row_labels=labels)
    elif samples.dim() == 2 and samples.shape[1] == 2 and _has_density(model, info):
        fig = plots.density_heatmap(model, _test_rows(extra), samples=samples, title=name)
    elif samples.dim() == 2 and samples.shape[1] == 2:
        fig = plots.points_scatter(samples, title=f"{name} samples")
    else:
        raise _Usage(f"samples of shape {tuple(samples.shape[1:])} have no picture; use --npy")
    plots.save(fig, out)


def _cmd_score(args: argparse.Namespace) -> int:
    from ppgen.anomaly.metrics import threshold_at_fpr

    out = Path(args.out)
    check_output(out, "--out", (".csv",))
    picture = out.with_suffix(".png")
    refuse_inputs([out, picture], [args.data, args.labels, _model_file(args.dir)])
    model, extra = _load_run(args.dir)
    x = _read_rows(model, extra, args.data)
    scores = _scores(model, x, args, _score_labels(model, args))
    threshold, how = args.threshold, f"--threshold {args.threshold}"
    if threshold is None:
        fpr = 0.05 if args.fpr is None else args.fpr
        data = _run_data(extra, args.dir, "pass --threshold T (a log-likelihood) instead")
        val_scores = _scores(model, data.val, args, _split_labels(model, data, "val"))
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


def _score_labels(model, args: argparse.Namespace):
    """The rows' labels from ``--labels FILE`` (``[N]``), or ``None`` without the option; a
    class-conditional model refuses to score without them, an unconditional one with them."""
    from ppgen.data import load_array

    if args.labels is None:
        if _class_condition(model) is not None:
            raise _Usage(f"{model.name} is class-conditional: pass --labels FILE with one "
                         "class label per row of --data")
        return None
    if _class_condition(model) is None:
        raise _Usage(f"--labels needs a class-conditional model; {model.name} is unconditional")
    labels = load_array(args.labels, "categorical", name=Path(args.labels).name)
    return labels.reshape(-1) if labels.dim() == 2 and labels.shape[1] == 1 else labels


def _scores(model, x, args: argparse.Namespace, labels=None):
    import torch

    from ppgen.devices import resolve_device
    from ppgen.evaluate import log_likelihood

    device = resolve_device(args.device)
    model.to(device).eval()
    torch.manual_seed(args.seed)
    ll = log_likelihood(model, x.to(device), num_particles=args.particles,
                        batch_size=args.batch_size, **_label_kwargs(model, labels))
    return ll.double().cpu().numpy()


def _write_scores(path: Path, scores, flagged) -> None:
    import csv
    import io

    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["row", "log_likelihood", "anomaly_score", "is_anomaly"])
    for i, (s, a) in enumerate(zip(scores, flagged)):
        writer.writerow([i, f"{s:.6f}", f"{-s:.6f}", int(a)])
    _atomic(path, lambda f: f.write(text.getvalue().encode()))


def _has_density(model, info: dict) -> bool:
    """A 2-D continuous model whose density the evaluation layer computes exactly."""
    from ppgen.protocol import ModelKind

    return (model is not None and model.kind == ModelKind.EXACT
            and info.get("likelihood") == "continuous" and not model.conditions)


def _cmd_demo(args: argparse.Namespace) -> int:
    from ppgen.demo import run_demo

    run_demo(
        args.out, epochs=args.epochs, num_particles=args.particles, device=args.device,
        seed=args.seed, progress=not args.no_progress, command=args.command_line,
    )
    return 0


def _cmd_posterior(args: argparse.Namespace) -> int:
    import torch

    from ppgen import analysis
    from ppgen.data import load_array

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise _Usage(f"--out {args.out} is a file: ppgen posterior writes a folder of results")
    if args.amortization_gap:
        return _cmd_amortization_gap(args)
    model = _load_program(args.spec)
    x = load_array(args.data, "continuous").to(torch.get_default_dtype())
    if Path(args.data).suffix == ".csv" and x.dim() == 2 and x.shape[1] == 1:
        x = x[:, 0]  # one column of observations: a vector [N], as the program expects
    idata = analysis.posterior(
        model, x, method=args.method, guide=args.guide, num_samples=args.samples,
        num_warmup=args.samples if args.warmup is None else args.warmup,
        num_chains=args.chains, seed=args.seed, chain_method=args.chain_method,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    idata.to_netcdf(str(out / "posterior.nc"))
    text = analysis.report(idata)
    (out / "report.txt").write_text(text)
    figures = [] if args.no_plots else analysis.plot_all(idata, out)
    print(text, end="")
    print(f"wrote {out}/posterior.nc, {out}/report.txt and {len(figures)} figures")
    return 0


def _cmd_amortization_gap(args: argparse.Namespace) -> int:
    from ppgen.analysis import amortization_gap, plot_amortization_gap
    from ppgen.data import load_array

    model, extra = _load_run(args.spec)
    info = extra.get("info") or {}
    x = load_array(args.data, info.get("likelihood", "continuous"),
                   num_levels=info.get("num_levels"), event_shape=tuple(model.event_shape))
    gap = amortization_gap(
        model, x[: args.rows], num_samples=args.samples,
        num_warmup=args.samples if args.warmup is None else args.warmup,
        num_chains=args.chains, seed=args.seed,
        mcmc_options={"chain_method": args.chain_method},
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "amortization_gap.txt").write_text(str(gap) + "\n")
    gap.table().to_csv(out / "amortization_gap.csv", index_label="datum")
    gap.idata.to_netcdf(str(out / "posterior.nc"))
    if not args.no_plots:
        plot_amortization_gap(gap, out / "amortization_gap.png")
    print(gap)
    print(f"wrote {out}/amortization_gap.txt, .csv{'' if args.no_plots else ', .png'} and "
          "posterior.nc")
    return 0


def _load_program(spec: str):
    import importlib.util

    path, sep, name = spec.rpartition(":")
    if not sep or not path.endswith(".py") or not name.isidentifier():
        raise _Usage(f"expected FILE.py:FUNCTION, got {spec!r}")
    if not Path(path).is_file():
        raise _Usage(f"no such file: {path}")
    module_spec = importlib.util.spec_from_file_location(f"_ppgen_user_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:  # the user's file: report any failure on one line
        raise _Usage(f"importing {path} failed: {type(err).__name__}: {err}") from err
    fn = getattr(module, name, None)
    if not callable(fn):
        raise _Usage(f"{path} defines no function {name!r}")
    return fn


# --------------------------------------------------------------------------- helpers


def _run_folder(path: str) -> Path:
    p = Path(path)
    return p.parent if p.suffix == ".pt" else p


def _model_file(path: str) -> Path:
    """The model file of a run folder (or the ``.pt`` file given)."""
    return Path(path) if Path(path).suffix == ".pt" else Path(path) / "model.pt"


def _load_run(path: str):
    import torch

    import ppgen.models  # noqa: F401  (registers the zoo's classes)
    from ppgen.checkpoint import model_from_checkpoint, read_checkpoint

    file = _model_file(path)
    payload = read_checkpoint(file)  # read once: its extra and its model
    extra = payload.get("extra") or {}
    model = model_from_checkpoint(payload, file)
    broken = [name for name, t in model.state_dict().items()
              if t.is_floating_point() and bool(torch.isnan(t).any())]
    if broken:
        raise _Usage(f"{file} holds NaN weights ({', '.join(broken[:3])}"
                     f"{', ...' if len(broken) > 3 else ''}): the run that wrote it diverged or "
                     "the model was damaged before saving; train it again")
    return model, extra


def _run_data(extra: dict, where: str, fix: str):
    """The splits of the run's recorded data (refused when its file changed since)."""
    from ppgen.data import load_record

    spec = extra.get("data")
    if not spec:
        raise _Usage(f"{where} records no data set (it was not written by `ppgen fit`): {fix}")
    return load_record(spec)


def _test_rows(extra: dict):
    """The run's test rows for a picture, or ``None`` when they cannot be had."""
    from ppgen.errors import DataError

    if not extra.get("data"):
        return None
    try:
        return _run_data(extra, "", "").test
    except DataError as err:
        logging.getLogger(__name__).warning("drawing without the run's data: %s", err)
        return None


def _atomic(path: Path, write) -> None:
    """Write ``path`` (its folder created) through a temporary file: never a partial file."""
    from ppgen.checkpoint import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, write)


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    text = json.dumps(payload, indent=2, default=str) + "\n"
    _atomic(path, lambda f: f.write(text.encode()))


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ppgen`` command line; returns the exit code."""
    from ppgen.errors import PpgenError, TrainingError
    from ppgen.provenance import command_line

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    args.command_line = command_line(None if argv is None else list(argv))
    prog = f"ppgen {args.command}"
    try:
        code = args.run(args)
        if argv is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            _cluster().close()  # the program started by torchrun leaves its group cleanly
        return code
    except TrainingError as err:
        print(f"{prog}: training failed: {_one_line(err)}", file=sys.stderr)
        return EXIT_FAILURE
    except (PpgenError, _Usage) as err:
        print(f"{prog}: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:  # a full disk fails the command (1); a path the user gave (2)
        print(f"{prog}: error: {_os_error(err)}", file=sys.stderr)
        return EXIT_FAILURE if err.errno in (errno.ENOSPC, errno.EDQUOT) else EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def _one_line(err: BaseException | str) -> str:
    """A message on one line; Pyro's trace-shape table (``Trace Shapes: ...``) left out."""
    text = str(err).split("Trace Shapes:")[0]
    return " ".join(text.split())


def _os_error(err: OSError) -> str:
    text = err.strerror or str(err)
    if err.filename and str(err.filename) not in text:
        text = f"{err.filename}: {text}"
    return _one_line(text)


if __name__ == "__main__":
    sys.exit(main())
