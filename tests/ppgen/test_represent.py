"""ppgen.represent and ppgen represent: encoder features of every model that has an encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ppgen
from ppgen import plots
from ppgen.cli.app import main
from ppgen.errors import ArgumentError, DataError, ModelError
from ppgen.models import AAE, GAN, MAF, PPCA, VAE, Dequantized, RealNVP

pytestmark = pytest.mark.usefixtures("one_thread")


def _levels(n: int = 30, d: int = 6, k: int = 3) -> torch.Tensor:
    return torch.randint(0, k, (n, d), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("build, features", [
    (lambda: VAE(6, latent_dim=3, hidden_dims=(8,), num_levels=3), 3),
    (lambda: AAE(6, latent_dim=2, num_levels=3, network={"hidden_dims": (8,)}), 2),
    (lambda: AAE(6, latent_dim=2, num_levels=3, variant="clustering", num_classes=4,
                 network={"hidden_dims": (8,)}), 6),
    (lambda: Dequantized(RealNVP(6, num_layers=2, hidden_features=8, logit_alpha=0.05), 3), 6),
])
def test_features_are_n_by_f_and_do_not_depend_on_the_batching(build, features):
    torch.manual_seed(0)
    model = build()
    x = _levels()
    z = ppgen.represent(model, x)
    assert z.shape == (30, features) and not z.requires_grad
    torch.testing.assert_close(ppgen.represent(model, x, batch_size=7), z)


def test_ppca_features_are_the_closed_form_posterior_mean():
    torch.manual_seed(0)
    x = torch.randn(200, 2) @ torch.randn(2, 5) + 0.1 * torch.randn(200, 5)
    model = PPCA(5, latent_dim=2)
    ppgen.fit(model, x, objective="closed-form")
    W, mu, var = model.weight, model.loc, model.variance()
    expected = torch.linalg.solve(W.T @ W + var * torch.eye(2), (W.T @ (x - mu).T)).T
    torch.testing.assert_close(ppgen.represent(model, x), expected, atol=1e-4, rtol=1e-4)


def test_a_flows_features_are_its_invertible_base_space_code():
    torch.manual_seed(0)
    flow = MAF(3, num_layers=2, hidden_features=8)
    x = torch.randn(20, 3)
    z = ppgen.represent(flow, x)
    back = flow.flow._transform.inverse(z)[0]
    torch.testing.assert_close(back, x, atol=2e-3, rtol=1e-3)


def test_mistakes_are_clear_errors():
    with pytest.raises(ModelError, match="has no encoder"):
        ppgen.represent(GAN(2, latent_dim=2, hidden_dims=(4,), critic_dims=(4,)),
                        torch.zeros(3, 2))
    with pytest.raises(ModelError, match="takes a ppgen model"):
        ppgen.represent(torch.nn.Linear(2, 2), torch.zeros(3, 2))
    vae = VAE(6, latent_dim=2, hidden_dims=(4,), num_levels=3)
    with pytest.raises(ArgumentError, match="batch_size"):
        ppgen.represent(vae, _levels(), batch_size=0)
    with pytest.raises(DataError):
        ppgen.represent(vae, torch.full((2, 6), 7))
    conditional = MAF(3, num_layers=1, hidden_features=4, num_classes=2)
    with pytest.raises(ModelError, match="depends on the label"):
        ppgen.represent(conditional, torch.zeros(2, 3))


def test_representation_scatters_draw_one_panel_per_model():
    torch.manual_seed(0)
    labels = torch.arange(60) % 10
    fig = plots.representation_scatters({"a": torch.randn(60, 2), "b": torch.randn(60, 5)},
                                        labels, method="pca")
    assert [ax.get_title() for ax in fig.axes] == ["a (2-d)", "b (5-d, PCA)"]
    with pytest.raises(ArgumentError, match="unknown projection"):
        plots.representation_scatters({"a": torch.randn(60, 2)}, labels, method="umap")
    with pytest.raises(ArgumentError, match="59 labels"):
        plots.representation_scatters({"a": torch.randn(60, 2)}, labels[:59])


# ----------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def aae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("aae")
    argv = ["fit", "aae", "--data", "digits", "--set", "prior=mixture10", "--set",
            "latent_dim=2", "--set", "network={\"hidden_dims\": [16], \"critic_dims\": [8]}",
            "--epochs", "1", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    return out


def test_fit_an_aae_then_write_its_codes(aae_run, tmp_path):
    from ppgen.data import load_digits

    x = tmp_path / "x.npy"
    np.save(x, load_digits("categorical").test[:25].numpy())
    z = tmp_path / "z.npy"
    assert main(["represent", str(aae_run), "--data", str(x), "--out", str(z)]) == 0
    codes = np.load(z)
    assert codes.shape == (25, 2)
    model = ppgen.load(aae_run / "model.pt")
    assert model.prior == "mixture10"
    np.testing.assert_allclose(codes, ppgen.represent(model, np.load(x)).numpy(), atol=1e-5)


def test_cli_mistakes_exit_2_with_one_line(aae_run, tmp_path, capsys):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((3, 64), dtype=np.int64))
    for argv, message in (
        (["--data", str(x), "--out", str(x)], "is an input of this command"),
        (["--data", str(x), "--out", str(tmp_path / "z.csv")], "must be a .npy file"),
    ):
        assert main(["represent", str(aae_run), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err
    gan = tmp_path / "gan.pt"
    GAN(64, latent_dim=2, hidden_dims=(4,), critic_dims=(4,)).save(gan)
    assert main(["represent", str(gan), "--data", str(x), "--out",
                 str(tmp_path / "z.npy")]) == 2
    err = capsys.readouterr().err.strip()
    assert "has no encoder" in err and "\n" not in err
