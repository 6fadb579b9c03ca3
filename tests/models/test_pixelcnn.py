"""PixelCNN: exhaustive normalisation of tiny images, the autoregressive property and the
receptive field (autograd Jacobians: the gated stacks have no blind spot, the original masked
convolutions do), R -> G -> B ordering inside a pixel, goodness of fit of samples, shapes and
its own argument errors (checkpoints, ``for_data`` and the errors it shares with PixelRNN:
test_image_autoregressive.py).

Goodness-of-fit tests use fixed seeds and reject at p < 0.001 each (two here).
"""

from __future__ import annotations

import pytest
import torch
from scipy import stats
from testkit import P_MIN, all_configs, data_for, small_image_model

import ppgen
from ppgen.evaluate import log_likelihood
from ppgen.models.masked_conv import channel_groups, channel_mask
from ppgen.models.pixelcnn import PixelCNN, pixel_order
from ppgen.protocol import ModelKind, model_class


def make(
    shape, likelihood: str = "bernoulli", K: int = 3, scale: float = 0.5, **kwargs
) -> PixelCNN:
    """A small PixelCNN with random weights (biases included) of standard deviation ``scale``."""
    kwargs.setdefault("hidden_channels", 6)
    kwargs.setdefault("num_layers", 2)
    return small_image_model(PixelCNN, shape, likelihood, K, scale, **kwargs)




def dependency(model: PixelCNN, num_images: int = 4) -> torch.Tensor:
    """``[D, D]``: total |d params_i / d features_j| over a few images of random features
    (several, so that a dependency is not hidden by ReLUs that happen to be off).

    One backward pass per output dimension ``i``, of its parameters projected on random
    weights (an exact cancellation has probability zero); images do not interact, so each
    image's gradient is its own.
    """
    g = torch.Generator().manual_seed(1)
    D, F = model.num_dims, model.head.num_features
    f = torch.randn(num_images, D, F, generator=g).requires_grad_()
    out = model.net.forward_features(f)  # [n, D, P]
    w = torch.randn(out.shape[1:], generator=g)
    rows = []
    for i in range(D):
        (grad,) = torch.autograd.grad((out[:, i] * w[i]).sum(), f, retain_graph=True)
        rows.append(grad.abs().sum((0, 2)))
    return torch.stack(rows)


def steps(model: PixelCNN) -> torch.Tensor:
    """``step[d]``: when flat dimension ``d`` is generated."""
    step = torch.empty(model.num_dims, dtype=torch.long)
    step[model.order] = torch.arange(model.num_dims)
    return step


pytestmark = pytest.mark.usefixtures("clean_param_store")


# ---------------------------------------------------------------------------- protocol


def test_protocol_and_config():
    model = make((3, 2, 2), "categorical")
    assert PixelCNN.name == "pixelcnn" and model_class("pixelcnn") is PixelCNN
    assert PixelCNN.kind == ModelKind.EXACT and model.event_shape == (12,)
    clone = PixelCNN.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert set(PixelCNN.fit_defaults) >= {"epochs", "batch_size", "lr", "patience"}
    assert PixelCNN((4, 5)).image_shape == (4, 5) and PixelCNN((4, 5)).num_dims == 20


def test_pixel_order_is_raster_then_rgb():
    # flat index ch * H * W + pixel; pixels (0, 0), (0, 1) of a 3 x 1 x 2 image
    assert pixel_order(3, 1, 2).tolist() == [0, 2, 4, 1, 3, 5]
    assert torch.equal(pixel_order(1, 3, 3), torch.arange(9))


def test_channel_masks():
    groups = channel_groups(7, 3)
    assert groups.tolist() == [0, 0, 0, 1, 1, 2, 2]
    rgb = torch.arange(3)
    assert torch.equal(channel_mask(rgb, rgb, "A"), torch.tril(torch.ones(3, 3), -1))
    assert torch.equal(channel_mask(rgb, rgb, "B"), torch.tril(torch.ones(3, 3)))


# ---------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize("gated", [True, False], ids=["gated", "plain"])
@pytest.mark.parametrize("shape", [(1, 3, 3), (3, 1, 2)], ids=["grey-3x3", "rgb-1x2"])
def test_exhaustive_normalisation_binary(shape, gated):
    model = make(shape, gated=gated)
    x = all_configs(model.num_dims, 2).float()
    total = torch.logsumexp(log_likelihood(model, x).double(), 0)
    assert abs(float(total)) < 1e-5


