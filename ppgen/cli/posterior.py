"""``ppgen posterior``: MCMC or VI on a user's Pyro program, with ArviZ diagnostics; or the
amortisation gap of a latent zoo model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

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
    p.add_argument("--data", required=True, action="append", metavar="[NAME=]FILE",
                   help="observed data, a .npy or .csv file (a one-column CSV is a vector [N]) "
                   "passed as the program's first argument; NAME=FILE passes it as the keyword "
                   "NAME instead, and an .npz passes every array it holds by its name; repeat "
                   "for several arrays, e.g. --data y=y.npy --data X=X.npy")
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
    p.add_argument("--no-progress", action="store_true",
                   help="hide the progress bar of the chains (or of the VI fit)")
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
    from ppgen import analysis

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out} is a file: ppgen posterior writes a folder of results")
    if args.amortization_gap:
        return _cmd_amortization_gap(args)
    model = _load_program(args.spec)
    positional, named = read_arrays(args.data)
    idata = analysis.posterior(
        model, *positional, data=named or None, method=args.method, guide=args.guide,
        num_samples=args.samples,
        num_warmup=args.samples if args.warmup is None else args.warmup,
        num_chains=args.chains, seed=args.seed, chain_method=args.chain_method,
        progress=not args.no_progress,
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

    if len(args.data) != 1 or "=" in args.data[0] or args.data[0].endswith(".npz"):
        raise UsageError("--amortization-gap scores the rows of one .npy or .csv file: pass "
                         "--data FILE once")
    model, extra = runs.load_run(args.spec)
    info = extra.get("info") or {}
    x = load_array(args.data[0], info.get("likelihood", "continuous"),
                   num_levels=info.get("num_levels"), event_shape=tuple(model.event_shape))
    gap = amortization_gap(
        model, x[: args.rows], num_samples=args.samples,
        num_warmup=args.samples if args.warmup is None else args.warmup,
        num_chains=args.chains, seed=args.seed,
        mcmc_options={"chain_method": args.chain_method, "progress": not args.no_progress},
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


def read_arrays(specs: list[str]) -> tuple[list[Any], dict[str, Any]]:
    """``--data`` values -> ``(positional arguments, keyword arrays)`` of the program.

    ``FILE`` (at most one) is the first positional argument; ``NAME=FILE`` is the keyword
    ``NAME``; ``FILE.npz`` gives every array it holds under its own name. Floating-point arrays
    are checked (finite) and cast to torch's default dtype; integer and boolean arrays (indices,
    group labels) keep an integer dtype.
    """
    positional: list[Any] = []
    named: dict[str, Any] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = None, spec
        elif not name.isidentifier():
            raise UsageError(f"--data {spec}: {name!r} is not a keyword name; write "
                             "NAME=FILE with NAME the program's argument")
        if path.endswith(".npz"):
            if name is not None:
                raise UsageError(f"--data {spec}: an .npz file holds named arrays; pass it "
                                 f"alone (--data {path})")
            arrays = _npz_arrays(path)
        elif name is None:
            if positional:
                raise UsageError("--data: two files without a name; name them for the "
                                 "program's keywords (--data y=y.npy --data X=X.npy)")
            positional.append(_array(path, path))
            continue
        else:
            arrays = {name: _array(path, path)}
        for key, value in arrays.items():
            if key in named:
                raise UsageError(f"--data: the array {key!r} is given twice")
            named[key] = value
    return positional, named


def _array(source: Any, path: str, key: str | None = None) -> Any:
    """One array read as data (floats checked and in torch's default dtype; integers kept)."""
    import numpy as np
    import torch

    from ppgen.data import load_array

    label = Path(path).name if key is None else f"{Path(path).name}[{key}]"
    if isinstance(source, np.ndarray) and source.dtype.kind in "iub":
        return torch.as_tensor(source.astype(np.int64))
    x = load_array(source, "continuous", name=label).to(torch.get_default_dtype())
    if Path(path).suffix == ".csv" and x.dim() == 2 and x.shape[1] == 1:
        x = x[:, 0]  # one column of observations: a vector [N], as the program expects
    return x


def _npz_arrays(path: str) -> dict[str, Any]:
    import zipfile

    import numpy as np

    from ppgen.errors import DataError

    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise DataError(f"no such file: {path}") from None
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DataError(f"{path} is not a readable .npz of numeric arrays: {err}") from None
    if not arrays:
        raise DataError(f"{path} holds no arrays")
    bad = [key for key in arrays if not key.isidentifier()]
    if bad:
        raise DataError(f"{path}: array names {bad} are not keyword names; save the arrays "
                        "under the program's argument names (np.savez(path, y=y, X=X))")
    return {key: _array(value, path, key) for key, value in arrays.items()}


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

