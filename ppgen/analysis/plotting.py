"""The standard posterior figures, saved as PNG.

ArviZ's matplotlib backend draws the figures; each is written with :func:`ppgen.plots.save`
and closed straight away, so no figure outlives the call.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
from matplotlib.figure import Figure

from ppgen import plots

__all__ = ["plot_all", "plot_amortization_gap", "MAX_PAIR_VARS", "PPC_CURVES"]

#: Pair plots with more scalar parameters than this are skipped (they become unreadable).
MAX_PAIR_VARS = 8

#: Posterior-predictive curves in the PPC figure (fewer when the run has fewer draws).
PPC_CURVES = 50


def plot_all(idata: Any, out_dir: str | Path, var_names: list[str] | None = None) -> list[Path]:
    """Save trace, rank, pair, forest and posterior-predictive-check figures to ``out_dir``.

    Args:
        idata: InferenceData from :func:`ppgen.analysis.posterior`.
        out_dir: folder for ``trace.png``, ``rank.png``, ``pair.png``, ``forest.png`` and
            ``ppc.png`` (created if needed).
        var_names: parameters to plot (default: all).

    Returns:
        The paths written (a figure that does not apply, e.g. ``ppc`` without a
        posterior_predictive group, is skipped). Panels are laid out by matplotlib's
        constrained layout, so no title runs into a neighbour; the PPC draws
        :data:`PPC_CURVES` predictive curves, or all of a shorter run's.
    """
    out = Path(out_dir)
    drawers = {
        "trace": lambda: az.plot_trace(idata, var_names=var_names, compact=True),
        "rank": lambda: az.plot_rank(idata, var_names=var_names),
        "forest": lambda: az.plot_forest(idata, var_names=var_names, combined=True,
                                         r_hat=_has_chains(idata)),
    }
    if _num_scalars(idata, var_names) <= MAX_PAIR_VARS and _num_scalars(idata, var_names) > 1:
        drawers["pair"] = lambda: az.plot_pair(idata, var_names=var_names,
                                               divergences=_has_divergences(idata))
    if "posterior_predictive" in idata.groups() and "observed_data" in idata.groups():
        drawers["ppc"] = lambda: az.plot_ppc(idata, num_pp_samples=_ppc_curves(idata))
    return [_save(draw, out / f"{name}.png") for name, draw in drawers.items()]


def _save(draw, path: Path) -> Path:
    import matplotlib.pyplot as plt  # ArviZ's matplotlib backend creates pyplot figures

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        axes = draw()
    fig = _figure(axes)
    fig.set_layout_engine("constrained")  # ArviZ's panel titles and labels otherwise overlap
    try:
        plots.save(fig, path)
    finally:
        plt.close(fig)
    return path


def _figure(axes: Any):
    first = axes
    while hasattr(first, "ravel") or isinstance(first, list | tuple):
        first = first.ravel()[0] if hasattr(first, "ravel") else first[0]
    return first.get_figure()


def _ppc_curves(idata: Any) -> int:
    """:data:`PPC_CURVES`, or every draw when there are fewer (ArviZ refuses more)."""
    predictive = idata["posterior_predictive"]
    return min(PPC_CURVES, predictive.sizes["chain"] * predictive.sizes["draw"])


def _has_chains(idata: Any) -> bool:
    return idata["posterior"].sizes["chain"] > 1


def _has_divergences(idata: Any) -> bool:
    stats = idata["sample_stats"] if "sample_stats" in idata.groups() else None
    return stats is not None and "diverging" in stats and bool(stats["diverging"].any())


def _num_scalars(idata: Any, var_names: list[str] | None) -> int:
    post = idata["posterior"]
    names = var_names or list(post.data_vars)
    return sum(int(post[n].size // (post.sizes["chain"] * post.sizes["draw"])) for n in names)


#: Colours of the three posteriors in :func:`plot_amortization_gap`.
GAP_COLORS = {"nuts": "0.45", "amortized": "tab:red", "optimal": "tab:blue"}
_GAP_LABELS = {"nuts": "p(z | x) (NUTS)", "amortized": "q_amortized(z | x)",
               "optimal": "q*(z | x), per datum"}


def plot_amortization_gap(gap: Any, path: str | Path | None = None, *,
                          max_data: int = 4) -> Figure:
    """NUTS posterior vs. amortised guide vs. per-datum optimum, and the gap components.

    One panel per datum (the first ``max_data``): NUTS draws as points, the amortised guide
    and ``q*`` as KDE contours, in the latent's own 2-D coordinates (a 1-D latent as
    densities; for ``L > 2`` the two leading principal directions of that datum's NUTS
    draws). The last panel stacks the approximation and amortisation gaps into the
    inference gap, per datum, in nats.

    Args:
        gap: an :class:`~ppgen.analysis.amortization.AmortizationGap`.
        path: where to save the PNG (optional).
        max_data: at most this many data get a panel.

    Returns:
        The figure.
    """
    n = min(gap.log_px.shape[0], max_data)
    fig = Figure(figsize=(3.6 * (n + 1), 3.4), layout="constrained")
    axes = fig.subplots(1, n + 1, squeeze=False)[0]
    for i in range(n):
        _draw_latent_panel(axes[i], {k: v[i] for k, v in gap.draws.items()}, gap.site, i)
    _draw_gap_bars(axes[n], gap, n)
    handles = [_legend_handle(k) for k in GAP_COLORS]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False)
    if path is not None:
        plots.save(fig, path)
    return fig


def _legend_handle(kind: str):
    from matplotlib.lines import Line2D

    marker = {"marker": "o", "linestyle": ""} if kind == "nuts" else {}
    return Line2D([], [], color=GAP_COLORS[kind], label=_GAP_LABELS[kind], **marker)


def _project(draws: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str]:
    """Draws ``[S, L]`` in 2-D: as they are (L <= 2), else onto the NUTS draws' top PCs."""
    L = draws["nuts"].shape[-1]
    if L <= 2:
        return draws, "z"
    centre = draws["nuts"].mean(0)
    _, _, vt = np.linalg.svd(draws["nuts"] - centre, full_matrices=False)
    return {k: (v - centre) @ vt[:2].T for k, v in draws.items()}, "PC"


