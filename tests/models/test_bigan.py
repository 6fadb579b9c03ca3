"""BiGAN / ALI in the zoo: the programs and shapes, the encoder as representation, no density,
save/load, the CLI (fit, resume) on the digits."""

from __future__ import annotations

import csv

import pytest
import torch

import ppgen
from ppgen.cli import main
from ppgen.inference.ali import joint_pairs
from ppgen.models import BiGAN

pytestmark = pytest.mark.usefixtures("one_thread", "clean_param_store")

SMALL = {"hidden_dims": (16,), "critic_dims": (16,)}


@pytest.mark.parametrize("encoder", ["deterministic", "stochastic"])
def test_flat_programs_and_shapes(encoder):
    torch.manual_seed(0)
    model = BiGAN(3, latent_dim=2, network=SMALL, encoder=encoder)
    assert model.kind == ppgen.ModelKind.IMPLICIT and model.default_objective == "ali"
    assert model.sample(5).shape == (5, 3)
    x = torch.randn(7, 3)
    codes = model.encode(x)
    assert codes.shape == (7, 2) and not codes.requires_grad
    assert model.reconstruct(x).shape == (7, 3)
    enc, gen = joint_pairs(model, x, {}, check=True)
    assert enc.shape == gen.shape == (7, 5) and enc.requires_grad and gen.requires_grad
    assert model.critic(enc).shape == (7, 1)
    draws = torch.stack([joint_pairs(model, x, {})[0][:, 3:] for _ in range(2)])
    assert torch.equal(draws[0], draws[1]) == (encoder == "deterministic")
    assert torch.allclose(codes, draws[0]) == (encoder == "deterministic")


def test_images_and_the_digits_recipe():
    from ppgen.data import load_digits

    digits = load_digits("continuous")
    model = BiGAN.for_data(digits.info, latent_dim=8)
    assert model.shape == (8, 8) and model.output == "sigmoid" and model.num_levels == 17
    assert model.objective_defaults["features"] == "digits"
    x = digits.train[:4]
    assert model.encode(x).shape == (4, 8) and model.reconstruct(x).shape == (4, 64)
    assert model.sample(3, quantized=True).dtype == torch.long


def test_no_density_and_clear_errors():
    model = BiGAN(2, latent_dim=2, network=SMALL)
    with pytest.raises(ppgen.ImplicitModelError, match="sample-based metrics"):
        ppgen.log_likelihood(model, torch.zeros(3, 2))
    with pytest.raises(ppgen.ModelError, match="encoder must be one of"):
        BiGAN(2, encoder="flow")
    with pytest.raises(ppgen.ModelError, match="divisible by"):
        BiGAN((6, 6))
    with pytest.raises(ppgen.DataError):
        model.encode(torch.zeros(3, 5))


def test_save_and_load(tmp_path):
    torch.manual_seed(0)
    model = BiGAN((8, 8), latent_dim=4, network={"channels": 4}, encoder="stochastic",
                  num_levels=17)
    model.save(tmp_path / "bigan.pt")
    loaded = ppgen.load(tmp_path / "bigan.pt")
    assert isinstance(loaded, BiGAN) and loaded.get_config() == model.get_config()
    x = torch.rand(5, 64)
    assert torch.equal(loaded.encode(x), model.encode(x))
    torch.manual_seed(1)
    a = model.eval().sample(3)
    torch.manual_seed(1)
    assert torch.equal(loaded.eval().sample(3), a)


def test_cli_fit_and_resume_on_the_digits(tmp_path):
    out = tmp_path / "bigan"
    args = ["fit", "bigan", "--data", "digits", "--representation", "continuous", "--out",
            str(out), "--set", "latent_dim=8", "--set", 'network={"channels": 8}',
            "--batch-size", "250", "--no-progress"]
    assert main([*args, "--epochs", "1"]) == 0
    assert main([*args, "--epochs", "2", "--resume"]) == 0
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    model = ppgen.load(out / "model.pt")
    assert isinstance(model, BiGAN) and model.encode(torch.rand(3, 64)).shape == (3, 8)
