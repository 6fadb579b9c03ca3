"""Model checkpoints: one file, a JSON config plus tensors, never unpickled code.

A model file is a ``torch.save`` archive of plain data only::

    {"format": "ppgen-model", "version": 1, "model": "<registered name>",
     "config": "<JSON of model.get_config()>", "state_dict": {...tensors...},
     "extra": "<JSON of user metadata, e.g. the DataInfo dict>"}

It is always read with ``torch.load(weights_only=True)``, which refuses any pickled object or
code, and the model is rebuilt from its registered class and JSON config. Files are written
atomically (temporary file in the same folder, ``fsync``, ``os.replace``), so a crash or a full
disk never leaves a half-written checkpoint under the final name. Every checkpoint (model files
and the engine's training checkpoints) carries a ``"checksum"`` of its tensors (SHA-256 over
their names, dtypes, shapes and bytes), checked on load: a damaged file is a
:class:`~ppgen.errors.CheckpointError`, never different numbers. Files written before checksums
existed still load, with a logged warning.

Example:
    >>> model.save("model.pt")                      # doctest: +SKIP
    >>> same = ppgen.checkpoint.load_model("model.pt")  # doctest: +SKIP
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import pickle
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import torch

from ppgen.errors import CheckpointError, PpgenError
from ppgen.registry import model_class

if TYPE_CHECKING:  # the protocol saves models through this module: no runtime import back
    from ppgen.protocol import GenerativeModel

__all__ = [
    "FORMAT",
    "VERSION",
    "save_model",
    "load_model",
    "read_checkpoint",
    "model_from_checkpoint",
    "atomic_write",
    "atomic_save",
    "safe_load",
    "tensor_checksum",
]

FORMAT = "ppgen-model"
VERSION = 1
#: the payload key of the tensors' checksum (added by :func:`atomic_save`)
CHECKSUM = "checksum"
#: what a full disk (or an exceeded quota) raises
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike


# --------------------------------------------------------------------------- atomic writes
def atomic_write(path: PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Write a file atomically: ``write(f)`` into a temp file beside ``path``, then rename.

    The temporary file is flushed and ``fsync``-ed before ``os.replace``, so readers see either
    the old file or the complete new one, never a partial write.

    Args:
        path: the final file name; its folder must exist.
        write: called once with a binary file object open for writing.

    Raises:
        OSError: the disk filled up (``errno.ENOSPC``/``EDQUOT``): the message names the file,
            the bytes written before the disk filled and the space left; nothing is left behind.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        written = _remove(tmp)
        if err.errno in _NO_SPACE:
            raise _disk_full(err, path, written) from None
        raise
    except BaseException:
        _remove(tmp)
        raise


def _remove(tmp: str) -> int:
    """Delete a temporary file; returns how many bytes it held (0 if it is gone)."""
    if not os.path.exists(tmp):
        return 0
    size = os.path.getsize(tmp)
    os.unlink(tmp)
    return size


def _disk_full(err: OSError, path: Path, written: int) -> OSError:
    """The one-line error of a write that ran out of space."""
    free = shutil.disk_usage(path.parent).free
    return OSError(
        err.errno,
        f"no space left on the device while writing {str(path)!r}: it needs more than "
        f"{_size(written)} ({_size(free)} free there); free some space and run again "
        "(nothing partial was left behind)",
        str(path),
    )


def _size(n: float) -> str:
    """``1234567`` -> ``"1.2 MB"``."""
    units = ["bytes", "kB", "MB", "GB"]
    while n >= 1000 and len(units) > 1:
        n, units = n / 1000, units[1:]
    return f"{int(n)} bytes" if units[0] == "bytes" else f"{n:.1f} {units[0]}"


def atomic_save(obj: Any, path: PathLike) -> None:
    """``torch.save(obj)`` to ``path`` atomically (see :func:`atomic_write`).

    A dict payload gets a ``"checksum"`` entry (:func:`tensor_checksum` of its tensors), which
    :func:`safe_load` checks.
    """
    if isinstance(obj, dict):
        obj = {**obj, CHECKSUM: tensor_checksum(obj)}
    atomic_write(path, lambda f: torch.save(obj, f))


# --------------------------------------------------------------------------- checksums
def tensor_checksum(payload: Any) -> str:
    """SHA-256 of every tensor in a nested dict/list payload: its place, dtype, shape and bytes.

    Entries that are not tensors (JSON text, numbers) do not count: damage there shows when they
    are decoded and checked. The ``"checksum"`` entry itself is left out.

    Returns:
        ``"sha256:<hex digest>"``.
    """
    digest = hashlib.sha256()
    for where, tensor in _tensors(payload, ()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{'/'.join(map(repr, where))}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy())
    return f"sha256:{digest.hexdigest()}"


def _tensors(obj: Any, where: tuple) -> Iterator[tuple[tuple, torch.Tensor]]:
    """``(key path, tensor)`` of every tensor in ``obj``, in a fixed (insertion) order."""
    if isinstance(obj, torch.Tensor):
        yield where, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            if not (where == () and key == CHECKSUM):
                yield from _tensors(value, (*where, key))
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            yield from _tensors(value, (*where, i))


def _verify(payload: Any, path: Path, what: str) -> Any:
    """Check and drop a payload's checksum; a payload without one is read with a warning."""
    if not isinstance(payload, dict):
        return payload
    stored = payload.pop(CHECKSUM, None)
    if stored is None:
        if "format" in payload:
            logger.warning("%s %r has no checksum (written by an older ppgen): its integrity "
                           "cannot be checked; save it again to add one", what, str(path))
    elif stored != tensor_checksum(payload):
        raise CheckpointError(
            f"{what} {str(path)!r} is corrupt: its tensors do not match the checksum stored "
            "with them (the file was damaged or changed after it was written); re-create it "
            "or use an intact copy"
        )
    return payload


