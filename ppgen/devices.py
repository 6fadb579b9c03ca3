"""The one device helper: turn a user's device choice into a :class:`torch.device`."""

from __future__ import annotations

import torch

from ppgen.errors import PpgenError

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Resolve ``"auto"`` / ``"cpu"`` / ``"cuda"`` / ``"cuda:1"`` / a device to a device.

    ``"auto"`` (or ``None``) picks CUDA when it is available and the CPU otherwise.

    Raises:
        PpgenError: CUDA was asked for on a machine without it, or the name is not a device.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise PpgenError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda'") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise PpgenError(
            f"device {device!r} was requested but CUDA is not available on this machine: "
            "use device='cpu' or 'auto'"
        )
    return resolved
