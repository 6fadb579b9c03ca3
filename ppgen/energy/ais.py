"""Annealed importance sampling, forward and reverse: a bracket on ``log Z`` of an energy model.

The path is geometric, on the base's whitened coordinates (:mod:`ppgen.energy.samplers`):
``π_β(z) ∝ N(z; 0, I) exp(β h(z))`` for ``0 = β_0 < β_1 < ... < β_T = 1``, where ``h(z) =
log p̃(x) - log q_0(x)`` at ``x = loc + L z`` (``q_0`` the normalised Gaussian base, ``p̃ =
exp(-E)`` the model's unnormalised density), so ``Z_0 = 1`` and ``Z_1 = Z``.

* **Forward AIS** (Neal 2001, "Annealed importance sampling", Statistics and Computing 11):
  ``z_0 ~ N(0, I)``; for ``t = 1..T`` add ``(β_t - β_{t-1}) h(z_{t-1})`` to the chain's log
  weight, then move ``z`` by a transition that leaves ``π_{β_t}`` invariant (HMC or MALA).
  ``E[w] = Z``, so ``log Ẑ = log mean_k w_k`` underestimates ``log Z`` in expectation and, by
  Markov's inequality, ``P(log Ẑ > log Z + a) <= exp(-a)``: a stochastic *lower* bound.
* **Reverse AIS** (Grosse, Ghahramani & Adams 2015, "Sandwiching the marginal likelihood using
  bidirectional Monte Carlo", arXiv:1511.02543): the same path run from ``β = 1`` down to 0,
  started at samples of the model; its weights estimate ``1 / Z`` without bias, so ``-log mean_k
  u_k`` is a stochastic *upper* bound on ``log Z`` — exactly when the start points are exact
  samples of the model (pass them as ``reverse_start``, e.g. for a model whose samples are known)
  and approximately otherwise: by default the reverse chains start at the forward chains' final
  states resampled by their weights, which are model samples in the limit of slow annealing.

Together (bidirectional Monte Carlo) they bracket ``log Z``; the gap shrinks to zero as the
number of intermediate distributions grows, and its width says how far to trust either end.
Each end is a stochastic bound: its Monte Carlo noise (a standard error from the weights,
:meth:`AISResult.standard_errors`) can carry it past ``log Z`` once the bias is small, so the
reported interval (:meth:`AISResult.interval`) moves each end out by ``INTERVAL_Z = 2`` of its
standard errors; the raw ends are kept beside it.

Step sizes are tuned by a pilot run on its own random draws (a few chains adapting the step size
towards a target acceptance rate along a coarser path), then fixed and shared by the forward and
reverse runs: adapting on the chains being weighted would bias the estimate.

Every chain runs on the device of the model; the loops hold no host synchronisation.

Example:
    >>> h = lambda z: -0.5 * (z * z).sum(-1)  # p̃ = q_0 * N(0, I)-shaped factor: Z = 2^{-D/2}
    >>> result = bdmc(h, 2, AISSettings(num_distributions=50), num_chains=64,
    ...               generator=torch.Generator().manual_seed(0))
    >>> lower, upper = result.interval()
    >>> lower <= -math.log(2) <= upper
    True
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from ppgen.energy.samplers import ChainState, HFn, evaluate, transition

__all__ = [
    "AISSettings",
    "AISResult",
    "annealing_schedule",
    "tune_step_sizes",
    "forward_ais",
    "reverse_ais",
    "bdmc",
    "SCHEDULES",
    "AIS_TRANSITIONS",
]

#: how the inverse temperatures ``β_t`` are spaced
SCHEDULES = ("sigmoid", "linear")
#: the transitions AIS runs (both Metropolis-adjusted: AIS needs invariant kernels)
AIS_TRANSITIONS = ("hmc", "mala")
#: the acceptance rate the pilot run tunes each transition towards
TARGET_ACCEPTANCE = {"hmc": 0.65, "mala": 0.57}
#: the pilot run's adaptation rate of ``log ε`` per step
ADAPTATION_RATE = 0.5
#: standard errors added outside each end of the reported interval (Monte Carlo noise)
INTERVAL_Z = 2.0


@dataclass(frozen=True)
class AISSettings:
    """How an AIS run anneals (JSON-able: an energy model stores its own in its config).

    Attributes:
        num_distributions: ``T``, the number of annealing steps (intermediate distributions
            ``π_{β_1}, ..., π_{β_{T-1}}`` and the target); the bracket narrows as it grows.
        transition: ``"hmc"`` or ``"mala"``.
        num_leapfrog: HMC's leapfrog steps per transition.
        schedule: ``"sigmoid"`` (Grosse et al. 2015: dense near both ends) or ``"linear"``.
        initial_step_size: the pilot run's first step size (whitened units).
        pilot_chains: chains of the pilot run.
        pilot_distributions: the pilot run's annealing steps (its step sizes are interpolated
            in ``β`` onto the main path).
    """

    num_distributions: int = 1000
    transition: str = "hmc"
    num_leapfrog: int = 5
    schedule: str = "sigmoid"
    initial_step_size: float = 0.5
    pilot_chains: int = 32
    pilot_distributions: int = 200

    def __post_init__(self) -> None:
        if self.transition not in AIS_TRANSITIONS:
            raise ValueError(f"AIS transition must be one of {AIS_TRANSITIONS}, got "
                             f"{self.transition!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"AIS schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        for name in ("num_distributions", "num_leapfrog", "pilot_chains", "pilot_distributions"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"AIS {name} must be a positive integer, got "
                                 f"{getattr(self, name)!r}")
        if not self.initial_step_size > 0:
            raise ValueError(f"AIS initial_step_size must be > 0, got {self.initial_step_size}")

    @classmethod
    def from_dict(cls, options: dict[str, Any] | None) -> AISSettings:
        """Settings from a (partial) dict; unknown keys are refused with the valid ones."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown AIS option(s) {unknown}; valid: "
                             f"{sorted(cls.__dataclass_fields__)}")
        return cls(**options)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_(self, **changes: Any) -> AISSettings:
        """A copy with some settings changed."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True)
class AISResult:
    """A bidirectional AIS run (tensors on the model's device).

    Attributes:
        log_z: the forward estimate ``log Ẑ`` (0-d), a stochastic lower bound on ``log Z``.
        log_z_upper: the reverse estimate (0-d), a stochastic upper bound; ``None`` when only
            the forward run was made.
        log_weights: the forward chains' log weights ``[K]``.
        reverse_log_weights: the reverse chains' log weights ``[K]`` (estimating ``1 / Z``).
        step_sizes: ``[T + 1]``, the transition's step size at each ``β_t``.
        betas: ``[T + 1]``, the path.
        acceptance: ``[T]``, the forward chains' mean acceptance probability per step.
        final: the forward chains' final states (whitened, approximately model samples once
            resampled by weight).
        settings: the :class:`AISSettings` of the run.
        reverse_start: where the reverse chains started: ``"resampled"`` (the forward chains'
            final states resampled by weight: an approximate upper bound) or ``"given"``
            (caller-supplied points, exact when they are exact model samples).
    """

    log_z: torch.Tensor
    log_weights: torch.Tensor
    step_sizes: torch.Tensor
    betas: torch.Tensor
    acceptance: torch.Tensor
    final: ChainState
    settings: AISSettings
    log_z_upper: torch.Tensor | None = None
    reverse_log_weights: torch.Tensor | None = None
    reverse_start: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_chains(self) -> int:
        return self.log_weights.shape[0]

    @property
    def num_distributions(self) -> int:
        return self.betas.shape[0] - 1

    def standard_errors(self) -> tuple[float, float]:
        """Monte Carlo standard errors of the forward and reverse ``log`` estimates (delta
        method: ``sqrt(Σ w̃² - 1/K)`` with ``w̃`` the normalised weights; ``nan`` without a
        reverse run)."""
        upper = math.nan if self.reverse_log_weights is None else _log_mean_se(
            self.reverse_log_weights)
        return _log_mean_se(self.log_weights), upper

    def interval(self, z: float = INTERVAL_Z) -> tuple[float, float]:
        """``(lower, upper)`` on ``log Z`` as host floats: the forward estimate less ``z`` of
        its standard errors, the reverse estimate plus ``z`` of its own (``z = 0``: the raw
        BDMC ends). The upper end is ``inf`` without a reverse run.

        The ends are stochastic bounds whose bias points outwards; the standard errors cover
        their Monte Carlo noise, which can otherwise cross them over when the annealing is
        slow enough for the bias to vanish (about a 2.5% chance per end at ``z = 2``). Ends that
        still cross (the reverse chains start from resampled, not exact, model samples) keep the
        upper end at least ``z`` standard errors above the forward estimate, the reported
        number, so the interval always holds it.
        """
        se_lower, se_upper = self.standard_errors()
        forward = float(self.log_z)
        if self.log_z_upper is None:
            return forward - z * se_lower, math.inf
        # a reverse end below the forward estimate (noise, or a reverse run from approximate
        # samples) must not leave the forward estimate, the reported number, outside
        upper = max(float(self.log_z_upper) + z * se_upper, forward + z * se_lower)
        return forward - z * se_lower, upper

    def effective_sample_size(self) -> float:
        """Kish's effective sample size of the forward weights, ``(Σ w)² / Σ w²``."""
        w = torch.softmax(self.log_weights, 0)
        return float(1.0 / (w * w).sum())

    def summary(self) -> dict[str, Any]:
        """JSON-able numbers: the bracket, its width, the path and chain counts, diagnostics."""
        lower, upper = self.interval()
        se_lower, se_upper = self.standard_errors()
        reverse = math.inf if self.log_z_upper is None else float(self.log_z_upper)
        return {"log_z_lower": lower, "log_z_upper": upper, "log_z_width": upper - lower,
                "log_z_forward": float(self.log_z), "log_z_reverse": reverse,
                "log_z_forward_se": se_lower, "log_z_reverse_se": se_upper,
                "interval_z": INTERVAL_Z,
                "num_distributions": self.num_distributions, "num_chains": self.num_chains,
                "transition": self.settings.transition, "reverse_start": self.reverse_start,
                "ais_ess": self.effective_sample_size(),
                "ais_acceptance": float(self.acceptance.mean())}


