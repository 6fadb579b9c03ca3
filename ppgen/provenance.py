"""What produced a result: the command, the date and the versions, recorded with every run.

Example:
    >>> sorted(provenance("ppgen fit vae --out run")["versions"])
    ['ppgen', 'pyro', 'python', 'torch']
"""

from __future__ import annotations

import datetime
import platform
import shlex
import sys
from typing import Any

__all__ = ["provenance", "command_line"]


def command_line(argv: list[str] | None = None) -> str:
    """The command as a shell would re-run it: ``ppgen`` and ``argv`` (default: this process's
    arguments)."""
    return shlex.join(["ppgen", *(sys.argv[1:] if argv is None else argv)])


def provenance(command: str | None = None) -> dict[str, Any]:
    """``{"command", "date", "versions"}`` of a run started now.

    Args:
        command: the command line (default: :func:`command_line` of this process).

    Returns:
        The command, the UTC date in ISO 8601 and the versions of ppgen, torch, Pyro and Python.
    """
    import pyro
    import torch

    from ppgen import __version__

    return {
        "command": command_line() if command is None else command,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"ppgen": __version__, "torch": torch.__version__, "pyro": pyro.__version__,
                     "python": platform.python_version()},
    }
