"""A plain-language diagnostic report of an ``InferenceData``.

Thresholds follow Vehtari et al. (2021, "Rank-normalization, folding, and localization") for
R-hat (< 1.01) and ESS (> 100 per chain), and Vehtari, Gelman & Gabry (2017) / Vehtari et al.
(2024, "Pareto smoothed importance sampling") for Pareto k (< 0.7 reliable).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import arviz as az
import numpy as np

__all__ = [
    "Diagnostics", "diagnostics", "report", "RHAT_MAX", "ESS_PER_CHAIN", "PARETO_K_MAX",
    "MAX_LISTED",
]

RHAT_MAX = 1.01
ESS_PER_CHAIN = 100
PARETO_K_MAX = 0.7
#: Parameters (or data points) a warning names, worst first; it counts the rest.
MAX_LISTED = 10


@dataclass
class Diagnostics:
    """Numbers behind the report.

    Attributes:
        summary: ``az.summary`` table (mean, sd, HDI, R-hat, bulk/tail ESS per parameter).
        method: the inference method recorded on the posterior.
        num_chains: ``C``.
        num_draws: ``D``.
        divergences: post-warmup divergent transitions (``None`` without sample stats).
        loo: ``az.loo(..., pointwise=True)`` (``None`` without a log_likelihood group).
        pareto_k: ``[N]`` Pareto k per datum.
    """

    summary: Any
    method: str
    num_chains: int
    num_draws: int
    divergences: int | None = None
    loo: Any = None
    pareto_k: np.ndarray = field(default_factory=lambda: np.empty(0))


def diagnostics(idata: Any, var_names: list[str] | None = None) -> Diagnostics:
    """Compute R-hat, ESS, divergences and PSIS-LOO Pareto k of ``idata``."""
    post = idata["posterior"]
    C, D = post.sizes["chain"], post.sizes["draw"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = az.summary(idata, var_names=var_names, round_to="none")
        loo = az.loo(idata, pointwise=True) if "log_likelihood" in idata.groups() else None
    div = None
    if "sample_stats" in idata.groups() and "diverging" in idata["sample_stats"]:
        div = int(np.asarray(idata["sample_stats"]["diverging"]).sum())
    k = np.asarray(loo.pareto_k).ravel() if loo is not None else np.empty(0)
    method = str(post.attrs.get("inference", "unknown"))
    return Diagnostics(summary, method, C, D, div, loo, k)


def report(idata: Any, var_names: list[str] | None = None) -> str:
    """A readable report: what was run, a table, and warnings with what to try.

    Args:
        idata: InferenceData with a posterior (and ideally sample_stats, log_likelihood).
        var_names: parameters to tabulate (default: all).

    Returns:
        Multi-line text.
    """
    d = diagnostics(idata, var_names)
    lines = [_header(d), "", _table(d.summary), ""]
    warnings_ = _mixing(d) + _divergence(d) + _pareto(d)
    lines += ["Diagnostics:"] + (warnings_ or ["  all checks passed."])
    if d.loo is not None:
        lines += ["", f"PSIS-LOO: elpd_loo = {float(d.loo.elpd_loo):.2f} "
                  f"(se {float(d.loo.se):.2f}), p_loo = {float(d.loo.p_loo):.2f}"]
    return "\n".join(lines) + "\n"


def _header(d: Diagnostics) -> str:
    return (f"Posterior by {d.method}: {d.num_chains} chain(s) x {d.num_draws} draws "
            f"= {d.num_chains * d.num_draws} draws.")


def _table(summary: Any) -> str:
    cols = [c for c in ("mean", "sd", "hdi_3%", "hdi_97%", "r_hat", "ess_bulk", "ess_tail")
            if c in summary.columns]
    return summary[cols].to_string(float_format=lambda v: f"{v:.3g}")


def _mixing(d: Diagnostics) -> list[str]:
    if d.method == "svi":
        return ["  note: draws come from a variational guide; they are independent, so R-hat "
                "and ESS say nothing about how close the guide is to the posterior. Compare "
                "with NUTS, or try a richer guide (mvn, flow)."]
    out = []
    rhat = d.summary["r_hat"] if "r_hat" in d.summary else None
    if d.num_chains < 2:
        out.append("  warning: R-hat needs at least 2 chains; run --chains 4.")
    elif rhat is not None and np.nanmax(rhat.to_numpy()) > RHAT_MAX:
        bad = _worst(_items(rhat[rhat > RHAT_MAX]), "{:.3f}", largest=True)
        out.append(f"  warning: R-hat > {RHAT_MAX} for {bad}: the chains disagree, so they "
                   "have not converged. Run longer warm-up and more draws; if it persists, "
                   "reparameterise (e.g. non-centred hierarchies) or tighten the priors.")
    need = ESS_PER_CHAIN * d.num_chains
    for col, what in (("ess_bulk", "bulk"), ("ess_tail", "tail")):
        if col in d.summary and np.nanmin(d.summary[col].to_numpy()) < need:
            bad = _worst(_items(d.summary[col][d.summary[col] < need]), "{:.0f}",
                         largest=False)
            out.append(f"  warning: {what} ESS < {need} for {bad}: too few effective draws for "
                       f"reliable {'means' if what == 'bulk' else 'intervals'}. Draw more "
                       "samples or reparameterise to reduce autocorrelation.")
    return out


def _items(column: Any) -> list[tuple[str, float]]:
    """``(parameter, value)`` pairs of a summary column."""
    return [(str(name), float(v)) for name, v in column.items()]


def _worst(items: list[tuple[Any, float]], fmt: str, largest: bool,
           what: str = "parameter(s)") -> str:
    """``"3 parameter(s), worst first: b (1.2), a (1.05) and 1 more"``: every name that needs
    attention, by severity, the first :data:`MAX_LISTED` with their values."""
    ranked = sorted(items, key=lambda item: -item[1] if largest else item[1])
    named = ", ".join(f"{name} ({fmt.format(v)})" for name, v in ranked[:MAX_LISTED])
    more = len(ranked) - MAX_LISTED
    return f"{len(ranked)} {what}, worst first: {named}" + (f" and {more} more" if more > 0 else "")


def _divergence(d: Diagnostics) -> list[str]:
    if not d.divergences:
        return []
    share = d.divergences / (d.num_chains * d.num_draws)
    return [f"  warning: {d.divergences} divergent transitions ({share:.1%}): the sampler "
            "could not follow the posterior's curvature, so the draws may be biased. Raise "
            "target_accept_prob (e.g. 0.95), or reparameterise (non-centred hierarchies, "
            "rescaled predictors)."]


def _pareto(d: Diagnostics) -> list[str]:
    if d.pareto_k.size == 0:
        return []
    bad = [(i, float(k)) for i, k in enumerate(d.pareto_k) if k > PARETO_K_MAX]
    if not bad:
        return []
    points = _worst(bad, "k = {:.2f}", largest=True, what="data point(s) (by index)")
    return [f"  warning: Pareto k > {PARETO_K_MAX} for {points}: PSIS-LOO is unreliable "
            "there, and those points are highly influential — often outliers. Check them; "
            "consider a heavier-tailed likelihood (Student-t), or exact leave-one-out refits "
            "for those points."]
