"""The Progressive GAN: its layers against hand computations, the fade-in blend at alpha = 0
and 1 against the lower / higher resolution paths (exactly), the drift penalty, save/load at a
fade point, a run resumed mid-fade against an uninterrupted one (bit for bit), the CLI."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

import ppgen
from ppgen.data import load_digits
from ppgen.inference import Adversarial
from ppgen.inference.adversarial import simulate
from ppgen.models import ProgressiveGAN
from ppgen.models.progressive_networks import (
    EqualizedConv2d,
    EqualizedLinear,
    minibatch_stddev,
    pixel_norm,
)

pytestmark = pytest.mark.usefixtures("one_thread", "clean_param_store")

#: stage 0 (2x2) for steps 0..5, stage 1 (4x4) fades in over steps 6..9, stage 2 (8x8) at 12
SCHEDULE = {"stage_steps": 6, "fade_steps": 4}


def small(**kwargs) -> ProgressiveGAN:
    torch.manual_seed(0)
    return ProgressiveGAN((8, 8), latent_dim=4, channels=4, **{**SCHEDULE, **kwargs})


def grown(step: int, **kwargs) -> ProgressiveGAN:
    model = small(**kwargs)
    model.grow_to(step)
    return model


def transplant(source: ProgressiveGAN, step: int) -> ProgressiveGAN:
    """A model grown to ``step`` with ``source``'s weights for every layer both have."""
    target = grown(step)
    state = source.state_dict()
    target.load_state_dict({k: state[k] for k in target.state_dict() if k != "grown_step"},
                           strict=False)
    return target


# --------------------------------------------------------------------------- the schedule
def test_schedule_stages_fade_and_shapes():
    model = small()
    seen = []
    for step in (0, 5, 6, 8, 10, 12, 14, 16, 100):
        model.grow_to(step)
        seen.append((model.stage, model.alpha, model.critic.fading, model.resolution))
        x = model.sample(3)
        assert x.shape == (3, 64) and 0 <= x.min() and x.max() <= 1
        assert model.critic(x).shape == (3, 1)
    assert seen == [(0, 1.0, False, (2, 2)), (0, 1.0, False, (2, 2)), (1, 0.0, True, (4, 4)),
                    (1, 0.5, True, (4, 4)), (1, 1.0, False, (4, 4)), (2, 0.0, True, (8, 8)),
                    (2, 0.5, True, (8, 8)), (2, 1.0, False, (8, 8)), (2, 1.0, False, (8, 8))]
    assert sorted(model.generator.to_rgb) == ["2"] and len(model.critic.blocks) == 2


def test_samples_before_the_last_stage_are_upsampled_lower_resolution_images():
    images = grown(3).sample(5).reshape(5, 8, 8)  # stage 0: 2x2 blocks of 4x4 pixels
    assert torch.equal(images, images[:, ::4, ::4].repeat_interleave(4, 1).repeat_interleave(4, 2))
    assert not torch.equal(images[:, 0, 0], images[:, 0, 4])


def test_non_square_power_of_two_images_grow_from_a_smaller_side_of_two():
    model = ProgressiveGAN((3, 4, 8), latent_dim=4, channels=4, **SCHEDULE)
    assert model.generator.num_stages == 2 and model.resolution == (2, 4)
    model.grow_to(6)
    assert model.sample(2).shape == (2, 96) and model.critic(model.sample(2)).shape == (2, 1)


@pytest.mark.parametrize("options, message", [
    ({"image_shape": (6, 6)}, "powers of two"),
    ({"image_shape": (1, 8)}, "powers of two"),
    ({"fade_steps": 7}, "fade_steps <= stage_steps"),
    ({"drift": -1.0}, "drift must be >= 0"),
])
def test_bad_options_are_clear_errors(options, message):
    with pytest.raises(ppgen.ModelError, match=message):
        ProgressiveGAN(**{"image_shape": (8, 8), **SCHEDULE, **options})


# --------------------------------------------------------------------------- the fade-in blend
@pytest.mark.parametrize("stage", [1, 2])
def test_generator_fade_at_alpha_0_and_1_equals_the_lower_and_higher_paths(stage):
    start = stage * SCHEDULE["stage_steps"]
    fading = grown(start)  # the fade's first step: alpha = 0
    assert fading.alpha == 0.0 and fading.generator.fading
    z = torch.randn(6, 4)
    lower = transplant(fading, start - 1)  # the stage below, fully grown, same weights
    assert lower.stage == stage - 1 and not lower.generator.fading
    assert torch.equal(fading.generator(z), lower.generator(z))
    fading.generator.alpha = 1.0
    higher = transplant(fading, start + SCHEDULE["fade_steps"])  # this stage, faded in
    assert higher.stage == stage and str(stage - 1) not in higher.generator.to_rgb
    assert torch.equal(fading.generator(z), higher.generator(z))
    fading.generator.alpha = 0.5  # in between: neither
    assert not torch.equal(fading.generator(z), higher.generator(z))
    assert not torch.equal(fading.generator(z), lower.generator(z))


