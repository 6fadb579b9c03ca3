"""The figures of ``ppgen.analysis.plot_all``: every one drawn, none with overlapping text.

The InferenceData are built by hand (``az.from_dict``), so no sampler runs: short runs (one
chain of ten draws, fewer than the posterior-predictive check's default 50 curves) and a
model with a vector parameter (ten rank panels in a column).
"""

from __future__ import annotations

import itertools

import arviz as az
import numpy as np
import pytest

from ppgen import plots
from ppgen.analysis import plot_all

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def inference_data(chains: int, draws: int, scalars_only: bool = False):
    rng = np.random.default_rng(0)
    n = 8
    posterior = {"mu": rng.normal(size=(chains, draws)),
                 "tau": rng.gamma(2.0, size=(chains, draws))}
    if not scalars_only:
        posterior["theta"] = rng.normal(size=(chains, draws, n))
    return az.from_dict(
        posterior=posterior,
        posterior_predictive={"y": rng.normal(size=(chains, draws, n))},
        observed_data={"y": rng.normal(size=n)},
        log_likelihood={"y": rng.normal(size=(chains, draws, n))},
        sample_stats={"diverging": np.zeros((chains, draws), dtype=bool)},
    )


@pytest.fixture
def saved(monkeypatch):
    """``{file name: overlapping texts}`` of each figure ``plot_all`` saves."""
    found = {}
    real = plots.save

    def checking(fig, path, dpi=120):
        found[path.name] = overlaps(fig)
        return real(fig, path, dpi)

    monkeypatch.setattr(plots, "save", checking)
    return found


def overlaps(fig) -> list[tuple[str, str]]:
    """Pairs of texts (axis titles and labels, figure texts) whose boxes overlap, and titles
    that run into another panel."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for ax in fig.axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label)
             if t.get_text()] + [t for t in fig.texts if t.get_text()]
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    bad = [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2)
           if box_a.overlaps(box_b)]
    for ax, other in itertools.permutations(fig.axes, 2):
        title = ax.title
        if title.get_text() and title.get_window_extent(renderer).overlaps(
                other.get_window_extent(renderer)):
            bad.append((title.get_text(), "another panel"))
    return bad


def test_short_runs_get_every_figure(tmp_path, saved):
    paths = plot_all(inference_data(chains=1, draws=10), tmp_path)
    assert {p.name for p in paths} == {"trace.png", "rank.png", "forest.png", "ppc.png"}
    assert all(p.stat().st_size > 1000 for p in paths)


@pytest.mark.parametrize("scalars_only", [False, True], ids=["vector", "scalars+pair"])
def test_no_figure_has_overlapping_titles(tmp_path, saved, scalars_only):
    paths = plot_all(inference_data(chains=2, draws=60, scalars_only=scalars_only), tmp_path)
    assert ("pair.png" in {p.name for p in paths}) == scalars_only
    assert {name: bad for name, bad in saved.items() if bad} == {}
