"""How a DDPM draws samples: the ancestral program or DDIM (Song, Meng & Ermon, 2021,
arXiv:2010.02502), on the model's process or a respacing of it (fewer steps over the same
network).

``sample(n)`` runs the model's reverse program with every step (ancestral);
``sample(n, sampler="ddim", steps=50, eta=0.0)`` runs DDIM on the process respaced to 50 steps;
``y=`` and ``guidance=`` reach the network of a class-conditional model
(:mod:`~ppgen.models.diffusion_guidance`). :class:`DiffusionSampling` is that part of
:class:`~ppgen.models.DDPM`; it reads the model's ``process``, ``num_steps``, ``num_dims``,
``num_classes`` and its ``reverse_program``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from pyro import poutine

from ppgen.diffusion import GaussianDiffusion, ddim_sample, space_timesteps
from ppgen.errors import ModelError
from ppgen.models.autoregressive import eval_mode
from ppgen.models.diffusion_base import check_sampler

__all__ = ["DiffusionSampling"]


class DiffusionSampling:
    """``generate`` (what ``sample`` runs) and the respaced processes it samples on (a mixin of
    :class:`~ppgen.models.DDPM`)."""

    process: GaussianDiffusion
    num_steps: int
    num_dims: int
    num_classes: int | None
    data_site: str
    device: torch.device
    _one: torch.Tensor
    reverse_program: Callable[..., torch.Tensor]

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
