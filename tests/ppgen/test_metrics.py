"""Sample-based metrics against closed forms: the Fréchet distance of Gaussians, the MMD of two
Gaussians under a Gaussian kernel, precision/recall of a collapsed generator, the mode counts of
the VEEGAN/PacGAN protocol, and the routing of implicit models to the report."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import scipy.linalg
import torch

import ppgen
from ppgen.distributions import ImplicitDistribution
from ppgen.evaluate import nll_report
from ppgen.metrics import (
    SAMPLE_METRICS,
    ModeSet,
    density_coverage,
    frechet_distance,
    frechet_distance_of,
    gaussian_statistics,
    kid,
    knn_radii,
    mmd2,
    mode_metrics,
    precision_recall,
    sample_metrics,
)
from ppgen.metrics.kid import polynomial_kernel
from ppgen.protocol import GenerativeModel, ModelKind

pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_covariance(d: int, seed: int) -> torch.Tensor:
    a = torch.randn(d, d, generator=gen(seed), dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


# --------------------------------------------------------------------------- Fréchet distance
def test_frechet_distance_of_gaussians_in_closed_form():
    d = 5
    mu1 = torch.randn(d, generator=gen(1), dtype=torch.float64)
    mu2 = torch.randn(d, generator=gen(2), dtype=torch.float64)
    s1, s2 = random_covariance(d, 3), random_covariance(d, 4)
    cross = scipy.linalg.sqrtm(s1.numpy() @ s2.numpy())  # the textbook formula, via SciPy
    expected = float(((mu1 - mu2) ** 2).sum() + torch.trace(s1) + torch.trace(s2)
                     - 2 * np.trace(cross).real)
    assert float(frechet_distance(mu1, s1, mu2, s2)) == pytest.approx(expected, rel=1e-9)
    # commuting (diagonal) covariances: |mu1 - mu2|^2 + sum (sigma1 - sigma2)^2
    v1, v2 = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 0.25])
    value = frechet_distance(torch.zeros(3), torch.diag(v1), torch.ones(3), torch.diag(v2))
    assert float(value) == pytest.approx(3 + ((v1.sqrt() - v2.sqrt()) ** 2).sum().item())
    assert float(frechet_distance(mu1, s1, mu1, s1)) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_of_samples_converges_to_the_closed_form():
    """200k draws per side: the plug-in estimate's error is O(d/N) bias plus noise, well under
    the 2% tolerance (seeded)."""
    s1, s2 = random_covariance(3, 5), random_covariance(3, 6)
    mu2 = torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64)
    n = 200_000
    x = torch.randn(n, 3, generator=gen(7), dtype=torch.float64) @ torch.linalg.cholesky(s1).T
    y = mu2 + torch.randn(n, 3, generator=gen(8), dtype=torch.float64) @ torch.linalg.cholesky(
        s2).T
    exact = frechet_distance(torch.zeros(3), s1, mu2, s2)
    assert float(frechet_distance_of(x, y)) == pytest.approx(float(exact), rel=0.02)
    mean, cov = gaussian_statistics(x)
    assert torch.allclose(cov, s1, atol=0.03) and mean.abs().max() < 0.01


# --------------------------------------------------------------------------- MMD and KID
def gaussian_mmd2(delta2: float, s: float, h: float, d: int) -> float:
    """MMD² of N(0, s²I) and N(m, s²I), |m|² = delta2, under exp(-|a-b|²/(2h²)) in d dims:
    E k = (h²/(h²+2s²))^{d/2} exp(-|m_a - m_b|²/(2(h²+2s²)))."""
    c = (h ** 2 / (h ** 2 + 2 * s ** 2)) ** (d / 2)
    return 2 * c * (1 - math.exp(-delta2 / (2 * (h ** 2 + 2 * s ** 2))))


def test_mmd_against_the_closed_form_of_two_gaussians():
    """4,000 draws a side: the U-statistic's standard deviation here is about 0.002 (seeded;
    tolerance 0.01)."""
    n, d, h = 4000, 2, 1.5
    x = torch.randn(n, d, generator=gen(0))
    y = torch.tensor([1.0, 0.5]) + torch.randn(n, d, generator=gen(1))
    value = float(mmd2(x, y, bandwidth=h))
    assert value == pytest.approx(gaussian_mmd2(1.25, 1.0, h, d), abs=0.01)
    same = float(mmd2(x, torch.randn(n, d, generator=gen(2)), bandwidth=h))
    assert abs(same) < 0.005  # unbiased: mean zero under P = Q
    assert float(mmd2(x, y, bandwidth=h, unbiased=False)) > value  # the V-statistic's bias
    assert float(mmd2(x, y)) > 10 * abs(same)  # the median heuristic separates them too


def test_kid_is_the_unbiased_polynomial_mmd():
    x = torch.randn(300, 4, generator=gen(0))
    y = 0.5 + torch.randn(300, 4, generator=gen(1))
    mean, std = kid(x, y, num_subsets=1, subset_size=300)  # every row: the U-statistic
    kxx, kyy, kxy = (polynomial_kernel(a.double(), b.double()) for a, b in ((x, x), (y, y),
                                                                           (x, y)))
    off = 1 - torch.eye(300, dtype=torch.float64)
    expected = ((kxx * off).sum() + (kyy * off).sum()) / (300 * 299) - 2 * kxy.mean()
    assert float(mean) == pytest.approx(float(expected)) and float(std) == 0.0
    same, _ = kid(x, torch.randn(300, 4, generator=gen(2)), num_subsets=20, subset_size=100)
    assert abs(float(same)) < 0.1 * float(mean)
    _, spread = kid(x, y, num_subsets=10)  # default: subsets of half the rows
    assert float(spread) > 0
    with pytest.raises(ValueError, match="subset_size"):
        kid(x, y[:10], subset_size=50)



def reference_kid(x: torch.Tensor, y: torch.Tensor, num_subsets: int, size: int,
                  seed: int = 0) -> tuple[float, float]:
    """KID as first written: one polynomial kernel per subset pair, ``** 3``, diagonal out."""
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(num_subsets):
        a = x.double()[torch.randperm(len(x), generator=generator)[:size]]
        b = y.double()[torch.randperm(len(y), generator=generator)[:size]]
        kaa, kbb, kab = ((u @ v.T / u.shape[1] + 1) ** 3 for u, v in ((a, a), (b, b), (a, b)))
        off = 1 - torch.eye(size, dtype=torch.float64)
        values.append(((kaa * off).sum() + (kbb * off).sum()) / (size * (size - 1))
                      - 2 * kab.mean())
    stacked = torch.stack(values)
    return float(stacked.mean()), float(stacked.std())


@pytest.mark.parametrize("full_kernels", [True, False])
def test_kid_equals_the_per_subset_formula(full_kernels, monkeypatch):
    """Both routes (subsets read off the full kernels; one kernel per subset) give the value
    of the straightforward formula on the same subsets, for unequal sample sizes too."""
    kid_module = importlib.import_module("ppgen.metrics.kid")  # the name ``kid`` is the function
    if not full_kernels:
        monkeypatch.setattr(kid_module, "FULL_KERNEL_ENTRIES", 0)
    x = torch.randn(120, 5, generator=gen(0))
    y = 0.3 + 1.2 * torch.randn(90, 5, generator=gen(1))
    for size, seed in ((45, 0), (2, 3), (90, 1)):
        mean, std = kid(x, y, num_subsets=7, subset_size=size, seed=seed)
        expected = reference_kid(x, y, 7, size, seed)
        assert (float(mean), float(std)) == pytest.approx(expected, rel=1e-12, abs=1e-14)
    mean, std = kid(x, y)  # the default subset size: half the smaller sample
    assert (float(mean), float(std)) == pytest.approx(reference_kid(x, y, 100, 45), rel=1e-12)


# --------------------------------------------------------------------------- precision / recall
def test_precision_and_recall_of_equal_collapsed_and_spread_samples():
    """The collapsed generator (all draws near one real point's neighbourhood) has precision
    near 1 and recall near 0; a too-wide generator the opposite; equal distributions give both
    high (about 0.8-0.9 at k = 3 and 1,000 points, the trend of Kynkäänniemi et al. Fig. 2)."""
    real = torch.randn(1000, 2, generator=gen(0))
    equal = precision_recall(real, torch.randn(1000, 2, generator=gen(1)))
    assert equal["precision"] > 0.8 and equal["recall"] > 0.8
    collapsed = precision_recall(real, 0.05 * torch.randn(1000, 2, generator=gen(2)))
    assert collapsed["precision"] > 0.95 and collapsed["recall"] < 0.1
    spread = precision_recall(real, 4 * torch.randn(1000, 2, generator=gen(3)))
    assert spread["precision"] < 0.5 and spread["recall"] > 0.9
    dc = density_coverage(real, 0.05 * torch.randn(1000, 2, generator=gen(2)))
    assert dc["coverage"] < 0.1 and dc["density"] > 1.05  # fakes crowd the densest region
    fair = density_coverage(real, torch.randn(1000, 2, generator=gen(1)))
    assert fair["density"] == pytest.approx(1.0, abs=0.15) and fair["coverage"] > 0.9


def test_knn_radii_by_hand():
    points = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    assert knn_radii(points, 1).tolist() == [1.0, 1.0, 2.0, 4.0]
    assert knn_radii(points, 2).tolist() == [3.0, 2.0, 3.0, 6.0]
    with pytest.raises(ValueError, match="k must be"):
        knn_radii(points, 4)


# --------------------------------------------------------------------------- modes
def test_mode_metrics_of_the_pacgan_mixtures():
    ring, grid = ModeSet.ring(), ModeSet.grid()
    assert ring.num_modes == 8 and grid.num_modes == 25
    assert torch.allclose(ring.centres.norm(dim=1), torch.ones(8))
    assert set(grid.centres.flatten().tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}
    for modes in (ring, grid):
        scores = mode_metrics(modes.sample(5000, seed=1), modes)
        inside = 1 - math.exp(-4.5)  # P(|z| <= 3) for a 2-D standard normal
        assert scores["modes"] == modes.num_modes
        assert scores["high_quality"] == pytest.approx(inside, abs=0.01)
        assert scores["mode_kl"] < 0.01
    three = ring.centres[:3].repeat(100, 1)  # collapsed onto three modes, exactly on them
    scores = mode_metrics(three, ring)
    assert (scores["modes"], scores["high_quality"]) == (3, 1.0)
    assert scores["mode_kl"] == pytest.approx(math.log(8 / 3))
    off = mode_metrics(ring.centres * 1.5, ring)  # between nothing: no high-quality point
    assert (off["modes"], off["high_quality"]) == (0, 0.0)


# --------------------------------------------------------------------------- the report
class Squash(GenerativeModel, register=False):
    """An implicit model: tanh of Gaussian noise."""

    kind = ModelKind.IMPLICIT

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size([2])

    def model(self, x=None, num_samples=None):
        n = x.shape[0] if x is not None else num_samples
        noise = dist.Normal(torch.zeros(2), 1.0).to_event(1)
        with pyro.plate("data", n):
            return pyro.sample("x", ImplicitDistribution(torch.tanh, noise, (2,)), obs=x)


def test_implicit_models_are_evaluated_by_samples():
    torch.manual_seed(0)
    x = torch.tanh(torch.randn(400, 2, generator=gen(9)))
    report = nll_report(Squash(), x)  # what ppgen evaluate writes
    assert set(SAMPLE_METRICS) <= set(report) and report["n"] == 400
    assert report["features"] == "raw" and abs(report["mmd"]) < 0.01
    assert report["precision"] > 0.8 and report["recall"] > 0.8
    with pytest.raises(ppgen.ImplicitModelError, match="ppgen.metrics"):
        ppgen.log_likelihood(Squash(), x)
    toy = sample_metrics(ModeSet.ring().sample(500), ModeSet.ring().sample(500, seed=3),
                         modes=ModeSet.ring())
    assert toy["modes"] == 8 and toy["fd"] < 0.01
