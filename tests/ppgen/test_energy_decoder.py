"""AIS of decoder-based models (Wu et al. 2017) against closed forms.

A linear-Gaussian decoder ``x = W z + b + σ ε`` has the analytic marginal ``N(b, W Wᵀ + σ² I)``
and posterior, so the interval can be checked against the truth with reverse chains started
from resampled forward chains and from exact posterior samples; a tiny trained VAE's decoder
AIS agrees with its importance-weighted estimate. Fixed seeds: the tests are deterministic;
across seeds each end of the interval misses the truth with probability at most about 2.5%
(two Monte Carlo standard errors, and the AIS bias points outwards), so a mean over the rows
fails rarely — a wrong normaliser or a wrong path shifts it by far more than the width.
"""

from __future__ import annotations

import pytest
import torch

import ppgen
from ppgen.energy import AISSettings, decoder_ais, decoder_log_likelihood
from ppgen.errors import ModelError
from ppgen.models import GAN, MAF, VAE

pytestmark = pytest.mark.usefixtures("one_thread")

L, D, SIGMA = 2, 4, 0.5


@pytest.fixture(scope="module")
def linear():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(D, L, generator=g)
    b = torch.randn(D, generator=g)
    z = torch.randn(6, L, generator=g)
    x = z @ w.T + b + SIGMA * torch.randn(6, D, generator=g)
    marginal = torch.distributions.MultivariateNormal(b, w @ w.T + SIGMA**2 * torch.eye(D))
    return w, b, x, marginal.log_prob(x)


def _log_prob(w, b):
    return lambda z, x: torch.distributions.Normal(z @ w.T + b, SIGMA).log_prob(x).sum(-1)


def _settings(t: int) -> AISSettings:
    return AISSettings(num_distributions=t, num_leapfrog=3, pilot_distributions=50)


def test_linear_gaussian_interval_contains_the_marginal(linear):
    w, b, x, truth = linear
    result = decoder_ais(_log_prob(w, b), x, L, num_chains=32, settings=_settings(150),
                         generator=torch.Generator().manual_seed(1))
    assert result.log_likelihood.shape == result.lower.shape == (6,)
    assert result.reverse_start == "resampled"
    assert float(result.lower.mean()) <= float(truth.mean()) <= float(result.upper.mean())
    assert float((result.upper - result.lower).mean()) < 0.8  # 32 chains: se ≈ 0.1
    assert torch.all(result.lower <= result.log_likelihood)
    assert torch.all(result.log_likelihood <= result.upper)


def test_exact_posterior_reverse_start_and_shrinking_interval(linear):
    w, b, x, truth = linear
    precision = torch.eye(L) + w.T @ w / SIGMA**2
    cov = torch.linalg.inv(precision)
    mean = (x - b) @ w @ cov.T / SIGMA**2
    g = torch.Generator().manual_seed(2)
    exact = mean.unsqueeze(1) + torch.randn(6, 32, L, generator=g) @ torch.linalg.cholesky(
        cov).T
    widths = []
    for t in (5, 150):
        result = decoder_ais(_log_prob(w, b), x, L, num_chains=32, settings=_settings(t),
                             reverse_start=exact, generator=torch.Generator().manual_seed(3))
        assert result.reverse_start == "given"
        assert float(result.lower.mean()) <= float(truth.mean()) <= float(result.upper.mean())
        widths.append(float((result.upper - result.lower).mean()))
    assert widths[1] < widths[0] / 2


def test_gan_gaussian_noise_model_and_refusals():
    torch.manual_seed(0)
    gan = GAN(3, latent_dim=2, hidden_dims=(8,), critic_dims=(8,))
    z, x = torch.randn(5, 2), torch.randn(5, 3)
    expected = torch.distributions.Normal(gan.generator(z), 0.3).log_prob(x).sum(-1)
    assert torch.allclose(gan.decoder_log_prob(z, x, noise_scale=0.3), expected, atol=1e-5)
    with pytest.raises(ModelError, match="noise_scale"):
        gan.decoder_log_prob(z, x)
    vae = VAE(3, latent_dim=2, hidden_dims=(8,), num_levels=5)
    with pytest.raises(ModelError, match="own observation model"):
        vae.decoder_log_prob(z, x, noise_scale=0.3)
    with pytest.raises(ModelError, match="no decoder"):
        MAF(3).decoder_log_prob(z, x)


@pytest.mark.slow  # about 15 s on a busy core
def test_vae_decoder_ais_agrees_with_iwae(linear):
    """A tiny Gaussian VAE (1-d code) trained on linear-Gaussian data: its decoder's AIS
    interval holds the importance-weighted estimate with 4,000 particles (essentially exact
    with a 1-d code)."""
    w, b, _, _ = linear
    g = torch.Generator().manual_seed(4)
    data = torch.randn(600, 1, generator=g) @ w[:, :1].T + b + SIGMA * torch.randn(
        600, D, generator=g)
    torch.manual_seed(0)
    vae = VAE(D, latent_dim=1, hidden_dims=(16,), likelihood="gaussian")
    ppgen.fit(vae, data, epochs=15, batch_size=100, seed=0, progress=False)
    x = data[:8]
    result = decoder_log_likelihood(vae, x, num_chains=32, settings=_settings(200),
                                    generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    iwae = ppgen.log_likelihood(vae, x, num_particles=4000)
    summary = result.summary()
    assert summary["nll_lower"] <= -float(iwae.mean()) <= summary["nll_upper"]
    assert summary["nll_width"] < 0.5
    assert summary["reverse_start"] == "resampled"
