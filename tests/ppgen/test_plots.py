"""Figures: grids of grey and colour images, training curves, latent codes, 2-D points."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ppgen import plots
from ppgen.history import History


def test_image_grid_grey_and_colour(tmp_path):
    grey = plots.image_grid(torch.rand(10, 64), (8, 8), title="grey")
    assert len([ax for ax in grey.axes if ax.images]) == 10
    colour = plots.image_grid(torch.rand(4, 3 * 5 * 5), (3, 5, 5))
    shown = [ax.images[0].get_array() for ax in colour.axes if ax.images]
    assert len(shown) == 4 and shown[0].shape == (5, 5, 3)
    assert plots.save(colour, tmp_path / "sub" / "c.png").stat().st_size > 0


def test_training_curves_mark_best_epoch():
    history = History([{"epoch": e, "train_loss": 5.0 - e, "val_loss": abs(e - 2) + 1.0}
                       for e in range(1, 5)])
    fig = plots.training_curves(history)
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert labels == ["train loss", "val loss", "best epoch"]
    assert fig.axes[0].lines[-1].get_xdata()[0] == 2


def test_latent_scatter_projects_on_principal_components():
    torch.manual_seed(0)
    z = torch.zeros(200, 5)
    z[:, 3] = torch.randn(200) * 10  # the dominant direction
    z[:, 1] = torch.randn(200)
    pts = plots._to_2d(z.double())
    assert abs(np.corrcoef(pts[:, 0], z[:, 3].numpy())[0, 1]) > 0.999  # PC 1 = the axis 3
    assert abs(np.corrcoef(pts[:, 1], z[:, 1].numpy())[0, 1]) > 0.99  # PC 2 = the axis 1
    fig = plots.latent_scatter(z, torch.arange(200) % 3)
    assert fig.axes[0].get_xlabel() == "PC 1"


def test_points_scatter_with_reference():
    fig = plots.points_scatter(torch.randn(50, 2), reference=torch.randn(80, 2))
    sizes = [c.get_offsets().shape[0] for c in fig.axes[0].collections]
    assert sizes == [80, 50]


# ---------------------------------------------------------------------------- what a figure says


def standard_normal(x):
    """An exact 2-D program: ``x ~ N(0, I)``."""
    import pyro
    import pyro.distributions as dist

    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Normal(torch.zeros(2), 1.0).to_event(1), obs=x)


def test_density_heatmap_has_a_colour_bar_and_axis_labels():
    torch.manual_seed(0)
    fig = plots.density_heatmap(standard_normal, torch.randn(50, 2), samples=torch.randn(60, 2),
                                resolution=20)
    density, data, samples, colour_bar = fig.axes
    assert colour_bar.get_ylabel() == "density p(x)"
    assert density.collections and colour_bar.get_ylim()[1] > 0
    for ax in (density, data, samples):
        assert ax.get_xlabel() == "x1"
    assert density.get_ylabel() == "x2"


def test_image_grid_labels_its_rows():
    fig = plots.image_grid(torch.rand(12, 64), (8, 8), ncols=4, row_labels=["0", "1", "2"])
    first_column = [ax for ax in fig.axes[::4]]
    assert [ax.get_ylabel() for ax in first_column] == ["0", "1", "2"]
    assert all(ax.images for ax in fig.axes)
    assert not any(ax.get_ylabel() for ax in fig.axes if ax not in first_column)


def test_sampling_a_class_conditional_model_draws_a_class_per_row(tmp_path, monkeypatch):
    from ppgen.checkpoint import save_model
    from ppgen.cli import main
    from ppgen.data import load_digits
    from ppgen.models import MAF

    torch.manual_seed(0)
    flow = MAF(64, num_layers=1, hidden_features=8, num_classes=10)
    info = load_digits("continuous").info
    save_model(flow, tmp_path / "model.pt", extra={"info": info.to_dict()})
    figures = []
    real = plots.save
    monkeypatch.setattr(plots, "save", lambda fig, path, **kw: (figures.append(fig),
                                                                real(fig, path, **kw))[1])
    assert main(["sample", str(tmp_path / "model.pt"), "-n", "30",
                 "--out", str(tmp_path / "s.png")]) == 0
    grid = figures[0]
    labelled = [ax.get_ylabel() for ax in grid.axes if ax.get_ylabel()]
    assert labelled == [f"y={c}" for c in range(10)]  # ten rows of three, one class each
    assert sum(bool(ax.images) for ax in grid.axes) == 30


CONFIGS = [
    ({"name": "iwae", "num_particles": 5, "validation_particles": 20},
     ["training IWAE-5", "validation IWAE-20 NLL"]),
    ({"name": "elbo", "num_particles": 1, "validation_particles": 100, "analytic_kl": True},
     ["training −ELBO", "validation IWAE-100 NLL"]),
    ({"name": "mle"}, ["training NLL", "validation NLL"]),
    ({"name": "closed-form"}, ["training NLL", "validation NLL"]),
    ({"name": "diffusion-simple"}, ["training diffusion-simple loss",
                                    "validation diffusion-simple loss"]),
]


@pytest.mark.parametrize("config, names", CONFIGS, ids=[c["name"] for c, _ in CONFIGS])
def test_training_curves_name_the_loss(config, names):
    history = History([{"epoch": e, "train_loss": 5.0 - e, "val_loss": abs(e - 2) + 1.0}
                       for e in range(1, 5)])
    fig = plots.training_curves(history, objective=config)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [*names, "best epoch"]


def test_fit_names_the_loss_on_its_curves(tmp_path, monkeypatch):
    from ppgen.cli import main

    figures = {}
    real = plots.save
    monkeypatch.setattr(plots, "save", lambda fig, path, **kw: (
        figures.__setitem__(path.name, fig), real(fig, path, **kw))[1])
    assert main(["fit", "markov-chain", "--data", "digits", "--out", str(tmp_path / "r")]) == 0
    legend = figures["curves.png"].axes[0].get_legend().get_texts()
    assert [t.get_text() for t in legend][:2] == ["training NLL", "validation NLL"]
