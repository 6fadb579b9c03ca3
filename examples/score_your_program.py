"""Score data under your own Pyro program: exact, importance-weighted and ELBO, per datum.

A probabilistic PCA model has an analytic marginal likelihood, so the estimates can be checked:
with the exact posterior as guide the importance-weighted estimate is exact for any K; with a
rough guide it approaches log p(x) as K grows while the ELBO stays below it.

    python examples/score_your_program.py
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch

import ppgen

torch.manual_seed(0)
D, L, SIGMA = 5, 2, 0.5
W, b = torch.randn(D, L), torch.randn(D)


def model(x):
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([x.shape[0], L]).to_event(1))
        pyro.sample("x", dist.Normal(z @ W.T + b, SIGMA).to_event(1), obs=x)


def rough_guide(x):
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], L), 0.7).to_event(1))


marginal = dist.MultivariateNormal(b, W @ W.T + SIGMA**2 * torch.eye(D))
x = marginal.sample((200,))
exact = marginal.log_prob(x).mean()
print(f"analytic mean log p(x)       {exact:9.3f}")
elbo = ppgen.elbo(model, rough_guide, x, num_particles=100).mean()
print(f"ELBO (100 particles)         {elbo:9.3f}")
for K in (1, 10, 100, 1000):
    estimate = ppgen.log_likelihood(model, x, rough_guide, num_particles=K).mean()
    print(f"importance-weighted, K={K:<5} {estimate:9.3f}")
