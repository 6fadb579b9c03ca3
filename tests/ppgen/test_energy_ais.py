"""Annealed importance sampling and its bracket (:mod:`ppgen.energy.ais`), and energy models
routed to it by the evaluation layer (``ppgen.log_likelihood``, ``nll_report``).

Closed forms: a Gaussian energy ``|x - m|² / (2 s²)`` (``log Z = D log s + (D/2) log 2π``) and
a 2-D ring-with-a-bump energy written as a Pyro program with ``pyro.factor`` terms, normalised
by quadrature on a 1201² grid (error far below 1e-4 nats). The interval is the forward end less
two Monte Carlo standard errors and the reverse end plus two. Failure budget, measured over
seeds 0-19 of each configuration below before fixing seed 0: 0/20 intervals missed the truth
(Gaussian with exact or resampled reverse starts, 100 distributions; ring, 400 distributions
and HMC with 2 leapfrog steps). With 200 distributions the ring missed 1/20 (seed 0, the
reverse end 0.014 below the truth: its start, the forward chains resampled, is not exact).
"""

from __future__ import annotations

import math

import pyro
import pytest
import torch

import ppgen
from ppgen.energy import (
    AISSettings,
    EnergyModel,
    EnergyProgram,
    annealing_schedule,
    bdmc,
    log_partition,
)
from ppgen.errors import ModelError
from ppgen.evaluate import nll_report
from ppgen.protocol import GenerativeModel, ModelKind

pytestmark = pytest.mark.usefixtures("one_thread")

M = torch.tensor([1.5, -1.0])
S = 0.5
LOG_Z_GAUSS = 2 * math.log(S) + math.log(2 * math.pi)


class GaussianEnergy(EnergyModel, register=False):
    """``E(x) = |x - M|² / (2 S²)``; the base stays ``N(0, I)`` unless fitted."""

    def __init__(self, ais: dict | None = None) -> None:
        super().__init__()
        self.setup_base(2, ais)
        self.shift = torch.nn.Parameter(torch.zeros(2))  # a parameter, to watch the cache

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - M - self.shift) ** 2).sum(-1) / (2 * S**2)


def ring(x: torch.Tensor) -> None:
    """A ring of radius 1.5 with a bump at (1.5, 0): two ``pyro.factor`` terms per row."""
    with pyro.plate("data", x.shape[0]):
        pyro.factor("ring", -((x.norm(dim=-1) - 1.5) ** 2) / (2 * 0.2**2))
        bump = torch.exp(-((x - torch.tensor([1.5, 0.0])) ** 2).sum(-1) / 0.3)
        pyro.factor("bump", torch.log1p(3 * bump))


@pytest.fixture(scope="module")
def ring_model() -> tuple[EnergyProgram, float]:
    """The ring program (its base fitted to draws from the grid) and its ``log Z``."""
    xs = torch.linspace(-3, 3, 1201, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(xs, xs, indexing="ij"), -1).reshape(-1, 2)
    model = EnergyProgram(ring, num_dims=2, ais={"num_distributions": 400,
                                                 "num_leapfrog": 2})
    log_p = -model.energy(grid.float()).double()
    log_z = float(torch.logsumexp(log_p, 0) + 2 * math.log(6 / 1200))
    weights = torch.softmax(log_p, 0).float()
    draws = grid[torch.multinomial(weights, 2000, replacement=True,
                                   generator=torch.Generator().manual_seed(0))]
    model.fit_base(draws.float())
    return model, log_z


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_the_schedule_runs_from_zero_to_one():
    for schedule in ("sigmoid", "linear"):
        betas = annealing_schedule(50, schedule)
        assert betas.shape == (51,) and betas[0] == 0 and betas[-1] == 1
        assert bool((betas.diff() > 0).all())
    sigmoid = annealing_schedule(50).diff()
    assert sigmoid[0] < sigmoid[25] > sigmoid[-1]  # dense near both ends
    with pytest.raises(ValueError, match="schedule"):
        AISSettings(schedule="cosine")
    with pytest.raises(ValueError, match="transition"):
        AISSettings(transition="langevin")  # AIS needs invariant (adjusted) kernels
    with pytest.raises(ValueError, match="unknown AIS option"):
        AISSettings.from_dict({"steps": 3})


@pytest.mark.parametrize("start", ["exact", "resampled"])
def test_a_gaussian_energy_is_bracketed(start):
    model = GaussianEnergy()
    exact = (M + S * torch.randn(128, 2, generator=_seeded(100))) if start == "exact" else None
    result = bdmc(model.white_log_ratio, 2, AISSettings(100, transition="mala"), 128,
                  reverse_start=exact, generator=_seeded())
    lower, upper = result.interval()
    assert lower <= LOG_Z_GAUSS <= upper
    assert upper - lower < 0.4
    assert result.reverse_start == ("given" if exact is not None else "resampled")
    assert result.num_chains == 128 and result.num_distributions == 100


