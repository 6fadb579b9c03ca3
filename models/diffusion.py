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

import functools
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine

from ppgen.conditions import Condition, Conditions
from ppgen.diffusion import (
    BoundTerms,
    DiscretizedGaussian,
    GaussianDiffusion,
    Prediction,
    Schedule,
    Variance,
    bound_per_dim,
    bound_terms,
    ddim_sample,
    diagonal_normal,
    make_betas,
    ode_log_likelihood,
    reverse_step,
    space_timesteps,
)
from ppgen.errors import ModelError
from ppgen.models.autoregressive import eval_mode
from ppgen.models.diffusion_base import (
    DIFFUSION_LIKELIHOODS,
    SAMPLERS,
    DiffusionBase,
    check_sampler,
)

__all__ = ["DDPM", "ImprovedDDPM", "SAMPLERS", "DIFFUSION_LIKELIHOODS"]


class DDPM(DiffusionBase):
    """Denoising diffusion probabilistic model (Ho, Jain & Abbeel, 2020, arXiv:2006.11239).

    Noise prediction, the linear schedule with ``T = 1000``, a fixed reverse variance, trained
    on ``L_simple``. Every choice is an argument, so the same class also runs the variants the
    later papers compare (``prediction="v"``, ``schedule="cosine"``, ...).

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
        _check_classes(num_classes, p_uncond)
        self.num_classes, self.p_uncond = num_classes, p_uncond
        self.schedule, self.prediction, self.variance = schedule, prediction, variance
        self.process = _process(schedule, num_steps, prediction, variance,
                                clip=likelihood == "categorical")
        extra = num_dims * (self.process.output_multiplier - 1)
        self.head, self.network = self.build_denoiser(extra, num_classes)

    @property
    def conditions(self) -> Conditions:
        """``y``, class labels ``0..num_classes-1``, for a class-conditional model; else none."""
        declared = [] if self.num_classes is None else [Condition.classes("y", self.num_classes)]
        return Conditions(declared, type(self).__name__)

    # ----------------------------------------------------------------- DenoisingModel
    def denoise(self, x_t: torch.Tensor, s: int | torch.Tensor,
                process: GaussianDiffusion | None = None, y: torch.Tensor | None = None,
                guidance: float = 0.0) -> torch.Tensor:
        """The network's output ``[..., D]`` (``[..., 2 D]`` with a learned variance) at
        ``x_t: [..., D]`` and step index ``s`` of ``process`` (default: the model's).

        Args:
            y: ``long`` labels broadcastable to ``x_t``'s batch shape (class-conditional
                models; in training mode each is dropped to the null label with probability
                ``p_uncond``).
            guidance: classifier-free guidance scale ``w``: the prediction is ``(1 + w)
                out(y) - w out(null)`` (one network pass on both halves).
        """
        process = self.process if process is None else process
        if guidance != 0:
            return self._guided(x_t, s, process, y, guidance)
        if self.training and y is not None and self.p_uncond > 0:
            drop = torch.rand(y.shape, device=y.device) < self.p_uncond
            y = torch.where(drop, self.num_classes, y)
        return self._output(x_t, s, process, y)

    def _guided(self, x_t: torch.Tensor, s: int | torch.Tensor, process: GaussianDiffusion,
                y: torch.Tensor | None, w: float) -> torch.Tensor:
        """The guided output: the conditional and the null-label pass in one batch."""
        if self.num_classes is None or y is None:
            raise ModelError(f"classifier-free guidance needs a class-conditional model and "
                             f"labels; this {type(self).__name__} has num_classes="
                             f"{self.num_classes}: sample with guidance=0")
        batch = x_t.shape[:-1]
        y = y.expand(batch)
        labels = torch.cat([y, torch.full_like(y, self.num_classes)])
        if isinstance(s, torch.Tensor):
            s = torch.cat([s.expand(batch), s.expand(batch)])
        cond, uncond = self._output(torch.cat([x_t, x_t]), s, process, labels).chunk(2)
        D = self.num_dims
        mixed = (1 + w) * cond[..., :D] - w * uncond[..., :D]
        return torch.cat([mixed, cond[..., D:]], dim=-1)

    def _output(self, x_t: torch.Tensor, s: int | torch.Tensor, process: GaussianDiffusion,
                y: torch.Tensor | None) -> torch.Tensor:
        """The network (and the levels head) at ``x_t``, step ``s``, labels ``y``."""
        if self.num_classes is None:
            out = self.network(x_t, process.times[s])
        else:
            out = self.network(x_t, process.times[s], y)
        if self.head is None:
            return out
        split = self.num_dims * self.num_levels
        x0 = self.head(x_t, out[..., :split], process.coef(process.sqrt_alphas_cumprod, s),
                       process.coef(process.one_minus_alphas_cumprod, s))
        eps = process.predict_eps_from_x0(x_t, s, x0)
        return torch.cat([process.training_target(x0, eps, s), out[..., split:]], dim=-1)

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

    # ----------------------------------------------------------------- the bound
    @torch.no_grad()
    def bound_terms(self, x: Any, y: Any = None) -> BoundTerms:
        """The bound's terms of data ``x: [N, D]`` in nats (no dropout): ``prior`` ``[N]`` and
        ``steps`` ``[N, T]`` (column ``t - 1`` is ``L_{t-1}``; column 0 the decoder's
        ``-log p(x_0 | x_1)``); ``.total`` is the bound. One network pass per step. ``y``:
        the labels ``[N]`` of a class-conditional model."""
        x, conditions = self.scoring_inputs(x, y)
        with eval_mode(self):
            return bound_terms(self, x, **conditions)

    @torch.no_grad()
    def log_prob_per_dim(self, x: Any, y: Any = None) -> torch.Tensor:
        """Minus the bound's share of each dimension ``[N, D]`` (nats; they sum to ``-bound``
        for one draw of the forward process): the per-pixel explanation of an anomaly score
        (:func:`~ppgen.diffusion.bound_per_dim`), where the decoder and every step's Gaussian
        factorise over pixels."""
        x, conditions = self.scoring_inputs(x, y)
        with eval_mode(self):
            return -bound_per_dim(self, x, **conditions)

    def bound_decomposition(self, x: torch.Tensor, y: torch.Tensor | None = None
                            ) -> dict[str, torch.Tensor]:
        """The bound of data ``x: [N, D]`` split as the papers report it: ``{"prior": L_T,
        "steps": sum_{t >= 2} L_{t-1}, "decoder": L_0}``, each ``[N]`` nats (one pass per
        step; read by ``ppgen.evaluate.nll_report`` and ``ppgen evaluate``)."""
        terms = self.bound_terms(x, y)
        return {"prior": terms.prior, "steps": terms.steps[:, 1:].sum(-1),
                "decoder": terms.steps[:, 0]}

    # ----------------------------------------------------------------- the ODE likelihood
    @torch.no_grad()
    def ode_log_likelihood(self, x: Any, y: Any = None, steps: int = 100,
                           batch_size: int | None = None) -> torch.Tensor:
        """``log p(x)`` ``[N]`` (nats, data units) of real data under the model's
        probability-flow ODE (Song et al., 2021; :func:`~ppgen.diffusion.ode_log_likelihood`):
        an exact density of the deterministic flow the network defines (up to the RK4
        integration error), not a bound; ``D`` backward passes per network call, so meant for
        small ``D``.

        Args:
            x: ``[N, D]`` real data.
            y: ``[N]`` labels of a class-conditional model.
            steps: RK4 steps (four network calls each).
            batch_size: rows per chunk (default: all at once).

        Raises:
            ModelError: a model of levels data (its likelihood is the discrete bound,
                ``ppgen.elbo``), or ``steps < 1``.
        """
        if self.likelihood != "continuous":
            raise ModelError("the probability-flow likelihood is a density of real data; this "
                             f"{type(self).__name__} models levels: use the bound "
                             "ppgen.elbo(model, None, x, analytic_kl=True)")
        if steps < 1:
            raise ModelError(f"steps must be >= 1, got {steps}")
        x, conditions = self.scoring_inputs(x, y)
        x0, rows = self.to_model_space(x), batch_size or x.shape[0]
        parts = []
        with eval_mode(self):
            for start in range(0, x0.shape[0], rows):
                y_rows = conditions.get("y")
                y_rows = None if y_rows is None else y_rows[start:start + rows]
                eps = functools.partial(self.continuous_epsilon, y=y_rows)
                parts.append(ode_log_likelihood(eps, x0[start:start + rows], self.process,
                                                steps))
        return torch.cat(parts) - self.num_dims * math.log(self.data_scale)

    def continuous_epsilon(self, x_t: torch.Tensor, time: torch.Tensor, log_snr: torch.Tensor,
                           y: torch.Tensor | None = None) -> torch.Tensor:
        """The noise prediction ``[N, D]`` at a continuous ``time`` with log-SNR ``log_snr``
        (:data:`~ppgen.diffusion.EpsilonFn`): the network's prediction converted with
        ``alpha^2 = sigmoid(log_snr)``, ``sigma^2 = sigmoid(-log_snr)``."""
        args = (x_t, time) if self.num_classes is None else (x_t, time, y)
        out = self.network(*args)[..., : self.num_dims]
        alpha, sigma = torch.sigmoid(log_snr).sqrt(), torch.sigmoid(-log_snr).sqrt()
        if self.process.prediction is Prediction.EPSILON:
            return out
        if self.process.prediction is Prediction.X0:
            return (x_t - alpha * out) / sigma
        return alpha * out + sigma * x_t

    # ----------------------------------------------------------------- sampling
    def sampling_process(self, steps: int | None = None,
                         spacing: str | Sequence[int] = "trailing") -> GaussianDiffusion:
        """The model's process, or its respacing to ``steps`` steps (``spacing``: see
        :func:`~ppgen.diffusion.space_timesteps`)."""
        if steps is None and isinstance(spacing, str) and not spacing.startswith("ddim"):
            return self.process
        try:
            kept = space_timesteps(self.num_steps, steps, spacing)
        except ValueError as err:
            raise ModelError(str(err)) from err
        return self.process if len(kept) == self.num_steps else self.process.respace(kept)

    def generate(self, n: int, sampler: str = "ancestral", steps: int | None = None,
                 eta: float = 0.0, spacing: str = "trailing", guidance: float = 0.0,
                 y: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` samples ``[n, D]`` (levels or reals): ``"ancestral"`` runs the program on the
        (respaced) process; ``"ddim"`` runs DDIM with ``eta`` (see :mod:`ppgen.diffusion`);
        ``y: [n]`` labels and the ``guidance`` scale of a class-conditional model."""
        check_sampler(sampler)
        if eta < 0:
            raise ModelError(f"eta must be >= 0, got {eta}")
        if guidance != 0 and self.num_classes is None:
            raise ModelError(f"guidance={guidance} needs a class-conditional model (built with "
                             "num_classes=C and trained with labels): use guidance=0")
        process = self.sampling_process(steps, spacing)
        with eval_mode(self):
            if sampler == "ddim":
                x_T = torch.randn(n, self.num_dims, device=self.device, dtype=self._one.dtype)
                return ddim_sample(self, process, x_T, eta, y=y, guidance=guidance)
            trace = poutine.trace(self.reverse_program).get_trace(process, None, n, y, guidance)
            return trace.nodes[self.data_site]["value"]


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


def _check_classes(num_classes: int | None, p_uncond: float) -> None:
    """Refuse a class count or label-dropout rate that cannot build a conditional model."""
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 2):
        raise ModelError(f"num_classes must be None or an integer >= 2, got {num_classes!r}")
    if not 0.0 <= p_uncond < 1.0:
        raise ModelError(f"p_uncond must lie in [0, 1) (0.1 is usual), got {p_uncond}")
