"""How a DDPM reads its network: the levels head, class labels, label dropout and
classifier-free guidance (Ho & Salimans, 2022, "Classifier-Free Diffusion Guidance",
arXiv:2207.12598).

A class-conditional model (``num_classes=C``) models ``p(x | y)``: the labels ``y`` are a declared
conditioning input whose embedding enters the denoiser; during training each label is replaced by
the null label ``C`` with probability ``p_uncond``, so the same network also predicts
unconditionally. Guidance with scale ``w`` mixes the two predictions as ``(1 + w) out(x_t, y) - w
out(x_t, null)`` (``w = 0``: the conditional model; a learned variance is the conditional one).

:class:`GuidedDenoising` is the part of :class:`~ppgen.models.DDPM` that says this; it reads the
model's ``network``, ``head`` (``None``: a direct network), ``process``, ``num_dims``,
``num_levels``, ``num_classes`` and ``p_uncond``.
"""

from __future__ import annotations

import torch
from torch import nn

from ppgen.conditions import Condition, Conditions
from ppgen.diffusion import GaussianDiffusion
from ppgen.errors import ModelError
from ppgen.models.denoisers import LevelPosterior

__all__ = ["GuidedDenoising", "check_classes"]


class GuidedDenoising:
    """The ``denoise`` word of :class:`~ppgen.diffusion.DenoisingModel` with class labels and
    classifier-free guidance (a mixin of :class:`~ppgen.models.DDPM`)."""

    network: nn.Module
    head: LevelPosterior | None
    process: GaussianDiffusion
    num_dims: int
    num_levels: int | None
    num_classes: int | None
    p_uncond: float
    training: bool

    @property
    def conditions(self) -> Conditions:
        """``y``, class labels ``0..num_classes-1``, for a class-conditional model; else none."""
        declared = [] if self.num_classes is None else [Condition.classes("y", self.num_classes)]
        return Conditions(declared, type(self).__name__)

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


def check_classes(num_classes: int | None, p_uncond: float) -> None:
    """Refuse a class count or label-dropout rate that cannot build a conditional model."""
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 2):
        raise ModelError(f"num_classes must be None or an integer >= 2, got {num_classes!r}")
    if not 0.0 <= p_uncond < 1.0:
        raise ModelError(f"p_uncond must lie in [0, 1) (0.1 is usual), got {p_uncond}")
