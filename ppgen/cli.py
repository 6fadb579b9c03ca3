"""The ``ppgen`` command line: ``fit``, ``evaluate``, ``sample``, ``score``, ``posterior``, ...

Every command has ``--help``; a user mistake (bad arguments, unreadable data, a broken
checkpoint) exits with code 2 and one line on stderr; a training run that diverges exits 1.
Results that scripts need are written as JSON/CSV, so nothing has to parse the printed tables.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["main", "build_parser"]

EXIT_USAGE = 2
EXIT_FAILURE = 1


class _Parser(argparse.ArgumentParser):
    """argparse, with errors on one line (``ppgen fit: error: ...``) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``ppgen`` argument parser with its sub-commands."""
    parser = _Parser(
        prog="ppgen",
        description="Probabilistic programming for deep generative models.",
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
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


def _add_fit(sub) -> None:
    p = sub.add_parser(
        "fit",
        help="train a model and save it",
        description="Train a zoo model on bundled or user data; writes DIR/model.pt, "
        "DIR/history.csv and DIR/metrics.json. Defaults are each model's benchmark settings.",
    )
    p.add_argument("model", nargs="?", help="model name in kebab case (see --list)")
    p.add_argument("--list", action="store_true", help="list the models and exit")
    p.add_argument("--data", default="digits", help="digits (default), a toy name, or a .npy/.csv")
    p.add_argument(
        "--representation",
        choices=["categorical", "binary", "continuous"],
        help="how to represent the data (digits default: categorical)",
    )
    p.add_argument("--out", help="output folder (required unless --list)")
    p.add_argument("--epochs", type=int, help="maximum number of epochs")
    p.add_argument("--batch-size", type=int, help="data per step")
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs")
    p.add_argument("--objective", help="training objective (mle, elbo, iwae, closed-form)")
    p.add_argument("--particles", type=int, help="particles of the objective (elbo/iwae)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model constructor option, e.g. --set latent_dim=8 (JSON values)",
    )
    p.add_argument("--optimizer", help="adam, adamw, sgd or rmsprop, or per-group settings as "
                   'JSON, e.g. \'{"model": {"name": "adam", "betas": [0.9, 0.99]}}\'')
    p.add_argument("--warmup-steps", type=int, help="linear learning-rate warm-up (steps)")
    p.add_argument("--ema", type=float, metavar="DECAY",
                   help="keep a moving average of the weights (e.g. 0.999): validated and saved")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"],
                   help="precision of the networks in training steps (likelihoods stay fp32)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_common(p)
    p.set_defaults(run=_cmd_fit)


def _add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score a saved model on a data split",
        description="Print the test (or train/val) NLL table of a model written by `ppgen fit` "
        "and write DIR/eval-<split>.json (nats per datum, lower is better). A class-conditional "
        "model scores each row given its own label.",
    )
    p.add_argument("dir", help="folder written by `ppgen fit`")
    p.add_argument("--split", choices=["train", "val", "test"], default="test")
    _add_evaluation_options(p)
    _add_common(p)
    p.set_defaults(run=_cmd_evaluate)


def _add_evaluation_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--particles", type=int,
                   help="K for latent models (default: the model's evaluation_defaults; 1000 "
                   "for the zoo's latent models)")
    p.add_argument("--batch-size", type=int,
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
    p.add_argument("--out", default=None, help="PNG path (default DIR/samples.png)")
    p.add_argument("--npy", default=None, help="also save the samples to this .npy file")
    p.add_argument("--label", type=int, default=None,
                   help="class to sample from a class-conditional model (default: each in turn)")
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
        "data (its validation split) that may be flagged (default 0.05).",
    )
    p.add_argument("dir", help="folder written by `ppgen fit` (or a model.pt file)")
    p.add_argument("--data", required=True, help="rows to score, a .npy or .csv file")
    p.add_argument("--labels", help="class label of each row (.npy or .csv, one integer per "
                   "row): required by a class-conditional model, which scores p(x | label)")
    p.add_argument("--out", required=True, help="CSV to write: one line per row")
    flag = p.add_mutually_exclusive_group()
    flag.add_argument("--threshold", type=float, help="flag rows with log-likelihood below it")
    flag.add_argument("--fpr", type=float, help="target false-positive rate (default 0.05)")
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
    p.add_argument("--epochs", type=int, help="VAE epochs (default: the benchmark recipe)")
    p.add_argument("--particles", type=int, default=1000, help="K of the IWAE estimate (1000)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
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
    p.add_argument("--data", required=True, help="observed data, a .npy or .csv file")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--method", choices=["nuts", "hmc", "svi"], default="nuts")
    p.add_argument("--guide", choices=["normal", "mvn", "flow"], default="normal",
                   help="variational family for --method svi (normal)")
    p.add_argument("--samples", type=int, default=1000, help="draws per chain (1000)")
    p.add_argument("--warmup", type=int, help="warm-up steps per chain (default: --samples)")
    p.add_argument("--chains", type=int, default=4, help="number of chains (4)")
    p.add_argument("--chain-method", choices=["auto", "parallel", "sequential"],
                   default="auto", help="run the chains in parallel processes or in turn "
                   "(auto: parallel when several CPUs are available); same draws either way")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--amortization-gap", action="store_true",
                   help="SPEC is instead a latent zoo model (a `ppgen fit` run folder or .pt "
                   "checkpoint): compare NUTS on p(z | x) with its encoder for the first "
                   "--rows data; writes amortization_gap.{txt,csv,png} and posterior.nc")
    p.add_argument("--rows", type=int, default=3,
                   help="data rows for --amortization-gap (the first 3)")
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
    return _fit(args)


def _print_models(models: dict) -> int:
    width = max((len(name) for name in models), default=0)
    for name, cls in models.items():
        doc = (cls.__doc__ or "").strip().splitlines()
        print(f"{name:<{width}}  {cls.kind.value:<8}  {doc[0] if doc else ''}")
    return 0


def _fit(args: argparse.Namespace) -> int:
    import pyro

    import ppgen
    from ppgen.data import load_data
    from ppgen.protocol import model_class

    cls = model_class(args.model)
    data = load_data(args.data, args.representation, seed=args.seed)
    pyro.set_rng_seed(args.seed)  # the initial weights too: same command + seed, same files
    model = cls.for_data(data.info, **_parse_sets(args.set))
    representation = args.representation or data.info.representation or None
    spec = {"spec": str(args.data), "representation": representation, "seed": args.seed}
    extra = {"data": spec, "info": data.info.to_dict()}
    start = time.perf_counter()
    history = ppgen.fit(
        model, data.train, data.val, objective=args.objective,
        objective_options=_objective_options(args), epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, patience=args.patience, device=args.device,
        seed=args.seed, out_dir=args.out, resume=args.resume or None,
        progress=not args.no_progress, extra=extra, labels=_split_labels(model, data, "train"),
        val_labels=_split_labels(model, data, "val"), optimizer=_optimizer(args.optimizer),
        warmup_steps=args.warmup_steps, ema=args.ema, precision=args.precision,
    )
    if not _cluster().is_main:  # under torchrun, rank 0 writes and reports
        return 0
    metrics = _fit_metrics(model, history, time.perf_counter() - start, extra)
    _write_json(Path(args.out) / "metrics.json", metrics)
    print(f"trained {model.name} ({len(history)} epochs); best val loss "
          f"{_fmt(history.best_val)} at epoch {history.best_epoch}; saved {args.out}/model.pt")
    return 0


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


def _parse_sets(items: Sequence[str]) -> dict[str, Any]:
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _Usage(f"--set expects KEY=VALUE, got {item!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


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
    from ppgen.conditions import take_rows
    from ppgen.evaluate import nll_report

    model, extra = _load_run(args.dir)
    cluster = _cluster()  # under torchrun each rank scores a block of rows
    device = cluster.device(args.device)
    data = _run_data(extra, args.dir)
    x = data.split(args.split).to(device)
    model.to(device).eval()
    kwargs = _label_kwargs(model, _split_labels(model, data, args.split))  # p(x | own label)
    rows = cluster.block(len(x))
    report = nll_report(model, x[rows], num_particles=args.particles,
                        batch_size=args.batch_size, **take_rows(kwargs, rows))
    means = {k: v for k, v in report.items() if k in ("nll", "elbo", "iwae", "bits_per_dim")}
    report.update(cluster.weighted_mean(means, report["n"]))
    if not cluster.is_main:
        return 0
    report.update(model=model.name, split=args.split, data=extra.get("data"))
    _write_json(Path(args.dir) / f"eval-{args.split}.json", report)
    _print_report(report)
    return 0


def _print_report(report: dict[str, Any]) -> None:
    print(f"{report['model']} on the {report['split']} split (n = {report['n']}), "
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
    model, extra = _load_run(args.dir)
    model.to(resolve_device(args.device)).eval()
    torch.manual_seed(args.seed)
    options = _parse_sets(args.set)
    if args.label is not None:
        if _class_condition(model) is None:
            raise _Usage(f"--label needs a class-conditional model; {model.name} is "
                         "unconditional")
        options.update(_label_kwargs(model, args.label))
    samples = model.sample(args.num_samples, **options).cpu()
    out = Path(args.out) if args.out else _run_folder(args.dir) / "samples.png"
    _plot_samples(samples, extra, out, model.name, model)
    if args.npy:
        np.save(args.npy, samples.numpy())
    print(f"wrote {args.num_samples} samples to {out}" + (f" and {args.npy}" if args.npy else ""))
    return 0


def _plot_samples(samples, extra: dict, out: Path, name: str, model=None) -> None:
    from ppgen import plots

    info = extra.get("info") or {}
    shape = info.get("image_shape")
    if shape:
        top = (info.get("num_levels") or 2) - 1 if info.get("likelihood") != "continuous" else 1
        fig = plots.image_grid(samples, tuple(shape), vmax=top, title=f"{name} samples")
    elif samples.dim() == 2 and samples.shape[1] == 2 and _has_density(model, info):
        data = _run_data(extra, str(out)).test if extra.get("data") else None
        fig = plots.density_heatmap(model, data, samples=samples, title=name)
    elif samples.dim() == 2 and samples.shape[1] == 2:
        fig = plots.points_scatter(samples, title=f"{name} samples")
    else:
        raise _Usage(f"samples of shape {tuple(samples.shape[1:])} have no picture; use --npy")
    plots.save(fig, out)


def _cmd_score(args: argparse.Namespace) -> int:
    from ppgen.anomaly.metrics import threshold_at_fpr
    from ppgen.data import load_array

    model, extra = _load_run(args.dir)
    info = extra.get("info") or {}
    x = load_array(args.data, info.get("likelihood", "continuous"),
                   num_levels=info.get("num_levels"), event_shape=tuple(model.event_shape))
    scores = _scores(model, x, args, _score_labels(model, args))
    threshold, how = args.threshold, f"--threshold {args.threshold}"
    if threshold is None:
        fpr = 0.05 if args.fpr is None else args.fpr
        if not 0 < fpr < 1:
            raise _Usage(f"--fpr must be in (0, 1), got {fpr}")
        data = _run_data(extra, args.dir)
        val_scores = _scores(model, data.val, args, _split_labels(model, data, "val"))
        threshold = threshold_at_fpr(val_scores, fpr)
        how = f"false-positive rate {fpr} on the run's validation split"
    flagged = scores < threshold
    _write_scores(Path(args.out), scores, flagged)
    print(f"scored {len(scores)} rows of {args.data}: {int(flagged.sum())} flagged as anomalies "
          f"(log-likelihood < {threshold:.3f}, {how}); wrote {args.out}")
    return 0


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

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["row", "log_likelihood", "anomaly_score", "is_anomaly"])
        for i, (s, a) in enumerate(zip(scores, flagged)):
            writer.writerow([i, f"{s:.6f}", f"{-s:.6f}", int(a)])


def _has_density(model, info: dict) -> bool:
    """A 2-D continuous model whose density the evaluation layer computes exactly."""
    from ppgen.protocol import ModelKind

    return (model is not None and model.kind == ModelKind.EXACT
            and info.get("likelihood") == "continuous" and not model.conditions)


def _cmd_demo(args: argparse.Namespace) -> int:
    from ppgen.demo import run_demo

    run_demo(
        args.out, epochs=args.epochs, num_particles=args.particles, device=args.device,
        seed=args.seed, progress=not args.no_progress,
    )
    return 0


def _cmd_posterior(args: argparse.Namespace) -> int:
    import torch

    from ppgen import analysis
    from ppgen.data import load_array

    if args.samples < 1 or args.chains < 1:
        raise _Usage("--samples and --chains must be at least 1")
    if args.amortization_gap:
        return _cmd_amortization_gap(args)
    model = _load_program(args.spec)
    x = load_array(args.data, "continuous").to(torch.get_default_dtype())
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

    if args.rows < 1:
        raise _Usage("--rows must be at least 1")
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


class _Usage(Exception):
    """A command-line mistake: printed on one line, exit code 2."""


def _run_folder(path: str) -> Path:
    p = Path(path)
    return p.parent if p.suffix == ".pt" else p


def _load_run(path: str):
    from ppgen.api import load
    from ppgen.checkpoint import read_checkpoint

    file = Path(path) if Path(path).suffix == ".pt" else Path(path) / "model.pt"
    extra = read_checkpoint(file).get("extra") or {}
    return load(file), extra


def _run_data(extra: dict, where: str):
    from ppgen.data import load_data

    spec = extra.get("data")
    if not spec:
        raise _Usage(f"{where} records no data set (it was not written by `ppgen fit`)")
    return load_data(spec["spec"], spec.get("representation"), seed=spec.get("seed", 0))


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ppgen`` command line; returns the exit code."""
    from ppgen.errors import PpgenError, TrainingError

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    prog = f"ppgen {args.command}"
    try:
        code = args.run(args)
        if argv is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            _cluster().close()  # the program started by torchrun leaves its group cleanly
        return code
    except TrainingError as err:
        print(f"{prog}: training failed: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except (PpgenError, _Usage) as err:
        print(f"{prog}: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


if __name__ == "__main__":
    sys.exit(main())