@pytest.mark.parametrize("stage", [1, 2])
def test_critic_fade_at_alpha_0_and_1_equals_the_lower_and_higher_paths(stage):
    start = stage * SCHEDULE["stage_steps"]
    fading = grown(start)
    x = torch.rand(8, 64, generator=torch.Generator().manual_seed(1))
    lower = transplant(fading, start - 1)
    assert torch.equal(fading.critic(x), lower.critic(x))
    assert torch.equal(lower.critic(x), lower.critic.at_stage(lower.critic.pooled(x, stage - 1),
                                                              stage - 1))
    fading.critic.alpha = 1.0
    higher = transplant(fading, start + SCHEDULE["fade_steps"])
    assert torch.equal(fading.critic(x), higher.critic(x))
    fading.critic.alpha = 0.5
    assert not torch.equal(fading.critic(x), higher.critic(x))


def test_real_images_are_pooled_and_blended_for_the_critic_during_a_fade():
    model = grown(8)  # stage 1 (4x4), alpha = 0.5
    x = torch.rand(3, 64, generator=torch.Generator().manual_seed(2))
    images = F.avg_pool2d(x.reshape(3, 1, 8, 8), 2)  # 4x4
    low = F.interpolate(F.avg_pool2d(images, 2), scale_factor=2)
    expected = F.interpolate(0.5 * low + 0.5 * images, scale_factor=2).reshape(3, 64)
    torch.testing.assert_close(model.data_for_critic(x), expected)
    assert torch.equal(grown(10).data_for_critic(x), x)  # faded in: the data themselves


# --------------------------------------------------------------------------- the layers
def test_equalized_learning_rate_scales_unit_normal_weights_by_the_he_constant():
    torch.manual_seed(0)
    conv, linear = EqualizedConv2d(16, 32, 3), EqualizedLinear(64, 200, gain=1.0)
    assert conv.scale == pytest.approx(math.sqrt(2 / (16 * 9))) and linear.scale == 1 / 8
    for layer in (conv, linear):  # stored weights ~ N(0, 1), whatever the fan-in
        assert abs(layer.weight.std().item() - 1) < 0.05 and abs(layer.weight.mean()) < 0.05
    x = torch.randn(2, 16, 5, 5)
    conv.bias.data.normal_()
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight * conv.scale, conv.bias,
                                                 padding=1), rtol=0, atol=1e-6)
    conv(x).sum().backward()  # the gradient reaches the stored weight through c
    effective = (conv.weight.detach() * conv.scale).requires_grad_(True)
    F.conv2d(x, effective, conv.bias.detach(), padding=1).sum().backward()
    torch.testing.assert_close(conv.weight.grad, conv.scale * effective.grad)


def test_minibatch_stddev_against_a_hand_computation():
    x = torch.randn(8, 3, 2, 2, generator=torch.Generator().manual_seed(3))
    out = minibatch_stddev(x, group_size=4)
    assert out.shape == (8, 4, 2, 2) and torch.equal(out[:, :3], x)
    for m in range(2):  # groups of rows {m, m + 2, m + 4, m + 6}
        rows = x[m::2]
        mean = sum(rows[i] for i in range(4)) / 4
        var = sum((rows[i] - mean) ** 2 for i in range(4)) / 4
        value = torch.sqrt(var + 1e-8).mean()
        for i in range(m, 8, 2):
            torch.testing.assert_close(out[i, 3], value.expand(2, 2))
    assert minibatch_stddev(x[:3], group_size=4)[:, 3].unique().numel() == 1  # one group of 3
    odd = minibatch_stddev(x[:6], group_size=4)  # 6 rows: groups of 3
    assert odd[:, 3, 0, 0].unique().numel() == 2


def test_pixel_norm_gives_each_pixel_unit_mean_square_over_channels():
    x = 3.0 * torch.randn(2, 5, 3, 3, generator=torch.Generator().manual_seed(4))
    y = pixel_norm(x)
    torch.testing.assert_close(y.square().mean(1), torch.ones(2, 3, 3))
    torch.testing.assert_close(y[1, :, 2, 0], x[1, :, 2, 0] / (x[1, :, 2, 0] ** 2).mean().sqrt())


