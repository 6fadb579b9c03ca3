"""The Gaussian diffusion process: an object apart from the network (improved-diffusion's
design), with the names of the papers.

Forward process (Ho et al., 2020, arXiv:2006.11239): ``q(x_t | x_{t-1}) = N(sqrt(1 - beta_t)
x_{t-1}, beta_t I)``, so ``q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)`` with
``abar_t = prod_{s <= t} (1 - beta_s)``, and the forward posterior ``q(x_{t-1} | x_t, x_0) =
N(mu~_t, beta~_t I)`` (eqs. 6-7). The reverse step ``p(x_{t-1} | x_t)`` is a Gaussian whose mean
comes from what the network predicts (:class:`Prediction`) and whose variance is fixed or
learned (:class:`Variance`; Nichol & Dhariwal, 2021, arXiv:2102.09672, eq. 15).

Indexing: step index ``s = 0..T-1`` is the paper's ``t = s + 1``, so index ``s`` holds
``beta_{s+1}`` and a noisy sample "at index ``s``" is ``x_{s+1}``; the network sees the time
``t / T`` of the *original* process (:attr:`GaussianDiffusion.times`), so a respaced process
(:meth:`GaussianDiffusion.respace`) runs the same network. Data live in model space (``[-1, 1]``
for levels); the last dimension of ``x`` is the event ``[..., D]`` and step indices ``s`` are an
``int`` or a ``long`` tensor of ``x``'s batch shape.

Example:
    >>> process = GaussianDiffusion(make_betas("linear", 1000))
    >>> x0 = torch.zeros(4, 2)
    >>> process.q_sample(x0, torch.tensor([0, 10, 500, 999])).shape
    torch.Size([4, 2])
    >>> short = process.respace([0, 499, 999])
    >>> short.num_timesteps, short.timesteps.tolist()
    (3, [0, 499, 999])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import torch
from torch import nn

from ppgen.diffusion.gaussians import normal_kl

__all__ = ["Prediction", "Variance", "GaussianDiffusion", "ReverseStep"]


class Prediction(str, Enum):
    """What the network predicts from ``x_t``."""

    EPSILON = "epsilon"  #: the noise ``eps`` of ``x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps``
    X0 = "x0"  #: the data ``x_0`` itself
    V = "v"  #: ``v = sqrt(abar) eps - sqrt(1 - abar) x_0`` (Salimans & Ho, 2022)


class Variance(str, Enum):
    """How the variance of the reverse step ``p(x_{t-1} | x_t)`` is set."""

    FIXED_SMALL = "fixed-small"  #: ``beta~_t``, the forward posterior's (``beta~_2`` at t = 1)
    FIXED_LARGE = "fixed-large"  #: ``beta_t`` (``beta~_2`` at t = 1)
    LEARNED_RANGE = "learned-range"  #: ``exp(v log beta_t + (1 - v) log beta~_t)``, ``v`` learned


@dataclass(frozen=True)
class ReverseStep:
    """The reverse Gaussian ``p(x_{t-1} | x_t)`` and the predictions it came from.

    Attributes:
        mean: ``[..., D]`` mean of ``x_{t-1}`` (the decoder's mean at ``t = 1``).
        log_variance: log-variance, broadcastable to ``mean``.
        x0: ``[..., D]`` predicted ``x_0`` (clipped to ``[-1, 1]`` when the process clips).
        eps: ``[..., D]`` the noise consistent with ``x0`` and ``x_t``.
    """

    mean: torch.Tensor
    log_variance: torch.Tensor
    x0: torch.Tensor
    eps: torch.Tensor

    @property
    def scale(self) -> torch.Tensor:
        """Standard deviation ``exp(log_variance / 2)``."""
        return torch.exp(0.5 * self.log_variance)


class GaussianDiffusion(nn.Module):
    """A ``T``-step Gaussian diffusion: its schedule as buffers and the formulas on it.

    Args:
        betas: ``[T]`` forward variances (float64 preferred; stored in the default dtype).
        prediction: what the network predicts (:class:`Prediction`).
        variance: the reverse variance (:class:`Variance`); ``LEARNED_RANGE`` doubles the
            network's output (``[..., 2 D]``: the prediction, then ``v`` in ``[-1, 1]``).
        clip: clip the predicted ``x_0`` to ``[-1, 1]`` (data of bounded levels).
        timesteps: ``[T]`` original step indices of a respaced process (default ``0..T-1``).
        original_steps: ``T`` of the original process (default ``len(betas)``).

    Every buffer is derived from these, so none is saved in a ``state_dict``.
    """

    def __init__(
        self,
        betas: torch.Tensor,
        prediction: Prediction | str = Prediction.EPSILON,
        variance: Variance | str = Variance.FIXED_SMALL,
        clip: bool = False,
        timesteps: Sequence[int] | torch.Tensor | None = None,
        original_steps: int | None = None,
    ) -> None:
        super().__init__()
        self.prediction, self.variance, self.clip = Prediction(prediction), Variance(variance), clip
        betas = torch.as_tensor(betas, dtype=torch.float64).cpu()
        if betas.dim() != 1 or not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("betas must be a [T] vector in (0, 1)")
        T = betas.shape[0]
        self.original_steps = original_steps or T
        steps = torch.arange(T) if timesteps is None else torch.as_tensor(timesteps).cpu()
        if steps.shape != (T,):
            raise ValueError(f"timesteps must have one entry per step ({T})")
        self._betas64 = betas  # the exact schedule, for respacing (not a buffer: derived)
        self._set("betas", betas)
        self.register_buffer("timesteps", steps.long(), persistent=False)
        self._set("times", (steps.double() + 1) / self.original_steps)
        self._derive(betas)

    def _set(self, name: str, value: torch.Tensor) -> None:
        self.register_buffer(name, value.to(torch.get_default_dtype()), persistent=False)

    def _derive(self, betas: torch.Tensor) -> None:
        """The buffers of Ho et al.'s formulas, computed in float64."""
        abar = torch.cumprod(1 - betas, 0)
        abar_prev = torch.cat([abar.new_ones(1), abar[:-1]])
        post_var = betas * (1 - abar_prev) / (1 - abar)
        clipped = torch.cat([post_var[1:2], post_var[1:]]) if len(betas) > 1 else betas
        for name, value in {
            "alphas_cumprod": abar,
            "alphas_cumprod_prev": abar_prev,
            "sqrt_alphas_cumprod": abar.sqrt(),
            "one_minus_alphas_cumprod": 1 - abar,
            "sqrt_one_minus_alphas_cumprod": (1 - abar).sqrt(),
            "log_one_minus_alphas_cumprod": torch.log1p(-abar),
            "sqrt_recip_alphas_cumprod": abar.rsqrt(),
            "sqrt_recipm1_alphas_cumprod": (1 / abar - 1).sqrt(),
            "posterior_variance": post_var,
            "posterior_log_variance_clipped": clipped.log(),
            "large_log_variance": torch.cat([clipped[:1], betas[1:]]).log(),
            "posterior_mean_coef1": betas * abar_prev.sqrt() / (1 - abar),
            "posterior_mean_coef2": (1 - abar_prev) * (1 - betas).sqrt() / (1 - abar),
        }.items():
            self._set(name, value)

    @property
    def num_timesteps(self) -> int:
        """``T`` of this process (``S`` once respaced)."""
        return self.betas.shape[0]

    @property
    def output_multiplier(self) -> int:
        """The network's outputs per data dimension: 2 with a learned variance, else 1."""
        return 2 if self.variance is Variance.LEARNED_RANGE else 1

    @staticmethod
    def coef(buffer: torch.Tensor, s: int | torch.Tensor) -> torch.Tensor:
        """``buffer[s]`` shaped to broadcast against ``x: [..., D]`` (``s`` of ``x``'s batch
        shape, or an ``int``)."""
        value = buffer[s]
        return value.unsqueeze(-1) if isinstance(s, torch.Tensor) else value

    # ------------------------------------------------------------------ forward process
    def q_mean_variance(self, x0: torch.Tensor, s: int | torch.Tensor):
        """``q(x_t | x_0)`` at index ``s``: ``(mean [..., D], variance, log_variance)``."""
        mean = self.coef(self.sqrt_alphas_cumprod, s) * x0
        variance = self.coef(self.one_minus_alphas_cumprod, s)
        return mean, variance, self.coef(self.log_one_minus_alphas_cumprod, s)

    def q_sample(self, x0: torch.Tensor, s: int | torch.Tensor,
                 noise: torch.Tensor | None = None) -> torch.Tensor:
        """A draw ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps`` at index ``s``."""
        noise = torch.randn_like(x0) if noise is None else noise
        return (self.coef(self.sqrt_alphas_cumprod, s) * x0
                + self.coef(self.sqrt_one_minus_alphas_cumprod, s) * noise)

    def q_posterior(self, x0: torch.Tensor, x_t: torch.Tensor, s: int | torch.Tensor):
        """``q(x_{t-1} | x_t, x_0)`` for ``x_t`` at index ``s``: ``(mean, variance,
        log_variance)`` (Ho et al., eq. 7; the log-variance at ``t = 1`` is clipped to
        ``log beta~_2``, where ``beta~_1 = 0``)."""
        mean = (self.coef(self.posterior_mean_coef1, s) * x0
                + self.coef(self.posterior_mean_coef2, s) * x_t)
        variance = self.coef(self.posterior_variance, s)
        return mean, variance, self.coef(self.posterior_log_variance_clipped, s)

    def prior_kl(self, x0: torch.Tensor) -> torch.Tensor:
        """Elementwise ``KL(q(x_T | x_0) || N(0, I))``: ``[..., D]`` nats (the term ``L_T``)."""
        mean, _, log_var = self.q_mean_variance(x0, self.num_timesteps - 1)
        return normal_kl(mean, log_var, torch.zeros_like(mean), torch.zeros_like(log_var))

    # ------------------------------------------------------------------ reverse process
    def p_mean_variance(self, output: torch.Tensor, x_t: torch.Tensor,
                        s: int | torch.Tensor) -> ReverseStep:
        """``p(x_{t-1} | x_t)`` from the network's ``output`` at ``x_t`` (index ``s``).

        Args:
            output: ``[..., D]``, or ``[..., 2 D]`` with a learned variance.
            x_t: ``[..., D]``.
            s: step index, ``int`` or ``long`` of ``x_t``'s batch shape.
        """
        if self.variance is Variance.LEARNED_RANGE:
            output, v = output.chunk(2, dim=-1)
        x0 = self._predict_x0(output, x_t, s)
        if self.clip:
            x0 = x0.clamp(-1, 1)
        eps = self.predict_eps_from_x0(x_t, s, x0)
        mean, _, _ = self.q_posterior(x0, x_t, s)
        log_var = self._log_variance(s, v if self.variance is Variance.LEARNED_RANGE else None)
        return ReverseStep(mean, log_var, x0, eps)

    def _predict_x0(self, output: torch.Tensor, x_t: torch.Tensor, s) -> torch.Tensor:
        if self.prediction is Prediction.X0:
            return output
        if self.prediction is Prediction.EPSILON:
            return (self.coef(self.sqrt_recip_alphas_cumprod, s) * x_t
                    - self.coef(self.sqrt_recipm1_alphas_cumprod, s) * output)
        return (self.coef(self.sqrt_alphas_cumprod, s) * x_t
                - self.coef(self.sqrt_one_minus_alphas_cumprod, s) * output)

    def predict_eps_from_x0(self, x_t: torch.Tensor, s, x0: torch.Tensor) -> torch.Tensor:
        """The noise ``eps = (x_t / sqrt(abar) - x_0) / sqrt(1 / abar - 1)``."""
        return ((self.coef(self.sqrt_recip_alphas_cumprod, s) * x_t - x0)
                / self.coef(self.sqrt_recipm1_alphas_cumprod, s))

    def _log_variance(self, s, v: torch.Tensor | None) -> torch.Tensor:
        small = self.coef(self.posterior_log_variance_clipped, s)
        if self.variance is Variance.FIXED_SMALL:
            return small
        if self.variance is Variance.FIXED_LARGE:
            return self.coef(self.large_log_variance, s)
        frac = (v + 1) / 2  # Nichol & Dhariwal, eq. 15: v in [-1, 1] -> [0, 1]
        return frac * self.coef(self.betas, s).log() + (1 - frac) * small

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, s) -> torch.Tensor:
        """What the network should output for ``x_t = q_sample(x0, s, noise)`` (the regression
        target of ``L_simple``)."""
        if self.prediction is Prediction.EPSILON:
            return noise
        if self.prediction is Prediction.X0:
            return x0
        return (self.coef(self.sqrt_alphas_cumprod, s) * noise
                - self.coef(self.sqrt_one_minus_alphas_cumprod, s) * x0)

    def freeze_mean(self, output: torch.Tensor) -> torch.Tensor:
        """``output`` with the mean's part detached (the stop-gradient of ``L_vlb`` in
        ``L_hybrid``, Nichol & Dhariwal section 3.1); a learned variance keeps its gradient."""
        if self.variance is not Variance.LEARNED_RANGE:
            return output.detach()
        mean, v = output.chunk(2, dim=-1)
        return torch.cat([mean.detach(), v], dim=-1)

    def step_kl(self, x0: torch.Tensor, x_t: torch.Tensor, s, step: ReverseStep) -> torch.Tensor:
        """Elementwise ``KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))``: ``[..., D]`` nats
        (the term ``L_{t-1}`` for ``t >= 2``)."""
        mean, _, log_var = self.q_posterior(x0, x_t, s)
        return normal_kl(mean, log_var, step.mean, step.log_variance)

    def ddim_step(self, step: ReverseStep, s: int, eta: float,
                  noise: torch.Tensor | None = None) -> torch.Tensor:
        """One DDIM update from index ``s >= 1`` to ``s - 1`` (Song et al., 2021,
        arXiv:2010.02502, eq. 12): ``x_{t-1} = sqrt(abar_prev) x0 + sqrt(1 - abar_prev -
        sigma^2) eps + sigma z`` with ``sigma = eta sqrt(beta~_t)`` (``eta = 1``: the ancestral
        step with the forward posterior's variance; ``eta = 0``: deterministic)."""
        if not 1 <= s < self.num_timesteps:
            raise ValueError(f"a DDIM step goes from index s >= 1 to s - 1, got s = {s}")
        sigma = eta * self.posterior_variance[s].sqrt()  # (1 - abar / abar_prev) = beta_t
        direction = (self.one_minus_alphas_cumprod[s - 1] - sigma**2).clamp(min=0).sqrt()
        mean = self.alphas_cumprod_prev[s].sqrt() * step.x0 + direction * step.eps
        if eta == 0:
            return mean
        noise = torch.randn_like(mean) if noise is None else noise
        return mean + sigma * noise

    # ------------------------------------------------------------------ respacing
    def respace(self, kept: Sequence[int]) -> GaussianDiffusion:
        """The process that keeps only the steps ``kept`` (ascending indices of this process,
        e.g. from :func:`~ppgen.diffusion.space_timesteps`), over the same network.

        Its ``abar`` at its step ``i`` is this process's ``abar`` at ``kept[i]``, so its step
        ``i`` jumps from the noise level of ``kept[i]`` to that of ``kept[i - 1]``
        (``beta'_i = 1 - abar[kept[i]] / abar[kept[i-1]]``); its :attr:`timesteps` map back to
        the original process, so the network sees the same times.
        """
        kept = [int(k) for k in kept]
        if kept != sorted(set(kept)) or not kept or kept[0] < 0 or kept[-1] >= self.num_timesteps:
            raise ValueError(f"kept steps must be ascending distinct indices in "
                             f"0..{self.num_timesteps - 1}")
        abar = torch.cumprod(1 - self._betas64, 0)[kept]
        prev = torch.cat([abar.new_ones(1), abar[:-1]])
        process = GaussianDiffusion(1 - abar / prev, self.prediction, self.variance, self.clip,
                                    self.timesteps.cpu()[kept], self.original_steps)
        return process.to(self.betas.device)

    def extra_repr(self) -> str:
        return (f"T={self.num_timesteps}, prediction={self.prediction.value}, "
                f"variance={self.variance.value}, clip={self.clip}")
