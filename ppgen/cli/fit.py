"""``ppgen fit``: train a zoo model on bundled or user data and write a run folder."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, NoReturn

from ppgen.cli import options, runs
from ppgen.cli.checks import POSITIVE, RATE, UsageError, check_sets, count, options_help, parse_sets


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


def add_parser(sub) -> None:
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
    p.add_argument("--data-b", action="append", default=[], metavar="PATH",
                   help="translation models: another image domain (.npy/.csv or a folder of "
                   "PNGs), e.g. --data A.npy --data-b B.npy; on the digits name the domains "
                   "instead: --data digits-domains:original,bold")
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
    options.add_common(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import ppgen.models  # noqa: F401  (fills the registry)
    from ppgen.protocol import registered_models

    if args.list:
        return _print_models(registered_models())
    if not args.model:
        raise UsageError("a model name is required (see ppgen fit --list)")
    if not args.out:
        raise UsageError("--out DIR is required")
    _check_run_folder(args)
    return _fit(args)


def _check_run_folder(args: argparse.Namespace) -> None:
    """``--out`` is a folder, and a run already in it is replaced only when asked."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out} is a file: ppgen fit writes a run folder (model.pt, "
                     "history.csv, ...); choose a folder name")
    old = [out / name for name in ("model.pt", "checkpoint.pt") if (out / name).exists()]
    if old and not (args.resume or args.overwrite):
        what = "a finished run" if old[0].name == "model.pt" else "an interrupted run"
        raise UsageError(f"{args.out} already holds {what} ({old[0].name}): pass --overwrite to "
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
    from ppgen.data import data_record
    from ppgen.protocol import model_class

    cls = model_class(args.model)
    options = check_sets(cls, parse_sets(args.set))
    data, options = _load_data(args, cls, options)
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
        extra=extra, labels=runs.split_labels(model, data, "train"),
        val_labels=runs.split_labels(model, data, "val"), **settings,
    )
    if not runs.cluster().is_main:  # under torchrun, rank 0 writes and reports
        return 0
    out = Path(args.out)
    metrics = _fit_metrics(model, history, time.perf_counter() - start, extra)
    metrics.update(seed=args.seed, settings=_settings_used(model, settings),
                   objective=_objective_used(model, args, out / "model.pt"),
                   run=_provenance(args))
    runs.write_json(out / "metrics.json", metrics)
    plots.save(plots.training_curves(history, title=f"{model.name} on {data.info.name}",
                                     objective=metrics["objective"]), out / "curves.png")
    print(f"trained {model.name} ({len(history)} epochs); best val loss "
          f"{runs.fmt(history.best_val)} at epoch {history.best_epoch}; saved {args.out}/model.pt")
    return 0


def _load_data(args: argparse.Namespace, cls, options: dict[str, Any]):
    """The splits of ``--data`` and the model options they settle: a translation model's
    domains (and whether the validation data are paired) come from its domain data."""
    from ppgen.data import load_data
    from ppgen.models.translation import TranslationModel

    if not issubclass(cls, TranslationModel):
        if args.data_b:
            raise UsageError("--data-b gives another image domain to a translation model "
                             "(cyclegan, stargan); other models take one --data")
        return load_data(args.data, args.representation, seed=args.seed), options
    from ppgen.data.domains import DIGIT_DOMAINS_SPEC, load_domains

    if args.representation not in (None, "continuous"):
        raise UsageError(f"{cls.name} translates images in [0, 1]: leave out --representation "
                         "(or pass continuous)")
    spec = DIGIT_DOMAINS_SPEC if args.data == "digits" else args.data
    named = options.get("domains")
    if spec.split(":")[0] == DIGIT_DOMAINS_SPEC and ":" not in spec and named is None:
        named = cls.default_domains
    data = load_domains(spec, args.data_b, named, seed=args.seed)
    return data, {**options, "domains": list(data.domains), "paired": data.paired}


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


def _optimizer(value: str | None) -> Any:
    """``--optimizer``: a name, or per-group settings as a JSON object."""
    if value is None or not value.lstrip().startswith("{"):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as err:
        raise UsageError(f"--optimizer is not valid JSON ({err.msg}): {value!r}") from None


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
        raise UsageError(f"cannot build {cls.name} with --set {given}: {err}") from err


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

