"""The GAN zoo: program and shapes, the recipe reaching the objective, data checks, quantised
samples of the digits, save/load with the critic, training on a toy and on the device."""

from __future__ import annotations

import pytest
import torch

import ppgen
from ppgen.checkpoint import read_checkpoint
from ppgen.data import load_digits
from ppgen.data.info import DataInfo
from ppgen.evaluate import nll_report
from ppgen.models import CGAN, DCGAN, GAN

pytestmark = pytest.mark.usefixtures("one_thread", "clean_param_store")


def small_gan(**kwargs) -> GAN:
    return GAN(2, latent_dim=4, hidden_dims=(32, 32), critic_dims=(32, 32), **kwargs)


@pytest.fixture(scope="module")
def digits():
    return load_digits("continuous")


# --------------------------------------------------------------------------- the program
@pytest.mark.parametrize("shape, flat", [((8, 8), 64), ((3, 16, 12), 576), ((1, 28, 28), 784)])
def test_dcgan_shapes(shape, flat):
    torch.manual_seed(0)
    gan = DCGAN(shape, latent_dim=8, channels=4)
    assert gan.event_shape == (flat,) and gan.kind == ppgen.ModelKind.IMPLICIT
    x = gan.sample(3)
    assert x.shape == (3, flat) and 0 <= x.min() and x.max() <= 1  # sigmoid output
    assert gan.critic(x).shape == (3, 1)
    assert gan.generator(torch.randn(2, 5, 8)).shape == (2, 5, flat)


def test_bad_options_are_clear_errors():
    with pytest.raises(ppgen.ModelError, match="divisible by 4"):
        DCGAN((6, 6))
    with pytest.raises(ppgen.ModelError, match="loss must be one of"):
        small_gan(loss="wasserstein")
    with pytest.raises(ppgen.ModelError, match="output must be one of"):
        small_gan(output="relu")
    with pytest.raises(ppgen.ModelError, match="needs output='sigmoid'"):
        small_gan(num_levels=17)


def test_the_program_samples_through_rsample_and_has_no_density():
    gan = small_gan()
    from ppgen.inference.adversarial import simulate

    fake = simulate(gan, torch.zeros(6, 2), check=True)
    assert fake.shape == (6, 2) and fake.requires_grad
    with pytest.raises(ppgen.ImplicitModelError, match="sample-based metrics"):
        ppgen.log_likelihood(gan, torch.zeros(3, 2))
    report = nll_report(gan, torch.randn(50, 2))
    assert {"mmd", "fd", "precision", "recall"} <= set(report)


# --------------------------------------------------------------------------- the recipe
def test_the_recipe_is_the_models_options():
    gan = small_gan(loss="wgan-gp", r1=0.5)
    assert gan.objective_defaults == {"loss": "wgan-gp", "n_critic": None, "r1": 0.5}
    groups = gan.fit_defaults["optimizer"]
    assert groups["critic"]["betas"] == [0.0, 0.9] and groups["generator"]["lr"] == 5e-4
    assert small_gan().fit_defaults["optimizer"]["critic"]["betas"] == [0.5, 0.999]
    assert small_gan().fit_defaults["ema"] is None and DCGAN((8, 8)).fit_defaults["ema"] == 0.99


def test_fit_uses_the_models_loss_and_saves_the_critic(tmp_path):
    torch.manual_seed(0)
    gan = small_gan(loss="wgan-gp")
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    history = ppgen.fit(gan, x, x[:32], epochs=2, batch_size=16, ema=0.9, device="cpu",
                        progress=False, out_dir=tmp_path)
    training = read_checkpoint(tmp_path / "model.pt")["extra"]["training"]
    assert training["objective"]["loss"] == "wgan-gp"
    assert training["objective"]["n_critic"] == 5
    assert "train_penalty" in history.records[0]
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert saved["ema"] and not any(k.startswith("critic.") for k in saved["ema"])
    loaded = ppgen.load(tmp_path / "model.pt")
    assert isinstance(loaded, GAN) and loaded.loss == "wgan-gp"
    for name, value in gan.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[name]), name  # critic included


def test_save_and_load_a_dcgan(tmp_path):
    gan = DCGAN((8, 8), latent_dim=8, channels=4, num_levels=17, loss="hinge")
    gan.save(tmp_path / "dcgan.pt")
    loaded = ppgen.load(tmp_path / "dcgan.pt").eval()
    gan.eval()
    torch.manual_seed(3)
    a = gan.sample(4)
    torch.manual_seed(3)
    assert torch.equal(loaded.sample(4), a)
    assert loaded.get_config() == gan.get_config()


# --------------------------------------------------------------------------- digits
def test_digits_in_their_continuous_representation(digits):
    gan = DCGAN.for_data(digits.info, latent_dim=8, channels=4)
    assert (gan.output, gan.num_levels, gan.image_shape) == ("sigmoid", 17, (8, 8))
    levels = gan.sample(5, quantized=True)
    assert levels.dtype == torch.long and 0 <= levels.min() and levels.max() <= 16
    with pytest.raises(ppgen.ModelError, match="representation continuous"):
        DCGAN.for_data(load_digits("categorical").info)
    with pytest.raises(ppgen.DataError, match="dequantise"):
        gan.check_data(load_digits("categorical").train)
    with pytest.raises(ppgen.DataError, match=r"output='sigmoid'"):
        gan.check_data(digits.train * 2)
    with pytest.raises(ppgen.ModelError, match="without quantized"):
        small_gan().sample(2, quantized=True)
    toy = GAN.for_data(DataInfo(event_shape=(2,), likelihood="continuous"))
    assert (toy.output, toy.num_levels) == ("identity", None)


