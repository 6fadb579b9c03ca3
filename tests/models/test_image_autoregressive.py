"""What PixelCNN and PixelRNN share as image models: ``for_data`` on digits-shaped and other
data, checkpoints, and the errors of constructor arguments and data common to both.

The family-specific behaviour (normalisation, receptive fields, samples, their own arguments)
is in test_pixelcnn.py and test_pixelrnn.py.
"""

from __future__ import annotations

import pytest
import torch

import ppgen
from ppgen.data import DataInfo
from ppgen.evaluate import log_likelihood
from ppgen.models.pixelcnn import PixelCNN
from ppgen.models.pixelrnn import LAYERS, PixelRNN

pytestmark = pytest.mark.usefixtures("clean_param_store")

CLASSES = [PixelCNN, PixelRNN]

#: each class with the options that pick its variants
VARIANTS = [(PixelCNN, {})] + [(PixelRNN, {"layer": layer}) for layer in LAYERS]


def variant_id(value):
    if isinstance(value, type):
        return value.__name__
    return value.get("layer", "") if isinstance(value, dict) else None


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
