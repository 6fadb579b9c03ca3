"""Discrete sites enumerated out of the per-datum log-densities (exact marginalisation).

A mixture written the Pyro way (``@config_enumerate``, a ``Categorical`` assignment ``c_n``
per datum) marks ``c`` with ``infer={"enumerate": "parallel"}``: NUTS and ``TraceEnum_ELBO``
sum it out, so a posterior holds only the continuous parameters. Conditioning on a draw and
*sampling* ``c_n`` would score ``log p(x_n | c_n, theta)`` for a random ``c_n``; the
per-datum likelihood is the marginal ``log p(x_n | theta) = log sum_c p(c | theta)
p(x_n | c, theta)``.

Here the program runs once under ``poutine.enum`` (every value of every enumerated site at
once, in tensor dimensions left of the plates and of the particle plate), and the sites'
log-densities are contracted by Pyro's tensor variable elimination
(:func:`pyro.ops.contract.contract_to_tensor`): a log-sum-exp over each enumerated dimension,
a sum over every plate but the ``"data"`` plate (and the particle plate) — in the order the
plate structure demands, so a per-datum site that nested per-pixel sites depend on is summed
out after the product over pixels (Obermeyer et al., 2019, "Tensor Variable Elimination for
Plated Factor Graphs").

Only sites the guide does not sample are enumerated (Pyro's rule: a site in the guide is
replayed from it). Enumerated sites must sit inside the ``"data"`` plate: a global discrete
variable couples the data, so ``p(x_n | theta)`` would not factor over ``n``.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import torch
from pyro import poutine
from pyro.ops import packed
from pyro.ops.contract import contract_to_tensor
from pyro.ops.rings import LogRing

from ppgen.errors import ModelError

__all__ = ["is_enumerated", "enumerated_sites", "enumerate_program", "contract_sites"]


def is_enumerated(site: dict) -> bool:
    """Whether a latent sample site is marked for parallel enumeration."""
    return (
        site["type"] == "sample"
        and not site["is_observed"]
        and site["infer"].get("enumerate") == "parallel"
    )


def enumerated_sites(
    model_tr: poutine.Trace, guide_tr: poutine.Trace | None, data_plate: str
) -> list[str]:
    """Latent model sites to sum out: marked ``"parallel"`` and not sampled by the guide.

    Raises:
        ModelError: an enumerated site outside the ``data_plate`` (a global discrete
            variable couples the data, so ``p(x_n | theta)`` would not factor).
    """
    sampled = set(guide_tr.nodes) if guide_tr is not None else set()
    names = [n for n, s in model_tr.nodes.items() if is_enumerated(s) and n not in sampled]
    for name in names:
        frames = model_tr.nodes[name]["cond_indep_stack"]
        if not any(f.name == data_plate for f in frames):
            raise ModelError(
                f"enumerated site {name!r} is outside the 'data' plate: a global discrete "
                "variable couples the data, so there is no pointwise log-likelihood; move it "
                "into the plate or sample it as a parameter"
            )
    return names


def enumerate_program(fn: Callable[..., Any], dims_in_use: int) -> Callable[..., Any]:
    """``fn`` under ``poutine.enum``, enumerating left of its ``dims_in_use`` plate dims."""
    return poutine.enum(fn, first_available_dim=-(dims_in_use + 1))


def contract_sites(
    trace: poutine.Trace,
    log_probs: dict[str, torch.Tensor],
    enumerated: Iterable[str],
    keep: Iterable[str],
) -> torch.Tensor:
    """The sites' joint log-density with the enumerated sites summed out.

    Args:
        trace: a trace of the program run under :func:`enumerate_program`.
        log_probs: ``{site: log_prob}`` (scaled and masked, batch-shaped) of every site in the
            joint, enumerated ones included.
        enumerated: the enumerated sites (their dimensions are log-sum-exp'ed).
        keep: names of the plates whose dimensions stay (the particle and ``"data"``
            plates); every other plate is summed over.

    Returns:
        A tensor whose non-singleton dimensions are the kept plates', at their dims, in the
        widest dtype of the ``log_probs`` (float64 data in a float32 program: float64).

    Raises:
        ValueError: a log-density with a dimension that is neither a plate's nor an
            enumerated site's (a program that broadcasts wrongly under enumeration).
    """
    trace.symbolize_dims()
    log_probs = _one_dtype(log_probs)
    tree: OrderedDict[frozenset, list[torch.Tensor]] = OrderedDict()
    dim_to_size: dict[str, int] = {}
    for name, lp in log_probs.items():
        site = trace.nodes[name]
        term = packed.pack(lp, site["infer"]["_dim_to_symbol"])
        dim_to_size.update(zip(term._pyro_dims, term.shape))
        tree.setdefault(_ordinal(trace, site), []).append(term)
    sum_dims = {trace.nodes[n]["infer"]["_enumerate_symbol"] for n in enumerated}
    target = frozenset(trace.plate_to_symbol[p] for p in keep if p in trace.plate_to_symbol)
    for symbol in target:
        dim_to_size.setdefault(symbol, 1)
    ring = LogRing(dim_to_size=dim_to_size)
    total = contract_to_tensor(tree, sum_dims, target_ordinal=target, ring=ring)
    return packed.unpack(total, trace.symbol_to_dim)


def _one_dtype(log_probs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The log-densities in their widest dtype: float64 data in a float32 program give a
    float64 data term beside float32 assignment terms, and the contraction's einsum takes
    one dtype only."""
    dtypes = {lp.dtype for lp in log_probs.values()}
    if len(dtypes) < 2:
        return log_probs
    wide = functools.reduce(torch.promote_types, dtypes)
    return {name: lp.to(wide) for name, lp in log_probs.items()}


def _ordinal(trace: poutine.Trace, site: dict) -> frozenset:
    return frozenset(
        trace.plate_to_symbol[f.name] for f in site["cond_indep_stack"] if f.vectorized
    )
