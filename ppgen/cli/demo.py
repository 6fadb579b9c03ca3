"""``ppgen demo``: the main job on the bundled digits."""

from __future__ import annotations

import argparse

from ppgen.cli import options
from ppgen.cli.checks import count

#: the demo's models (``ppgen.demo.MODELS``; repeated here so ``--help`` imports no torch)
MODELS = ("independent-categorical", "markov-chain", "vae", "dcgan", "improved-ddpm")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="the main job: baselines, a VAE, a GAN and a diffusion model on the bundled digits",
        description="Train the discrete baselines, a VAE, a DCGAN and an improved DDPM on the "
        "bundled digits (about 3 minutes on 2 CPU cores), print the test NLL table (the "
        "diffusion bound is an upper bound; the GAN has no likelihood) and the sample-quality "
        "table (beside the real floor), and write sample grids, the diffusion reverse chain, "
        "training curves, a latent plot and a report.",
    )
    p.add_argument("--out", default="ppgen-demo", help="output folder (default ./ppgen-demo)")
    p.add_argument("--models", nargs="+", choices=MODELS, metavar="MODEL",
                   help=f"run only these models (default all: {' '.join(MODELS)})")
    p.add_argument("--epochs", nargs="+", type=_epochs, metavar="[MODEL=]N",
                   help="epochs of every trained model (N), or of one (MODEL=N, repeatable); "
                   "default: the VAE's benchmark recipe and the short recipes of the GAN and "
                   "the diffusion model")
    p.add_argument("--particles", type=count(1), default=1000,
                   help="K of the VAE's IWAE estimate (1000)")
    p.add_argument("--threads", type=count(0), default=1,
                   help="torch CPU threads (default 1: the same numbers on any machine, and "
                   "no spin-waiting threads on a busy one; 0: torch's default, about 1.5x "
                   "faster on a quiet machine with two cores)")
    p.add_argument("--no-progress", action="store_true", help="hide progress (bars on a "
                   "terminal, plain lines on stderr otherwise)")
    options.add_common(p)
    p.set_defaults(run=run)


def _epochs(text: str) -> tuple[str | None, int]:
    """``N`` or ``MODEL=N``."""
    name, _, value = text.rpartition("=")
    if name and name not in MODELS:
        raise argparse.ArgumentTypeError(f"unknown model {name!r} in {text!r}: choose from "
                                         f"{', '.join(MODELS)}")
    return (name or None), count(1)(value)


def epochs_option(values: list[tuple[str | None, int]] | None) -> int | dict[str, int] | None:
    """``--epochs`` as ``run_demo`` takes it: one number for every model, or per model (a bare
    ``N`` then sets the others)."""
    if not values:
        return None
    named = {name: n for name, n in values if name is not None}
    every = [n for name, n in values if name is None]
    if not named:
        return every[-1]
    return {**({m: every[-1] for m in MODELS} if every else {}), **named}


def run(args: argparse.Namespace) -> int:
    from ppgen.demo import run_demo

    run_demo(
        args.out, models=args.models, epochs=epochs_option(args.epochs),
        num_particles=args.particles, device=args.device, seed=args.seed,
        threads=args.threads or None, progress=not args.no_progress, command=args.command_line,
    )
    return 0
