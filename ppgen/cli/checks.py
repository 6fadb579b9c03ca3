"""Checks of command-line arguments: numbers in range, a model's ``--set`` options, output paths.

Everything here refuses a mistake with a :class:`UsageError` (or argparse's type error), which
the ``ppgen`` command line prints on one line with exit code 2.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "UsageError",
    "count",
    "real",
    "POSITIVE",
    "RATE",
    "parse_sets",
    "model_options",
    "options_help",
    "check_sets",
    "check_output",
    "refuse_inputs",
]


class UsageError(Exception):
    """A command-line mistake: printed on one line, exit code 2."""


# --------------------------------------------------------------------------- numbers
def count(low: int, why: str = "") -> Any:
    """An argparse type: an integer ``>= low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}{why}, got {value}")
        return value
    return parse


def real(ok: Any = lambda v: True, rule: str = "a finite number") -> Any:
    """An argparse type: a finite float for which ``ok(value)`` holds (``rule`` says which)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
        if not (math.isfinite(value) and ok(value)):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return value
    return parse


POSITIVE = real(lambda v: v > 0, "a positive finite number")
RATE = real(lambda v: 0 < v < 1, "in (0, 1)")


# --------------------------------------------------------------------------- --set options
def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` items as ``{key: value}``: JSON values, other text as a string."""
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def model_options(cls) -> dict[str, inspect.Parameter]:
    """A model's ``--set`` options: its constructor arguments (what ``get_config`` saves)."""
    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p for p in params if p.name != "self"
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def _describe_option(param: inspect.Parameter) -> str:
    if param.default is param.empty:
        return f"{param.name} (from the data)"
    return f"{param.name} (default {_json(param.default)})"


def _json(value: Any) -> str:
    return json.dumps(list(value) if isinstance(value, tuple) else value, default=str)


def options_help(cls) -> str:
    """A model's ``--set`` options with their defaults, one a line (``ppgen fit MODEL --help``)."""
    lines = [f"--set options of {cls.name} (constructor arguments, JSON values; the data's",
             "shape and likelihood come from --data):"]
    lines += [f"  {_describe_option(p)}" for p in model_options(cls).values()]
    return "\n".join(lines)


def check_sets(cls, options: dict[str, Any]) -> dict[str, Any]:
    """``--set`` options a model declares, each of the kind of its default."""
    valid = model_options(cls)
    for key, value in options.items():
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            listed = ", ".join(_describe_option(p) for p in valid.values())
            raise UsageError(f"{cls.name} has no --set option {key!r}{hint} Valid options: "
                             f"{listed} (see ppgen fit {cls.name} --help)")
        _check_kind(cls.name, key, value, valid[key].default)
    return options


def _check_kind(name: str, key: str, value: Any, default: Any) -> None:
    """A ``--set`` value of the kind of its default (a default of ``None`` takes anything)."""
    kinds = [(bool, "true or false", lambda v: isinstance(v, bool)),
             (int, "an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
             (float, "a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)),
             (str, "a string", lambda v: isinstance(v, str)),
             (list | tuple, "a JSON list, e.g. [64, 64]", lambda v: isinstance(v, list))]
    for kind, what, fits in kinds:
        if isinstance(default, kind):
            if not fits(value):
                raise UsageError(f"--set {key}={_json(value)} for {name}: {key} takes {what} "
                                 f"(default {_json(default)})")
            return


# --------------------------------------------------------------------------- output paths
def check_output(path: Path, flag: str, suffixes: tuple[str, ...]) -> None:
    """An output file path: not a folder, and of a kind this command writes."""
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a directory: give a file name ending in "
                         f"{' or '.join(suffixes)}")
    if path.suffix.lower() not in suffixes:
        raise UsageError(f"{flag} {path} must be a {' or '.join(suffixes)} file")


def refuse_inputs(outputs: Sequence[Path | None], inputs: Sequence[str | Path | None]) -> None:
    """Refuse an output that is one of the command's inputs (by any path or link to it)."""
    for out in filter(None, outputs):
        for given in filter(None, inputs):
            if _same_file(Path(out), Path(given)):
                raise UsageError(f"{out} is an input of this command ({given}): writing there "
                                 "would destroy it; choose another output path")


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    return a.exists() and b.exists() and os.path.samefile(a, b)
