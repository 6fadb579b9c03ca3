"""Eight schools, centered vs non-centered, with NUTS and ArviZ diagnostics and LOO.

The classic hierarchical model (Rubin, 1981): the centered form has divergences in the funnel,
the non-centered one does not; both give the same posterior for the population mean. The LOO
comparison uses the log_likelihood group that ppgen computes with its evaluation layer.

    python examples/eight_schools.py
"""

from __future__ import annotations

import arviz as az
import pyro
import pyro.distributions as dist
import torch

from ppgen import analysis

y = torch.tensor([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
sigma = torch.tensor([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def centered(y, sigma):
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("data", y.shape[0]):
        theta = pyro.sample("theta", dist.Normal(mu, tau))
        pyro.sample("y", dist.Normal(theta, sigma), obs=y)


def non_centered(y, sigma):
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("data", y.shape[0]):
        eta = pyro.sample("eta", dist.Normal(0.0, 1.0))
        pyro.sample("y", dist.Normal(mu + tau * eta, sigma), obs=y)


def main() -> None:
    fits = {}
    for name, program in (("centered", centered), ("non-centered", non_centered)):
        fits[name] = analysis.posterior(program, y, sigma=sigma, num_samples=500,
                                        num_warmup=500, num_chains=2, seed=0)
        print(f"== {name}")
        print(analysis.report(fits[name]))
    print(az.compare(fits, ic="loo"))


if __name__ == "__main__":  # importable: benchmarks/posterior.py reuses the programs
    main()
