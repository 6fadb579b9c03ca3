"""Representations: encoder features of data under any model that has an encoder.

The third job of a generative model (DESIGN.md, Sec. 1) is a representation of the data: a
VAE's or an adversarial autoencoder's posterior means, PPCA's posterior mean, a flow's
base-space code, a BiGAN's encoder. Each model says what its features are through one protocol
word, :meth:`~ppgen.GenerativeModel.encode`; :func:`represent` is the entry point that checks
the data once with the model's own :meth:`~ppgen.GenerativeModel.check_data`, batches them and
stacks the features (``ppgen represent`` on the command line).

Example:
    >>> import ppgen, torch
    >>> from ppgen.models import VAE
    >>> vae = VAE(64, latent_dim=4, hidden_dims=(32,), num_levels=17)
    >>> represent(vae, torch.randint(0, 17, (10, 64)), batch_size=4).shape
    torch.Size([10, 4])
"""

from __future__ import annotations

from typing import Any

import torch

from ppgen.errors import ArgumentError, ModelError
from ppgen.protocol import GenerativeModel

__all__ = ["represent"]

#: rows encoded at once unless the caller says
DEFAULT_BATCH_SIZE = 1024


def represent(model: GenerativeModel, x: Any, batch_size: int | None = None) -> torch.Tensor:
    """Encoder features ``[N, F]`` of data ``x: [N, *event_shape]`` under ``model``.

    Args:
        model: a :class:`~ppgen.GenerativeModel` with an encoder (VAE, AAE, PPCA, an
            unconditional flow, ...: whatever implements :meth:`~ppgen.GenerativeModel.encode`).
        x: array-like data, validated by ``model.check_data`` (shape, dtype, support).
        batch_size: rows per call of the encoder (default :data:`DEFAULT_BATCH_SIZE`).

    Returns:
        ``float`` features ``[N, F]`` on the model's device, without gradient.

    Raises:
        ModelError: ``model`` is not a ppgen model, or has no encoder.
        DataError: data the model cannot take.
        ArgumentError: a batch size that is not a positive integer.
    """
    if not isinstance(model, GenerativeModel):
        raise ModelError(f"ppgen.represent takes a ppgen model (GenerativeModel), not "
                         f"{type(model).__name__}")
    size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ArgumentError(f"batch_size must be a positive integer, got {batch_size!r}")
    x = model.check_data(x, "data")
    parts = [_features(model, x[i : i + size]) for i in range(0, len(x), size)]
    if not parts:
        raise ArgumentError("no rows to represent: pass data with at least one row")
    return torch.cat(parts)


def _features(model: GenerativeModel, rows: torch.Tensor) -> torch.Tensor:
    """``model.encode`` of one batch, checked to be ``[B, F]``."""
    with torch.no_grad():
        z = model.encode(rows)
    if z.dim() != 2 or z.shape[0] != rows.shape[0]:
        raise ModelError(f"{type(model).__name__}.encode returned shape {tuple(z.shape)} for "
                         f"{rows.shape[0]} rows: an encoder returns features [N, F]")
    return z.detach()
