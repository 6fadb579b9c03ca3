"""Loading user data (arrays, ``.npy``, ``.csv``) and resolving a data spec to splits.

Every path ends in :func:`ppgen.data.validate`, so user data are checked in one place.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppgen.data.digits import load_digits
from ppgen.data.info import DataInfo, DataSplits
from ppgen.data.toys import load_toy, toy_names
from ppgen.data.transforms import likelihood_of
from ppgen.data.validate import validate
from ppgen.errors import DataError

__all__ = ["SUFFIXES", "load_array", "load_data"]

#: File types :func:`load_array` reads.
SUFFIXES = (".npy", ".csv")


def load_array(
    source: Any,
    likelihood: str = "continuous",
    *,
    num_levels: int | None = None,
    event_shape: tuple[int, ...] | None = None,
    name: str | None = None,
) -> torch.Tensor:
    """Read and validate user data.

    CSV files are comma-separated numbers, one datum per line; the first line is taken as a
    header when every cell in it is text (a header of numbers such as ``0,1,2`` reads as data).

    Args:
        source: a NumPy array, a tensor, another array-like, or a path (``str`` or
            ``os.PathLike``) to a ``.npy`` or ``.csv`` file.
        likelihood: ``"continuous"``, ``"bernoulli"`` (0/1) or ``"categorical"`` (integers).
        num_levels: levels of categorical data; ``max + 1`` of the data when not given.
        event_shape: the expected shape of one datum, if known.
        name: how to call the data in error messages (default: the file name, or ``"data"``).

    Returns:
        ``[N, *event_shape]``: ``long`` for categorical data, floating point otherwise.

    Raises:
        DataError: a missing or unreadable file, an unsupported file type, a non-numeric CSV
            cell (named by line and column), or data that fail :func:`ppgen.data.validate`.

    Example:
        >>> load_array(np.array([[0, 2], [1, 1]]), "categorical").dtype
        torch.int64
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = name or path.name
        source = _read_file(path)
    name = name or "data"
    if likelihood == "categorical" and num_levels is None:
        num_levels = _infer_num_levels(validate(source, "continuous", name=name))
    return validate(source, likelihood, num_levels=num_levels, event_shape=event_shape, name=name)


def load_data(
    spec: str | os.PathLike,
    representation: str | None = None,
    *,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    num_levels: int | None = None,
) -> DataSplits:
    """Resolve a data spec (what the CLI's ``--data`` takes) to train / val / test splits.

    - ``"digits"``: :func:`~ppgen.data.load_digits` on the fixed benchmark split
      (representation defaults to ``"categorical"``);
    - a toy name (:func:`~ppgen.data.toy_names`): :func:`~ppgen.data.load_toy` (continuous);
    - a path to a ``.npy`` / ``.csv`` file of ``[N, D]`` (or ``[N, *shape]``) data: read with
      :func:`load_array` and split by a permutation seeded with ``seed``. Representation
      ``"continuous"`` (default), ``"binary"`` (values must already be 0/1) or ``"categorical"``
      (integers ``0..K-1``; ``K = num_levels`` or ``max + 1`` of the data).

    Args:
        spec: ``"digits"``, a toy name, or a file path.
        representation: ``"categorical"``, ``"binary"``, ``"continuous"`` or ``None`` (default).
        seed: seed of the digits dequantisation, the toy sampler or the file split.
        val_fraction, test_fraction: shares of a file's rows in val and test (each split gets
            at least one row when its fraction is positive).
        num_levels: levels of categorical file data.

    Returns:
        :class:`DataSplits`; for a file, ``info.name`` is the file stem and
        ``info.event_shape`` the shape of one row.

    Raises:
        DataError: an unknown spec, a representation the data cannot take, bad fractions, or
            data that fail validation.
    """
    spec = os.fspath(spec)
    if spec == "digits":
        return load_digits(representation or "categorical", seed=seed)
    if spec in toy_names():
        _check_toy_representation(representation)
        return load_toy(spec, seed=seed)
    return _load_file(
        spec, representation or "continuous", seed, val_fraction, test_fraction, num_levels
    )


# --- files -------------------------------------------------------------------------------


