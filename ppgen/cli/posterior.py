"""``ppgen posterior``: MCMC or VI on a user's Pyro program, with ArviZ diagnostics; or the
amortisation gap of a latent zoo model."""

from __future__ import annotations

import argparse
from pathlib import Path

from ppgen.cli import options, runs
from ppgen.cli.checks import UsageError, count


def add_parser(sub) -> None:
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
    options.add_verbose(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ppgen import analysis
    from ppgen.data import load_array

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out} is a file: ppgen posterior writes a folder of results")
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

    model, extra = runs.load_run(args.spec)
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
        raise UsageError(f"expected FILE.py:FUNCTION, got {spec!r}")
    if not Path(path).is_file():
        raise UsageError(f"no such file: {path}")
    module_spec = importlib.util.spec_from_file_location(f"_ppgen_user_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:  # the user's file: report any failure on one line
        raise UsageError(f"importing {path} failed: {type(err).__name__}: {err}") from err
    fn = getattr(module, name, None)
    if not callable(fn):
        raise UsageError(f"{path} defines no function {name!r}")
    return fn

