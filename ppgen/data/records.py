"""What a run records about its data, and rebuilding its splits from that record.

A run trained on a file must find the same rows again wherever it is evaluated: the record
holds the file's absolute path and the SHA-256 of its bytes, and :func:`load_record` refuses a
file that changed since (a changed file would silently re-split into other train/test rows).

Example:
    >>> record = data_record("digits", "binary", seed=0)
    >>> record
    {'spec': 'digits', 'representation': 'binary', 'seed': 0}
    >>> load_record(record).info.representation
    'binary'
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from ppgen.data.info import DataSplits
from ppgen.data.loaders import load_data
from ppgen.data.toys import toy_names
from ppgen.errors import DataError

__all__ = ["data_record", "file_record", "load_record"]


def file_record(path: str | os.PathLike) -> dict[str, str]:
    """``{"path": absolute path, "sha256": hex digest of the file's bytes}``.

    Raises:
        DataError: the file does not exist or cannot be read.
    """
    path = Path(path).resolve()
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as err:
        raise DataError(f"cannot read the data file {str(path)!r}: {err.strerror}") from None
    return {"path": str(path), "sha256": digest.hexdigest()}


def data_record(spec: str | os.PathLike, representation: str | None, seed: int) -> dict[str, Any]:
    """The record of a data spec (what :func:`~ppgen.data.load_data` takes): the spec, its
    representation and seed, and for a file its absolute path and content hash."""
    spec = os.fspath(spec)
    record: dict[str, Any] = {"spec": spec, "representation": representation, "seed": seed}
    if spec != "digits" and spec not in toy_names() and Path(spec).is_file():
        record.update(file_record(spec))
    return record


def load_record(record: dict[str, Any]) -> DataSplits:
    """The splits of a recorded data spec (:func:`data_record`), exactly as the run saw them.

    Raises:
        DataError: the recorded file is gone or its content changed since the record was made.
    """
    path = record.get("path")
    if path is not None:
        _check_unchanged(path, record.get("sha256"))
    return load_data(path or record["spec"], record.get("representation"),
                     seed=record.get("seed", 0))


def _check_unchanged(path: str, sha256: str | None) -> None:
    fix = "restore it, or pass the data explicitly (ppgen evaluate DIR --data FILE)"
    if not Path(path).is_file():
        raise DataError(f"the run's data file {path!r} no longer exists: {fix}")
    now = file_record(path)["sha256"]
    if sha256 is not None and now != sha256:
        raise DataError(
            f"the run's data file {path!r} changed since the run was trained (sha256 "
            f"{sha256[:12]}... then, {now[:12]}... now), so its train/val/test splits cannot be "
            f"rebuilt: {fix}"
        )