def _read_file(path: Path) -> np.ndarray:
    if not path.exists():
        raise DataError(
            f"no such file: {str(path)!r}: check the path (relative paths start at {os.getcwd()!r})"
        )
    if path.is_dir():
        raise DataError(f"{str(path)!r} is a directory: pass a {' or '.join(SUFFIXES)} file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _read_npy(path)
    if suffix == ".csv":
        return _read_csv(path)
    raise DataError(
        f"unsupported file type {suffix or '(none)'!r} for {path.name!r}: use "
        f"{' or '.join(SUFFIXES)}, or load the data yourself and pass an array"
    )


def _read_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise DataError(
            f"{path.name} holds Python objects, not numbers ({err}): save a numeric array "
            "with numpy.save"
        ) from err
    except (OSError, EOFError) as err:
        raise DataError(
            f"{path.name} is not a readable .npy file ({err}): re-save it with numpy.save"
        ) from err
    if not isinstance(arr, np.ndarray):
        arr.close()
        raise DataError(
            f"{path.name} is an .npz archive, not one array: save one array with numpy.save"
        )
    return arr


def _read_csv(path: Path) -> np.ndarray:
    rows = _csv_rows(path)
    if not rows:
        raise DataError(f"{path.name} is empty: write one datum per line, comma-separated")
    header = [c.strip() for c in rows[0][1]] if _is_header(rows[0][1]) else None
    body = rows[1:] if header else rows
    width = len(rows[0][1])
    # Without a header, text on the first line may be a header that mixes in numbers.
    first = body[0][0] if header is None else -1
    values = [
        _parse_row(path.name, line, cells, width, header, line == first) for line, cells in body
    ]
    return np.array(values, dtype=np.float64).reshape(len(values), width)


def _csv_rows(path: Path) -> list[tuple[int, list[str]]]:
    """Rows with their 1-based line numbers, blank lines left out (``,,`` is not blank)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(enumerate(csv.reader(f), start=1))
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(
            f"{path.name} is not a readable text CSV file ({err}): save it as "
            "UTF-8 comma-separated numbers"
        ) from err
    return [(line, cells) for line, cells in rows if len(cells) > 1 or (cells and cells[0].strip())]


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _is_header(cells: list[str]) -> bool:
    return not any(_is_number(c) for c in cells)


def _parse_row(
    file: str, line: int, cells: list[str], width: int, header: list[str] | None, first: bool
) -> list[float]:
    if len(cells) != width:
        raise DataError(
            f"{file}: line {line} has {len(cells)} columns but the first line has {width}: "
            "give every line the same number of comma-separated values"
        )
    return [_parse_cell(file, line, col, cell, header, first) for col, cell in enumerate(cells)]


def _parse_cell(
    file: str, line: int, col: int, cell: str, header: list[str] | None, first: bool
) -> float:
    try:
        return float(cell)
    except ValueError:
        pass
    column = f"column {col + 1}" + (f" ({header[col]!r})" if header else "")
    if not cell.strip():
        problem, fix = "is empty", "fill in or drop rows with missing values"
    else:
        problem, fix = f"is not a number: {cell.strip()!r}", "convert text columns to numbers"
    if first:
        fix += "; a header line must hold only column names"
    raise DataError(f"{file}: line {line}, {column} {problem}: {fix}")


def _infer_num_levels(t: torch.Tensor) -> int:
    """``max + 1`` of finite data (at least 2); validation then checks integrality and range."""
    return max(2, int(torch.floor(t.max()).item()) + 1)


# --- splits ------------------------------------------------------------------------------


def _check_toy_representation(representation: str | None) -> None:
    if representation not in (None, "continuous"):
        raise DataError(
            f"toy data are continuous, not {representation!r}: use representation "
            "'continuous' or leave it out"
        )


def _load_file(
    spec: str,
    representation: str,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    num_levels: int | None,
) -> DataSplits:
    likelihood = likelihood_of(representation)
    path = Path(spec)
    if not path.exists():
        raise DataError(
            f"unknown data {spec!r}: use 'digits', a toy ({', '.join(toy_names())}) or the "
            f"path of an existing {' or '.join(SUFFIXES)} file"
        )
    x = load_array(path, likelihood, num_levels=num_levels)
    if x.dim() < 2:
        raise DataError(
            f"{path.name} has shape {tuple(x.shape)}: pass a table [N, D] of N data "
            "(reshape(-1, 1) for scalar data)"
        )
    if likelihood == "categorical":
        num_levels = num_levels or _infer_num_levels(x)
    elif likelihood == "bernoulli":
        num_levels = 2
    info = DataInfo(
        event_shape=tuple(x.shape[1:]),
        likelihood=likelihood,
        num_levels=num_levels,
        name=path.stem,
        representation=representation,
    )
    return DataSplits(**_random_split(x, val_fraction, test_fraction, seed), info=info)


def _random_split(
    x: torch.Tensor, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, torch.Tensor]:
    """Rows of ``x`` ``[N, ...]`` split into train / val / test by a seeded permutation."""
    if not (0 <= val_fraction and 0 <= test_fraction and val_fraction + test_fraction < 1):
        raise DataError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} must be >= 0 and "
            "sum to less than 1"
        )
    n = len(x)
    n_val, n_test = _split_size(val_fraction, n), _split_size(test_fraction, n)
    if n - n_val - n_test < 1:
        raise DataError(
            f"{n} rows are too few to split into train, val and test: add data or lower "
            "val_fraction / test_fraction"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(x.device)
    val, test, train = torch.split(x[perm], [n_val, n_test, n - n_val - n_test])
    return {"train": train, "val": val, "test": test}


def _split_size(fraction: float, n: int) -> int:
    return 0 if fraction <= 0 else max(1, round(fraction * n))
