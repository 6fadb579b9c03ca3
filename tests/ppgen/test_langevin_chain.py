"""``ppgen sample`` on an energy model also draws its chains evolving (a row of snapshots per
chain), and :func:`ppgen.langevin_chain.langevin_chain` keeps the start and the end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ppgen.cli.app import main
from ppgen.langevin_chain import langevin_chain, langevin_chain_figure
from ppgen.models import EBM

pytestmark = pytest.mark.usefixtures("one_thread")


def test_snapshots_start_at_the_base_and_end_at_the_sample():
    torch.manual_seed(0)
    ebm = EBM(4, hidden_dims=(8,))
    torch.manual_seed(1)
    chain = langevin_chain(ebm, 3, columns=4, steps=9)
    torch.manual_seed(1)
    path = ebm.sample_chains(3, record_every=3, steps=9)
    assert chain.shape == (3, 4, 4)
    assert torch.allclose(chain[:, 0], path[0]) and torch.allclose(chain[:, -1], path[-1])
    fig = langevin_chain_figure(ebm, 2, 3, image_shape=(2, 2), steps=4)
    assert len(fig.axes) == 6 and fig.axes[2].get_title() == "step 4"  # the top row


def test_cli_sample_writes_the_chain_figure(tmp_path, capsys):
    torch.manual_seed(0)
    ebm = EBM(2, hidden_dims=(8,))
    ebm.fit_base(torch.randn(100, 2))
    ebm.save(tmp_path / "model.pt")
    code = main(["sample", str(tmp_path / "model.pt"), "-n", "16", "--out",
                 str(tmp_path / "s.png"), "--set", "steps=5", "--npy", str(tmp_path / "s.npy")])
    assert code == 0
    assert (tmp_path / "s-chains.png").exists() and "chains" in capsys.readouterr().out
    assert np.load(tmp_path / "s.npy").shape == (16, 2)