def test_digits_gans_validate_in_the_digits_feature_space(digits, tmp_path):
    """for_data on the digits sets the validation metric's space (the Fréchet distance of the
    digits classifier's features), saved in the config and passed to the objective; other
    data keep the MMD; an old config without it loads as MMD; a bad name is refused."""
    from ppgen.models import ACGAN, CGAN, InfoGAN

    for cls in (GAN, DCGAN, CGAN, ACGAN, InfoGAN):
        gan = cls.for_data(digits.info)
        assert gan.features == "digits" and gan.objective_defaults["features"] == "digits"
        assert cls.from_config(gan.get_config()).features == "digits"
    toy = GAN.for_data(DataInfo(event_shape=(2,), likelihood="continuous"))
    assert toy.features is None and "features" not in toy.objective_defaults
    config = DCGAN.for_data(digits.info, latent_dim=8, channels=4).get_config()
    del config["features"]  # a checkpoint written before the option existed
    assert DCGAN.from_config(config).features is None
    with pytest.raises(ppgen.ModelError, match="features"):
        DCGAN((8, 8), features="inception")
    torch.manual_seed(0)
    gan = DCGAN.for_data(digits.info, latent_dim=8, channels=4)
    ppgen.fit(gan, digits.train[:64], digits.val[:32], epochs=1, progress=False,
              out_dir=tmp_path)
    training = read_checkpoint(tmp_path / "model.pt")["extra"]["training"]
    assert training["objective"]["features"] == "digits"


def test_a_dcgan_trains_on_the_digits(digits, device):
    """A smoke test of the whole path on the model's device: two epochs on 128 images."""
    torch.manual_seed(0)
    gan = DCGAN.for_data(digits.info, latent_dim=8, channels=8)
    history = ppgen.fit(gan, digits.train[:128], digits.val[:64], epochs=2, device=device,
                        progress=False)
    assert len(history) == 2 and history.best_val == history.best_val  # finite
    assert gan.sample(3).device.type == device.type


# --------------------------------------------------------------------------- training
def test_a_gan_learns_a_gaussian_blob():
    """N((2, -1), 0.3² I) from 2,000 points, 15 epochs (seeded): the draws' mean is within 0.2
    and their spread within 0.15 of the data's."""
    g = torch.Generator().manual_seed(0)
    mean = torch.tensor([2.0, -1.0])
    x = mean + 0.3 * torch.randn(2000, 2, generator=g)
    torch.manual_seed(0)
    gan = small_gan()
    ppgen.fit(gan, x, x[:500], epochs=15, batch_size=100, device="cpu", progress=False)
    torch.manual_seed(1)
    s = gan.sample(2000)
    assert torch.allclose(s.mean(0), mean, atol=0.2)
    assert torch.allclose(s.std(0), torch.full((2,), 0.3), atol=0.15)


def test_the_digits_example_runs():
    from testkit import load_example

    example = load_example("adversarial_gan_digits")
    model, history = example.train("hinge", epochs=1)
    scores = example.compare(model)
    assert len(history) == 1 and set(scores) == {"dcgan", "real (val)"}
    assert scores["real (val)"]["fd"] < scores["dcgan"]["fd"]  # one epoch is far from done


def test_packing_scores_rows_together():
    """PacGAN: with pack=2 the critic reads [B/2, 2D] (data with data, draws with draws; the
    odd last row dropped) and the losses are those of the packed scores."""
    from ppgen.inference import make_objective
    from ppgen.inference.adversarial import AdversarialLoss, critic_losses, simulate
    from ppgen.objective import StepContext

    torch.manual_seed(0)
    gan = small_gan(pack=2)
    assert gan.critic[0].in_features == 4 and gan.objective_defaults["pack"] == 2
    objective = make_objective("adversarial", **gan.objective_defaults)
    x = torch.randn(7, 2)
    torch.manual_seed(1)
    out = objective.losses(gan, x, StepContext(0, 1, ("critic",)))
    torch.manual_seed(1)
    fake = simulate(gan, x)
    expected = critic_losses(AdversarialLoss.NON_SATURATING, gan.critic(x[:6].reshape(3, 4)),
                             gan.critic(fake[:6].reshape(3, 4)))
    assert torch.allclose(out["loss"], expected.reshape(()))
    labelled = CGAN(2, num_classes=3, network={"hidden_dims": (8,), "critic_dims": (8,)})
    with pytest.raises(ppgen.TrainingError, match="no conditioning inputs"):
        make_objective("adversarial", pack=2).losses(
            labelled, x, StepContext(0, 1, ("critic",)), y=torch.zeros(7, dtype=torch.long))
    with pytest.raises(ppgen.ModelError, match="pack must be"):
        small_gan(pack=0)
