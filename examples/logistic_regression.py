"""Bayesian logistic regression on the bundled breast-cancer data, NUTS vs. mean-field VI.

    python examples/logistic_regression.py
"""

from __future__ import annotations

import arviz as az
import pyro
import pyro.distributions as dist
import torch
from sklearn.datasets import load_breast_cancer

from ppgen import analysis

data = load_breast_cancer()
X = torch.tensor(data.data[:, :5], dtype=torch.float32)  # five features keep it quick
X = (X - X.mean(0)) / X.std(0)
labels = torch.tensor(data.target, dtype=torch.float32)


def model(y, X):
    w = pyro.sample("w", dist.Normal(0.0, 2.0).expand([X.shape[1]]).to_event(1))
    b = pyro.sample("b", dist.Normal(0.0, 5.0))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Bernoulli(logits=X @ w + b), obs=y)


mcmc = analysis.posterior(model, labels, X=X, num_samples=300, num_warmup=300, num_chains=2)
vi = analysis.posterior(model, labels, X=X, method="svi", num_samples=300, num_chains=2)
print(analysis.report(mcmc))
print(az.summary(mcmc, var_names=["w", "b"]))
print(az.summary(vi, var_names=["w", "b"], kind="stats"))