@pytest.mark.parametrize(
    "shape, likelihood", [((3, 1, 2), "categorical"), ((1, 2, 2), "logistic-mixture")]
)
def test_exhaustive_normalisation_levels(shape, likelihood):
    model = make(shape, likelihood)
    x = all_configs(model.num_dims, 3)
    total = torch.logsumexp(log_likelihood(model, x).double(), 0)
    assert abs(float(total)) < 1e-5


# ---------------------------------------------------------------------------- the property


@pytest.mark.parametrize("gated", [True, False], ids=["gated", "plain"])
@pytest.mark.parametrize(
    "shape, likelihood",
    [((1, 4, 4), "bernoulli"), ((3, 3, 3), "categorical"), ((2, 3, 2), "logistic-mixture")],
)
def test_autoregressive_property(shape, likelihood, gated):
    """d output_i / d input_j is exactly zero unless j is generated before i; with gating
    and enough layers every earlier dimension matters (no blind spot)."""
    model = make(shape, likelihood, gated=gated, num_layers=4, hidden_channels=9)
    dep, step = dependency(model), steps(model)
    later = step.unsqueeze(0) >= step.unsqueeze(1)  # [i, j]: j not before i
    assert torch.all(dep[later] == 0), "an output sees its own or a later input"
    if gated:
        assert torch.all(dep[~later] > 0), "the gated stacks have a blind spot"
    else:
        assert dep[step.argmax()].sum() > 0


def test_channels_of_a_pixel_are_generated_r_g_b():
    model = make((3, 2, 2), "categorical", hidden_channels=9)
    dep = dependency(model).reshape(3, 4, 3, 4)  # [ch_out, pixel_out, ch_in, pixel_in]
    pixel = 3  # the last pixel: (1, 1)
    inside = dep[:, pixel, :, pixel]  # [ch_out, ch_in] at the same pixel
    assert torch.equal(inside > 0, torch.tril(torch.ones(3, 3, dtype=torch.bool), -1))
    assert torch.all(dep[:, pixel, :, :pixel] > 0)  # every channel of earlier pixels


def test_gated_stacks_see_the_upper_right_and_plain_convolutions_do_not():
    """The blind spot of the original PixelCNN: with 3 x 3 masks, pixel (r, c) never sees
    (r - 1, c + 2); the gated vertical stack does (van den Oord et al., 2016, Fig. 1)."""
    H, W, (r, c) = 5, 5, (2, 1)
    i, j = r * W + c, (r - 1) * W + c + 2
    gated = dependency(make((1, H, W), gated=True, num_layers=3))
    plain = dependency(make((1, H, W), gated=False, num_layers=3))
    assert gated[i, j] > 0 and gated[i, j - 1] > 0
    assert plain[i, j] == 0 and plain[i, j - 1] > 0


# ---------------------------------------------------------------------------- samples


@pytest.mark.parametrize(
    "shape, likelihood, K", [((1, 2, 2), "categorical", 3), ((3, 1, 2), "bernoulli", 2)]
)
def test_samples_fit_exact_probabilities(shape, likelihood, K):
    """Chi-square of 10,000 draws against the exact probabilities of every image."""
    # strong dependencies: sampling the RGB image in flat order instead moves 38% of the mass
    model = make(shape, likelihood, K=K, scale=1.0, hidden_channels=9, num_layers=1)
    num, D = 10000, model.num_dims
    samples = model.sample(num).long()
    index = (samples * K ** torch.arange(D - 1, -1, -1)).sum(-1)
    observed = torch.bincount(index, minlength=K**D).double()
    probs = log_likelihood(model, data_for(model, all_configs(D, K))).double().exp()
    expected = probs / probs.sum() * num
    assert stats.chisquare(observed.numpy(), expected.numpy()).pvalue > P_MIN


# ---------------------------------------------------------------------------- shapes


# ---------------------------------------------------------------------------- errors


def test_constructor_errors():
    """PixelCNN's own argument checks; those it shares with PixelRNN (and its data and
    ``for_data`` errors) are in test_image_autoregressive.py."""
    with pytest.raises(ppgen.ModelError, match="hidden_channels"):
        PixelCNN((3, 2, 2), hidden_channels=2)


# ---------------------------------------------------------------------------- digits


@pytest.mark.slow
def test_digits_beats_the_causal_convolution_reference():
    """With its fit_defaults the gated PixelCNN beats the causal-convolution reference of
    BENCHMARKS.md (86.4 nats) and the 84-nat target (79 nats in the recorded runs; several
    minutes on one CPU thread)."""
    from ppgen.data import load_digits

    digits = load_digits("categorical")
    model = PixelCNN.for_data(digits.info)
    ppgen.fit(model, digits.train, digits.val, progress=False, device="cpu")
    assert float(-log_likelihood(model, digits.test).mean()) < 84.0
