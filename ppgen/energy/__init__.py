"""Energy-based models apart from any network: the base, samplers, replay buffer and AIS.

Core machinery shared by the energy models of the zoo (``ppgen.models.EBM``), their training
objectives (``ppgen.inference``: contrastive divergence) and the evaluation layer, which may not
import each other:

* :mod:`~ppgen.energy.base` — :class:`GaussianBase`, the tractable base fitted to the data and
  its whitening map;
* :mod:`~ppgen.energy.samplers` — unadjusted and Metropolis-adjusted Langevin, HMC transitions,
  :func:`run_chain`, batched over chains with no host synchronisation;
* :mod:`~ppgen.energy.buffer` — :class:`ReplayBuffer`, persistent chains with re-initialisation;
* :mod:`~ppgen.energy.discrete` — Gibbs-with-gradients for categorical data (Grathwohl et al.
  2021), batched over chains;
* :mod:`~ppgen.energy.ais` — annealed importance sampling forward and reverse (bidirectional
  Monte Carlo): a bracket on ``log Z``;
* :mod:`~ppgen.energy.model` — :class:`EnergyModel`, the protocol of energy models as Pyro
  programs (their data site carries ``exp(-E(x))``);
* :mod:`~ppgen.energy.program` — :class:`EnergyProgram`, a user's program with ``pyro.factor``
  terms as an energy model;
* :mod:`~ppgen.energy.estimate` — the AIS log-likelihood and report the evaluation layer routes
  energy models to;
* :mod:`~ppgen.energy.decoder` — AIS of decoder-based models' likelihoods (a VAE's decoder, a
  GAN's generator with Gaussian noise: Wu et al. 2017).
"""

from __future__ import annotations

from ppgen.energy.ais import (
    AIS_TRANSITIONS,
    SCHEDULES,
    AISResult,
    AISSettings,
    annealing_schedule,
    bdmc,
    forward_ais,
    reverse_ais,
    tune_step_sizes,
)
from ppgen.energy.base import GaussianBase, fit_gaussian
from ppgen.energy.buffer import ReplayBuffer
from ppgen.energy.decoder import (
    DecoderAIS,
    decoder_ais,
    decoder_log_likelihood,
    gaussian_log_prob,
)
from ppgen.energy.discrete import gwg_step, run_gwg
from ppgen.energy.estimate import (
    energies,
    energy_log_likelihood,
    energy_report,
    log_partition,
)
from ppgen.energy.model import SAMPLE_OPTIONS, EnergyDistribution, EnergyModel
from ppgen.energy.program import EnergyProgram
from ppgen.energy.samplers import (
    SAMPLERS,
    ChainState,
    evaluate,
    hmc_step,
    langevin_step,
    mala_step,
    run_chain,
    transition,
)

__all__ = [
    "GaussianBase",
    "fit_gaussian",
    "ChainState",
    "evaluate",
    "langevin_step",
    "mala_step",
    "hmc_step",
    "transition",
    "run_chain",
    "SAMPLERS",
    "ReplayBuffer",
    "AISSettings",
    "AISResult",
    "annealing_schedule",
    "tune_step_sizes",
    "forward_ais",
    "reverse_ais",
    "bdmc",
    "SCHEDULES",
    "AIS_TRANSITIONS",
    "EnergyModel",
    "EnergyDistribution",
    "EnergyProgram",
    "SAMPLE_OPTIONS",
    "log_partition",
    "energies",
    "energy_log_likelihood",
    "energy_report",
    "DecoderAIS",
    "decoder_ais",
    "decoder_log_likelihood",
    "gaussian_log_prob",
    "gwg_step",
    "run_gwg",
]
