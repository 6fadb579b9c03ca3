"""Respacing: which steps of a ``T``-step process a shorter sampler keeps (the one function).

:func:`space_timesteps` returns the kept step indices ``0 <= s_1 < ... < s_S <= T - 1`` (index
``s`` is the paper's ``t = s + 1``); :meth:`~ppgen.diffusion.GaussianDiffusion.respace` turns
them into a new process over the same network, whose step ``i`` goes from the noise level of
``s_i`` straight to that of ``s_{i-1}`` (the data for ``i = 0``). The previous step of a kept
step is therefore always the next kept step below it, never ``s_i - T // S``: the off-by-one
previous timestep of samplers that recompute it from a stride (under ``"trailing"`` or
``"linspace"`` spacing) cannot happen here.

Spacings (``T`` steps, ``S`` kept), as defined in the libraries that named them:

* ``"linspace"`` — ``round(linspace(0, T - 1, S))`` (diffusers): both ends kept;
* ``"leading"`` — ``k * (T // S)`` for ``k = 0..S-1`` (diffusers; the DDIM paper's uniform
  skip): the first step kept, the last ``T // S - 1`` left out;
* ``"trailing"`` — ``round(T - k T / S) - 1`` for ``k = 0..S-1`` (diffusers; Lin et al., 2024,
  "Common Diffusion Noise Schedules and Sample Steps are Flawed"): the last step kept, so
  sampling starts from pure noise;
* ``"ddim"`` — ``range(0, T, c)`` with the stride ``c`` that gives exactly ``S`` steps
  (improved-diffusion's ``"ddimS"``, also accepted with the count in the name: ``"ddim50"``);
* a list of step indices: kept as given (sorted, checked).

Rounding is Python's ``round`` (half to even, as NumPy's) of the same float64 expressions.

Example:
    >>> space_timesteps(1000, 4, "trailing")
    [249, 499, 749, 999]
    >>> space_timesteps(10, 4, "linspace")
    [0, 3, 6, 9]
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["SPACINGS", "space_timesteps"]

#: the named spacings
SPACINGS = ("linspace", "leading", "trailing", "ddim")


def space_timesteps(
    num_timesteps: int, steps: int | None, spacing: str | Sequence[int] = "trailing"
) -> list[int]:
    """The step indices a respaced process keeps, ascending.

    Args:
        num_timesteps: ``T``, steps of the original process.
        steps: ``S``, how many to keep (``None``: taken from ``"ddimS"`` or from a list, else
            all ``T``).
        spacing: a name in :data:`SPACINGS`, ``"ddimS"``, or explicit indices in ``0..T-1``.

    Returns:
        ``S`` distinct indices in ``0..T-1``, ascending.

    Raises:
        ValueError: an unknown spacing, ``S`` outside ``1..T``, a count that disagrees with
            ``"ddimS"`` or the list, or a spacing that cannot give ``S`` distinct steps.
    """
    if not isinstance(spacing, str):
        return _explicit(num_timesteps, steps, spacing)
    spacing, steps = _parse(spacing, steps, num_timesteps)
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"steps must lie in 1..{num_timesteps}, got {steps}")
    kept = _SPACERS[spacing](num_timesteps, steps)
    if len(set(kept)) != steps:
        raise ValueError(f"{spacing!r} spacing cannot keep {steps} distinct steps of "
                         f"{num_timesteps}: choose another spacing or number of steps")
    return sorted(kept)


def _parse(spacing: str, steps: int | None, T: int) -> tuple[str, int]:
    """``("ddim", 50)`` from ``"ddim50"``; the default count is ``T``."""
    match = re.fullmatch(r"ddim(\d+)", spacing)
    if match:
        named = int(match.group(1))
        if steps is not None and steps != named:
            raise ValueError(f"spacing {spacing!r} keeps {named} steps but steps={steps}")
        return "ddim", named
    if spacing not in SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}: use one of {SPACINGS}, 'ddimS' "
                         "or a list of step indices")
    return spacing, T if steps is None else steps


def _linspace(T: int, S: int) -> list[int]:
    if S == 1:
        return [0]
    return [round(k * ((T - 1) / (S - 1))) for k in range(S)]


def _leading(T: int, S: int) -> list[int]:
    return [k * (T // S) for k in range(S)]


def _trailing(T: int, S: int) -> list[int]:
    return [round(T - k * (T / S)) - 1 for k in range(S)]


def _ddim(T: int, S: int) -> list[int]:
    for stride in range(1, T + 1):
        if len(range(0, T, stride)) == S:
            return list(range(0, T, stride))
    raise ValueError(f"no stride of range(0, {T}, stride) gives exactly {S} steps: "
                     "use another spacing or number of steps")


_SPACERS = {"linspace": _linspace, "leading": _leading, "trailing": _trailing, "ddim": _ddim}


def _explicit(T: int, steps: int | None, indices: Sequence[int]) -> list[int]:
    kept = sorted({int(i) for i in indices})
    if len(kept) != len(indices) or not kept or kept[0] < 0 or kept[-1] >= T:
        raise ValueError(f"explicit steps must be distinct indices in 0..{T - 1}")
    if steps is not None and steps != len(kept):
        raise ValueError(f"{len(kept)} explicit steps given but steps={steps}")
    return kept
