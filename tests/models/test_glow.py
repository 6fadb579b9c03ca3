"""Glow on tiny images: the adapter's contract battery, the program, for_data and errors."""

from __future__ import annotations

import pytest
import torch
from flow_contract import CHECKS, FlowCase

import ppgen
from ppgen.data import DataInfo
from ppgen.errors import DataError, ModelError
from ppgen.models import Dequantized, Glow

TINY = {"num_scales": 2, "steps_per_scale": 1, "hidden_channels": 8}

CASES = [
    FlowCase("glow-1x4x4", lambda: Glow((1, 4, 4), **TINY).eval().flow),
    FlowCase("glow-logit-1x4x4", lambda: Glow((1, 4, 4), logit_alpha=0.05, **TINY).eval().flow),
]


@pytest.mark.parametrize("check", CHECKS.values(), ids=list(CHECKS))
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_contract_battery(case, check):
    check(case)  # grid normalisation skips itself: the events are not 2-D


def test_program_and_multiscale_shapes():
    torch.manual_seed(0)
    glow = Glow((1, 8, 8), num_scales=2, steps_per_scale=2, hidden_channels=8).eval()
    x = glow.sample(5)
    assert x.shape == (5, 64) and glow.event_shape == (64,)
    torch.testing.assert_close(ppgen.log_likelihood(glow, x), glow.flow.log_prob(x))
    noise, _ = glow.flow._transform(x)
    assert noise.shape == (5, 64)  # 32 factored out at scale 1, 32 leave at scale 2
    assert Glow((4, 4), **TINY).image_shape == (4, 4) and Glow((4, 4), **TINY).num_dims == 16


def test_training_initialises_actnorm_and_lowers_the_loss(tmp_path):
    torch.manual_seed(0)
    x = torch.rand(64, 16) * 0.5 + 0.25 * (torch.arange(16) % 2)
    glow = Glow((1, 4, 4), logit_alpha=0.05, **TINY)
    history = ppgen.fit(glow, x, x[:16], epochs=4, batch_size=32, lr=5e-3, progress=False,
                        out_dir=tmp_path)
    assert all(bool(m.initialized) for m in glow.modules() if hasattr(m, "initialized"))
    assert history.records[-1]["train_loss"] < history.records[0]["train_loss"]
    loaded = ppgen.load(tmp_path / "model.pt")
    torch.testing.assert_close(ppgen.log_likelihood(loaded, x), ppgen.log_likelihood(glow, x))


def test_for_data_builds_image_flows():
    digits = {"event_shape": (64,), "num_levels": 17, "image_shape": (8, 8)}
    continuous = Glow.for_data(DataInfo(likelihood="continuous", **digits), **TINY)
    assert isinstance(continuous, Glow) and continuous.logit_alpha == 0.05
    discrete = Glow.for_data(DataInfo(likelihood="categorical", **digits), **TINY)
    assert isinstance(discrete, Dequantized) and isinstance(discrete.flow_model, Glow)
    samples = discrete.sample(3)
    assert samples.shape == (3, 64) and samples.dtype == torch.long
    assert int(samples.min()) >= 0 and int(samples.max()) <= 16
    with pytest.raises(ModelError, match="image_shape"):
        Glow.for_data(DataInfo(event_shape=(2,), likelihood="continuous"))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"image_shape": (1, 6, 6)}, "divisible"),
        ({"image_shape": (1, 4, 4), "num_scales": 3}, "divisible"),
        ({"image_shape": (4,)}, "image_shape"),
        ({"image_shape": (1, 4, 4), "steps_per_scale": 0}, "steps_per_scale"),
        ({"image_shape": (1, 4, 4), "num_scales": 0}, "num_scales"),
        ({"image_shape": (1, 4, 4), "hidden_channels": 0}, "hidden_features"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ModelError, match=message):
        Glow(**kwargs)


def test_data_checks():
    glow = Glow((1, 4, 4), logit_alpha=0.05, **TINY)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        ppgen.log_likelihood(glow, torch.full((2, 16), 1.5))
    with pytest.raises(DataError, match="shape"):
        ppgen.log_likelihood(glow, torch.rand(2, 15))
