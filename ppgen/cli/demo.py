"""``ppgen demo``: the main job on the bundled digits."""

from __future__ import annotations

import argparse

from ppgen.cli import options
from ppgen.cli.checks import count


def add_parser(sub) -> None:
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
    options.add_common(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ppgen.demo import run_demo

    run_demo(
        args.out, epochs=args.epochs, num_particles=args.particles, device=args.device,
        seed=args.seed, progress=not args.no_progress, command=args.command_line,
    )
    return 0

