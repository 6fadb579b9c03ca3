"""Fit a stochastic simulator from data alone: the g-and-k distribution, adversarially.

The g-and-k distribution (Rayner & MacGillivray, 2002, "Numerical maximum likelihood estimation
for the g-and-k and generalized g-and-h distributions", Statistics and Computing 12) is defined
by its quantile function: a draw is

    x = A + B (1 + c tanh(g z / 2)) z (1 + z²)^k,    z ~ N(0, 1),  c = 0.8,

with location A, scale B > 0, skewness g and kurtosis k >= 0. Simulating is one line; its density
has no closed form (it needs the quantile function inverted numerically), which makes it the
standard test case of likelihood-free inference (ABC: Fearnhead & Prangle, 2012; Wasserstein
ABC: Bernton et al., 2019).

Here the simulator is an ordinary Pyro program with four ``pyro.param``\\ s. ppgen wraps it
(``ProgramModel``) and fits it adversarially (``Adversarial``): a critic network tells
simulated draws from data, the program's parameters move to fool it, and no density is ever
evaluated. Because the distribution below *also* implements the numerical density, the same
program is then fitted by maximum likelihood (``kind="exact"``) for comparison.

Run: ``python examples/adversarial_simulator.py`` (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

import ppgen
from ppgen.inference import Adversarial, ProgramModel, mlp_critic

#: the usual test values of the g-and-k literature (Rayner & MacGillivray 2002)
TRUE = {"A": 3.0, "B": 1.0, "g": 2.0, "k": 0.5}
C = 0.8  # the conventional value of c


class GAndK(TorchDistribution):
    """The g-and-k distribution: reparameterised draws through the quantile function, and a
    numerical density (the quantile function inverted by bisection, implicit gradients).

    Args:
        A, B, g, k: location, scale (> 0), skewness and kurtosis (>= 0); broadcast together.
    """

    arg_constraints = {"A": constraints.real, "B": constraints.positive,
                       "g": constraints.real, "k": constraints.nonnegative}
    support = constraints.real
    has_rsample = True

    def __init__(self, A, B, g, k, validate_args=None) -> None:
        self.A, self.B, self.g, self.k = broadcast_all(A, B, g, k)
        super().__init__(self.A.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return GAndK(*(p.expand(batch_shape) for p in (self.A, self.B, self.g, self.k)))

    def quantile(self, z: torch.Tensor) -> torch.Tensor:
        """``Q(z)``: the draw of standard-normal noise ``z``."""
        skew = 1 + C * torch.tanh(self.g * z / 2)
        return self.A + self.B * skew * z * (1 + z * z) ** self.k

    def quantile_slope(self, z: torch.Tensor) -> torch.Tensor:
        """``dQ/dz`` (> 0 for k >= 0)."""
        t = torch.tanh(self.g * z / 2)
        dskew = C * self.g / 2 * (1 - t * t)
        core = dskew * z * (1 + z * z) + (1 + C * t) * (1 + (1 + 2 * self.k) * z * z)
        return self.B * (1 + z * z) ** (self.k - 1) * core

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        return self.quantile(torch.randn(shape, dtype=self.A.dtype, device=self.A.device))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``log φ(z) - log Q'(z)`` at ``z = Q⁻¹(value)`` (the change of variables)."""
        z = self._invert(value)
        return dist.Normal(0.0, 1.0).log_prob(z) - self.quantile_slope(z).log()

    def _invert(self, x: torch.Tensor) -> torch.Tensor:
        """``Q⁻¹(x)`` by bisection on [-50, 50], then one Newton step whose gradient is the
        implicit one, ``dz/dθ = -(∂Q/∂θ) / Q'(z)``."""
        with torch.no_grad():
            lo = torch.full(torch.broadcast_shapes(x.shape, self.batch_shape), -50.0,
                            dtype=x.dtype, device=x.device)
            hi = -lo
            for _ in range(60):
                mid = (lo + hi) / 2
                above = self.quantile(mid) > x
                lo, hi = torch.where(above, lo, mid), torch.where(above, mid, hi)
            z0 = (lo + hi) / 2
        return z0 - (self.quantile(z0) - x) / self.quantile_slope(z0).detach()


