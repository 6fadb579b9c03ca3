"""Assemble ArviZ ``InferenceData`` with ``az.from_dict`` (never the removed ``from_pyro``).

Dimension names come from the program's plates: a site's batch dimension that a
``pyro.plate("school", 8)`` declares is called ``school``; event and unplated dimensions are
``<site>_dim_<i>``. The same dimension name therefore links a latent site, the observed data
and the ``log_likelihood`` of the ``"data"`` plate.

Works with ArviZ 0.x (``from_dict(posterior=..., ...)``) and 1.x (``from_dict({"posterior":
...})``): the calling convention is detected from ``from_dict``'s signature.
"""

from __future__ import annotations

import inspect
from typing import Any

import arviz as az
import numpy as np

__all__ = ["site_dims", "make_inference_data", "GROUPS"]

#: The groups ``posterior`` fills, in ArviZ's order.
GROUPS = (
    "posterior", "sample_stats", "log_likelihood", "posterior_predictive",
    "prior", "prior_predictive", "observed_data", "constant_data",
)


def site_dims(trace) -> dict[str, list[str]]:
    """``{site: [dim name, ...]}`` for every non-scalar sample site of ``trace``."""
    dims = {}
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or type(site["fn"]).__name__ == "_Subsample":
            continue
        names = _dims_of(name, site)
        if names:
            dims[name] = names
    return dims


def _dims_of(name: str, site: dict) -> list[str]:
    rank = site["value"].dim()
    event = min(len(getattr(site["fn"], "event_shape", ())), rank)
    plates = {f.dim: f.name for f in site["cond_indep_stack"] if f.vectorized}
    batch = [plates.get(k - (rank - event), None) for k in range(rank - event)]
    names = [p if p is not None else f"{name}_dim_{i}" for i, p in enumerate(batch)]
    return names + [f"{name}_dim_{i}" for i in range(rank - event, rank)]


def make_inference_data(
    groups: dict[str, dict[str, np.ndarray]],
    dims: dict[str, list[str]],
    coords: dict[str, Any] | None = None,
    attrs: dict[str, Any] | None = None,
) -> Any:
    """``az.from_dict`` over the non-empty ``groups``, in either ArviZ calling convention.

    Args:
        groups: ``{group: {var: array}}``; posterior-like groups are ``[C, D, *shape]``,
            ``observed_data`` and ``constant_data`` are ``[*shape]``.
        dims: ``{var: [dim, ...]}`` (without ``chain``/``draw``).
        coords: ``{dim: values}``.
        attrs: written on every group.
    """
    groups = {g: v for g, v in groups.items() if v}
    params = inspect.signature(az.from_dict).parameters
    if "posterior_predictive" in params:  # ArviZ 0.x
        idata = az.from_dict(**groups, dims=dims, coords=coords or {})
    else:  # ArviZ 1.x: one mapping of groups
        idata = az.from_dict(groups, dims=dims, coords=coords or {})
    for group in groups:
        idata[group].attrs.update(attrs or {})
    return idata