# --------------------------------------------------------------------------- safe reads
def safe_load(path: PathLike, map_location: Any = "cpu", what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` with every failure turned into a clear error.

    Args:
        path: the file to read.
        map_location: passed to :func:`torch.load`.
        what: how the file is named in error messages.

    Returns:
        The file's object; a dict without its ``"checksum"`` entry, which was checked.

    Raises:
        CheckpointError: the file is missing, unreadable, truncated or corrupt (tensors that
            do not match their checksum included), or holds pickled code/objects (refused by
            ``weights_only``; nothing in it is executed).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {str(path)!r} does not exist (or is not a file)")
    return _verify(_torch_load(path, map_location, what), path, what)


def _torch_load(path: Path, map_location: Any, what: str) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(_refused_message(path, what, err)) from None
    except Exception as err:  # torch raises many types for damaged files
        raise CheckpointError(
            f"{what} {str(path)!r} is truncated or corrupt and cannot be read "
            f"({type(err).__name__}: {_first_line(err)}); re-create it or use an intact copy"
        ) from err


def _refused_message(path: Path, what: str, err: Exception) -> str:
    """Message for a file that ``weights_only`` loading refused."""
    if "GLOBAL" in str(err):
        return (
            f"{what} {str(path)!r} contains pickled Python code or objects and was refused "
            "(loaded with weights_only=True; nothing in it was executed). ppgen checkpoints "
            "hold only tensors and JSON; do not load this file unless you trust its source"
        )
    return (
        f"{what} {str(path)!r} is not safe tensor data: it is corrupt, or holds pickled data "
        "that was refused (loaded with weights_only=True; nothing in it was executed)"
    )


def _first_line(err: BaseException) -> str:
    """First line of an exception message (torch's messages run for paragraphs)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else "no message"


# --------------------------------------------------------------------------- model files
def save_model(model: GenerativeModel, path: PathLike, extra: dict | None = None) -> None:
    """Save a model's config and weights to one file, atomically.

    Args:
        model: the model to save (its class must be registered, see
            :class:`~ppgen.protocol.GenerativeModel`).
        path: the file to write (conventionally ``*.pt``).
        extra: JSON-able metadata stored with the model, e.g. ``DataInfo.to_dict()``.

    Raises:
        CheckpointError: ``extra`` is not JSON-able.
    """
    try:
        extra_json = json.dumps(extra or {})
    except TypeError as err:
        raise CheckpointError(f"checkpoint metadata 'extra' is not JSON-able: {err}") from err
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.name,
        "config": json.dumps(model.get_config()),
        "state_dict": model.state_dict(),
        "extra": extra_json,
    }
    atomic_save(payload, path)


def read_checkpoint(path: PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read and validate a model file without building the model.

    Returns:
        The file's dict with ``"config"`` and ``"extra"`` decoded from JSON to dicts.

    Raises:
        CheckpointError: missing, corrupt, unsafe or foreign file (see :func:`safe_load`).
    """
    payload = safe_load(path, map_location, what="model checkpoint")
    _check_format(payload, path)
    decoded = dict(payload)
    decoded["config"] = _decode_json(payload, "config", path)
    decoded["extra"] = _decode_json(payload, "extra", path)
    return decoded


def _check_format(payload: Any, path: PathLike) -> None:
    """Refuse anything that is not a ppgen model file of a version we can read."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{str(path)!r} is a torch file but not a ppgen model checkpoint (no "
            f"format={FORMAT!r} entry; a bare state_dict, perhaps). Make one with "
            "model.save(path) or ppgen.checkpoint.save_model(model, path)"
        )
    version = payload.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(
            f"{str(path)!r} has checkpoint version {version!r}; this ppgen reads versions "
            f"<= {VERSION}: upgrade ppgen"
        )
    if not isinstance(payload.get("model"), str) or not isinstance(payload.get("state_dict"), dict):
        raise CheckpointError(f"{str(path)!r} is damaged: 'model' or 'state_dict' is missing")


def _decode_json(payload: dict, key: str, path: PathLike) -> dict:
    """Decode the JSON string stored under ``key`` (missing ``extra`` reads as ``{}``)."""
    text = payload.get(key, "{}" if key == "extra" else None)
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{str(path)!r} is damaged: {key!r} is not valid JSON") from err
    if not isinstance(value, dict):
        raise CheckpointError(f"{str(path)!r} is damaged: {key!r} is not a JSON object")
    return value


def load_model(path: PathLike, map_location: Any = "cpu") -> GenerativeModel:
    """Rebuild a model saved with :func:`save_model` (or ``model.save``).

    Args:
        path: the model file.
        map_location: where to put the weights (``"cpu"``, ``"cuda"``, a device).

    Returns:
        The model, in eval mode, with exactly the saved config and weights.

    Raises:
        CheckpointError: missing, corrupt, unsafe or foreign file; a model class that is not
            registered; or weights that do not fit the model the config builds.
    """
    return model_from_checkpoint(read_checkpoint(path, map_location), path, map_location)


def model_from_checkpoint(
    payload: dict[str, Any], path: PathLike, map_location: Any = "cpu"
) -> GenerativeModel:
    """The model of a file already read with :func:`read_checkpoint` (``path`` names it in
    errors): for a caller that also wants its ``"extra"`` without reading the file twice.

    Raises:
        CheckpointError: see :func:`load_model`.
    """
    model = _build(payload["model"], payload["config"], path)
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as err:
        raise CheckpointError(
            f"the weights in {str(path)!r} do not fit the {payload['model']!r} model built from "
            f"its config: {_first_line(err)}"
        ) from err
    return model.to(map_location).eval() if _is_device(map_location) else model.eval()


def _build(name: str, config: dict, path: PathLike) -> GenerativeModel:
    """Instantiate the registered class ``name`` from its config.

    The zoo registers its classes when ``ppgen.models`` is imported; the core never imports the
    families (layering rule), so ``ppgen.load`` (face) imports them before calling this.
    """
    try:
        cls = model_class(name)
    except PpgenError as err:
        raise CheckpointError(
            f"{str(path)!r} holds a {name!r} model, but no model class of that name is "
            f"registered ({err}). Load with ppgen.load, or import the module that defines it "
            "before loading"
        ) from None
    try:
        return cls.from_config(config)
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            f"cannot rebuild {name!r} from the config in {str(path)!r}: {err}"
        ) from err


def _is_device(map_location: Any) -> bool:
    """Whether ``map_location`` names a single device (and not a dict or a function)."""
    return isinstance(map_location, str | torch.device)
