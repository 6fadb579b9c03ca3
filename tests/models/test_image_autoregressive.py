"""What PixelCNN and PixelRNN share as image models: ``for_data`` on digits-shaped and other
data, checkpoints, and the errors of constructor arguments and data common to both.

The family-specific behaviour (normalisation, receptive fields, samples, their own arguments)
is in test_pixelcnn.py and test_pixelrnn.py.
"""

from __future__ import annotations

import pytest
import torch
from testkit import small_image_model

import ppgen
from ppgen.data import DataInfo
from ppgen.evaluate import log_likelihood
from ppgen.models.pixelcnn import PixelCNN
from ppgen.models.pixelrnn import LAYERS, PixelRNN

pytestmark = pytest.mark.usefixtures("clean_param_store")

CLASSES = [PixelCNN, PixelRNN]

#: each class with the options that pick its variants
VARIANTS = [(PixelCNN, {})] + [(PixelRNN, {"layer": layer}) for layer in LAYERS]


#: the same variants with the small-network options of test_pixelcnn.py / test_pixelrnn.py
SMALL = [(PixelCNN, {"gated": g, "num_layers": 2}) for g in (True, False)] + [
    (PixelRNN, {"layer": layer, "num_layers": 1, "kernel_size": 3}) for layer in LAYERS]


def variant_id(value):
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, dict):
        return value.get("layer") or ("gated" if value.get("gated") else "plain")
    return None


@pytest.mark.parametrize("cls, options", VARIANTS, ids=variant_id)
def test_digits_shaped_data_and_checkpoint(cls, options, tmp_path):
    info = DataInfo((64,), "categorical", num_levels=17, image_shape=(8, 8), name="digits")
    model = cls.for_data(info, hidden_channels=8, num_layers=2, **options)
    assert model.image_shape == (8, 8) and model.likelihood == "categorical"
    x = torch.randint(17, (5, 64))
    ll = ppgen.log_likelihood(model, x)
    assert ll.shape == (5,) and torch.isfinite(ll).all()
    model.save(str(tmp_path / "model.pt"))
    loaded = ppgen.load(tmp_path / "model.pt")
    assert type(loaded) is cls and loaded.get_config() == model.get_config()
    torch.testing.assert_close(ppgen.log_likelihood(loaded, x), ll)


@pytest.mark.parametrize("cls", CLASSES, ids=variant_id)
def test_for_data_errors(cls):
    with pytest.raises(ppgen.ModelError, match="NADE or MADE"):
        cls.for_data(DataInfo((6,), "categorical", num_levels=3))
    with pytest.raises(ppgen.ModelError, match="flat images"):
        cls.for_data(DataInfo((5,), "bernoulli", image_shape=(2, 3)))
    with pytest.raises(ppgen.ModelError, match="continuous"):
        cls.for_data(DataInfo((4,), "continuous", image_shape=(2, 2)))
    binary = cls.for_data(DataInfo((12,), "bernoulli", image_shape=(3, 2, 2)))
    assert binary.likelihood == "bernoulli" and binary.image_shape == (3, 2, 2)


@pytest.mark.parametrize("cls", CLASSES, ids=variant_id)
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_shape": (2,)}, "image_shape"),
        ({"image_shape": (2, 2), "kernel_size": 4}, "kernel_size"),
        ({"image_shape": (2, 2), "dropout": 1.0}, "dropout"),
        ({"image_shape": (2, 2), "likelihood": "gaussian-mixture"}, "no 'gaussian-mixture'"),
    ],
    ids=["image_shape", "kernel_size", "dropout", "likelihood"],
)
def test_constructor_errors(cls, kwargs, match):
    with pytest.raises(ppgen.ModelError, match=match):
        cls(**kwargs)


@pytest.mark.parametrize("cls", CLASSES, ids=variant_id)
def test_data_of_the_wrong_shape_is_refused(cls):
    with pytest.raises(ppgen.DataError, match="shape"):
        log_likelihood(cls((1, 2, 2), hidden_channels=6, num_layers=1), torch.zeros(3, 5))


@pytest.mark.parametrize("cls, options", SMALL, ids=variant_id)
def test_shapes_dtype_and_device(cls, options, device):
    model = small_image_model(cls, (3, 2, 3), "logistic-mixture", K=5, hidden_channels=6,
                              dropout=0.5, **options).to(device)
    x = model.sample(4)  # training mode: dropout is off without gradients
    assert x.shape == (4, 18) and x.dtype == torch.long and x.device.type == device.type
    assert model.check_data(x).shape == (4, 18)
    ll = log_likelihood(model, x)
    assert ll.shape == (4,) and ll.device.type == device.type
    torch.testing.assert_close(model.log_prob_per_dim(x).sum(-1), ll, atol=1e-4, rtol=1e-5)
    noisy = log_likelihood(model, x, differentiable=True).detach()
    assert not torch.allclose(noisy, ll)  # dropout is on in training with gradients
    model.eval()
    torch.testing.assert_close(log_likelihood(model, x, differentiable=True).detach(), ll)