# --------------------------------------------------------------------------- the objective
def test_the_recipe_and_the_drift_penalty():
    model = grown(8)
    assert model.objective_defaults == {"loss": "wgan-gp", "n_critic": 1, "r1": 0.0,
                                        "drift": 0.001}
    assert model.fit_defaults["optimizer"]["critic"]["betas"] == [0.0, 0.99]
    objective = Adversarial("wgan-gp", gradient_penalty=0.0, drift=0.25)
    assert objective.get_config()["drift"] == 0.25
    assert "drift" not in Adversarial("wgan-gp").get_config()
    batch = torch.rand(8, 64, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(6)
    out = objective.critic_step(model, batch, {})
    torch.manual_seed(6)
    with torch.no_grad():
        fake = simulate(model, batch)
        d_real = model.critic(model.data_for_critic(batch)).reshape(8)
        d_fake = model.critic(fake).reshape(8)
    torch.testing.assert_close(out["drift"], d_real.square().mean())
    expected = d_fake.mean() - d_real.mean() + 0.25 * d_real.square().mean()
    torch.testing.assert_close(out["loss"].detach(), expected)
    with pytest.raises(ppgen.TrainingError, match="drift >= 0"):
        Adversarial("wgan-gp", drift=-0.1)


# --------------------------------------------------------------------------- save, load, resume
def test_save_and_load_mid_fade(tmp_path):
    model = grown(8)
    model.save(str(tmp_path / "pg.pt"))
    loaded = ppgen.load(str(tmp_path / "pg.pt"))
    assert (loaded.stage, loaded.alpha, loaded.critic.fading) == (1, 0.5, True)
    z = torch.randn(4, 4)
    assert torch.equal(loaded.generator(z), model.generator(z))
    x = torch.rand(4, 64)
    assert torch.equal(loaded.critic(x), model.critic(x))


def test_a_run_resumed_mid_fade_is_bit_identical_to_an_uninterrupted_one(tmp_path):
    """64 rows in batches of 16: 4 steps an epoch. With stages of 5 steps and fades of 4, the
    checkpoint after epoch 2 (step 8) is in stage 1's fade (alpha 0.75); stage 2 starts at
    step 10, inside the resumed part."""
    x = load_digits("continuous").train[:64]
    options = {"batch_size": 16, "device": "cpu", "progress": False, "seed": 3,
               "objective_options": {"validation_rows": 16}}

    def build() -> ProgressiveGAN:
        return small(stage_steps=5, fade_steps=4)

    full = build()
    ppgen.fit(full, x, x[:16], epochs=4, out_dir=tmp_path / "full", **options)
    part = build()
    ppgen.fit(part, x, x[:16], epochs=2, out_dir=tmp_path / "part", **options)
    assert (part.stage, part.critic.fading) == (1, True)
    resumed = build()
    ppgen.fit(resumed, x, x[:16], epochs=4, out_dir=tmp_path / "part", resume=True, **options)
    assert resumed.stage == 2
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name


def test_cli_fits_one_epoch_on_the_digits(tmp_path):
    from ppgen.cli import main

    out = tmp_path / "pg"
    assert main(["fit", "progressive-gan", "--data", "digits", "--representation", "continuous",
                 "--epochs", "1", "--out", str(out), "--no-progress", "--set", "channels=8"]) == 0
    model = ppgen.load(str(out / "model.pt"))
    assert isinstance(model, ProgressiveGAN) and model.sample(2).shape == (2, 64)
    assert int(model.grown_step) == 15 and model.features == "digits"


@pytest.mark.slow
@pytest.mark.xfail(reason="not met yet: in benchmarks/progressive.py (150 epochs) two of three "
                          "seeds collapsed to blank images (sigmoid output saturated at 0) and "
                          "seed 0 hit 5 classes; see RESULTS.md, Progressive GAN vs. DCGAN",
                   strict=False)
def test_the_recipe_learns_the_digits_in_a_few_minutes():
    from ppgen.metrics import sample_metrics

    digits = load_digits("continuous")
    model = ProgressiveGAN.for_data(digits.info)
    ppgen.fit(model, digits.train, digits.val, seed=0, progress=False)
    assert model.stage == 2 and model.alpha == 1.0
    torch.manual_seed(1)
    metrics = sample_metrics(digits.test, model.sample(447), features="digits")
    assert metrics["fd"] < 10 * sample_metrics(digits.test, digits.val, features="digits")["fd"]
    assert metrics["classes_hit"] == 10


def test_stage_ends_and_the_stage_figure():
    from ppgen import plots

    model = small()  # stages start at steps 6 and 12
    assert model.stage_ends(4) == [1, 3] and model.stage_ends(1) == [6, 12]
    rows = {"2x2": grown(3).sample(5), "4x4": grown(10).sample(5), "8x8": grown(20).sample(5)}
    fig = plots.stage_samples(rows, (8, 8), vmax=1.0)
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert labels == ["2x2", "4x4", "8x8"] and len(fig.axes) == 15


def test_the_example_snapshots_each_stage_of_one_run(tmp_path):
    """examples/progressive_gan_digits.py on a tiny budget: 16 steps a stage, 3 epochs."""
    from testkit import load_example

    example = load_example("progressive_gan_digits")
    model, rows = example.grow(tmp_path, epochs=3, stage_steps=16, fade_steps=8, channels=4,
                               latent_dim=4)
    assert list(rows) == ["2x2", "4x4", "8x8"] and model.stage == 2
    assert all(images.shape == (10, 64) for images in rows.values())
    first = rows["2x2"].reshape(10, 8, 8)
    assert torch.equal(first, first[:, ::4, ::4].repeat_interleave(4, 1).repeat_interleave(4, 2))
