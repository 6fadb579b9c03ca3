"""Tests of ppgen.data: the digits protocol, dequantisation, the toys and the file loaders."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.datasets import load_digits as sklearn_load_digits

import ppgen
from ppgen.data import (
    REPRESENTATIONS,
    dequantize,
    load_array,
    load_data,
    load_digits,
    load_toy,
    quantize,
    sample_toy,
    toy_log_density,
    toy_names,
)
from ppgen.data.transforms import _bin_bounds

CLOSED_FORM_TOYS = ("eight_gaussians", "checkerboard", "rings")


@pytest.fixture(scope="module")
def raw_digits() -> tuple[torch.Tensor, torch.Tensor]:
    bunch = sklearn_load_digits()
    return torch.as_tensor(bunch.data).long(), torch.as_tensor(bunch.target).long()


# --- digits ------------------------------------------------------------------------------


@pytest.mark.parametrize("representation", REPRESENTATIONS)
def test_digits_split_sizes_order_and_labels(representation, raw_digits):
    pixels, targets = raw_digits
    splits = load_digits(representation)
    assert splits.train.shape == (1000, 64)
    assert splits.val.shape == (350, 64)
    assert splits.test.shape == (447, 64)
    restored = quantize(splits.train, 17) if representation == "continuous" else splits.train
    if representation != "binary":
        assert torch.equal(restored[0], pixels[0])
    for name, rows in (
        ("train", slice(0, 1000)),
        ("val", slice(1000, 1350)),
        ("test", slice(1350, None)),
    ):
        assert torch.equal(splits.labels[name], targets[rows])
    info = splits.info
    assert info.event_shape == (64,) and info.image_shape == (8, 8)
    assert info.name == "digits" and info.representation == representation


def test_digits_categorical(raw_digits):
    pixels, _ = raw_digits
    splits = load_digits("categorical")
    assert splits.train.dtype == torch.long
    assert splits.info.likelihood == "categorical" and splits.info.num_levels == 17
    assert torch.equal(splits.test, pixels[-447:])
    assert torch.equal(splits.val, pixels[1000:1350])
    everything = torch.cat([splits.train, splits.val, splits.test])
    assert int(everything.min()) == 0 and int(everything.max()) == 16


def test_digits_binary_threshold(raw_digits):
    pixels, _ = raw_digits
    splits = load_digits("binary")
    assert splits.train.dtype == torch.float32
    assert splits.info.likelihood == "bernoulli" and splits.info.num_levels == 2
    assert torch.equal(splits.train, (pixels[:1000] >= 8).float())
    # The threshold sits between 7 and 8: both values occur and land on opposite sides.
    assert bool(((pixels[:1000] == 7) & (splits.train == 0)).any())
    assert bool(((pixels[:1000] == 8) & (splits.train == 1)).any())


def test_digits_continuous_dequantised_exactly(raw_digits):
    pixels, _ = raw_digits
    splits = load_digits("continuous", seed=3)
    info = splits.info
    assert info.likelihood == "continuous" and info.num_levels == 17
    y = torch.cat([splits.train, splits.val, splits.test])
    assert y.dtype == torch.float32
    assert float(y.min()) >= 0.0 and float(y.max()) < 1.0
    assert torch.equal(torch.floor(17 * y.double()).long(), pixels)  # exact arithmetic
    assert torch.equal(torch.floor(17 * y).long(), pixels)  # float32 arithmetic


def test_digits_seed_determinism():
    a, b = load_digits("continuous", seed=1), load_digits("continuous", seed=1)
    c = load_digits("continuous", seed=2)
    assert torch.equal(a.train, b.train) and torch.equal(a.test, b.test)
    assert not torch.equal(a.train, c.train)
    assert torch.equal(load_digits("categorical", seed=1).train, load_digits(seed=2).train)


def test_digits_unknown_representation():
    with pytest.raises(ppgen.DataError, match="use one of categorical, binary, continuous"):
        load_digits("grey")


# --- dequantisation ----------------------------------------------------------------------


@pytest.mark.parametrize("num_levels", [2, 3, 17, 255, 256, 1000, 4099])
def test_bin_bounds_quantise_back(num_levels):
    lo, hi = _bin_bounds(num_levels, torch.device("cpu"))
    k = torch.arange(num_levels)
    for edge in (lo, hi):
        assert torch.equal(torch.floor(edge.double() * num_levels).long(), k)
        assert torch.equal(torch.floor(edge * num_levels).long(), k)
    # The bounds are the outermost float32 values of each bin, one ulp from the true edge.
    assert bool((torch.nextafter(hi, torch.tensor(2.0)) * num_levels >= k + 1).all())


@pytest.mark.parametrize("num_levels", [2, 17, 256])
def test_dequantize_round_trip_and_uniform_noise(num_levels):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(num_levels, (20_000, 8), generator=g)
    y = dequantize(x, num_levels, generator=g)
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert torch.equal(quantize(y, num_levels), x)
    # u = K*y - x is U[0, 1): mean 1/2, sd of the mean sqrt(1/12 / n); 5 sd: failure ~ 6e-7.
    u = num_levels * y.double() - x
    assert abs(float(u.mean()) - 0.5) < 5 * math.sqrt(1 / 12 / u.numel())
    assert abs(float(u.var()) - 1 / 12) < 0.002


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.tensor([[0.5, 1.0]]), "non-integer"),
        (torch.tensor([[0, 17]]), "integers in \\[0, 16\\]"),
        (torch.tensor([[-1, 3]]), "integers in \\[0, 16\\]"),
        (torch.tensor([[float("nan"), 1.0]]), "NaN"),
        (torch.zeros(0, 4, dtype=torch.long), "empty"),
    ],
)
def test_dequantize_rejects_bad_levels(x, message):
    with pytest.raises(ppgen.DataError, match=message):
        dequantize(x, 17)


# --- toys --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["two_moons", "eight_gaussians", "checkerboard", "rings"])
def test_toy_shapes_and_seeds(name):
    assert name in toy_names()
    x = sample_toy(name, 500, seed=4)
    assert x.shape == (500, 2) and x.dtype == torch.float32
    assert bool(torch.isfinite(x).all())
    assert torch.equal(x, sample_toy(name, 500, seed=4))
    assert not torch.equal(x, sample_toy(name, 500, seed=5))
    assert torch.equal(x, sample_toy(name, 500, generator=torch.Generator().manual_seed(4)))
    assert torch.equal(sample_toy(name, 10), sample_toy(name, 10, seed=0))


def test_toy_argument_errors():
    with pytest.raises(ppgen.DataError, match="use one of two_moons"):
        sample_toy("spirals", 3)
    with pytest.raises(ppgen.DataError, match="not both"):
        sample_toy("rings", 3, seed=1, generator=torch.Generator())
    with pytest.raises(ppgen.DataError, match="no closed-form density"):
        toy_log_density("two_moons", torch.zeros(3, 2))
    with pytest.raises(ppgen.DataError, match="rows of shape"):
        toy_log_density("rings", torch.zeros(3, 3))


def _grid(half_width: float, h: float) -> torch.Tensor:
    """Midpoints ``[M*M, 2]`` (float64) of a square grid of spacing ``h`` on ``[-w, w]^2``."""
    ticks = torch.arange(-half_width + h / 2, half_width, h, dtype=torch.float64)
    return torch.cartesian_prod(ticks, ticks)


@pytest.mark.parametrize("name", CLOSED_FORM_TOYS)
def test_toy_density_integrates_to_one(name):
    # Midpoint rule, h = 0.02 on [-4, 4]^2. For a smooth integrand that vanishes at the box
    # edges its error is exponentially small (~exp(-2 pi^2 std^2 / h^2) < 1e-20 here); it is
    # exact for the checkerboard (no grid cell straddles a square's edge). The rings' integrable
    # 1/r spike at the origin holds a mass ~1e-6 that the grid resolves only roughly, and the
    # mass outside the box is < 1e-15 for every toy: tolerance 1e-5.
    h = 0.02
    total = toy_log_density(name, _grid(4.0, h)).exp().sum() * h * h
    assert abs(float(total) - 1.0) < 1e-5


def test_toy_density_point_values():
    std = 0.2
    centre = torch.tensor([[2.0, 0.0], [0.0, -2.0]], dtype=torch.float64)
    expected = -math.log(8) - math.log(2 * math.pi * std**2)  # other components ~ e^-29
    assert torch.allclose(
        toy_log_density("eight_gaussians", centre), torch.tensor(expected, dtype=torch.float64)
    )
    board = torch.tensor(
        [[-1.5, -1.5], [-0.5, -1.5], [1.5, 1.5], [2.5, 0.0], [-2.0, -2.0]], dtype=torch.float64
    )
    log_p = toy_log_density("checkerboard", board)
    assert log_p.tolist() == [-math.log(8), -math.inf, -math.log(8), -math.inf, -math.log(8)]


def test_rings_density_matches_scipy_reference():
    # p(x) = sum_k 1/4 [N(r; r_k, 0.1) + N(-r; r_k, 0.1)] / (2 pi r), at several angles.
    r = np.array([0.05, 0.3, 0.5, 1.0, 1.25, 2.0, 2.6])
    radial = sum(stats.norm.pdf(r, m, 0.1) + stats.norm.pdf(-r, m, 0.1) for m in (0.5, 1, 1.5, 2))
    expected = torch.from_numpy(np.log(radial / 4 / (2 * np.pi * r)))
    for angle in (0.0, 1.0, -2.5):
        x = torch.from_numpy(np.stack([r * np.cos(angle), r * np.sin(angle)], axis=-1))
        assert torch.allclose(toy_log_density("rings", x), expected, rtol=1e-9, atol=1e-9)


@functools.cache
def _bin_probabilities(name: str) -> torch.Tensor:
    """``[24 * 24 + 1]`` probabilities of 0.25-wide square bins on [-3, 3]^2, then the outside.

    Midpoint rule on 25 x 25 points per bin (error far below the sampling noise).
    """
    h, per_bin, bins = 0.01, 25, 24
    grid = _grid(3.0, h)  # row-major: index = i * 600 + j for the point (x_i, y_j)
    mass = (toy_log_density(name, grid).exp() * h * h).reshape(bins, per_bin, bins, per_bin)
    probs = mass.sum(dim=(1, 3)).flatten()
    return torch.cat([probs, (1 - probs.sum()).clamp(min=0)[None]])


def _chi_square_p_value(name: str, x: torch.Tensor) -> float:
    """Pearson chi-square p-value of samples ``x`` ``[n, 2]`` against the density of ``name``.

    Bins are those of :func:`_bin_probabilities`; bins expecting fewer than 5 samples are
    pooled into one. Samples where the density is zero fail outright.
    """
    bins = 24
    cell = torch.floor((x.double() + 3) / 0.25).long()
    inside = ((cell >= 0) & (cell < bins)).all(-1)
    outside = torch.full_like(cell[:, 0], bins**2)
    index = torch.where(inside, cell[:, 0] * bins + cell[:, 1], outside)
    observed = torch.bincount(index, minlength=bins**2 + 1).double()
    expected = len(x) * _bin_probabilities(name)
    assert float(observed[expected == 0].sum()) == 0, "samples where the density is zero"
    small = expected < 5
    observed = torch.cat([observed[~small], observed[small].sum()[None]])
    expected = torch.cat([expected[~small], expected[small].sum()[None]])
    keep = expected > 0
    chi2 = float(((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum())
    return float(stats.chi2.sf(chi2, df=int(keep.sum()) - 1))


@pytest.mark.parametrize("name", CLOSED_FORM_TOYS)
def test_toy_samples_match_density(name):
    # Goodness of fit at level 1e-3 (fixed seed): a correct sampler/density pair fails with
    # probability 0.001 per toy; a mismatched std, radius or board fails with certainty.
    assert _chi_square_p_value(name, sample_toy(name, 50_000, seed=0)) > 1e-3


def test_chi_square_detects_a_wrong_density(monkeypatch):
    # The goodness-of-fit check above can fail: rings 20% wider than the density's do.
    import ppgen.data.toys as toys

    monkeypatch.setattr(toys, "_RING_STD", 0.12)
    x_wide = sample_toy("rings", 50_000, seed=0)
    monkeypatch.undo()
    assert _chi_square_p_value("rings", x_wide) < 1e-6


def test_load_toy_splits():
    splits = load_toy("eight_gaussians", n_train=300, n_val=50, n_test=40, seed=7)
    assert (splits.train.shape, splits.val.shape, splits.test.shape) == ((300, 2), (50, 2), (40, 2))
    info = splits.info
    assert info.event_shape == (2,) and info.likelihood == "continuous"
    assert info.name == "eight_gaussians"
    assert torch.equal(
        torch.cat([splits.train, splits.val, splits.test]),
        sample_toy("eight_gaussians", 390, seed=7),
    )


# --- loaders -----------------------------------------------------------------------------


def test_load_array_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.normal(size=(20, 3))
    np.save(tmp_path / "a.npy", arr)
    np.savetxt(tmp_path / "plain.csv", arr, delimiter=",")
    np.savetxt(tmp_path / "header.csv", arr, delimiter=",", header="x,y,z", comments="")
    expected = torch.from_numpy(arr)
    for file in ("a.npy", "plain.csv", "header.csv"):
        assert torch.equal(load_array(tmp_path / file), expected), file
    assert torch.equal(load_array(str(tmp_path / "a.npy")), expected)
    assert torch.equal(load_array(arr), expected)
    assert torch.equal(load_array(expected), expected)


def test_load_array_categorical_and_binary(tmp_path):
    (tmp_path / "levels.csv").write_text("a,b\n0,3\n2,1\n\n")
    x = load_array(tmp_path / "levels.csv", "categorical")
    assert x.dtype == torch.long and x.tolist() == [[0, 3], [2, 1]]
    assert load_array(np.array([[0, 1], [1, 1]]), "bernoulli").tolist() == [[0.0, 1.0], [1.0, 1.0]]


def _write(tmp_path, file: str, text: str):
    path = tmp_path / file
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("file", "text", "likelihood", "message"),
    [
        ("nan.csv", "1,2\nnan,3\n", "continuous", "NaN or infinite.*drop or impute"),
        ("inf.csv", "1,2\n4,inf\n", "continuous", "NaN or infinite.*drop or impute"),
        (
            "text.csv",
            "a,b\n1,2\n3,oops\n",
            "continuous",
            "line 3, column 2 \\('b'\\) is not a number",
        ),
        ("blank.csv", "1,2\n3,\n", "continuous", "line 2, column 2 is empty: fill in or drop rows"),
        ("commas.csv", "1,2\n,\n", "continuous", "line 2, column 1 is empty"),
        (
            "mixed.csv",
            "1,x\n3,4\n",
            "continuous",
            "line 1.*header line must hold only column names",
        ),
        ("ragged.csv", "1,2\n3,4,5\n", "continuous", "line 2 has 3 columns.*same number"),
        ("empty.csv", "", "continuous", "is empty: write one datum per line"),
        ("header_only.csv", "a,b\n", "continuous", "is empty.*at least one row"),
        ("negative.csv", "0,1\n-1,2\n", "categorical", "integers in \\[0, 2\\]: rescale"),
        ("fraction.csv", "0,1\n1.5,2\n", "categorical", "non-integer.*use integer levels"),
        ("notbinary.csv", "0,1\n2,1\n", "bernoulli", "other than 0 and 1.*binarise"),
        ("data.txt", "1,2\n", "continuous", "unsupported file type '.txt'.*use .npy or .csv"),
    ],
)
def test_load_array_bad_files(tmp_path, file, text, likelihood, message):
    with pytest.raises(ppgen.DataError, match=message):
        load_array(_write(tmp_path, file, text), likelihood)


def test_load_array_bad_arrays_and_paths(tmp_path):
    with pytest.raises(ppgen.DataError, match="NaN or infinite"):
        np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan]]))
        load_array(tmp_path / "nan.npy")
    with pytest.raises(ppgen.DataError, match="non-numeric.*convert text columns"):
        load_array(np.array([["a", "b"]]))
    with pytest.raises(ppgen.DataError, match="categorical with 3 levels|3 levels needs integers"):
        load_array(np.array([[0, 5]]), "categorical", num_levels=3)
    with pytest.raises(ppgen.DataError, match="no such file.*check the path"):
        load_array(tmp_path / "missing.npy")
    with pytest.raises(ppgen.DataError, match="Python objects.*numeric array"):
        np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
        load_array(tmp_path / "obj.npy")
    with pytest.raises(ppgen.DataError, match="is a directory"):
        load_array(tmp_path)
    with pytest.raises(ppgen.DataError, match="rows of shape \\(3,\\) but the model expects"):
        load_array(np.zeros((4, 3)), event_shape=(2,))


def test_load_data_bundled():
    digits = load_data("digits", "binary")
    assert digits.info.likelihood == "bernoulli" and digits.test.shape == (447, 64)
    assert load_data("digits").info.likelihood == "categorical"
    toy = load_data("rings", seed=1)
    assert toy.info.name == "rings" and toy.train.shape[1] == 2
    with pytest.raises(ppgen.DataError, match="toy data are continuous"):
        load_data("rings", "binary")
    with pytest.raises(ppgen.DataError, match="unknown data 'mnist': use 'digits', a toy"):
        load_data("mnist")


def test_load_data_user_file_split(tmp_path):
    arr = np.arange(100 * 3, dtype=np.float64).reshape(100, 3)
    np.save(tmp_path / "table.npy", arr)
    splits = load_data(tmp_path / "table.npy", seed=3)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (70, 15, 15)
    rows = torch.cat([splits.train, splits.val, splits.test])
    assert torch.equal(rows[:, 0].sort().values, torch.from_numpy(arr[:, 0]))  # a permutation
    assert not torch.equal(rows, torch.from_numpy(arr))  # ... that shuffles
    again = load_data(str(tmp_path / "table.npy"), seed=3)
    assert torch.equal(again.test, splits.test)
    assert not torch.equal(load_data(tmp_path / "table.npy", seed=4).test, splits.test)
    info = splits.info
    assert info.event_shape == (3,) and info.name == "table"
    assert info.likelihood == "continuous" and info.representation == "continuous"


def test_load_data_user_file_representations(tmp_path):
    np.save(tmp_path / "levels.npy", np.array([[0, 1], [4, 2], [3, 3], [1, 0]]))
    categorical = load_data(
        tmp_path / "levels.npy", "categorical", val_fraction=0.25, test_fraction=0.25
    )
    assert categorical.info.num_levels == 5 and categorical.train.dtype == torch.long
    given = load_data(
        tmp_path / "levels.npy", "categorical", num_levels=9, val_fraction=0.25, test_fraction=0.25
    )
    assert given.info.num_levels == 9
    np.save(tmp_path / "bits.npy", np.array([[0, 1], [1, 1], [0, 0], [1, 0]]))
    binary = load_data(tmp_path / "bits.npy", "binary", val_fraction=0.25, test_fraction=0.25)
    assert binary.info.likelihood == "bernoulli" and binary.info.num_levels == 2
    with pytest.raises(ppgen.DataError, match="other than 0 and 1"):
        load_data(tmp_path / "levels.npy", "binary")
    with pytest.raises(ppgen.DataError, match="unknown representation"):
        load_data(tmp_path / "levels.npy", "ordinal")


def test_load_data_bad_shapes_and_fractions(tmp_path):
    np.save(tmp_path / "flat.npy", np.arange(10.0))
    with pytest.raises(ppgen.DataError, match="pass a table \\[N, D\\]"):
        load_data(tmp_path / "flat.npy")
    np.save(tmp_path / "tiny.npy", np.zeros((2, 3)))
    with pytest.raises(ppgen.DataError, match="too few to split"):
        load_data(tmp_path / "tiny.npy")
    with pytest.raises(ppgen.DataError, match="sum to less than 1"):
        load_data(tmp_path / "tiny.npy", val_fraction=0.5, test_fraction=0.5)
