"""Variational Diffusion Models as Pyro programs (Kingma, Salimans, Poole & Ho, 2021,
"Variational Diffusion Models", arXiv:2107.00630).

Continuous time on a learned monotone log-SNR schedule ``gamma(t)``
(:class:`~ppgen.diffusion.LearnedSchedule`); training minimises the continuous-time bound
(``"vdm"`` in ``ppgen.inference``: the diffusion loss ``0.5 gamma'(t) ||eps - eps^||^2`` at
low-discrepancy times, the prior KL and the reconstruction term; the schedule's shape follows
the gradient of the loss's variance). The programs discretise the schedule at ``T =
num_steps`` steps, ``t_i = i / T``::

    model:  z_T ~ N(0, I);  z_{i-1} ~ p(z_{i-1} | z_i) = q(z_{i-1} | z_i, x^(z_i));  x ~ p(x | z_0)
    guide:  z_T ~ q(z_1 | x);   z_{i-1} ~ q(z_{i-1} | z_i, x)

(sites ``"z_T"`` .. ``"z_0"``, the data site ``"x"``), so every latent site pairs two Gaussians
and ``ppgen.elbo(model, None, x, analytic_kl=True)`` is the ``T``-step bound in nats per datum,
which decreases towards the continuous-time bound as ``T`` grows (:meth:`VDM.continuous_bound`
estimates that one; :meth:`VDM.bound_terms` writes the ``T``-step sum directly).

Data: integer levels ``0..K-1`` at ``-1 + 2k / (K - 1)`` with the paper's categorical decoder
``p(x = k | z_0) proportional to exp(-(z_0 / alpha_0 - c_k)^2 / (2 exp(gamma_0)))`` per pixel
(the exact posterior of a uniform independent prior); real data divided by ``data_scale`` and
the Gaussian decoder ``N(z_0 / alpha_0, exp(gamma_0))``. The network sees ``z_t`` and the
normalised ``(gamma_t - gamma_min) / (gamma_max - gamma_min)``; on levels data it reads ``x^``
through the level posterior head (:class:`~ppgen.models.denoisers.LevelPosterior`), otherwise it
predicts the noise.

Example:
    >>> model = VDM(4, num_steps=20, num_levels=5, denoiser={"width": 16, "blocks": 1})
    >>> model.sample(3).shape, model.sample(3, sampler="ddim", steps=5).dtype
    (torch.Size([3, 4]), torch.int64)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine

from ppgen.diffusion import BoundTerms, LearnedSchedule, diagonal_normal, level_values
from ppgen.diffusion.continuous import (
    VDMTerms,
    alpha_sigma,
    continuous_terms,
    discrete_term,
    prior_kl,
    q_posterior,
)
from ppgen.errors import ModelError
from ppgen.models.autoregressive import eval_mode
from ppgen.models.diffusion_base import SAMPLERS, DiffusionBase, check_sampler

__all__ = ["VDM", "VDM_SAMPLERS", "VDM_SCHEDULES"]

#: the samplers of ``sample(n, sampler=...)`` (the DDPM's names)
VDM_SAMPLERS = SAMPLERS
#: ``"learned"``: the monotone MLP and its endpoints; ``"linear"``: only the endpoints learned
VDM_SCHEDULES = ("learned", "linear")
#: the denoiser :meth:`VDM.for_data` gives images: the small U-Net with dropout (1,000 digits
#: overfit; ``denoiser=...`` overrides)
IMAGE_DENOISER: dict[str, Any] = {"kind": "unet", "channels": 32, "blocks": 1, "dropout": 0.1}


class VDM(DiffusionBase):
    """Variational diffusion model (Kingma et al., 2021) with the 17-way decoder of the digits.

    Args:
        num_dims: ``D``, the size of one flat datum.
        num_steps: ``T`` of the programs' discretisation (the reported bound; sampling
            default). Training is in continuous time whatever ``T``.
        likelihood: ``"categorical"`` (integer levels ``0..K-1``) or ``"continuous"``.
        num_levels: ``K`` for levels (17 for the digits).
        image_shape: ``(H, W)`` or ``(C, H, W)`` of flat images (the U-Net's shape).
        data_scale: real data are divided by it to enter model space.
        gamma_min: initial ``gamma(0)`` (``sigma_0^2 = sigmoid(gamma_min)``); also the zero of
            the network's time input.
        gamma_max: initial ``gamma(1)``; the network's time input is 1 there.
        noise_schedule: ``"learned"`` (the paper's monotone MLP) or ``"linear"`` (endpoints
            only); the module is :attr:`schedule`.
        denoiser: options of the network (:func:`~ppgen.models.denoisers.build_denoiser`);
            ``"head"``: ``"levels"`` (default for levels data) or ``"direct"`` (noise
            prediction).

    Example:
        >>> import ppgen
        >>> model = VDM(4, num_steps=10, num_levels=5, denoiser={"width": 16, "blocks": 1})
        >>> ppgen.elbo(model, None, torch.randint(0, 5, (3, 4)), analytic_kl=True).shape
        torch.Size([3])
    """

    default_objective = "vdm"
    #: the digits recipe (benchmarks/diffusion.py): the U-Net with dropout against the
    #: overfitting of 1,000 images; the schedule in its own group, without weight decay (it
    #: would pull gamma_0 towards 0) or clipping
    fit_defaults: ClassVar[dict[str, Any]] = {
        "optimizer": {"model": {"name": "adamw"},
                      "schedule": {"name": "adam", "weight_decay": 0.0, "max_grad_norm": None}},
        "lr": 1e-3, "weight_decay": 0.02, "batch_size": 100, "epochs": 300, "patience": 60,
        "ema": 0.995, "warmup_steps": 200, "lr_schedule": "cosine", "max_grad_norm": 1.0,
    }
    sample_options: ClassVar[dict[str, Any]] = {"sampler": "ancestral", "steps": None}
    image_denoiser = IMAGE_DENOISER

    def __init__(
        self,
        num_dims: int,
        num_steps: int = 1000,
        likelihood: str = "categorical",
        num_levels: int | None = None,
        image_shape: Sequence[int] | None = None,
        data_scale: float = 1.0,
        gamma_min: float = -13.3,
        gamma_max: float = 5.0,
        noise_schedule: str = "learned",
        denoiser: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(num_dims, num_steps, likelihood, num_levels, image_shape, data_scale,
                         denoiser)
        if noise_schedule not in VDM_SCHEDULES:
            raise ModelError(f"unknown noise_schedule {noise_schedule!r}: use one of "
                             f"{VDM_SCHEDULES}")
        self.gamma_min, self.gamma_max = gamma_min, gamma_max
        self.noise_schedule = noise_schedule
        try:
            self.schedule = LearnedSchedule(gamma_min, gamma_max,
                                            learned_shape=noise_schedule == "learned")
        except ValueError as err:
            raise ModelError(str(err)) from err
        self.head, self.network = self.build_denoiser()

    # ----------------------------------------------------------------- LogSNRModel
    def denoise(self, z_t: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        """``x^ = E[x | z_t]`` in model space ``[..., D]`` at ``z_t: [..., D]`` and ``gamma``
        (a scalar or ``z_t``'s batch shape)."""
        time = (gamma - self.gamma_min) / (self.gamma_max - self.gamma_min)
        out = self.network(z_t, time)
        column = gamma.unsqueeze(-1) if gamma.dim() else gamma
        alpha, sigma = alpha_sigma(column)
        if self.head is None:  # noise prediction
            return (z_t - sigma * out) / alpha
        return self.head(z_t, out, alpha, sigma**2)

    def decoder(self, z_0: torch.Tensor, gamma_0: torch.Tensor) -> dist.TorchDistribution:
        """``p(x | z_0)``: batch ``z_0.shape[:-1]``, event ``[D]``, in data units."""
        alpha, _ = alpha_sigma(gamma_0)
        centre = z_0 / alpha
        if self.likelihood == "continuous":
            return self.gaussian_decoder(centre, torch.exp(0.5 * gamma_0))
        levels = level_values(self.num_levels, z_0)
        logits = -0.5 * (centre.unsqueeze(-1) - levels).pow(2) * torch.exp(-gamma_0)
        return dist.Categorical(logits=logits).to_event(1)

    # ----------------------------------------------------------------- Pyro programs
    def model(self, x: torch.Tensor | None = None, num_samples: int | None = None) -> torch.Tensor:
        """The reverse chain at ``T`` steps: ``z_T ~ N(0, I)``, ``z_{i-1} ~ p(z_{i-1} | z_i)``,
        ``x ~ p(x | z_0)``; ``x`` observed ``[N, D]`` or generated (``num_samples`` rows)."""
        return self.reverse_program(self.num_steps, x, num_samples)

    def gammas(self, num_steps: int) -> torch.Tensor:
        """``gamma(i / T)`` for ``i = 0..T``: ``[T + 1]``."""
        grid = torch.arange(num_steps + 1, device=self._one.device, dtype=self._one.dtype)
        return self.schedule(grid / num_steps)

    def reverse_program(self, num_steps: int, x: torch.Tensor | None = None,
                        num_samples: int | None = None) -> torch.Tensor:
        """:meth:`model` on a discretisation of ``num_steps`` steps (sites ``z_T`` .. ``z_0``)."""
        n = x.shape[0] if x is not None else (num_samples or 1)
        gammas = self.gammas(num_steps)
        with pyro.plate("data", n, device=self.device):
            prior = dist.Normal(self._zero, self._one).expand([n, self.num_dims]).to_event(1)
            z = pyro.sample(f"z_{num_steps}", prior)
            for i in range(num_steps, 0, -1):
                mean, log_var = q_posterior(self.denoise(z, gammas[i]), z, gammas[i - 1],
                                            gammas[i])
                z = pyro.sample(f"z_{i - 1}", diagonal_normal(mean, log_var))
            return pyro.sample(self.data_site, self.decoder(z, gammas[0]), obs=x)

    def guide(self, x: torch.Tensor) -> torch.Tensor:
        """The forward process in posterior order: ``z_T ~ q(z_1 | x)``, then ``z_{i-1} ~
        q(z_{i-1} | z_i, x)`` down to ``z_0``; ``x: [N, D]`` data."""
        x0 = self.to_model_space(x)
        T = self.num_steps
        gammas = self.gammas(T)
        with pyro.plate("data", x.shape[0], device=self.device):
            alpha, sigma = alpha_sigma(gammas[T])
            z = pyro.sample(f"z_{T}", dist.Normal(alpha * x0, sigma.expand_as(x0)).to_event(1))
            for i in range(T, 0, -1):
                mean, log_var = q_posterior(x0, z, gammas[i - 1], gammas[i])
                z = pyro.sample(f"z_{i - 1}", diagonal_normal(mean, log_var))
        return z

    # ----------------------------------------------------------------- the bound
    @torch.no_grad()
    def bound_terms(self, x: Any) -> BoundTerms:
        """The ``T``-step bound's terms of ``x: [N, D]`` in nats (no dropout), the guide's
        draws in the guide's order (so under one seed ``.total`` is ``-ppgen.elbo(model, None,
        x, analytic_kl=True)``): ``prior`` ``[N]`` and ``steps`` ``[N, T + 1]`` (column 0 the
        reconstruction ``-log p(x | z_0)``, column ``i`` the KL of the step from ``t = i / T``
        to ``(i - 1) / T``)."""
        x = self.check_data(x).to(self.device)
        with eval_mode(self):
            x0, T = self.to_model_space(x), self.num_steps
            gammas = self.gammas(T)
            alpha, sigma = alpha_sigma(gammas[T])
            z = alpha * x0 + sigma * torch.randn_like(x0)
            columns = []
            for i in range(T, 0, -1):
                columns.append(discrete_term(x0, self.denoise(z, gammas[i]), gammas[i - 1],
                                             gammas[i]))
                mean, log_var = q_posterior(x0, z, gammas[i - 1], gammas[i])
                z = mean + torch.exp(0.5 * log_var) * torch.randn_like(z)
            columns.append(-self.decoder(z, gammas[0]).log_prob(x))
            return BoundTerms(prior_kl(x0, gammas[T]), torch.stack(columns[::-1], dim=-1))

    @torch.no_grad()
    def continuous_bound(self, x: Any, num_times: int = 100) -> VDMTerms:
        """An unbiased estimate of the continuous-time bound (``T -> infinity``) of ``x: [N,
        D]``: ``num_times`` low-discrepancy times per datum (no dropout); ``.total`` ``[N]``
        in nats."""
        x = self.check_data(x).to(self.device)
        with eval_mode(self):
            return continuous_terms(self, x, num_times)

    # ----------------------------------------------------------------- sampling
    def generate(self, n: int, sampler: str = "ancestral", steps: int | None = None
                 ) -> torch.Tensor:
        """``n`` samples ``[n, D]`` (levels or reals) from ``steps`` steps (default ``T``):
        ``"ancestral"`` runs the program; ``"ddim"`` the deterministic map ``z_s = alpha_s x^ +
        sigma_s eps^`` (Song et al., 2021, ``eta = 0``) ending at the decoder's mode."""
        check_sampler(sampler)
        steps = self.num_steps if steps is None else steps
        if not (isinstance(steps, int) and steps >= 1):
            raise ModelError(f"steps must be a positive integer, got {steps!r}")
        with eval_mode(self):
            if sampler == "ddim":
                return self._ddim(n, steps)
            trace = poutine.trace(self.reverse_program).get_trace(steps, None, n)
            return trace.nodes[self.data_site]["value"]

    def _ddim(self, n: int, steps: int) -> torch.Tensor:
        gammas = self.gammas(steps)
        z = torch.randn(n, self.num_dims, device=self.device, dtype=self._one.dtype)
        for i in range(steps, 0, -1):
            x_hat = self.denoise(z, gammas[i])
            alpha_t, sigma_t = alpha_sigma(gammas[i])
            alpha_s, sigma_s = alpha_sigma(gammas[i - 1])
            z = alpha_s * x_hat + sigma_s * (z - alpha_t * x_hat) / sigma_t
        decoder = self.decoder(z, gammas[0])
        if self.likelihood == "continuous":
            return decoder.mean
        return decoder.base_dist.logits.argmax(-1)
