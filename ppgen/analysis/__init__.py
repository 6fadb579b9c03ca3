"""Bayesian analysis of user Pyro programs: posteriors as ArviZ ``InferenceData``.

``posterior`` runs NUTS/HMC chains (in parallel processes where the machine allows:
``chain_method``) or fits a variational autoguide and returns InferenceData built with
``az.from_dict`` (posterior, sample_stats, log_likelihood from the evaluation layer, prior and
posterior predictive, observed data); discrete sites marked for enumeration
(``@config_enumerate``, e.g. mixture assignments) are summed out of both the NUTS potential and
the pointwise log-likelihood. ``report`` explains the diagnostics in plain language;
``plot_all`` saves the standard figures.

``amortization_gap`` measures the inference suboptimality of a latent model's amortised guide
on a few data (Cremer, Li & Duvenaud, 2018): NUTS on ``p(z | x)`` through ``posterior``, the
guide ``q(z | x)``, and the best per-datum diagonal Gaussian ``q*``, giving in nats per datum
the inference gap ``log p(x) - ELBO[q] = KL(q || p(z | x))`` and its split into the
amortisation gap ``ELBO[q*] - ELBO[q]`` and the approximation gap ``log p(x) - ELBO[q*]``;
``plot_amortization_gap`` draws the three posteriors and the gaps.

Example:
    >>> import pyro, pyro.distributions as dist, torch
    >>> from ppgen import analysis
    >>> def model(x):
    ...     mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    ...     with pyro.plate("data", x.shape[0]):
    ...         pyro.sample("x", dist.Normal(mu, 1.0), obs=x)
    >>> idata = analysis.posterior(model, torch.randn(20), num_samples=200, num_warmup=200)
    >>> print(analysis.report(idata))  # doctest: +SKIP
"""

from __future__ import annotations

from ppgen.analysis.amortization import AmortizationGap, amortization_gap
from ppgen.analysis.build import METHODS, posterior
from ppgen.analysis.plotting import plot_all, plot_amortization_gap
from ppgen.analysis.report import diagnostics, report
from ppgen.analysis.vi import GUIDES

__all__ = [
    "posterior", "report", "diagnostics", "plot_all", "amortization_gap", "AmortizationGap",
    "plot_amortization_gap",
    "METHODS", "GUIDES",
]
