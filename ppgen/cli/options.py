"""The parser class and the options several commands share."""

from __future__ import annotations

import argparse
from typing import NoReturn

from ppgen.cli.checks import count

#: exit codes: a user mistake, a failed run
EXIT_USAGE = 2
EXIT_FAILURE = 1


class Parser(argparse.ArgumentParser):
    """argparse, with errors on one line (``ppgen fit: error: ...``) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_verbose(p)


def add_verbose(p: argparse.ArgumentParser) -> None:
    """``-v`` after the sub-command too (``ppgen fit ... -v``); it leaves ``ppgen -v`` alone."""
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="log progress details")


def add_evaluation_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--particles", type=count(1),
                   help="K for latent models (default: the model's evaluation_defaults; 1000 "
                   "for the zoo's latent models)")
    p.add_argument("--batch-size", type=count(1),
                   help="rows per evaluation chunk (default: the model's evaluation_defaults)")
    p.add_argument("--no-progress", action="store_true",
                   help="hide the progress bar of the rows scored (shown on a terminal)")

