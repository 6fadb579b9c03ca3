"""examples/conditional_diffusion_toy.py on a tiny budget: its labels, its three likelihoods
(the bound's parts summing to the bound, the true conditional density) and its figures."""

from __future__ import annotations

import math

import pytest
import torch
from testkit import load_example

from ppgen import plots
from ppgen.data import toy_log_density

example = load_example("conditional_diffusion_toy")


@pytest.fixture(scope="module")
def tiny():
    """A model trained for one epoch on a few hundred points, with T = 20."""
    return example.train(epochs=1, num_steps=20, n_train=300, n_test=40)


def test_labels_split_the_blobs_four_and_four():
    angles = torch.arange(8) * math.pi / 4
    means = 2 * torch.stack([angles.cos(), angles.sin()], dim=-1)
    assert example.side(means).tolist() == [0, 1, 1, 1, 1, 0, 0, 0]
    assert example.on_edge_blobs(means) == 0.5


def test_guided_samples_and_likelihoods(tiny):
    model, data = tiny
    draws = example.guided_samples(model, n=30, steps=5)
    assert set(draws) == set(example.WEIGHTS)
    assert all(x.shape == (30, 2) and torch.isfinite(x).all() for x in draws.values())
    x = data.test
    nll = example.likelihoods(model, x, ode_steps=2)
    assert all(v.shape == (len(x),) for v in nll.values())
    parts = nll["prior"] + nll["steps"] + nll["decoder"]
    assert torch.allclose(parts, nll["bound"])
    assert torch.allclose(nll["true"], -toy_log_density("eight_gaussians", x) - math.log(2))


def test_figures_are_written(tiny, tmp_path):
    model, data = tiny
    draws = example.guided_samples(model, n=20, steps=5)
    nll = example.likelihoods(model, data.test, ode_steps=2)
    for name, fig in [("guidance.png", example.guidance_figure(draws, data.test)),
                      ("likelihoods.png", example.likelihood_figure(nll)),
                      ("bound-terms.png", example.bound_terms_figure(model, data.test))]:
        assert plots.save(fig, tmp_path / name).stat().st_size > 0
