"""Glow on tiny images: the adapter's contract battery, the program, for_data and errors; the
class-conditional Glow ``p(x | y)`` (contract battery with a label context, labels that matter,
save/load, errors) and the unconditional Glow pinned to the numbers it gave before the
class-conditional option existed."""

from __future__ import annotations

import pytest
import torch
from flow_contract import CHECKS, FlowCase

import ppgen
from ppgen.data import DataInfo
from ppgen.errors import DataError, ModelError
from ppgen.models import Dequantized, Glow

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"num_scales": 2, "steps_per_scale": 1, "hidden_channels": 8}


def _conditional_flow(num_classes: int = 3):
    """A conditional Glow's nflows flow with a non-trivial class prior (it starts at zero)."""
    flow = Glow((1, 4, 4), num_classes=num_classes, **TINY).eval().flow
    with torch.no_grad():
        for p in flow._distribution.parameters():
            p.copy_(0.3 * torch.randn_like(p))
    return flow


CASES = [
    FlowCase("glow-1x4x4", lambda: Glow((1, 4, 4), **TINY).eval().flow),
    FlowCase("glow-logit-1x4x4", lambda: Glow((1, 4, 4), logit_alpha=0.05, **TINY).eval().flow),
    FlowCase("glow-conditional-1x4x4", _conditional_flow, context_shape=(3,)),
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


# ----------------------------------------------------------------------------- unconditional

#: recorded with the code before ``num_classes`` existed: ``torch.manual_seed(0)``, build;
#: ``torch.manual_seed(1)``, ``x = 0.05 + 0.9 U[0, 1)^{5 x 16}``; ``ppgen.log_likelihood``
BEFORE_LOG_LIKELIHOOD = {
    None: [-19.828018188476562, -19.43436050415039, -20.254413604736328, -20.4081974029541,
           -19.38787841796875],
    0.05: [2.6084117889404297, 3.74017333984375, -3.280130386352539, -1.8324871063232422,
           3.2358570098876953],
}
#: the logit model's first five sample values after ``torch.manual_seed(2)``, ``sample(2)``
BEFORE_SAMPLE = [0.23443935811519623, 0.19794614613056183, 0.738166332244873,
                 0.7918995022773743, 0.38888785243034363]


@pytest.mark.parametrize("alpha", [None, 0.05])
def test_unconditional_glow_is_unchanged(alpha):
    """Same parameters (count, names, seeded values) and the same numbers as before."""
    torch.manual_seed(0)
    glow = Glow((1, 4, 4), logit_alpha=alpha, **TINY).eval()
    assert glow.num_parameters() == 2624 and len(glow.state_dict()) == 36
    assert glow.num_classes is None and glow.get_config()["num_classes"] is None
    assert not any("context" in name for name in glow.state_dict())
    assert type(glow.flow._distribution).__name__ == "StandardNormal"
    torch.manual_seed(1)
    x = torch.rand(5, 16) * 0.9 + 0.05
    expected = torch.tensor(BEFORE_LOG_LIKELIHOOD[alpha])
    torch.testing.assert_close(ppgen.log_likelihood(glow, x), expected, rtol=1e-6, atol=1e-5)
    if alpha is not None:
        torch.manual_seed(2)
        got = glow.sample(2).flatten()[:5]
        torch.testing.assert_close(got, torch.tensor(BEFORE_SAMPLE), rtol=1e-5, atol=1e-6)
    torch.manual_seed(0)
    assert Glow((8, 8), hidden_channels=16).num_parameters() == 38912  # the digits size


# ----------------------------------------------------------------------------- conditional


def _two_class_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """4x4 images in [0, 1]: class 0 dark (0.2 +- 0.05), class 1 a bright checkerboard
    (0.8 on even pixels, 0.5 on odd ones, +- 0.05); alternating labels."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    means = torch.stack([torch.full((16,), 0.2), 0.5 + 0.3 * (torch.arange(16) % 2 == 0)])
    return (means[y] + 0.05 * torch.randn(n, 16, generator=g)).clamp(0, 1), y


def test_conditional_glow_learns_the_labels(tmp_path):
    """After a short fit on two clearly different classes the label matters: the true label
    is the more likely one for at least 95% of held-out rows (the classes are 6 standard
    deviations apart per pixel), samples of class c are nearer class c's mean image, and the
    checkpoint reloads with ``num_classes`` and the same densities."""
    torch.manual_seed(0)
    x, y = _two_class_images(256, seed=0)
    x_val, y_val = _two_class_images(64, seed=1)
    glow = Glow((1, 4, 4), logit_alpha=0.05, num_classes=2, **TINY)
    history = ppgen.fit(glow, x, x_val, labels=y, val_labels=y_val, epochs=8, batch_size=64,
                        lr=1e-2, progress=False, out_dir=tmp_path)
    assert history.records[-1]["train_loss"] < history.records[0]["train_loss"]
    x_test, y_test = _two_class_images(200, seed=2)
    own = ppgen.log_likelihood(glow, x_test, y=y_test)
    other = ppgen.log_likelihood(glow, x_test, y=1 - y_test)
    assert float((own > other).float().mean()) >= 0.95
    means = torch.stack([x[y == c].mean(0) for c in (0, 1)])
    for c in (0, 1):
        samples = glow.sample(200, y=c)
        assert samples.shape == (200, 16)
        dist = (samples.mean(0) - means).norm(dim=1)
        assert float(dist[c]) < float(dist[1 - c]), (c, dist)
    loaded = ppgen.load(tmp_path / "model.pt")
    assert loaded.num_classes == 2 and loaded.get_config()["num_classes"] == 2
    torch.testing.assert_close(ppgen.log_likelihood(loaded, x_test, y=y_test), own)


def test_conditional_glow_program_and_prior():
    """Labels go to the prior and to every coupling; the prior starts as the standard normal."""
    torch.manual_seed(0)
    glow = Glow((1, 4, 4), num_classes=3, **TINY).eval()
    assert glow.num_parameters() > 2624
    prior = glow.flow._distribution._context_encoder
    assert prior.weight.shape == (2 * 16, 3) and not bool(prior.weight.abs().sum() > 0)
    assert glow.sample(6).shape == (6, 16)  # classes in turn without labels
    x = glow.sample(4, y=torch.tensor([0, 1, 2, 0]))
    lp = [ppgen.log_likelihood(glow, x, y=torch.full((4,), c)) for c in range(3)]
    assert not torch.allclose(lp[0], lp[1])  # the couplings see the label even at init
    with torch.no_grad():
        prior.weight.normal_()
    torch.testing.assert_close(ppgen.log_likelihood(glow, x, y=torch.full((4,), 2)),
                               glow.flow.log_prob(x, context=torch.eye(3)[[2, 2, 2, 2]]))


def test_conditional_glow_for_data_and_dequantised():
    digits = {"event_shape": (64,), "num_levels": 17, "image_shape": (8, 8)}
    info = DataInfo(likelihood="categorical", **digits)
    model = Glow.for_data(info, num_classes=10, **TINY)
    assert isinstance(model, Dequantized) and model.flow_model.num_classes == 10
    assert model.num_classes == 10
    samples = model.sample(3, y=7)
    assert samples.shape == (3, 64) and samples.dtype == torch.long
    assert int(samples.min()) >= 0 and int(samples.max()) <= 16
    x = torch.randint(0, 17, (4, 64))
    assert ppgen.elbo(model, None, x, y=torch.tensor([0, 3, 9, 1])).shape == (4,)


def test_conditional_glow_label_errors():
    glow = Glow((1, 4, 4), logit_alpha=0.05, num_classes=2, **TINY)
    x = torch.rand(4, 16)
    with pytest.raises(ModelError, match="pass the labels"):
        ppgen.log_likelihood(glow, x)
    with pytest.raises(DataError, match="one label per row"):
        ppgen.fit(glow, x, labels=torch.tensor([0, 1, 0]), epochs=1, progress=False)
    with pytest.raises(DataError, match="levels|range"):
        ppgen.fit(glow, x, labels=torch.tensor([0, 1, 2, 0]), epochs=1, progress=False)
    with pytest.raises(DataError, match="levels|range"):
        glow.sample(2, y=2)
    plain = Glow((1, 4, 4), logit_alpha=0.05, **TINY)
    with pytest.raises(DataError, match="unconditional"):  # checked up front, as in fit
        ppgen.log_likelihood(plain, x, y=torch.zeros(4, dtype=torch.long))
    with pytest.raises(DataError, match="unconditional"):
        ppgen.fit(plain, x, labels=torch.zeros(4, dtype=torch.long), epochs=1, progress=False)
    with pytest.raises(ModelError, match="num_classes"):
        Glow((1, 4, 4), num_classes=1, **TINY)
