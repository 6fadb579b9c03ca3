"""The standard posterior figures, saved as PNG.

ArviZ's matplotlib backend draws the figures; each is written with :func:`ppgen.plots.save`
and closed straight away, so no figure outlives the call.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import arviz as az

from ppgen import plots

__all__ = ["plot_all", "MAX_PAIR_VARS"]

#: Pair plots with more scalar parameters than this are skipped (they become unreadable).
MAX_PAIR_VARS = 8


def plot_all(idata: Any, out_dir: str | Path, var_names: list[str] | None = None) -> list[Path]:
    """Save trace, rank, pair, forest and posterior-predictive-check figures to ``out_dir``.

    Args:
        idata: InferenceData from :func:`ppgen.analysis.posterior`.
        out_dir: folder for ``trace.png``, ``rank.png``, ``pair.png``, ``forest.png`` and
            ``ppc.png`` (created if needed).
        var_names: parameters to plot (default: all).

    Returns:
        The paths written (a figure that does not apply, e.g. ``ppc`` without a
        posterior_predictive group, is skipped).
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
        drawers["ppc"] = lambda: az.plot_ppc(idata, num_pp_samples=50)
    return [_save(draw, out / f"{name}.png") for name, draw in drawers.items()]


def _save(draw, path: Path) -> Path:
    import matplotlib.pyplot as plt  # ArviZ's matplotlib backend creates pyplot figures

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        axes = draw()
    fig = _figure(axes)
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


def _has_chains(idata: Any) -> bool:
    return idata["posterior"].sizes["chain"] > 1


def _has_divergences(idata: Any) -> bool:
    stats = idata["sample_stats"] if "sample_stats" in idata.groups() else None
    return stats is not None and "diverging" in stats and bool(stats["diverging"].any())


def _num_scalars(idata: Any, var_names: list[str] | None) -> int:
    post = idata["posterior"]
    names = var_names or list(post.data_vars)
    return sum(int(post[n].size // (post.sizes["chain"] * post.sizes["draw"])) for n in names)
