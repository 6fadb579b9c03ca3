"""Gaussian diffusion, apart from any network: the process, its bound's terms and samplers.

Core machinery shared by the diffusion models (``ppgen.models.DDPM``, ``ImprovedDDPM``) and
their objectives (``ppgen.inference``), which may not import each other:

* :mod:`~ppgen.diffusion.schedules` — noise schedules (linear, cosine);
* :mod:`~ppgen.diffusion.process` — :class:`GaussianDiffusion` (``q_sample``, ``q_posterior``,
  ``p_mean_variance``, respacing) and the enums :class:`Prediction` and :class:`Variance`;
* :mod:`~ppgen.diffusion.spacing` — :func:`space_timesteps`, the one respacing function;
* :mod:`~ppgen.diffusion.gaussians` — :func:`normal_kl`, :func:`diagonal_normal` and the
  discretised Gaussian decoder;
* :mod:`~ppgen.diffusion.denoising` — the :class:`DenoisingModel` protocol, the bound's terms,
  ``L_simple`` and the strided validation estimate;
* :mod:`~ppgen.diffusion.sampling` — the DDIM sampler;
* :mod:`~ppgen.diffusion.ode` — the probability-flow ODE and its exact likelihood.
"""

from __future__ import annotations

from ppgen.diffusion.denoising import (
    STRATA,
    BoundTerms,
    DenoisingModel,
    bound_per_dim,
    bound_terms,
    hybrid_terms,
    prior_term,
    reverse_step,
    simple_loss,
    step_terms,
    strata_edges,
    strided_bound,
    uniform_steps,
)
from ppgen.diffusion.gaussians import (
    DiscretizedGaussian,
    diagonal_normal,
    level_values,
    normal_kl,
)
from ppgen.diffusion.learned import LearnedSchedule, scale_gradient
from ppgen.diffusion.ode import EpsilonFn, log_snr_at, ode_log_likelihood
from ppgen.diffusion.process import GaussianDiffusion, Prediction, ReverseStep, Variance
from ppgen.diffusion.sampling import ddim_sample, decode_last
from ppgen.diffusion.schedules import Schedule, make_betas
from ppgen.diffusion.spacing import SPACINGS, space_timesteps

__all__ = [
    "GaussianDiffusion",
    "Prediction",
    "Variance",
    "ReverseStep",
    "Schedule",
    "make_betas",
    "SPACINGS",
    "space_timesteps",
    "normal_kl",
    "diagonal_normal",
    "DiscretizedGaussian",
    "level_values",
    "DenoisingModel",
    "BoundTerms",
    "reverse_step",
    "step_terms",
    "prior_term",
    "bound_terms",
    "bound_per_dim",
    "strided_bound",
    "strata_edges",
    "STRATA",
    "simple_loss",
    "hybrid_terms",
    "uniform_steps",
    "ddim_sample",
    "decode_last",
    "LearnedSchedule", "scale_gradient",
    "EpsilonFn",
    "ode_log_likelihood",
    "log_snr_at",
]
