"""The ``ppgen`` program: its parser (one module per command) and ``main``."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from collections.abc import Sequence

from ppgen.cli import (
    demo,
    evaluate,
    fit,
    options,
    posterior,
    represent,
    runs,
    sample,
    score,
    translate,
)
from ppgen.cli.checks import UsageError

#: the commands, in the order ``ppgen --help`` lists them
COMMANDS = (fit, evaluate, sample, score, represent, demo, posterior, translate)


def build_parser() -> argparse.ArgumentParser:
    """The ``ppgen`` argument parser with its sub-commands."""
    parser = options.Parser(
        prog="ppgen",
        description="Probabilistic programming for deep generative models.",
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.set_defaults(command_line=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=options.Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def _version() -> str:
    from ppgen import __version__

    return f"ppgen {__version__}"


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
        return options.EXIT_USAGE
    args.command_line = command_line(None if argv is None else list(argv))
    prog = f"ppgen {args.command}"
    try:
        code = args.run(args)
        if argv is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            runs.cluster().close()  # the program started by torchrun leaves its group cleanly
        return code
    except TrainingError as err:
        print(f"{prog}: training failed: {_one_line(err)}", file=sys.stderr)
        return options.EXIT_FAILURE
    except (PpgenError, UsageError) as err:
        print(f"{prog}: error: {_one_line(err)}", file=sys.stderr)
        return options.EXIT_USAGE
    except OSError as err:  # a full disk fails the command (1); a path the user gave (2)
        print(f"{prog}: error: {_os_error(err)}", file=sys.stderr)
        full = err.errno in (errno.ENOSPC, errno.EDQUOT)
        return options.EXIT_FAILURE if full else options.EXIT_USAGE
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

