"""Digit domains and user image domains: the transformations against scipy and numpy, unpaired
training (disjoint digits), paired validation and test, and the boundary checks of user data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from ppgen.data import load_digits
from ppgen.data.domains import (
    DIGIT_DOMAINS,
    load_digit_domains,
    load_domains,
    load_image_domains,
    load_images,
    transform_digits,
)
from ppgen.data.transforms import quantize
from ppgen.errors import DataError

CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    return load_digits("categorical").test[:50]


def test_each_domain_is_its_known_transformation(digits):
    images = digits.reshape(-1, 8, 8).numpy()
    expected = {
        "original": images,
        "inverted": 16 - images,
        "bold": np.stack([ndimage.grey_dilation(i, footprint=CROSS, mode="constant", cval=0)
                          for i in images]),
        "thin": np.minimum(images, np.pad(images, ((0, 0), (0, 0), (0, 1)),
                                          constant_values=16)[:, :, 1:]),
        "rotated": np.rot90(images, 1, axes=(1, 2)),
        "mirrored": images[:, :, ::-1],
    }
    assert set(expected) == set(DIGIT_DOMAINS)
    for name, truth in expected.items():
        got = transform_digits(digits, name).reshape(-1, 8, 8).numpy()
        assert np.array_equal(got, truth), name
    bold, thin = transform_digits(digits, "bold"), transform_digits(digits, "thin")
    assert (bold >= digits).all() and (thin <= digits).all() and (bold > digits).any()


def _originals(splits, name: str) -> torch.Tensor:
    """The training digits of domain ``name`` mapped back to the original domain."""
    x = splits.block("train", name).reshape(-1, 8, 8)
    back = {"original": lambda t: t, "inverted": lambda t: 16 - t,
            "rotated": lambda t: torch.rot90(t, -1, (-2, -1)),
            "mirrored": lambda t: torch.flip(t, (-1,))}[name]
    return back(x).reshape(-1, 64)


def test_training_is_unpaired_validation_and_test_are_paired():
    names = ("original", "inverted", "rotated", "mirrored")
    s = load_digit_domains(names, "categorical", seed=3)
    train = load_digits("categorical").train
    rows = {tuple(r.tolist()): i for i, r in enumerate(train)}
    seen: list[int] = []
    for name in names:
        back = _originals(s, name)
        assert len(back) == 250
        seen += [rows[tuple(r.tolist())] for r in back]  # every row is a training digit
    assert sorted(seen) == list(range(1000))  # each digit in exactly one domain: disjoint
    for split, n in (("val", 350), ("test", 447)):
        assert s.split(split).shape == (4 * n, 64)
        assert torch.equal(s.labels[split], torch.arange(4).repeat_interleave(n))
        original = s.block(split, "original")
        assert torch.equal(s.block(split, "inverted"), 16 - original)
        assert torch.equal(s.block(split, 3), transform_digits(original, "mirrored"))
        assert torch.equal(s.classes[split], load_digits().labels[split].repeat(4))
    assert s.paired and s.domains == names and s.info.image_shape == (8, 8)
    other = load_digit_domains(names, "categorical", seed=4)
    assert not torch.equal(other.block("train", "original"), s.block("train", "original"))


def test_the_continuous_representation_dequantises_the_levels():
    levels = load_digit_domains(["original", "bold"], "categorical", seed=1)
    reals = load_digit_domains(["original", "bold"], seed=1)
    assert reals.train.dtype == torch.float32 and reals.info.likelihood == "continuous"
    assert 0 <= float(reals.train.min()) and float(reals.train.max()) < 1
    for split in ("train", "val", "test"):
        assert torch.equal(quantize(reals.split(split), 17), levels.split(split))


@pytest.mark.parametrize("domains, message", [
    (["original"], "at least 2"),
    (["original", "original"], "at least 2"),
    (["original", "italic"], "unknown digit domain"),
])
def test_bad_digit_domains_are_clear_errors(domains, message):
    with pytest.raises(DataError, match=message):
        load_digit_domains(domains)


def test_the_data_spec_names_the_digit_domains():
    s = load_domains("digits-domains:original,thin")
    assert s.domains == ("original", "thin") and s.paired
    assert load_domains("digits-domains", domains=["bold", "inverted"]).domains == (
        "bold", "inverted")
    with pytest.raises(DataError, match="give them once"):
        load_domains("digits-domains:original,thin", domains=["original", "bold"])
    with pytest.raises(DataError, match="no --data-b"):
        load_domains("digits-domains", ["b.npy"])


# --------------------------------------------------------------------------- user images
def _images(n: int, shape=(6, 6), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(size=(n, *shape)).astype(np.float32)


def test_user_domains_from_files_and_folders(tmp_path):
    from PIL import Image

    np.save(tmp_path / "photos.npy", _images(40))
    folder = tmp_path / "sketches"
    folder.mkdir()
    pictures = (_images(20, seed=1) * 255).round().astype(np.uint8)
    for i, picture in enumerate(pictures):
        Image.fromarray(picture).save(folder / f"{i:02d}.png")
    s = load_image_domains([tmp_path / "photos.npy", folder], seed=0)
    assert s.domains == ("photos", "sketches") and not s.paired
    assert s.info.image_shape == (6, 6) and s.train.shape[1] == 36
    assert sum(len(s.split(k)) for k in ("train", "val", "test")) == 60
    assert (s.labels["train"] == 1).sum() == 14  # 20 images: 3 val, 3 test
    x, shape = load_images(folder)
    assert shape == (6, 6) and torch.allclose(x * 255, torch.as_tensor(pictures).reshape(20, 36)
                                              .float())
    flat = load_image_domains([_images(10).reshape(10, 36), _images(10)], ["a", "b"])
    assert flat.domains == ("a", "b") and flat.info.image_shape == (6, 6)


@pytest.mark.parametrize("sources, message", [
    ([_images(5)], "two or more"),
    ([_images(5), _images(5, (4, 4))], "different shapes"),
    ([_images(5), np.where(_images(5) > 0.5, np.nan, _images(5))], "NaN"),
    ([_images(5), 255 * _images(5)], "scale the images to"),
    ([_images(5).reshape(5, 36)[:, :30], _images(5)], "not square images"),
])
def test_bad_user_domains_are_one_line_errors(sources, message):
    with pytest.raises(DataError, match=message) as info:
        load_image_domains(sources)
    assert "\n" not in str(info.value)


def test_a_folder_without_images_and_repeated_names_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .png images"):
        load_image_domains([tmp_path / "empty", _images(5)], ["a", "b"])
    with pytest.raises(DataError, match="one different name"):
        load_image_domains([_images(5), _images(5)], ["a", "a"])