def test_the_bracket_narrows_as_intermediate_distributions_grow():
    model = GaussianEnergy()
    widths, gaps = [], []
    for T in (5, 40, 400):
        result = bdmc(model.white_log_ratio, 2, AISSettings(T, transition="mala"), 128,
                      generator=_seeded())
        lower, upper = result.interval()
        assert lower <= LOG_Z_GAUSS <= upper
        widths.append(upper - lower)
        gaps.append(abs(float(result.log_z) - LOG_Z_GAUSS))
    assert widths[0] > widths[1] > widths[2] and widths[2] < 0.1
    assert gaps[2] < gaps[0]


def test_an_energy_model_gets_likelihoods_through_the_evaluation_layer():
    model = GaussianEnergy(ais={"num_distributions": 100, "transition": "mala"})
    x = M + S * torch.randn(50, 2, generator=_seeded(1))
    truth = torch.distributions.Normal(M, S).log_prob(x).sum(-1)
    pyro.set_rng_seed(0)
    ll = ppgen.log_likelihood(model, x, num_particles=128)
    assert ll.shape == (50,)
    assert torch.allclose(ll - truth, (ll - truth).mean().expand(50), atol=1e-5)  # one log Z
    report = nll_report(model, x, num_particles=128)
    true_nll = float(-truth.mean())
    assert report["nll_lower"] <= true_nll <= report["nll_upper"]
    assert report["nll_lower"] <= report["nll"] <= report["nll_upper"]
    assert report["num_distributions"] == 100 and report["num_chains"] == 128
    assert report["n"] == 50 and report["transition"] == "mala"
    assert abs(report["bits_per_dim"] - report["nll"] / (2 * math.log(2))) < 1e-9
    # the report's run served the log-likelihood (no second AIS run, same log Z)
    assert torch.allclose(-ppgen.log_likelihood(model, x, num_particles=128).mean(),
                          torch.tensor(report["nll"]), atol=1e-5)


def test_log_z_is_kept_until_the_parameters_change():
    model = GaussianEnergy(ais={"num_distributions": 10, "transition": "mala"})
    first = log_partition(model, 16)
    assert log_partition(model, 16) is first
    assert log_partition(model, 32) is not first  # other settings: another run
    second = log_partition(model, 16)
    with torch.no_grad():
        model.shift.add_(0.1)  # an optimiser step
    assert log_partition(model, 16) is not second
    seeded = log_partition(model, 16, generator=_seeded())
    assert log_partition(model, 16, generator=_seeded()) is not seeded  # seeded: never kept
    assert torch.equal(log_partition(model, 16, generator=_seeded()).log_z, seeded.log_z)


def test_a_pyro_program_with_factors_is_bracketed_against_quadrature(ring_model):
    model, log_z = ring_model
    assert model.kind == ModelKind.ENERGY
    result = log_partition(model, 128, bidirectional=True, generator=_seeded())
    lower, upper = result.interval()
    assert lower <= log_z <= upper and upper - lower < 0.2
    x = torch.tensor([[1.5, 0.0], [0.0, -1.5], [0.0, 0.0]])
    pyro.set_rng_seed(0)
    ll = ppgen.log_likelihood(model, x, num_particles=128)
    truth = -model.energy(x) - log_z
    assert torch.allclose(ll, truth, atol=0.1)
    assert ll[0] > ll[1] > ll[2]  # the bump, the ring, the hole


def test_energy_programs_and_stub_energy_models_are_checked():
    def latent(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", pyro.distributions.Normal(0.0, 1.0))

    with pytest.raises(ModelError, match="latent"):
        EnergyProgram(latent, 2).energy(torch.zeros(3, 2))

    def global_term(x):
        pyro.factor("prior", torch.tensor(1.0))

    with pytest.raises(ModelError, match="outside pyro.plate"):
        EnergyProgram(global_term, 2).energy(torch.zeros(3, 2))
    with pytest.raises(ModelError, match="cannot be saved"):
        EnergyProgram(ring, 2).get_config()

    class Stub(GenerativeModel, register=False):  # declares the kind but is no EnergyModel
        kind = ModelKind.ENERGY
        event_shape = torch.Size([2])

    with pytest.raises(ModelError, match="annealed importance sampling"):
        ppgen.log_likelihood(Stub(), torch.zeros(3, 2))
    with pytest.raises(ModelError, match="unconditional"):
        ppgen.log_likelihood(GaussianEnergy(), torch.zeros(3, 2), y=torch.zeros(3))
