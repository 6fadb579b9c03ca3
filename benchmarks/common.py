"""What every benchmark script shares: recording results with their provenance."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def provenance(seed: Any) -> dict[str, Any]:
    """The command, commit, machine and seed of this run."""
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "commit": _commit(),
        "machine": _machine(),
        "seed": seed,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "torch": torch.__version__,
    }


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _machine() -> str:
    cpu = f"{os.cpu_count()} CPU cores, {platform.machine()}"
    if torch.cuda.is_available():
        return f"{cpu}, {torch.cuda.get_device_name()}"
    return cpu


def write_results(name: str, payload: dict[str, Any], seed: Any) -> Path:
    """Write ``results/<name>.json`` with provenance and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({**provenance(seed), **payload}, indent=2) + "\n")
    return path


# --------------------------------------------------------------------------- tables
def read_results(name: str) -> dict[str, Any]:
    """The payload of ``results/<name>.json`` (or of a path ending in ``.json``)."""
    path = Path(name) if name.endswith(".json") else RESULTS / f"{name}.json"
    return json.loads(path.read_text())


def mean_sd(values: list[float], fmt: str = "{:.2f}") -> str:
    """``mean ± sd`` (sample standard deviation) of several values, the value of one."""
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.mean(values))} ± {fmt.format(statistics.stdev(values))}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table of string cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
