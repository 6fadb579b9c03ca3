"""2-D toy distributions for flows, diffusion and density-estimation demos.

- ``two_moons``: two interleaved half circles (as ``sklearn.datasets.make_moons``), Gaussian
  noise of std 0.1, centred at the origin. No closed-form density.
- ``eight_gaussians``: equal mixture of 8 isotropic Gaussians of std 0.2 with means on the
  circle of radius 2 at angles ``2πk/8``.
- ``checkerboard``: uniform over the 8 dark squares (``column + row`` even) of a 4x4 board of
  unit squares on ``[-2, 2)^2``; density ``1/8`` there and 0 elsewhere.
- ``rings``: equal mixture of 4 rings of radii 0.5, 1, 1.5 and 2; radius
  ``R ~ N(r_k, 0.1²)``, angle ``θ ~ U[0, 2π)``.

The ring density follows from the polar change of variables: the point ``(R cos θ, R sin θ)``
has polar radius ``|R|`` and a uniform angle independent of it, so at radius ``r > 0``
``p(x) = p_|R|(r) / (2π r)`` with the folded normal ``p_|R|(r) = Σ_k w_k [N(r; r_k, σ) +
N(-r; r_k, σ)]`` (exact, no truncation).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import torch

from ppgen.data.info import DataInfo, DataSplits
from ppgen.data.validate import validate
from ppgen.errors import DataError

__all__ = ["toy_names", "sample_toy", "toy_log_density", "load_toy"]

_MOON_NOISE = 0.1
_GAUSS_RADIUS, _GAUSS_STD, _GAUSS_COUNT = 2.0, 0.2, 8
_BOARD_SIZE = 4  # squares per side, each of side 1, board centred at the origin
_RING_RADII, _RING_STD = (0.5, 1.0, 1.5, 2.0), 0.1


def toy_names() -> tuple[str, ...]:
    """Names of the toy distributions, e.g. ``("two_moons", "eight_gaussians", ...)``."""
    return tuple(_SAMPLERS)


def sample_toy(
    name: str,
    n: int,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw ``n`` points from the toy distribution ``name``.

    Args:
        name: one of :func:`toy_names`.
        n: number of points.
        seed: seed of a fresh generator (``0`` when neither ``seed`` nor ``generator`` is given).
        generator: a generator to draw from instead (advances its state).

    Returns:
        float32 ``[n, 2]`` on the generator's device.

    Raises:
        DataError: an unknown name, a negative ``n``, or both ``seed`` and ``generator``.

    Example:
        >>> sample_toy("eight_gaussians", 5, seed=1).shape
        torch.Size([5, 2])
    """
    sampler = _lookup(_SAMPLERS, name)
    if n < 0:
        raise DataError(f"cannot draw n={n} points: n must be >= 0")
    return sampler(n, _generator(seed, generator))


def toy_log_density(name: str, x: torch.Tensor) -> torch.Tensor:
    """Exact log density of the toy distribution ``name`` at ``x``.

    Args:
        name: a toy with a closed-form density (all but ``"two_moons"``).
        x: points ``[n, 2]``.

    Returns:
        ``[n]`` log densities in ``x``'s dtype and device (``-inf`` outside the support).

    Raises:
        DataError: an unknown name, a toy without a closed form, or bad ``x``.
    """
    log_density = _lookup(_LOG_DENSITIES, name)
    if log_density is None:
        raise DataError(
            f"toy {name!r} has no closed-form density: evaluate a fitted model on it, or use "
            f"one of {', '.join(k for k, v in _LOG_DENSITIES.items() if v is not None)}"
        )
    return log_density(validate(x, "continuous", event_shape=(2,), name="x"))


def load_toy(
    name: str,
    n_train: int = 10_000,
    n_val: int = 2_000,
    n_test: int = 2_000,
    *,
    seed: int = 0,
) -> DataSplits:
    """Train / val / test samples of a toy, drawn in that order from one seeded generator.

    Args:
        name: one of :func:`toy_names`.
        n_train, n_val, n_test: split sizes.
        seed: seed of the generator.

    Returns:
        :class:`DataSplits` of float32 ``[n_split, 2]`` tensors; likelihood ``"continuous"``.
    """
    x = sample_toy(name, n_train + n_val + n_test, seed=seed)
    train, val, test = torch.split(x, [n_train, n_val, n_test])
    info = DataInfo(
        event_shape=(2,), likelihood="continuous", name=name, representation="continuous"
    )
    return DataSplits(train=train, val=val, test=test, info=info)


def _lookup(table: MappingProxyType[str, Any], name: str) -> Any:
    if name not in table:
        raise DataError(f"unknown toy {name!r}: use one of {', '.join(toy_names())}")
    return table[name]


def _generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator:
    if generator is not None and seed is not None:
        raise DataError("pass either seed or generator, not both")
    if generator is not None:
        return generator
    return torch.Generator().manual_seed(0 if seed is None else seed)


def _uniform(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g, device=g.device, dtype=torch.float32)


