"""Inference suboptimality of an amortised guide: the amortisation and approximation gaps.

For a latent-variable model ``p(x, z)``, its amortised guide ``q_phi(z | x)`` (a VAE's encoder)
and one datum ``x`` (Cremer, Li & Duvenaud, 2018, "Inference Suboptimality in Variational
Autoencoders", arXiv:1801.03558), all in nats::

    inference gap      log p(x) - ELBO[q_phi]   = KL(q_phi(z | x) || p(z | x))
                     = approximation gap        log p(x) - ELBO[q*]   = KL(q* || p(z | x))
                     + amortisation gap         ELBO[q*] - ELBO[q_phi]

where ``ELBO[q] = E_q[log p(x, z) - log q(z)]`` and ``q*`` is the best member of the guide's
family *for that one datum*: here a diagonal Gaussian whose mean and scale are optimised on the
datum's ELBO, initialised at the amortised guide, by the training engine
(:mod:`ppgen.analysis.optimal_guide`). The amortisation gap is what the encoder
loses by sharing one network across all data; the approximation gap is what the family itself
cannot express (a diagonal Gaussian cannot tilt or bend like the true posterior).

The exact posterior ``p(z | x)`` is sampled with NUTS through :func:`ppgen.analysis.posterior`
(the model conditioned on ``x``: the latent site of each datum becomes a NUTS site; the
posterior of several data factorises, so one run samples every ``p(z_n | x_n)`` at once).
``log p(x)`` is the evaluation layer's importance-weighted estimate
(:func:`ppgen.log_likelihood`) with a defensive proposal: an equal mixture of the amortised
guide, ``q*`` and a Gaussian with the NUTS draws' mean and covariance (Hesterberg, 1995).
Every importance weight is then at most three times ``p(x, z) / q(z)`` of the best-fitting
component, so the estimate is far tighter than with the amortised guide alone. The ELBOs are
:func:`ppgen.elbo` (closed-form KL where registered), with Monte Carlo standard errors.

Example:
    >>> from ppgen.analysis import amortization_gap, plot_amortization_gap
    >>> gap = amortization_gap(vae, digits.test[:3], num_samples=500)  # doctest: +SKIP
    >>> print(gap)  # doctest: +SKIP
    >>> plot_amortization_gap(gap, "gap.png")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn
from torch.distributions import constraints

from ppgen.analysis.build import posterior
from ppgen.analysis.optimal_guide import fit_optimal, rows_of
from ppgen.analysis.report import RHAT_MAX
from ppgen.data.validate import as_tensor
from ppgen.errors import ModelError
from ppgen.evaluate import Structure, elbo, inspect_structure, log_likelihood, resolve

__all__ = ["AmortizationGap", "amortization_gap"]

#: Independent repeats behind each Monte Carlo standard error.
REPEATS = 10


@dataclass
class AmortizationGap:
    """Per-datum bounds and gaps (nats), with the draws behind them.

    Attributes:
        log_px: ``[N]`` importance-weighted ``log p(x_n)`` (defensive mixture proposal).
        elbo_amortized: ``[N]`` ``ELBO[q_phi]`` of the amortised guide.
        elbo_optimal: ``[N]`` ``ELBO[q*]`` of the per-datum optimised diagonal Gaussian.
        se: Monte Carlo standard errors ``{"log_px" | "elbo_amortized" | "elbo_optimal": [N]}``.
        site: the latent site's name.
        optimal_loc: ``[N, L]`` mean of ``q*``.
        optimal_scale: ``[N, L]`` standard deviations of ``q*``.
        draws: draws of ``z`` given each ``x_n``: ``{"nuts": [N, C * D, L], "amortized":
            [N, D, L], "optimal": [N, D, L]}``.
        idata: ArviZ ``InferenceData`` of the NUTS run (dims ``chain, draw, data, ...``).
        losses: ``[num_steps]`` negative ELBO (summed over data) while fitting ``q*``.
        rhat: ``[N]`` the largest R-hat of each datum's latent coordinates (``nan`` with one
            chain). Above 1.01 the chains disagree — often a multimodal ``p(z | x)`` whose
            modes the chains found separately; the NUTS draws' proportions between the modes
            are then unreliable (``log p(x)`` much less so: the proposal covers all modes
            found).
    """

    log_px: np.ndarray
    elbo_amortized: np.ndarray
    elbo_optimal: np.ndarray
    se: dict[str, np.ndarray]
    site: str
    optimal_loc: np.ndarray
    optimal_scale: np.ndarray
    draws: dict[str, np.ndarray]
    idata: Any
    losses: np.ndarray = field(default_factory=lambda: np.empty(0))
    rhat: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def inference_gap(self) -> np.ndarray:
        """``[N]`` ``log p(x) - ELBO[q_phi] = KL(q_phi || p(z | x))``."""
        return self.log_px - self.elbo_amortized

    @property
    def amortization_gap(self) -> np.ndarray:
        """``[N]`` ``ELBO[q*] - ELBO[q_phi]``: what sharing one encoder costs."""
        return self.elbo_optimal - self.elbo_amortized

    @property
    def approximation_gap(self) -> np.ndarray:
        """``[N]`` ``log p(x) - ELBO[q*] = KL(q* || p(z | x))``: what the family costs."""
        return self.log_px - self.elbo_optimal

    def table(self) -> Any:
        """A ``pandas.DataFrame``, one row per datum, every column in nats."""
        import pandas as pd

        return pd.DataFrame({
            "log p(x)": self.log_px, "ELBO[q*]": self.elbo_optimal,
            "ELBO[q_amortized]": self.elbo_amortized, "inference gap": self.inference_gap,
            "approximation gap": self.approximation_gap,
            "amortization gap": self.amortization_gap,
        })

    def __str__(self) -> str:
        means = self.table().mean()
        lines = [self.table().to_string(float_format=lambda v: f"{v:.3f}"), "",
                 f"mean over {self.log_px.shape[0]} data (nats): "
                 + ", ".join(f"{k} {v:.3f}" for k, v in means.items() if "gap" in k)]
        bad = np.flatnonzero(self.rhat > RHAT_MAX) if self.rhat.size else []
        if len(bad):
            lines.append(
                f"warning: the NUTS chains disagree for data {[int(i) for i in bad]} (R-hat up to "
                f"{float(self.rhat.max()):.2f}): p(z | x) is probably multimodal, so the "
                "NUTS draws mix its modes in unreliable proportions. Run more chains or "
                "longer warm-up before reading the figure.")
        return "\n".join(lines)


def amortization_gap(
    model: Any,
    x: Any,
    guide: Callable[..., Any] | None = None,
    *,
    num_samples: int = 500,
    num_warmup: int = 500,
    num_chains: int = 2,
    num_particles: int = 5000,
    num_steps: int = 300,
    lr: float = 0.05,
    optim_particles: int = 16,
    seed: int = 0,
    mcmc_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> AmortizationGap:
    """Amortisation and approximation gaps of a guide on data ``x`` (see the module docstring).

    Args:
        model: a latent zoo model (its own guide is the amortised one) or a Pyro program
            ``model(x, **kwargs)`` with one latent site per datum in ``pyro.plate("data")``.
        x: data ``[N, ...]``, a few data (each gets its own ``q*`` and NUTS posterior).
        guide: the amortised guide ``guide(x, **kwargs)`` of a user program (zoo models use
            their own).
        num_samples: NUTS draws per chain ``D`` (also the number of guide draws kept).
        num_warmup: NUTS adaptation steps per chain.
        num_chains: NUTS chains ``C``.
        num_particles: importance samples / ELBO particles ``K`` per datum for the estimates.
        num_steps: full-batch Adam steps fitting ``q*`` (epochs of the training engine,
            :func:`ppgen.analysis.fitting.fit_full_batch`).
        lr: initial Adam learning rate (decays to ``lr / 100``).
        optim_particles: ELBO particles per Adam step.
        seed: seeds everything; the caller's random state is left untouched.
        mcmc_options: further options of :func:`ppgen.analysis.posterior` (e.g.
            ``{"chain_method": "sequential", "kernel_options": {...}}``).
        **kwargs: keyword arguments of the programs.

    Returns:
        An :class:`AmortizationGap`.

    Raises:
        ModelError: no guide, several latent sites, a latent site outside the ``"data"``
            plate or with a constrained support.
        TrainingError: the ELBO of ``q*`` or its parameters became non-finite (the
            engine's NaN/inf guard); lower ``lr``, or check the model's likelihood.
    """
    program = resolve(model, guide)
    if program.zoo is not None:  # validated, and on the model's device
        x = program.zoo.check_data(x).to(program.zoo.device)
    else:
        x = as_tensor(x)
    with _frozen(program.source), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        structure = inspect_structure(program, x, kwargs)
        site = _the_latent_site(program, structure, x, kwargs)
        amortized = _guide_draws(program.guide, x, kwargs, site, structure, num_samples)
        q_star, losses = fit_optimal(program, x, kwargs, site, structure, amortized,
                                     num_steps, lr, optim_particles)
        idata = posterior(program.model, x, method="nuts", num_samples=num_samples,
                          num_warmup=num_warmup, num_chains=num_chains, seed=seed,
                          model_kwargs=kwargs, **(mcmc_options or {}))
        nuts = _nuts_draws(idata, site, x.shape[0])
        bounds = _bounds(program, x, kwargs, site, structure, amortized, q_star, nuts,
                         num_particles)
        optimal = q_star.draws(num_samples)
    return AmortizationGap(
        **bounds, site=site, optimal_loc=_np(q_star.loc), optimal_scale=_np(q_star.scale),
        draws={"nuts": nuts, "amortized": _np(amortized.transpose(0, 1)),
               "optimal": _np(optimal.transpose(0, 1))},
        idata=idata, losses=losses, rhat=_rhat(idata, site),
    )


# ---------------------------------------------------------------------------- set-up


@contextlib.contextmanager
def _frozen(source: Any) -> Iterator[None]:
    """Evaluation mode, and no gradients into a module's parameters (only ``z`` moves)."""
    if not isinstance(source, nn.Module):
        yield
        return
    training = source.training
    flags = [(p, p.requires_grad) for p in source.parameters()]
    source.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        source.train(training)
        for p, flag in flags:
            p.requires_grad_(flag)


def _the_latent_site(program, structure: Structure, x: torch.Tensor, kwargs) -> str:
    if program.guide is None:
        raise ModelError("amortization_gap needs the amortised guide: pass guide=... (a "
                         "program q(z | x)), or a latent zoo model with its own guide")
    if len(structure.latent) != 1 or structure.global_latent:
        raise ModelError(
            f"amortization_gap supports one latent site per datum in the 'data' plate; the "
            f"model has latent sites {structure.latent} (outside the plate: "
            f"{structure.global_latent}). Stack per-datum latents into one vector site"
        )
    site = structure.latent[0]
    with torch.no_grad(), poutine.block():
        first = rows_of(kwargs, x.shape[0], slice(0, 1))
        trace = poutine.trace(program.model).get_trace(x[:1], **first)
    fn = trace.nodes[site]["fn"]
    if len(fn.event_shape) != 1 or not _is_real(fn.support):
        raise ModelError(
            f"latent site {site!r} must be a real vector per datum (event shape [L], "
            f"unconstrained support), not event shape {tuple(fn.event_shape)} with support "
            f"{fn.support}: declare it with .to_event(1), and reparameterise constrained "
            "latents through an unconstrained one"
        )
    return site


def _is_real(support: Any) -> bool:
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    return support is constraints.real


def _in_particle_plate(fn: Callable[..., Any], S: int, structure: Structure, device):
    def wrapped(*args: Any, **kw: Any) -> Any:
        with pyro.plate("_ppgen_draws", S, dim=-(structure.nesting + 1), device=device):
            return fn(*args, **kw)

    return wrapped


def _guide_draws(guide, x, kwargs, site, structure, S: int) -> torch.Tensor:
    """``[S, N, L]`` draws of the amortised guide."""
    with torch.no_grad(), poutine.block():
        tr = poutine.trace(_in_particle_plate(guide, S, structure, x.device)).get_trace(
            x, **kwargs)
    return tr.nodes[site]["value"].reshape(S, x.shape[0], -1)


# ---------------------------------------------------------------------------- estimates


def _nuts_draws(idata: Any, site: str, N: int) -> np.ndarray:
    """``[N, C * D, L]`` NUTS draws of the site, datum first."""
    values = np.asarray(idata.posterior[site].values)  # [C, D, N, L]
    return values.reshape(-1, N, values.shape[-1]).transpose(1, 0, 2)


def _rhat(idata: Any, site: str) -> np.ndarray:
    """``[N]`` the largest R-hat over each datum's coordinates (``nan`` for one chain)."""
    if idata.posterior.sizes["chain"] < 2:
        return np.full(idata.posterior.sizes["data"], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = np.asarray(az.rhat(idata, var_names=[site])[site].values)  # [N, L]
    return values.reshape(values.shape[0], -1).max(1)


def _bounds(program, x, kwargs, site, structure, amortized, q_star, nuts, K: int) -> dict:
    proposal = _defensive_proposal(site, structure, amortized, q_star, nuts)
    # q* and the proposal hold one Gaussian per datum: every call sees all N rows at once
    # and reuses the structure (which the layer would otherwise read off the first row).
    common = {"batch_size": x.shape[0], "structure": structure, **kwargs}
    px = [log_likelihood(program.source, x, proposal, num_particles=K // REPEATS, **common)
          for _ in range(REPEATS)]
    amortized_elbo = [elbo(program.source, program.guide, x, num_particles=K // REPEATS,
                           analytic_kl=True, **common) for _ in range(REPEATS)]
    optimal_elbo = [elbo(program.source, q_star.guide, x, num_particles=K // REPEATS,
                         analytic_kl=True, **common) for _ in range(REPEATS)]
    log_px, se_px = _log_mean_exp(torch.stack(px))
    return {
        "log_px": log_px, "elbo_amortized": _mean(amortized_elbo),
        "elbo_optimal": _mean(optimal_elbo),
        "se": {"log_px": se_px, "elbo_amortized": _se(amortized_elbo),
               "elbo_optimal": _se(optimal_elbo)},
    }


def _log_mean_exp(estimates: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Pool ``R`` estimates of ``log p`` from ``K/R`` particles into the ``K``-particle one.

    The mean of equal-sized groups' weight averages is the overall weight average, so
    ``log mean_r exp(l_r)`` is exactly the estimate with all ``K`` particles; its standard error
    is ``sd_r(exp(l_r)) / (sqrt(R) mean_r exp(l_r))`` (delta method).
    """
    R = estimates.shape[0]
    pooled = torch.logsumexp(estimates, 0) - math.log(R)
    ratio = (estimates - pooled).exp()
    return _np(pooled), _np(ratio.std(0) / math.sqrt(R))


def _mean(values: list[torch.Tensor]) -> np.ndarray:
    return _np(torch.stack(values).mean(0))


def _se(values: list[torch.Tensor]) -> np.ndarray:
    return _np(torch.stack(values).std(0) / math.sqrt(len(values)))


def _defensive_proposal(site, structure, amortized, q_star, nuts) -> Callable[..., Any]:
    """An equal mixture of three Gaussians per datum: guide moments, ``q*``, NUTS moments."""
    ref = q_star.loc
    nuts_t = torch.as_tensor(nuts, dtype=ref.dtype, device=ref.device)  # [N, S, L]
    comps = [_moments(amortized.transpose(0, 1)), (q_star.loc, q_star.distribution()
                                                   .scale_tril), _moments(nuts_t)]
    loc = torch.stack([c[0] for c in comps], dim=-2)  # [N, 3, L]
    tril = torch.stack([c[1] for c in comps], dim=-3)  # [N, 3, L, L]
    mix = dist.MixtureSameFamily(
        dist.Categorical(logits=torch.zeros(loc.shape[:-1], dtype=ref.dtype, device=ref.device)),
        dist.MultivariateNormal(loc, scale_tril=tril),
    )

    def proposal(x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        with pyro.plate("data", x.shape[0], dim=structure.data_dim, device=x.device):
            return pyro.sample(site, mix)

    return proposal


def _moments(draws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``[N, L]`` and Cholesky factor ``[N, L, L]`` of draws ``[N, S, L]`` (jittered)."""
    mean = draws.mean(1)
    centred = draws - mean[:, None]
    cov = centred.transpose(1, 2) @ centred / max(draws.shape[1] - 1, 1)
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    jitter = 1e-6 * cov.diagonal(dim1=-2, dim2=-1).mean(-1)[:, None, None] + 1e-12
    return mean, torch.linalg.cholesky(cov + jitter * eye)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()