def g_and_k(x: torch.Tensor) -> torch.Tensor:
    """The simulator as a Pyro program: ``x: [N, 1]`` observed (or, run generatively, drawn)."""
    A = pyro.param("A", torch.tensor(0.0))
    B = pyro.param("B", torch.tensor(2.0), constraint=constraints.positive)
    g = pyro.param("g", torch.tensor(0.0))
    k = pyro.param("k", torch.tensor(0.2), constraint=constraints.positive)
    n = x.shape[0]
    with pyro.plate("data", n):
        return pyro.sample("x", GAndK(A, B, g, k).expand([n, 1]).to_event(1), obs=x)


class TailCritic(torch.nn.Module):
    """A critic for heavy-tailed 1-D data: an MLP on ``u`` and ``asinh(u)``, where ``u`` is ``x``
    standardised by the data's median and interquartile range.

    The g-and-k's tails (``k``) and skewness (``g``) live in rare, far-out draws; on raw ``x``
    the critic's first layer spends itself on the scale of those outliers, while ``asinh``
    compresses them so that the critic sees the tail shape. The statistics are buffers: they
    are saved with the critic.

    Args:
        data: the training data ``[N, 1]`` (only their quartiles are used).
    """

    def __init__(self, data: torch.Tensor) -> None:
        super().__init__()
        q1, median, q3 = data.quantile(torch.tensor([0.25, 0.5, 0.75], dtype=data.dtype))
        self.register_buffer("centre", median)
        self.register_buffer("scale", (q3 - q1) / 1.349)  # the standard deviation if Gaussian
        self.net = mlp_critic(2, (64, 64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = (x - self.centre) / self.scale
        return self.net(torch.cat([u, torch.asinh(u)], dim=-1))


def simulate(n: int, seed: int = 0) -> torch.Tensor:
    """``[n, 1]`` draws at the true parameters."""
    torch.manual_seed(seed)
    truth = GAndK(*(torch.tensor(v) for v in TRUE.values()))
    return truth.sample((n, 1))


def fit_adversarially(train: torch.Tensor, val: torch.Tensor, epochs: int = 100,
                      seed: int = 0) -> dict[str, float]:
    """The likelihood-free fit: a critic against the simulator (no density evaluated); the
    non-saturating loss, early stopping on the MMD of simulated and validation draws."""
    torch.manual_seed(seed)
    model = ProgramModel(g_and_k, event_shape=(1,))
    objective = Adversarial("non-saturating", critic=TailCritic(train))
    ppgen.fit(model, train, val, objective=objective, epochs=epochs, batch_size=200,
              lr_schedule="cosine", progress=False, seed=seed,
              optimizer={"critic": {"name": "adam", "lr": 2e-3, "betas": [0.5, 0.9]},
                         "generator": {"name": "adam", "lr": 2e-2, "betas": [0.5, 0.9]}})
    return {name: float(value) for name, value in model.constrained().items()}


def fit_by_maximum_likelihood(train: torch.Tensor, val: torch.Tensor, epochs: int = 60,
                              seed: int = 0) -> dict[str, float]:
    """The same program scored by its numerical density (``kind="exact"``)."""
    torch.manual_seed(seed)
    model = ProgramModel(g_and_k, event_shape=(1,), kind="exact")
    ppgen.fit(model, train, val, objective="mle", epochs=epochs, batch_size=200, lr=5e-2,
              lr_schedule="cosine", progress=False, seed=seed)
    return {name: float(value) for name, value in model.constrained().items()}


def main() -> None:
    x = simulate(3000)
    train, val = x[:2000], x[2000:]
    adversarial = fit_adversarially(train, val)
    likelihood = fit_by_maximum_likelihood(train, val)
    print(f"{'':>4} {'true':>7} {'adversarial':>12} {'max. likelihood':>16}")
    for name, true in TRUE.items():
        print(f"{name:>4} {true:7.3f} {adversarial[name]:12.3f} {likelihood[name]:16.3f}")
    error = math.sqrt(sum((adversarial[k] - TRUE[k]) ** 2 for k in TRUE))
    print(f"parameter error (Euclidean): adversarial {error:.3f}, maximum likelihood "
          f"{math.sqrt(sum((likelihood[k] - TRUE[k]) ** 2 for k in TRUE)):.3f}")


if __name__ == "__main__":
    main()
