"""Likelihoods of decoder-based models by annealed importance sampling (Wu et al. 2017).

A decoder-based model draws ``z ~ N(0, I_L)`` and ``x | z ~ p(x | z)`` (a VAE's decoder; a GAN's
generator ``G`` once it is given an observation model, here Gaussian noise ``x | z ~ N(G(z),
σ² I)``). Its likelihood ``p(x) = ∫ p(z) p(x | z) dz`` is the normaliser of the posterior
``p(z | x) ∝ p(z) p(x | z)``, so the AIS of :mod:`ppgen.energy.ais` estimates it with no
encoder: the base is the prior (the whitened coordinates *are* ``z``), ``h(z) = log p(x | z)``,
and the geometric path ``π_β(z) ∝ N(z; 0, I) p(x | z)^β`` runs from the prior to the posterior
with HMC transitions (Wu, Burda, Salakhutdinov & Grosse 2017, "On the quantitative analysis of
decoder-based generative models", ICLR, arXiv:1611.04273).

Every datum has its own posterior, so its own chains: ``K`` chains per datum run as one batch
of ``N K`` chains (datum ``n`` owns rows ``n K .. n K + K - 1``) sharing the path and the step
sizes (tuned by a pilot run with one chain per datum). Forward AIS gives ``log p̂(x_n)``, a
stochastic lower bound; reverse AIS (bidirectional Monte Carlo, Grosse et al. 2015) from
posterior samples gives a stochastic upper bound — exact samples when the caller has them (data
simulated from the model: the ``z`` that generated ``x`` is an exact posterior draw, the check
Wu et al. use), otherwise each datum's forward chains resampled by weight (approximate). Each
end is widened by two Monte Carlo standard errors, as in :meth:`~ppgen.energy.AISResult.interval`.

Zoo models declare their decoder through :meth:`ppgen.GenerativeModel.decoder_log_prob`;
:func:`decoder_log_likelihood` reads it.

Example:
    >>> w = torch.tensor([[1.0], [2.0]])  # x | z ~ N(W z, 0.5² I), z ~ N(0, 1)
    >>> def log_prob(z, x):
    ...     return torch.distributions.Normal(z @ w.T, 0.5).log_prob(x).sum(-1)
    >>> x = torch.tensor([[0.5, 1.0], [0.0, -1.0]])
    >>> result = decoder_ais(log_prob, x, latent_dim=1, num_chains=32,
    ...                      settings=AISSettings(num_distributions=100),
    ...                      generator=torch.Generator().manual_seed(0))
    >>> result.log_likelihood.shape, result.lower.shape
    (torch.Size([2]), torch.Size([2]))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ppgen.energy.ais import INTERVAL_Z, AISSettings, forward_ais, reverse_ais
from ppgen.energy.samplers import evaluate
from ppgen.errors import ModelError

__all__ = ["DecoderAIS", "decoder_ais", "decoder_log_likelihood", "gaussian_log_prob",
           "DECODER_AIS"]

#: default AIS settings for decoders (Wu et al. use HMC with 10 leapfrog steps)
DECODER_AIS = AISSettings(num_distributions=500, transition="hmc", num_leapfrog=5,
                          pilot_distributions=100, initial_step_size=0.1)

LogProbFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def gaussian_log_prob(mean: torch.Tensor, x: torch.Tensor, noise_scale: float) -> torch.Tensor:
    """``log N(x; mean, σ² I)`` ``[M]`` for ``mean, x: [M, D]`` (fp32)."""
    d = x.shape[-1]
    sq = ((x.float() - mean.float()) ** 2).sum(-1)
    return -0.5 * sq / noise_scale**2 - d * (math.log(noise_scale) + 0.5 * math.log(2 * math.pi))


@dataclass(frozen=True)
class DecoderAIS:
    """Per-datum AIS estimates of ``log p(x_n)`` (nats, tensors ``[N]`` on the model's device).

    Attributes:
        log_likelihood: the forward estimates (stochastic lower bounds).
        reverse: the reverse estimates (stochastic upper bounds; exact when the reverse chains
            started at exact posterior samples).
        lower, upper: the interval: forward less, reverse plus :data:`INTERVAL_Z` standard
            errors (the upper end at least that far above the forward estimate).
        num_chains: chains per datum.
        settings: the path and transition.
        reverse_start: ``"given"`` or ``"resampled"``.
        acceptance: the forward chains' mean acceptance over the path.
    """

    log_likelihood: torch.Tensor
    reverse: torch.Tensor
    lower: torch.Tensor
    upper: torch.Tensor
    num_chains: int
    settings: AISSettings
    reverse_start: str
    acceptance: float

    def summary(self) -> dict[str, Any]:
        """Means over the data, as NLLs in nats per datum: ``nll`` (forward) in
        ``[nll_lower, nll_upper]`` (the mean of the per-datum ends: conservative), its width,
        the raw ends, the chains, path and acceptance."""
        mean = lambda t: float(t.double().mean())  # noqa: E731
        return {"nll": -mean(self.log_likelihood), "nll_lower": -mean(self.upper),
                "nll_upper": -mean(self.lower), "nll_width": mean(self.upper - self.lower),
                "nll_forward": -mean(self.log_likelihood), "nll_reverse": -mean(self.reverse),
                "n": int(self.log_likelihood.shape[0]), "num_chains": self.num_chains,
                "num_distributions": self.settings.num_distributions,
                "transition": self.settings.transition, "reverse_start": self.reverse_start,
                "ais_acceptance": self.acceptance}


def _per_datum(log_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``log mean_k w_nk`` ``[N]`` and its delta-method standard error ``[N]`` from ``[N, K]``."""
    k = log_w.shape[1]
    w = torch.softmax(log_w.double(), -1)
    se = ((w * w).sum(-1) - 1.0 / k).clamp_min(0.0).sqrt().float()
    return torch.logsumexp(log_w, -1) - math.log(k), se


def _h_fn(log_prob: LogProbFn, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``h(z) = log p(x_n | z)`` on ``z: [N r, L]`` (datum ``n`` owns ``r`` consecutive rows)."""
    n = x.shape[0]

    def h(z: torch.Tensor) -> torch.Tensor:
        return log_prob(z, x.repeat_interleave(z.shape[0] // n, 0)).float()

    return h


def decoder_ais(log_prob: LogProbFn, x: torch.Tensor, latent_dim: int, *,
                num_chains: int = 16, settings: AISSettings | None = None,
                reverse_start: torch.Tensor | None = None, bidirectional: bool = True,
                generator: torch.Generator | None = None) -> DecoderAIS:
    """Bidirectional AIS of ``log p(x_n) = log ∫ N(z; 0, I) p(x_n | z) dz`` for every row.

    Args:
        log_prob: ``log p(x | z)`` ``[M]`` for ``z: [M, L]`` and ``x: [M, D]``
            (differentiable in ``z``).
        x: data ``[N, D]`` on the decoder's device.
        latent_dim: ``L``.
        num_chains: ``K``, chains per datum.
        settings: the path and transition (default :data:`DECODER_AIS`); its
            ``pilot_chains`` is replaced by ``N`` (one pilot chain per datum).
        reverse_start: exact posterior samples ``[N, K, L]`` to start the reverse chains from
            (default: each datum's forward chains resampled by weight).
        bidirectional: run the reverse chains (``False``: the upper end is ``+inf``).
        generator: the random stream (default: the global one).
    """
    settings = (settings or DECODER_AIS).with_(pilot_chains=x.shape[0])
    n, k = x.shape[0], num_chains
    h = _h_fn(log_prob, x)
    with torch.no_grad():
        run = forward_ais(h, latent_dim, settings, n * k, x.device, generator=generator)
        forward, se_f = _per_datum(run.log_weights.view(n, k))
        if not bidirectional:
            inf = torch.full_like(forward, math.inf)
            return DecoderAIS(forward, inf, forward - INTERVAL_Z * se_f, inf, k, settings,
                              "none", float(run.acceptance.mean()))
        start, how = _reverse_start(h, run, n, k, reverse_start, generator)
        _, log_u = reverse_ais(h, start, run.betas, run.step_sizes, settings, generator)
        neg_reverse, se_r = _per_datum(log_u.view(n, k))
    reverse = -neg_reverse
    upper = torch.maximum(reverse + INTERVAL_Z * se_r, forward + INTERVAL_Z * se_f)
    return DecoderAIS(forward, reverse, forward - INTERVAL_Z * se_f, upper, k, settings, how,
                      float(run.acceptance.mean()))


def _reverse_start(h, run, n: int, k: int, given: torch.Tensor | None,
                   generator: torch.Generator | None):
    """The reverse chains' start: the given posterior samples, or each datum's forward chains
    resampled by their weights."""
    if given is not None:
        if tuple(given.shape) != (n, k, run.final.z.shape[-1]):
            raise ModelError(f"reverse_start must be [N, K, L] = {[n, k, run.final.z.shape[-1]]}"
                             f", got {list(given.shape)}")
        return evaluate(h, given.reshape(n * k, -1).to(run.final.z)), "given"
    weights = torch.softmax(run.log_weights.view(n, k).double(), -1)
    index = torch.multinomial(weights, k, replacement=True, generator=generator)
    index = index + k * torch.arange(n, device=index.device).unsqueeze(-1)
    return run.final.take(index.reshape(-1)), "resampled"


def decoder_log_likelihood(model: Any, x: Any, *, noise_scale: float | None = None,
                           num_chains: int = 16, settings: AISSettings | None = None,
                           batch_size: int | None = None, bidirectional: bool = True,
                           generator: torch.Generator | None = None) -> DecoderAIS:
    """AIS log-likelihoods of a zoo model's decoder (its prior ``N(0, I_L)`` and
    :meth:`~ppgen.GenerativeModel.decoder_log_prob`), the encoder unused.

    Args:
        model: a decoder-based zoo model: a VAE (its own observation model) or a GAN/DCGAN
            (Gaussian noise of scale ``noise_scale`` around the generator's output).
        x: data ``[N, *event_shape]`` in the model's representation (checked by the model).
        noise_scale: ``σ`` of a GAN's Gaussian observation model (refused by a VAE).
        num_chains, settings, bidirectional, generator: as in :func:`decoder_ais`.
        batch_size: data rows per AIS run (default: all at once).

    Returns:
        The per-datum :class:`DecoderAIS` (nats; ``summary()`` gives the table's means).

    Example:
        >>> result = decoder_log_likelihood(gan, x, noise_scale=0.05)  # doctest: +SKIP
        >>> result.summary()["nll"], result.summary()["nll_width"]  # doctest: +SKIP
    """
    x = model.check_data(x).to(model.device)
    x = x.reshape(x.shape[0], -1)

    def log_prob(z: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return model.decoder_log_prob(z, rows, noise_scale=noise_scale)

    training = model.training
    model.eval()  # no dropout in the decoder
    try:
        parts = [decoder_ais(log_prob, chunk, model.latent_dim, num_chains=num_chains,
                             settings=settings, bidirectional=bidirectional,
                             generator=generator)
                 for chunk in x.split(batch_size or x.shape[0])]
    finally:
        model.train(training)
    first = parts[0]
    cat = {f: torch.cat([getattr(p, f) for p in parts])
           for f in ("log_likelihood", "reverse", "lower", "upper")}
    acceptance = sum(p.acceptance * len(p.lower) for p in parts) / x.shape[0]
    return DecoderAIS(**cat, num_chains=num_chains, settings=first.settings,
                      reverse_start=first.reverse_start, acceptance=acceptance)
