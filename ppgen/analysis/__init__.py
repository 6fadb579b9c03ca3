"""Bayesian analysis of user Pyro programs: posteriors as ArviZ ``InferenceData``.

``posterior`` runs NUTS/HMC chains or fits a variational autoguide and returns InferenceData
built with ``az.from_dict`` (posterior, sample_stats, log_likelihood from the evaluation layer,
prior and posterior predictive, observed data); ``report`` explains the diagnostics in plain
language; ``plot_all`` saves the standard figures.

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

from ppgen.analysis.build import METHODS, posterior
from ppgen.analysis.plotting import plot_all
from ppgen.analysis.report import diagnostics, report
from ppgen.analysis.vi import GUIDES

__all__ = ["posterior", "report", "diagnostics", "plot_all", "METHODS", "GUIDES"]