def _normal(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=g, device=g.device, dtype=torch.float32)


def _choice(k: int, n: int, g: torch.Generator) -> torch.Tensor:
    return torch.randint(k, (n,), generator=g, device=g.device)


# --- two moons ---------------------------------------------------------------------------


def _sample_two_moons(n: int, g: torch.Generator) -> torch.Tensor:
    t = math.pi * _uniform(n, g)
    lower = _choice(2, n, g).bool()
    upper_moon = torch.stack([torch.cos(t), torch.sin(t)], dim=-1)
    lower_moon = torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], dim=-1)
    x = torch.where(lower[:, None], lower_moon, upper_moon)
    centre = torch.tensor([0.5, 0.25], device=x.device)
    return x - centre + _MOON_NOISE * _normal((n, 2), g)


# --- eight Gaussians ---------------------------------------------------------------------


def _gauss_means(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``[8, 2]`` component means on the circle of radius 2."""
    angle = 2 * math.pi * torch.arange(_GAUSS_COUNT, device=device, dtype=dtype) / _GAUSS_COUNT
    return _GAUSS_RADIUS * torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)


def _sample_eight_gaussians(n: int, g: torch.Generator) -> torch.Tensor:
    means = _gauss_means(g.device, torch.float32)
    return means[_choice(_GAUSS_COUNT, n, g)] + _GAUSS_STD * _normal((n, 2), g)


def _log_density_eight_gaussians(x: torch.Tensor) -> torch.Tensor:
    sq_dist = (x[:, None, :] - _gauss_means(x.device, x.dtype)).pow(2).sum(-1)  # [n, 8]
    log_normal = -sq_dist / (2 * _GAUSS_STD**2) - math.log(2 * math.pi * _GAUSS_STD**2)
    return torch.logsumexp(log_normal, dim=-1) - math.log(_GAUSS_COUNT)


# --- checkerboard ------------------------------------------------------------------------


def _dark_squares(device: torch.device) -> torch.Tensor:
    """``[8, 2]`` integer (column, row) indices of the dark squares, ``col + row`` even."""
    idx = torch.arange(_BOARD_SIZE, device=device)
    cells = torch.cartesian_prod(idx, idx)
    return cells[cells.sum(-1) % 2 == 0]


def _sample_checkerboard(n: int, g: torch.Generator) -> torch.Tensor:
    squares = _dark_squares(g.device)
    corner = squares[_choice(len(squares), n, g)].to(torch.float32) - _BOARD_SIZE / 2
    offset = torch.stack([_uniform(n, g), _uniform(n, g)], dim=-1)
    return corner + offset


def _log_density_checkerboard(x: torch.Tensor) -> torch.Tensor:
    cell = torch.floor(x + _BOARD_SIZE / 2)  # [n, 2] square indices
    on_board = ((cell >= 0) & (cell < _BOARD_SIZE)).all(-1)
    dark = on_board & (cell.sum(-1).remainder(2) == 0)
    area = _BOARD_SIZE**2 / 2  # total area of the dark squares
    inside = torch.full_like(x[:, 0], -math.log(area))
    return torch.where(dark, inside, torch.full_like(inside, -math.inf))


# --- rings -------------------------------------------------------------------------------


def _sample_rings(n: int, g: torch.Generator) -> torch.Tensor:
    radii = torch.tensor(_RING_RADII, device=g.device, dtype=torch.float32)
    r = radii[_choice(len(radii), n, g)] + _RING_STD * _normal((n,), g)
    theta = 2 * math.pi * _uniform(n, g)
    return torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=-1)


def _log_density_rings(x: torch.Tensor) -> torch.Tensor:
    r = torch.linalg.vector_norm(x, dim=-1)  # [n]
    radii = torch.tensor(_RING_RADII, device=x.device, dtype=x.dtype)
    signed = torch.cat([radii, -radii])  # N(-r; m, s) = N(r; -m, s): the folded part
    z = (r[:, None] - signed) / _RING_STD  # [n, 2K]
    log_normal = -0.5 * z**2 - math.log(_RING_STD * math.sqrt(2 * math.pi))
    log_radial = torch.logsumexp(log_normal, dim=-1) - math.log(len(_RING_RADII))
    return log_radial - torch.log(2 * math.pi * r)


_Sampler = Callable[[int, torch.Generator], torch.Tensor]
_LogDensity = Callable[[torch.Tensor], torch.Tensor]

_SAMPLERS: MappingProxyType[str, _Sampler] = MappingProxyType(
    {
        "two_moons": _sample_two_moons,
        "eight_gaussians": _sample_eight_gaussians,
        "checkerboard": _sample_checkerboard,
        "rings": _sample_rings,
    }
)

#: ``None`` marks a toy without a closed-form density.
_LOG_DENSITIES: MappingProxyType[str, _LogDensity | None] = MappingProxyType(
    {
        "two_moons": None,
        "eight_gaussians": _log_density_eight_gaussians,
        "checkerboard": _log_density_checkerboard,
        "rings": _log_density_rings,
    }
)
