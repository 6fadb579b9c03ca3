"""Diffusion models as Pyro programs whose bound comes from the shared evaluation layer.

A diffusion model is a latent-variable model with ``T`` latent sites (Sohl-Dickstein et al.,
2015; Ho et al., 2020). The generative program is the reverse chain::

    x_T ~ N(0, I);   x_{t-1} ~ p(x_{t-1} | x_t), t = T..2;   x ~ p(x_0 | x_1)   (the data)

and the guide is the forward process written in posterior order::

    x_T ~ q(x_T | x_0);   x_{t-1} ~ q(x_{t-1} | x_t, x_0), t = T..2

so every latent site pairs two Gaussians with the same conditioning, and
``ppgen.elbo(model, None, x, analytic_kl=True)`` *is* the variational bound ``L_T + sum_t
L_{t-1} + L_0`` per datum, in nats, with no estimator of its own. Sites are named ``"x_t"`` with
the paper's ``t`` (``"x_1000"`` .. ``"x_1"``); the data site is ``"x"``. The same terms, written
directly, are :meth:`DDPM.bound_terms` (one network pass per step, no Pyro).

Data: integer levels ``0..K-1`` (the digits' 17) live at ``-1 + 2k / (K - 1)`` in model space
and the decoder is the discretised Gaussian over the levels (bins of half-width ``1 / (K - 1)``,
edge bins to infinity; :class:`~ppgen.diffusion.DiscretizedGaussian`); real data are divided by
``data_scale`` and decoded by a Gaussian density (back in data units).

Training minimises ``L_simple`` (``"diffusion-simple"``) or ``L_hybrid`` (``"diffusion-hybrid"``)
from ``ppgen.inference``, which read the model through
:class:`~ppgen.diffusion.DenoisingModel`. Sampling: ``sample(n)`` runs the program
(ancestral, all ``T`` steps); ``sample(n, sampler="ddim", steps=50, eta=0.0)`` runs DDIM on a
respaced process over the same network.

Class-conditional models (``num_classes=C``) model ``p(x | y)``: the labels ``y`` are a declared
conditioning input (``ppgen.fit(model, x, x_val, labels=y, val_labels=y_val)``,
``ppgen.elbo(model, None, x, y=labels)``, ``sample(n, y=3)``); their embedding enters the
denoiser, and during training each label is replaced by a null label with probability
``p_uncond``, so the same network also predicts unconditionally. Classifier-free guidance (Ho &
Salimans, 2022, arXiv:2207.12598) samples with ``sample(n, y=..., guidance=w)``: the prediction
``(1 + w) eps(x_t, y) - w eps(x_t, null)`` (``w = 0``: the conditional model; a learned
variance is the conditional one).

Example:
    >>> model = DDPM(4, num_steps=50, num_levels=5, denoiser={"width": 16, "blocks": 1})
    >>> model.sample(3, sampler="ddim", steps=10).shape
    torch.Size([3, 4])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch

from ppgen.diffusion import (
    DiscretizedGaussian,
    GaussianDiffusion,
    Prediction,
    Schedule,
    Variance,
    diagonal_normal,
    make_betas,
    reverse_step,
)
from ppgen.errors import ModelError
from ppgen.models.diffusion_base import DIFFUSION_LIKELIHOODS, SAMPLERS, DiffusionBase
from ppgen.models.diffusion_guidance import GuidedDenoising, check_classes
from ppgen.models.diffusion_likelihood import DiffusionLikelihood
from ppgen.models.diffusion_sampling import DiffusionSampling

__all__ = ["DDPM", "ImprovedDDPM", "SAMPLERS", "DIFFUSION_LIKELIHOODS"]


class DDPM(GuidedDenoising, DiffusionSampling, DiffusionLikelihood, DiffusionBase):
    """Denoising diffusion probabilistic model (Ho, Jain & Abbeel, 2020, arXiv:2006.11239).

    Noise prediction, the linear schedule with ``T = 1000``, a fixed reverse variance, trained
    on ``L_simple``. Every choice is an argument, so the same class also runs the variants the
    later papers compare (``prediction="v"``, ``schedule="cosine"``, ...).

    The class holds the process, the network and the Pyro programs; the rest comes in parts:
    the network's reading with labels and guidance (:mod:`~ppgen.models.diffusion_guidance`),
    the samplers (:mod:`~ppgen.models.diffusion_sampling`), the bound's report and the ODE
    likelihood (:mod:`~ppgen.models.diffusion_likelihood`), the data side shared with
    :class:`~ppgen.models.VDM` (:mod:`~ppgen.models.diffusion_base`).

    Args:
        num_dims: ``D``, the size of one flat datum.
        num_steps: ``T``.
        schedule: ``"linear"`` or ``"cosine"`` (:class:`~ppgen.diffusion.Schedule`).
        likelihood: ``"categorical"`` (integer levels ``0..K-1``) or ``"continuous"``.
        num_levels: ``K`` for levels (17 for the digits).
        image_shape: ``(H, W)`` or ``(C, H, W)`` of flat images (the U-Net denoiser's shape).
        data_scale: real data are divided by it to enter model space.
        prediction: ``"epsilon"``, ``"x0"`` or ``"v"`` (:class:`~ppgen.diffusion.Prediction`).
        variance: ``"fixed-large"``, ``"fixed-small"`` or ``"learned-range"``
            (:class:`~ppgen.diffusion.Variance`).
        denoiser: options of the network (:func:`~ppgen.models.denoisers.build_denoiser`,
            e.g. ``{"kind": "unet", "channels": 32}``); default a U-Net for images, an MLP
            otherwise. ``"head"``: how ``x_0`` is read from it: ``"levels"`` (the default for
            levels data: a softmax over the levels around the exact independent-pixel
            posterior, :class:`~ppgen.models.denoisers.LevelPosterior`; the output is still
            the ``prediction``, e.g. the noise) or ``"direct"`` (the papers' network; on the
            digits its bound is about 30 nats worse, the first steps' rounding unlearnt).
        num_classes: ``C`` for a class-conditional model ``p(x | y)`` (labels ``0..C-1``),
            else ``None``.
        p_uncond: probability that a training label is replaced by the null label (the
            unconditional model that classifier-free guidance needs; 0.1 as in Ho & Salimans).

    Example:
        >>> import ppgen
        >>> model = DDPM(4, num_steps=20, num_levels=5, denoiser={"width": 16, "blocks": 1})
        >>> x = torch.randint(0, 5, (3, 4))
        >>> ppgen.elbo(model, None, x, analytic_kl=True).shape  # the bound, nats per datum
        torch.Size([3])
    """

    default_objective = "diffusion-simple"
    #: the digits recipe (benchmarks/diffusion.py); the weight average matters: validation
    #: scores it, so its half-life (~140 steps at 0.995) must be short against the run
    fit_defaults: ClassVar[dict[str, Any]] = {
        "optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 100,
        "epochs": 300, "patience": 60, "ema": 0.995, "warmup_steps": 200,
        "lr_schedule": "cosine", "max_grad_norm": 1.0,
    }
    sample_options: ClassVar[dict[str, Any]] = {
        "sampler": "ancestral", "steps": None, "eta": 0.0, "spacing": "trailing",
        "guidance": 0.0,
    }

    def __init__(
        self,
        num_dims: int,
        num_steps: int = 1000,
        schedule: str = "linear",
        likelihood: str = "categorical",
        num_levels: int | None = None,
        image_shape: Sequence[int] | None = None,
        data_scale: float = 1.0,
        prediction: str = "epsilon",
        variance: str = "fixed-large",
        denoiser: dict[str, Any] | None = None,
        num_classes: int | None = None,
        p_uncond: float = 0.1,
    ) -> None:
        super().__init__(num_dims, num_steps, likelihood, num_levels, image_shape, data_scale,
                         denoiser)
        check_classes(num_classes, p_uncond)
        self.num_classes, self.p_uncond = num_classes, p_uncond
        self.schedule, self.prediction, self.variance = schedule, prediction, variance
        self.process = _process(schedule, num_steps, prediction, variance,
                                clip=likelihood == "categorical")
        extra = num_dims * (self.process.output_multiplier - 1)
        self.head, self.network = self.build_denoiser(extra, num_classes)

    def decoder(self, mean: torch.Tensor, log_scale: torch.Tensor) -> dist.TorchDistribution:
        """``p(x_0 | x_1)``: batch ``mean.shape[:-1]``, event ``[D]``, in data units."""
        scale = torch.exp(log_scale).expand_as(mean)
        if self.likelihood == "categorical":
            return DiscretizedGaussian(mean, scale, self.num_levels).to_event(1)
        return self.gaussian_decoder(mean, scale)

    # ----------------------------------------------------------------- Pyro programs
    def model(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None,
              num_samples: int | None = None) -> torch.Tensor:
        """The reverse chain ``x_T ~ N(0, I)``, ``x_{t-1} ~ p(x_{t-1} | x_t)``, ``x ~ p(x_0 |
        x_1)``: ``x`` observed ``[N, D]`` or generated (``num_samples`` rows); ``y: [N]``
        labels of a class-conditional model (generating without them: the classes in turn)."""
        return self.reverse_program(self.process, x, num_samples, y)

    def reverse_program(self, process: GaussianDiffusion, x: torch.Tensor | None = None,
                        num_samples: int | None = None, y: torch.Tensor | None = None,
                        guidance: float = 0.0) -> torch.Tensor:
        """:meth:`model` on ``process`` (the model's own or a respaced one; latent sites are
        named by the step number of ``process``), with classifier-free ``guidance``."""
        y = self.conditions.in_program({"y": y}, x, num_samples, self.device).get("y")
        n = x.shape[0] if x is not None else (len(y) if y is not None else (num_samples or 1))
        T = process.num_timesteps
        cond = {"y": y, "guidance": guidance}
        with pyro.plate("data", n, device=self.device):
            prior = dist.Normal(self._zero, self._one).expand([n, self.num_dims]).to_event(1)
            x_t = pyro.sample(f"x_{T}", prior)
            for s in range(T - 1, 0, -1):
                step = reverse_step(self, x_t, s, process, **cond)
                x_t = pyro.sample(f"x_{s}", dist.Normal(step.mean, step.scale).to_event(1))
            step = reverse_step(self, x_t, 0, process, **cond)
            decoder = self.decoder(step.mean, 0.5 * step.log_variance)
            return pyro.sample(self.data_site, decoder, obs=x)

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The forward process in posterior order: ``x_T ~ q(x_T | x_0)``, then ``x_{t-1} ~
        q(x_{t-1} | x_t, x_0)`` down to ``x_1``; ``x: [N, D]`` data (the labels ``y`` of a
        class-conditional model do not enter the forward process)."""
        x0 = self.to_model_space(x)
        T = self.process.num_timesteps
        with pyro.plate("data", x.shape[0], device=self.device):
            mean, _, log_var = self.process.q_mean_variance(x0, T - 1)
            x_t = pyro.sample(f"x_{T}", diagonal_normal(mean, log_var))
            for s in range(T - 1, 0, -1):
                mean, _, log_var = self.process.q_posterior(x0, x_t, s)
                x_t = pyro.sample(f"x_{s}", diagonal_normal(mean, log_var))
        return x_t


class ImprovedDDPM(DDPM):
    """Improved DDPM (Nichol & Dhariwal, 2021, "Improved Denoising Diffusion Probabilistic
    Models", arXiv:2102.09672): the cosine schedule, the reverse variance learned as an
    interpolation between ``beta_t`` and ``beta~_t`` in the log domain (eq. 15), trained on
    ``L_hybrid = L_simple + 0.001 L_vlb`` with the stop-gradient on the mean in ``L_vlb``.

    The arguments are :class:`DDPM`'s with those defaults.
    """

    default_objective = "diffusion-hybrid"

    def __init__(
        self,
        num_dims: int,
        num_steps: int = 1000,
        schedule: str = "cosine",
        likelihood: str = "categorical",
        num_levels: int | None = None,
        image_shape: Sequence[int] | None = None,
        data_scale: float = 1.0,
        prediction: str = "epsilon",
        variance: str = "learned-range",
        denoiser: dict[str, Any] | None = None,
        num_classes: int | None = None,
        p_uncond: float = 0.1,
    ) -> None:
        super().__init__(num_dims, num_steps, schedule, likelihood, num_levels, image_shape,
                         data_scale, prediction, variance, denoiser, num_classes, p_uncond)


def _process(schedule: str, T: int, prediction: str, variance: str,
             clip: bool) -> GaussianDiffusion:
    """The model's process, refusing unknown names with the valid ones."""
    for value, enum in ((schedule, Schedule), (prediction, Prediction), (variance, Variance)):
        if value not in {e.value for e in enum}:
            raise ModelError(f"unknown {enum.__name__.lower()} {value!r}: use one of "
                             f"{[e.value for e in enum]}")
    return GaussianDiffusion(make_betas(schedule, T), prediction, variance, clip=clip)