def _draw_latent_panel(ax, draws: dict[str, np.ndarray], site: str, index: int) -> None:
    import seaborn as sns

    draws, name = _project(draws)
    if draws["nuts"].shape[-1] == 1:
        for kind, v in draws.items():
            sns.kdeplot(x=v[:, 0], ax=ax, color=GAP_COLORS[kind], fill=kind == "nuts")
        ax.set_xlabel(f"{site}")
    else:
        nuts = draws["nuts"]
        ax.scatter(nuts[:, 0], nuts[:, 1], s=3, alpha=0.35, color=GAP_COLORS["nuts"])
        for kind in ("amortized", "optimal"):
            v = draws[kind]
            sns.kdeplot(x=v[:, 0], y=v[:, 1], ax=ax, levels=4, color=GAP_COLORS[kind],
                        linewidths=1.2, warn_singular=False)
        ax.set_xlabel(f"{name} 1")
        ax.set_ylabel(f"{name} 2")
    ax.set_title(f"datum {index}")


def _draw_gap_bars(ax, gap: Any, n: int) -> None:
    idx = np.arange(n)
    approx, amort = gap.approximation_gap[:n], gap.amortization_gap[:n]
    ax.bar(idx, approx, color=GAP_COLORS["optimal"], label="approximation gap")
    ax.bar(idx, amort, bottom=approx, color=GAP_COLORS["amortized"], label="amortization gap")
    ax.scatter(idx, gap.inference_gap[:n], color="k", marker="_", s=200, zorder=3,
               label="inference gap")
    ax.axhline(0.0, color="k", linewidth=0.6)
    ax.set_xticks(idx)
    ax.set_xlabel("datum")
    ax.set_ylabel("nats")
    ax.set_title("gaps: log p(x) - ELBO")
    ax.legend(fontsize="small", frameon=False)
