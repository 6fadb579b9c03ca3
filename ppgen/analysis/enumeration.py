"""Pointwise log-likelihoods of programs whose discrete sites are enumerated out.

A mixture written the Pyro way (``@config_enumerate``, a ``Categorical`` assignment per datum)
is sampled by NUTS with the assignment summed out, so the posterior holds only the continuous
parameters. Conditioning on a draw and *sampling* the assignment would score
``log p(x_n | c_n, theta)`` for a random ``c_n``; the log-likelihood ArviZ needs is the
marginal ``log p(x_n | theta) = log sum_c p(c | theta) p(x_n | c, theta)``. Here each draw's
program runs under ``poutine.enum`` (every enumerated value at once, in dimensions left of the
plates) and the per-datum terms are log-sum-exp'ed over those dimensions.

:func:`ppgen.evaluate.pointwise_log_likelihood` handles every program without enumerated sites;
this module only adds the sum over enumerated values it does not do (a candidate to move into
the evaluation layer).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from pyro import poutine

from ppgen.errors import ModelError
from ppgen.evaluate import DATA_PLATE

__all__ = ["enumerated_sites", "enumerated_pointwise_log_likelihood"]


def enumerated_sites(trace) -> list[str]:
    """Latent sites marked ``infer={"enumerate": "parallel"}`` (e.g. by ``config_enumerate``).

    Raises:
        ModelError: an enumerated site outside the ``"data"`` plate (a global discrete
            variable couples the data, so ``p(x_n | theta)`` would not factor).
    """
    names = [n for n, s in trace.nodes.items() if s["type"] == "sample"
             and not s["is_observed"] and s["infer"].get("enumerate") == "parallel"]
    for name in names:
        if not any(f.name == DATA_PLATE for f in trace.nodes[name]["cond_indep_stack"]):
            raise ModelError(
                f"enumerated site {name!r} is outside the 'data' plate: a global discrete "
                "variable couples the data, so there is no pointwise log-likelihood; move it "
                "into the plate or sample it as a parameter")
    return names


def enumerated_pointwise_log_likelihood(
    program: Callable[..., Any],
    x: torch.Tensor,
    samples: dict[str, torch.Tensor],
    observed: list[str],
    **kwargs: Any,
) -> torch.Tensor:
    """``log p(x_n | theta_s)`` with the enumerated sites summed out: ``[S, N]``.

    Args:
        program: ``program(x, **kwargs)`` with enumerated sites in the ``"data"`` plate.
        x: data ``[N, ...]``.
        samples: ``{site: [S, *shape]}`` draws of the continuous latent sites.
        observed: the observed sites' names.
        **kwargs: passed to the program.
    """
    S = next(iter(samples.values())).shape[0]
    rows = [_one_draw(program, x, {k: v[s] for k, v in samples.items()}, observed, kwargs)
            for s in range(S)]
    return torch.stack(rows)


def _one_draw(program, x, draw, observed, kwargs) -> torch.Tensor:
    conditioned = poutine.condition(program, data=draw)
    with torch.no_grad(), poutine.block():
        plain = poutine.trace(conditioned).get_trace(x, **kwargs)
        nesting = _nesting(plain)
        enum = poutine.enum(conditioned, first_available_dim=-(nesting + 1))
        trace = poutine.trace(enum).get_trace(x, **kwargs)
    names = enumerated_sites(trace) + observed
    total = sum(trace.nodes[n]["fn"].log_prob(trace.nodes[n]["value"]) for n in names)
    total = total.reshape((1,) * max(0, nesting - total.dim()) + tuple(total.shape))
    enum_dims = list(range(total.dim() - nesting))
    marginal = torch.logsumexp(total, dim=enum_dims) if enum_dims else total
    data = nesting + _data_dim(plain, observed)
    others = [d for d in range(nesting) if d != data]
    if others:
        marginal = marginal.sum(others, keepdim=True)
    return marginal.reshape(-1).expand(x.shape[0])


def _nesting(trace) -> int:
    dims = [-f.dim for s in trace.nodes.values() if s["type"] == "sample"
            for f in s["cond_indep_stack"] if f.vectorized]
    return max(dims, default=0)


def _data_dim(trace, observed: list[str]) -> int:
    frames = [f for f in trace.nodes[observed[0]]["cond_indep_stack"] if f.name == DATA_PLATE]
    if not frames:
        raise ModelError(f"observed site {observed[0]!r} is not inside pyro.plate('data', N)")
    return frames[0].dim
