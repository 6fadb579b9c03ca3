"""Adversarial variational Bayes: a guide with no density, checked against a known posterior.

The model is the per-datum Normal–Normal pair

    z_n ~ N(0, 1),    x_n | z_n ~ N(z_n, σ²),   σ = 0.5,

whose posterior is Gaussian in closed form: ``z_n | x_n ~ N(x_n / (1 + σ²), σ² / (1 + σ²))``.
The guide is *implicit*: two noise draws and the datum go through a small network, and the
network's output is the code — a distribution anyone can sample but nobody can evaluate, so the
ELBO's ``log q(z | x)`` is unknown. Adversarial variational Bayes (Mescheder, Nowozin & Geiger,
2017, arXiv:1701.04722) trains a critic ``T(x, z)`` to tell guide codes from prior codes; its
optimum is ``log q(z | x) - log p(z)``, which takes that term's place in the ELBO.

Model and guide are ordinary Pyro programs; ``ProgramPair`` makes them one ppgen model and
``ppgen.fit(..., objective=AVB(critic=...))`` trains them through the shared engine. The script
prints the guide's posterior mean and variance at a few data values beside the closed form, and
the same for a Gaussian guide trained by the ordinary ELBO.

Run: ``python examples/avb_conjugate.py`` (about half a minute on 2 CPU cores).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import nn

import ppgen
from ppgen.inference import AVB, ProgramPair, avb_critic
from ppgen.inference.program_pair import guide_trace

SIGMA = 0.5


def model(x):
    """``z ~ N(0, 1)``, ``x | z ~ N(z, σ²)``, one code per datum."""
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 1), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z, SIGMA).to_event(1), obs=x)


class ImplicitGuide(nn.Module):
    """``eps ~ N(0, I_2)``, ``z = f([x, eps])``: samples, but has no density."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            eps = pyro.sample("eps", dist.Normal(x.new_zeros(x.shape[0], 2), 1.0).to_event(1))
            return pyro.sample("z", dist.Delta(self.net(torch.cat([x, eps], -1))).to_event(1))


class GaussianGuide(nn.Module):
    """``z ~ N(m(x), s(x)²)``: the usual amortised guide, for the ELBO."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(1, 32), nn.ReLU(), nn.Linear(32, 2))

    def forward(self, x):
        loc, scale = self.net(x).chunk(2, -1)
        with pyro.plate("data", x.shape[0]):
            return pyro.sample("z", dist.Normal(loc, nn.functional.softplus(scale)).to_event(1))


def simulate(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` data from the model."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, generator=g) + SIGMA * torch.randn(n, 1, generator=g)


def train(guide: nn.Module, objective, epochs: int = 60, seed: int = 0) -> ProgramPair:
    """Fit the pair on 1,024 simulated data."""
    torch.manual_seed(seed)
    pair = ProgramPair(model, guide, event_shape=(1,))
    ppgen.fit(pair, simulate(1024, seed), objective=objective, epochs=epochs, batch_size=256,
              lr=3e-3, lr_schedule="cosine", seed=seed, progress=False)
    return pair


def posterior_table(pair: ProgramPair, xs: torch.Tensor, draws: int = 4000) -> list[tuple]:
    """``(x, guide mean, exact mean, guide variance, exact variance)`` at each ``x``."""
    with torch.no_grad():
        z = guide_trace(pair, xs.repeat(draws, 1), {}).nodes["z"]["value"].reshape(draws, -1)
    exact_var = SIGMA**2 / (1 + SIGMA**2)
    return [(float(x), float(m), float(x) / (1 + SIGMA**2), float(v), exact_var)
            for x, m, v in zip(xs.squeeze(1), z.mean(0), z.var(0))]


def main(epochs: int = 60) -> None:
    xs = torch.tensor([[-1.5], [-0.5], [0.5], [1.5]])
    fits = {"AVB, implicit guide": train(ImplicitGuide(),
                                         AVB(critic=avb_critic(1, 1), n_critic=2), epochs),
            "ELBO, Gaussian guide": train(GaussianGuide(), "elbo", epochs)}
    for name, pair in fits.items():
        print(f"{name}:   x   mean (exact)     variance (exact)")
        for x, m, m0, v, v0 in posterior_table(pair, xs):
            print(f"  {x:+.1f}   {m:+.3f} ({m0:+.3f})   {v:.3f} ({v0:.3f})")


if __name__ == "__main__":
    main()