def annealing_schedule(num_distributions: int, schedule: str = "sigmoid",
                       device: torch.device | None = None, sharpness: float = 4.0
                       ) -> torch.Tensor:
    """``[T + 1]`` inverse temperatures from exactly 0 to exactly 1.

    ``"sigmoid"``: ``σ(δ (2t/T - 1))`` rescaled to ``[0, 1]`` (Grosse et al. 2015, ``δ = 4``),
    small steps near both ends, where the path's distributions change fastest; ``"linear"``.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    t = torch.linspace(0.0, 1.0, num_distributions + 1, device=device, dtype=torch.float64)
    if schedule == "sigmoid":
        s = torch.sigmoid(sharpness * (2 * t - 1))
        t = (s - s[0]) / (s[-1] - s[0])
    return t.float()


def _interpolate_log(x_new: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``exp`` of the piecewise-linear interpolation of ``log y`` at ``x_new`` (on device)."""
    i = torch.searchsorted(x, x_new).clamp(1, x.shape[0] - 1)
    x0, x1 = x[i - 1], x[i]
    w = ((x_new - x0) / (x1 - x0).clamp_min(1e-12)).clamp(0.0, 1.0)
    return torch.exp(torch.lerp(y[i - 1].log(), y[i].log(), w))


def tune_step_sizes(h_fn: HFn, num_dims: int, betas: torch.Tensor, settings: AISSettings,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Step sizes ``[T + 1]`` for the path ``betas``, from a pilot run of
    ``settings.pilot_chains`` chains along ``settings.pilot_distributions`` steps that adapts
    ``log ε`` towards the transition's target acceptance after every step."""
    device = betas.device
    pilot = annealing_schedule(min(settings.pilot_distributions, betas.shape[0] - 1),
                               settings.schedule, device)
    target = TARGET_ACCEPTANCE[settings.transition]
    state = evaluate(h_fn, _standard_normal(settings.pilot_chains, num_dims, device,
                                            generator))
    log_eps = torch.full((), math.log(settings.initial_step_size), device=device)
    used = torch.empty(pilot.shape[0], device=device)
    for t in range(1, pilot.shape[0]):
        eps = log_eps.exp()
        state, prob = transition(settings.transition, h_fn, state, pilot[t], eps,
                                 num_leapfrog=settings.num_leapfrog, generator=generator)
        used[t] = eps
        log_eps = log_eps + ADAPTATION_RATE * (prob.mean() - target)
    used[0] = used[1]
    return _interpolate_log(betas, pilot, used)


def _standard_normal(n: int, d: int, device: torch.device,
                     generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(n, d, device=device, generator=generator)


def _anneal(h_fn: HFn, state: ChainState, betas: torch.Tensor, step_sizes: torch.Tensor,
            settings: AISSettings, generator: torch.Generator | None
            ) -> tuple[torch.Tensor, ChainState, torch.Tensor]:
    """AIS along ``betas`` (increasing or decreasing) from ``state`` (a draw of
    ``π_{betas[0]}``): ``(log weights [K], final state, acceptance [T])``."""
    T = betas.shape[0] - 1
    log_w = torch.zeros_like(state.h)
    acceptance = torch.empty(T, device=betas.device)
    for t in range(1, T + 1):
        log_w = log_w + (betas[t] - betas[t - 1]) * state.h
        state, prob = transition(settings.transition, h_fn, state, betas[t], step_sizes[t],
                                 num_leapfrog=settings.num_leapfrog, generator=generator)
        acceptance[t - 1] = prob.mean()
    return log_w, state, acceptance


def _log_mean_se(log_w: torch.Tensor) -> float:
    """Standard error of ``log mean_k w_k`` from the log weights ``[K]`` (delta method)."""
    w = torch.softmax(log_w.double(), 0)
    return float(((w * w).sum() - 1.0 / log_w.shape[0]).clamp_min(0.0).sqrt())


def _log_mean_exp(x: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(x, 0) - math.log(x.shape[0])


def forward_ais(h_fn: HFn, num_dims: int, settings: AISSettings, num_chains: int,
                device: torch.device | None = None, step_sizes: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> AISResult:
    """Forward AIS with ``num_chains`` chains: ``log Ẑ`` (a stochastic lower bound on
    ``log Z``).

    Args:
        h_fn: ``h(z) -> [K]`` on whitened points ``z: [K, D]``, differentiable.
        num_dims: ``D``.
        settings: the path and transition (:class:`AISSettings`).
        num_chains: ``K``.
        device: where the chains run (default: the default device).
        step_sizes: ``[T + 1]`` step sizes (default: tuned by :func:`tune_step_sizes`).
        generator: the random stream (default: the global one).
    """
    betas = annealing_schedule(settings.num_distributions, settings.schedule, device)
    if step_sizes is None:
        step_sizes = tune_step_sizes(h_fn, num_dims, betas, settings, generator)
    start = evaluate(h_fn, _standard_normal(num_chains, num_dims, betas.device, generator))
    log_w, final, acceptance = _anneal(h_fn, start, betas, step_sizes, settings, generator)
    return AISResult(_log_mean_exp(log_w), log_w, step_sizes, betas, acceptance, final,
                     settings)


def reverse_ais(h_fn: HFn, start: ChainState, betas: torch.Tensor, step_sizes: torch.Tensor,
                settings: AISSettings, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Reverse AIS from ``start`` (points of the model, whitened) down ``betas`` to the base.

    Returns:
        ``(log Z upper estimate (0-d), log weights [K])``: the weights estimate ``1 / Z``
        without bias when ``start`` are exact model samples, so ``-log mean_k u_k`` is then a
        stochastic upper bound on ``log Z``.
    """
    log_u, _, _ = _anneal(h_fn, start, betas.flip(0), step_sizes.flip(0), settings, generator)
    return -_log_mean_exp(log_u), log_u


def bdmc(h_fn: HFn, num_dims: int, settings: AISSettings, num_chains: int,
         device: torch.device | None = None, reverse_start: torch.Tensor | None = None,
         generator: torch.Generator | None = None) -> AISResult:
    """Bidirectional Monte Carlo: forward AIS, then reverse AIS on the same path and step sizes.

    Args:
        h_fn, num_dims, settings, num_chains, device, generator: as in :func:`forward_ais`.
        reverse_start: whitened model samples ``[K', D]`` to start the reverse chains from
            (exact samples make the upper end a true stochastic bound); default: the forward
            chains' final states resampled by weight (``num_chains`` of them).

    Returns:
        The :class:`AISResult` with ``log_z`` (lower end) and ``log_z_upper``.
    """
    result = forward_ais(h_fn, num_dims, settings, num_chains, device, generator=generator)
    if reverse_start is None:
        weights = torch.softmax(result.log_weights, 0)
        index = torch.multinomial(weights, num_chains, replacement=True, generator=generator)
        start, how = result.final.take(index), "resampled"
    else:
        start, how = evaluate(h_fn, reverse_start.to(result.betas.device)), "given"
    upper, log_u = reverse_ais(h_fn, start, result.betas, result.step_sizes, settings,
                               generator)
    return replace(result, log_z_upper=upper, reverse_log_weights=log_u, reverse_start=how)
