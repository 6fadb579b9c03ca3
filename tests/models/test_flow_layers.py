"""The flow layers that replace nflows' to keep host synchronisation out of a training step
(ActNorm's Python flag, the 1x1 convolution's device indices) are nflows' layers: the same
numbers, the same ``state_dict`` keys, and checkpoints written by nflows' layers load."""

from __future__ import annotations

import io

import pytest
import torch
from nflows import transforms

import ppgen
from ppgen.models import RealNVP
from ppgen.models.flows import ActNorm
from ppgen.models.glow import OneByOneConvolution

SHAPES = {"flat": (20, 3), "image": (6, 3, 4, 5)}


def _initialised(layer: transforms.Transform, x: torch.Tensor) -> transforms.Transform:
    layer.train()(x)  # a training-mode pass with gradients on: a training step
    return layer


@pytest.mark.parametrize("shape", SHAPES.values(), ids=list(SHAPES))
def test_actnorm_initialises_like_nflows(shape: tuple[int, ...]) -> None:
    x = 2.0 * torch.randn(shape) + 1.0
    ours, theirs = _initialised(ActNorm(3), x), _initialised(transforms.ActNorm(3), x)
    assert ours.is_initialized and bool(ours.initialized)
    assert ours.initialized.device == ours.log_scale.device
    assert torch.equal(ours.log_scale, theirs.log_scale) and torch.equal(ours.shift, theirs.shift)
    for a, b in zip(ours(x), theirs(x)):
        assert torch.equal(a, b)


def test_actnorm_state_dict_carries_the_flag() -> None:
    x = torch.randn(20, 3)
    trained = _initialised(ActNorm(3), x)
    assert list(trained.state_dict()) == list(transforms.ActNorm(3).state_dict())
    loaded = ActNorm(3)
    loaded.load_state_dict(trained.state_dict())
    assert loaded.is_initialized
    _initialised(loaded, 5.0 * x)  # initialised already: the step keeps the loaded values
    assert torch.equal(loaded.log_scale, trained.log_scale)
    loaded.load_state_dict(ActNorm(3).state_dict())
    assert not loaded.is_initialized


def test_actnorm_loads_a_checkpoint_of_nflows_actnorm() -> None:
    """nflows leaves its flag as a CPU tensor; the saved state loads and sets the flag."""
    old = _initialised(transforms.ActNorm(3), torch.randn(20, 3))
    buffer = io.BytesIO()
    torch.save(old.state_dict(), buffer)
    buffer.seek(0)
    layer = ActNorm(3)
    layer.load_state_dict(torch.load(buffer, weights_only=True))
    assert layer.is_initialized and torch.equal(layer.log_scale, old.log_scale)


def test_saved_flow_restores_its_actnorm_layers(tmp_path) -> None:
    torch.manual_seed(0)
    model = RealNVP(3, num_layers=2, hidden_features=8, normalization="actnorm")
    x = torch.randn(10, 3)
    ppgen.fit(model, x, epochs=1, batch_size=10, progress=False)
    model.save(tmp_path / "flow.pt")
    layers = [m for m in ppgen.load(tmp_path / "flow.pt").modules() if isinstance(m, ActNorm)]
    assert layers and all(m.is_initialized for m in layers)


def _convolutions(channels: int) -> tuple[OneByOneConvolution, transforms.OneByOneConvolution]:
    torch.manual_seed(0)
    theirs = transforms.OneByOneConvolution(channels)
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(0.5 * torch.randn_like(p))
    ours = OneByOneConvolution(channels)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def test_one_by_one_convolution_is_nflows_with_device_indices() -> None:
    ours, theirs = _convolutions(5)
    assert list(ours.state_dict()) == list(theirs.state_dict())  # index buffers not saved
    for a, b in zip(ours._create_lower_upper(), theirs._create_lower_upper()):
        assert torch.equal(a, b)
    x = torch.randn(2, 5, 3, 3)
    for method in ("forward", "inverse"):
        for a, b in zip(getattr(ours, method)(x), getattr(theirs, method)(x)):
            assert torch.equal(a, b)
    eye = torch.eye(5)
    torch.testing.assert_close(ours.weight_inverse() @ ours.weight(), eye, atol=1e-5, rtol=0)
