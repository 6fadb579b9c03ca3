"""PixelRNN (Row LSTM and Diagonal BiLSTM): exhaustive normalisation of tiny images, the
autoregressive property and the receptive fields (autograd Jacobians on square and
non-square, grey and RGB images: the Diagonal BiLSTM sees the whole context, the Row LSTM
exactly its triangle), R -> G -> B ordering inside a pixel, skewing, goodness of fit of
samples, shapes, device and its own argument errors (checkpoints, ``for_data`` and the errors
it shares with PixelCNN: test_image_autoregressive.py).

Goodness-of-fit tests use fixed seeds and reject at p < 0.001 each (four here), so a correct
implementation fails one of them with probability below 0.4% for a given seed.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from scipy import stats
from testkit import P_MIN, all_configs, data_for, small_image_model

import ppgen
from ppgen.evaluate import log_likelihood
from ppgen.models.pixelcnn import pixel_order
from ppgen.models.pixelrnn import LAYERS, PixelRNN, skew, unskew
from ppgen.protocol import ModelKind, model_class

pytestmark = pytest.mark.usefixtures("clean_param_store")


def make(
    shape, likelihood: str = "bernoulli", K: int = 3, scale: float = 0.5, **kwargs
) -> PixelRNN:
    """A small PixelRNN with random weights (biases included) of standard deviation ``scale``."""
    kwargs.setdefault("hidden_channels", 6)
    kwargs.setdefault("num_layers", 1)
    kwargs.setdefault("kernel_size", 3)
    return small_image_model(PixelRNN, shape, likelihood, K, scale, **kwargs)


def dependency(model: PixelRNN, num_images: int = 16, rows=None) -> torch.Tensor:
    """``[D, D]``: total |d params_i / d features_j| over images of random features (several,
    so that a dependency is not hidden by the head's ReLUs happening to be off); only the
    outputs ``i`` in ``rows`` (default: all).

    One backward pass per output dimension ``i``, of its parameters projected on random
    weights (an exact cancellation has probability zero); images do not interact.
    """
    g = torch.Generator().manual_seed(1)
    D, F = model.num_dims, model.head.num_features
    f = torch.randn(num_images, D, F, generator=g).requires_grad_()
    out = model.net.forward_features(f)  # [n, D, P]
    w = torch.randn(out.shape[1:], generator=g)
    grads = []
    for i in range(D) if rows is None else rows:
        (grad,) = torch.autograd.grad((out[:, i] * w[i]).sum(), f, retain_graph=True)
        grads.append(grad.abs().sum((0, 2)))
    return torch.stack(grads)


def before(model: PixelRNN) -> torch.Tensor:
    """``[D, D]`` bool: ``[i, j]`` when flat dimension ``j`` is generated before ``i``."""
    step = torch.empty(model.num_dims, dtype=torch.long)
    step[model.order] = torch.arange(model.num_dims)
    return step.unsqueeze(0) < step.unsqueeze(1)


def row_lstm_field(H: int, W: int, k: int, k_row: int) -> torch.Tensor:
    """``[H W, H W]`` bool: the pixels one Row LSTM layer after a ``k x k`` type-A layer sees
    (grey images), from the documented kernels alone.

    Input-layer feature at ``(r, c)`` sees ``A(r, c)``: rows ``r - a0 .. r - 1`` at columns
    ``c - a0 .. c + a0`` and ``(r, c - a0 .. c - 1)``. The LSTM state at ``(r, c)`` reads
    features at ``(r, c - a .. c)`` and ``(r - j, c - (j + 1) a .. c + j a)``, ``j >= 1``.
    """
    a0, a = k // 2, k_row // 2

    def inside(r: int, c: int) -> bool:
        return 0 <= r < H and 0 <= c < W

    def seen_by_feature(r: int, c: int) -> set[tuple[int, int]]:
        above = {(r - i, c + j) for i in range(1, a0 + 1) for j in range(-a0, a0 + 1)}
        return {q for q in above | {(r, c - j) for j in range(1, a0 + 1)} if inside(*q)}

    field = torch.zeros(H * W, H * W, dtype=torch.bool)
    for r, c in itertools.product(range(H), range(W)):
        features = {(r, c - j) for j in range(a + 1)}
        features |= {
            (r - j, cc) for j in range(1, r + 1) for cc in range(c - (j + 1) * a, c + j * a + 1)
        }
        for q in features:
            for rr, cc in seen_by_feature(*q) if inside(*q) else ():
                field[r * W + c, rr * W + cc] = True
    return field


# ---------------------------------------------------------------------------- protocol


@pytest.mark.parametrize("layer", LAYERS)
def test_protocol_and_config(layer):
    model = make((3, 2, 2), "categorical", layer=layer)
    assert PixelRNN.name == "pixelrnn" and model_class("pixelrnn") is PixelRNN
    assert PixelRNN.kind == ModelKind.EXACT and model.event_shape == (12,)
    clone = PixelRNN.from_config(model.get_config())
    assert clone.get_config() == model.get_config() and clone.layer == layer
    assert set(PixelRNN.fit_defaults) >= {"epochs", "batch_size", "lr", "patience"}
    assert torch.equal(model.order, pixel_order(3, 2, 2))
    assert PixelRNN((4, 5)).image_shape == (4, 5) and PixelRNN((4, 5)).num_dims == 20


def test_skew_shifts_row_r_by_r_and_unskew_inverts_it():
    x = torch.arange(1.0, 16.0).reshape(1, 1, 3, 5)  # H = 3, W = 5
    y = skew(x)
    assert y.shape == (1, 1, 3, 7)
    for r, c in itertools.product(range(3), range(5)):
        assert y[0, 0, r, c + r] == x[0, 0, r, c]
    assert int((y != 0).sum()) == 15  # everything else is zero padding
    torch.testing.assert_close(unskew(y, 5), x)
    tall = torch.randn(2, 5, 3, 4)  # channels last: H = 5, W = 3 at dims 1, 2
    skewed = skew(tall, dim=1)
    assert skewed.shape == (2, 5, 7, 4)
    torch.testing.assert_close(skewed, skew(tall.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))
    torch.testing.assert_close(unskew(skewed, 3, dim=1), tall)


# ---------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("shape", [(1, 2, 2), (1, 3, 2), (3, 1, 2)], ids=["2x2", "3x2", "rgb"])
def test_exhaustive_normalisation_binary(shape, layer):
    model = make(shape, layer=layer, num_layers=2)
    x = all_configs(model.num_dims, 2).float()
    total = torch.logsumexp(log_likelihood(model, x).double(), 0)
    assert abs(float(total)) < 1e-5


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize(
    "shape, likelihood", [((3, 1, 2), "categorical"), ((1, 2, 2), "logistic-mixture")]
)
def test_exhaustive_normalisation_levels(shape, likelihood, layer):
    model = make(shape, likelihood, layer=layer)
    x = all_configs(model.num_dims, 3)
    total = torch.logsumexp(log_likelihood(model, x).double(), 0)
    assert abs(float(total)) < 1e-5


# ---------------------------------------------------------------------------- the property


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize(
    "shape, likelihood",
    [
        ((1, 3, 5), "bernoulli"),
        ((1, 5, 3), "bernoulli"),
        ((3, 3, 4), "categorical"),
        ((2, 4, 2), "logistic-mixture"),
    ],
    ids=["grey-3x5", "grey-5x3", "rgb-3x4", "two-4x2"],
)
def test_autoregressive_property(shape, likelihood, layer):
    """d output_i / d input_j is exactly zero unless j is generated before i (several
    layers, non-square images: a wrong skew, mirror or shift leaks the future here); one
    Diagonal BiLSTM layer already sees every earlier dimension."""
    model = make(shape, likelihood, layer=layer, num_layers=2, hidden_channels=12)
    dep, earlier = dependency(model), before(model)
    assert torch.all(dep[~earlier] == 0), "an output sees its own or a later input"
    assert torch.all(dep.sum(1)[model.order[1:]] > 0), "an output sees nothing"
    if layer == "diagonal-bilstm":
        one = make(shape, likelihood, layer=layer, num_layers=1, hidden_channels=12)
        assert torch.all(dependency(one)[earlier] > 0), "the Diagonal BiLSTM has a blind spot"


@pytest.mark.parametrize("layer", LAYERS)
def test_channels_of_a_pixel_are_generated_r_g_b(layer):
    model = make((3, 2, 2), "categorical", layer=layer, hidden_channels=12)
    dep = dependency(model).reshape(3, 4, 3, 4)  # [ch_out, pixel_out, ch_in, pixel_in]
    pixel = 3  # the last pixel: (1, 1)
    inside = dep[:, pixel, :, pixel]  # [ch_out, ch_in] at the same pixel
    assert torch.equal(inside > 0, torch.tril(torch.ones(3, 3, dtype=torch.bool), -1))
    assert torch.all(dep[:, pixel, :, :pixel] > 0)  # every channel of earlier pixels


@pytest.mark.parametrize("shape", [(5, 4), (4, 6)], ids=["5x4", "4x6"])
def test_diagonal_bilstm_sees_the_far_end_of_the_row_above(shape):
    """Pixel (r, 0) depends on (r - 1, W - 1), the pixel generated just before it, through
    the mirrored direction's read of the image; without that read nothing can carry it (a
    pixel's own value never reaches its own or an earlier position of the causal stack)."""
    H, W = shape
    model = make((1, H, W), layer="diagonal-bilstm", num_layers=2, hidden_channels=8)
    r = H - 1
    i, j = r * W, r * W - 1  # (r, 0) and (r - 1, W - 1)
    assert dependency(model, rows=[i])[0, j] > 0
    for layer in model.net.layers:  # cut the mirrored direction's read of the image
        layer.mirrored_input_to_state.masks[..., model.hidden_channels :] = 0.0
    assert dependency(model, rows=[i])[0, j] == 0


@pytest.mark.parametrize(
    "shape, kernel, row_kernel", [((4, 9), 3, 3), ((5, 7), 3, 5), ((3, 8), 5, 3)]
)
def test_row_lstm_receptive_field_is_the_triangle(shape, kernel, row_kernel):
    """Exactly the pixels of the documented triangle (from the kernels alone) matter: pixel
    (r, c) sees the row above up to column c + k_r // 2 + k // 2 and no further."""
    H, W = shape
    model = make(
        (1, H, W),
        layer="row-lstm",
        kernel_size=kernel,
        row_kernel_size=row_kernel,
        hidden_channels=8,
    )
    field = row_lstm_field(H, W, kernel, row_kernel)
    assert torch.equal(dependency(model, num_images=32) > 0, field)
    assert not torch.all(field[before(model)]), "the triangle should miss some of the context"


# ---------------------------------------------------------------------------- samples


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize(
    "shape, likelihood, K", [((1, 2, 2), "categorical", 3), ((3, 1, 2), "bernoulli", 2)]
)
def test_samples_fit_exact_probabilities(shape, likelihood, K, layer):
    """Chi-square of 10,000 draws against the exact probabilities of every image."""
    model = make(shape, likelihood, K=K, scale=1.0, layer=layer, hidden_channels=6)
    num, D = 10000, model.num_dims
    samples = model.sample(num).long()
    index = (samples * K ** torch.arange(D - 1, -1, -1)).sum(-1)
    observed = torch.bincount(index, minlength=K**D).double()
    probs = log_likelihood(model, data_for(model, all_configs(D, K))).double().exp()
    expected = probs / probs.sum() * num
    assert stats.chisquare(observed.numpy(), expected.numpy()).pvalue > P_MIN


# ---------------------------------------------------------------------------- shapes


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_shape": (3, 2, 2), "hidden_channels": 5}, "hidden_channels"),
        ({"image_shape": (2, 2), "hidden_channels": 1}, "hidden_channels"),
        ({"image_shape": (2, 2), "row_kernel_size": 2}, "row_kernel_size"),
        ({"image_shape": (2, 2), "layer": "grid-lstm"}, "grid-lstm"),
        ({"image_shape": (2, 2), "num_layers": -1}, "num_layers"),
    ],
)
def test_constructor_errors(kwargs, match):
    """PixelRNN's own argument checks; those it shares with PixelCNN (and its data and
    ``for_data`` errors) are in test_image_autoregressive.py."""
    with pytest.raises(ppgen.ModelError, match=match):
        PixelRNN(**kwargs)


# ---------------------------------------------------------------------------- digits


@pytest.mark.slow
def test_digits_beats_the_causal_convolution_reference():
    """With its fit_defaults the Diagonal BiLSTM PixelRNN beats the causal-convolution
    reference of BENCHMARKS.md (86.4 nats) and the 84-nat target (a few minutes on one CPU
    thread)."""
    from ppgen.data import load_digits

    digits = load_digits("categorical")
    model = PixelRNN.for_data(digits.info)
    ppgen.fit(model, digits.train, digits.val, progress=False, device="cpu")
    assert float(-log_likelihood(model, digits.test).mean()) < 84.0
