"""Figures: grids of grey and colour images, training curves, latent codes, 2-D points."""

from __future__ import annotations

import numpy as np
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
