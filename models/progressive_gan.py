"""Progressive GAN: a generator and a critic that grow from 2x2 to the data's resolution.

Training starts at the smallest resolution (the smaller side 2) and doubles it stage by stage;
each new stage *fades in*: for ``fade_steps`` steps the generator's output is
``lerp(up(lower-resolution output), new block's output, alpha)`` and the critic's features
``lerp(lower-resolution path on the pooled input, new block, alpha)``, ``alpha`` rising linearly
from 0 to 1, and the critic sees the real images blended the same way
(:meth:`ProgressiveGAN.data_for_critic`). The networks use the equalised learning rate, pixel
normalisation in the generator and the minibatch standard deviation in the critic
(:mod:`ppgen.models.progressive_networks`); the loss is WGAN-GP with the drift penalty
``ε E D(x)²`` (``ppgen.inference.Adversarial(drift=ε)``), one critic step per generator step.

The schedule is keyed on the engine's global step (``grow_to(step)``, called before every step
and on resume): stage ``k`` starts at step ``k * stage_steps``, fades in over its first
``fade_steps`` steps, and the last stage trains to the end, so the whole growth is one engine
run that resumes exactly at any stage or fade point. Samples are full-size: before the last
stage the current resolution's images are upsampled (nearest). The model's state holds the step
it is grown to (``grown_step``), so a model saved at any stage loads as it was.

Paper: Karras, Aila, Laine & Lehtinen, 2018, "Progressive Growing of GANs for Improved Quality,
Stability, and Variation" (arXiv:1710.10196).

Example:
    >>> gan = ProgressiveGAN((8, 8), latent_dim=8, channels=8, stage_steps=10, fade_steps=5)
    >>> gan.grow_to(12), gan.stage, gan.alpha     # stage 1 (4x4) fading in
    (True, 1, 0.4)
    >>> gan.sample(3).shape                       # upsampled to 8x8
    torch.Size([3, 64])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ppgen.errors import ModelError
from ppgen.models.gan import GANBase
from ppgen.models.progressive_networks import GrowingCritic, GrowingGenerator, progressive_shape
from ppgen.protocol import GenerativeModel

if TYPE_CHECKING:
    from ppgen.data import DataInfo

__all__ = ["ProgressiveGAN", "GrowthSchedule"]


@dataclass(frozen=True)
class GrowthSchedule:
    """Where the growth stands at a global step.

    Attributes:
        num_stages: stages in all (the last trains to the end).
        stage_steps: steps of each stage but the last (fade included).
        fade_steps: steps of the fade-in at the start of every stage but the first.
    """

    num_stages: int
    stage_steps: int
    fade_steps: int

    def at(self, step: int) -> tuple[int, bool, float]:
        """``(stage, fading, alpha)`` at global step ``step`` (``alpha = 1`` when not
        fading; ``(step - start) / fade_steps`` while fading, 0 on the fade's first step)."""
        stage = min(step // self.stage_steps, self.num_stages - 1)
        into = step - stage * self.stage_steps
        if stage == 0 or into >= self.fade_steps:
            return stage, False, 1.0
        return stage, True, into / self.fade_steps

    def start(self, stage: int) -> int:
        """The first step of ``stage``."""
        return stage * self.stage_steps

    @property
    def grown(self) -> int:
        """The first step at which the network is fully grown (the last fade done)."""
        return self.start(self.num_stages - 1) + (self.fade_steps if self.num_stages > 1 else 0)


class ProgressiveGAN(GANBase):
    """A Progressive GAN for small images with power-of-two sides, flat ``[N, C*H*W]``.

    Paper: Karras et al., 2018 (arXiv:1710.10196). Departures for small images: the first stage
    is 2x2 (the paper's is 4x4), ``channels`` maps at every resolution, and the output has the
    data's activation (sigmoid for the dequantised digits), applied after the fade's blend.

    Args:
        image_shape: ``(C, H, W)`` or ``(H, W)``, sides powers of two.
        latent_dim: ``L``, the size of the noise ``z``.
        channels: feature maps at every resolution.
        stage_steps: engine steps of each stage but the last (its fade included).
        fade_steps: engine steps of each fade-in (at most ``stage_steps``; 0: no fade).
        drift: ``ε`` of the drift penalty ``ε E D(x)²`` on the critic's scores of data.
        output: ``"sigmoid"`` (images in ``[0, 1]``), ``"tanh"`` or ``"identity"``.
        num_levels: ``K`` for integer images dequantised to ``[0, 1)``.
        n_critic: critic steps per generator step (the paper: 1).
        features: the validation metric's feature space (``"digits"`` for the digits).

    Example:
        >>> gan = ProgressiveGAN((4, 4), latent_dim=4, channels=4, stage_steps=3, fade_steps=2)
        >>> [gan.schedule.at(s)[::2] for s in (0, 3, 4, 5)]
        [(0, 1.0), (1, 0.0), (1, 0.5), (1, 1.0)]
    """

    weight_average = 0.99

    def __init__(
        self,
        image_shape: Sequence[int],
        latent_dim: int = 32,
        channels: int = 32,
        stage_steps: int = 320,
        fade_steps: int = 160,
        drift: float = 0.001,
        output: str = "sigmoid",
        num_levels: int | None = None,
        n_critic: int | None = 1,
        features: str | None = None,
    ) -> None:
        super().__init__()
        self._setup(latent_dim, output, num_levels, "wgan-gp", n_critic, 0.0, features)
        self.image_shape = tuple(image_shape)
        shape, stages = progressive_shape(self.image_shape)
        if not (isinstance(stage_steps, int) and isinstance(fade_steps, int)
                and stage_steps >= 1 and 0 <= fade_steps <= stage_steps):
            raise ModelError(f"need integers stage_steps >= 1 and 0 <= fade_steps <= "
                             f"stage_steps; got {stage_steps}, {fade_steps}")
        if drift < 0:
            raise ModelError(f"drift must be >= 0, got {drift}")
        self.channels, self.stage_steps, self.fade_steps = channels, stage_steps, fade_steps
        self.drift = drift
        self.schedule = GrowthSchedule(stages, stage_steps, fade_steps)
        self.generator = GrowingGenerator(shape, latent_dim, channels, output)
        self.critic = GrowingCritic(shape, channels)
        self.register_buffer("grown_step", torch.zeros((), dtype=torch.long))

    # ----------------------------------------------------------------- growth
    @property
    def stage(self) -> int:
        """The current stage (0: the smallest resolution)."""
        return self.generator.stage

    @property
    def alpha(self) -> float:
        """The fade-in weight of the current stage (1 when not fading)."""
        return self.generator.alpha

    @property
    def resolution(self) -> tuple[int, int]:
        """``(H_k, W_k)`` of the current stage."""
        return self.generator.resolution(self.stage)

    def grow_to(self, step: int) -> bool:
        """Bring both networks to their stage and fade at global step ``step`` (new layers
        draw their weights from the global RNG); ``True`` when layers were added or removed
        (a stage began, or its fade ended and the lower stage's RGB layers went)."""
        stage, fading, alpha = self.schedule.at(step)
        changed = self.generator.set_stage(stage, fading)
        changed = self.critic.set_stage(stage, fading) or changed
        self.generator.alpha = self.critic.alpha = alpha
        self.grown_step.fill_(step)
        return changed

    def stage_ends(self, steps_per_epoch: int) -> list[int]:
        """The last epoch of each stage but the last (``steps_per_epoch`` steps an epoch):
        after ``ppgen.fit(..., epochs=e)`` for each ``e``, the model is at the end of that
        stage. With exact resume (``out_dir=..., resume=True``), fitting to each in turn and
        drawing samples between is one uninterrupted run with snapshots (the stage figure of
        ``examples/progressive_gan_digits.py``)."""
        return [self.schedule.start(k + 1) // steps_per_epoch
                for k in range(self.schedule.num_stages - 1)]

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True,
                        assign: bool = False) -> Any:
        """Grow to the saved ``grown_step`` first, then load: a model saved at any stage loads
        as it was."""
        step = state_dict.get("grown_step")
        if step is not None:
            self.grow_to(int(step))
        return super().load_state_dict(state_dict, strict, assign)

    def data_for_critic(self, x: torch.Tensor) -> torch.Tensor:
        """Data ``[N, C*H*W]`` as the critic sees them: while stage ``k`` fades in,
        ``lerp(up(pool(x_k)), x_k, alpha)`` of the images ``x_k`` pooled to stage ``k``
        (upsampled back to full size; the critic pools them again), else ``x`` itself."""
        if not self.critic.fading:
            return x
        images = self.critic.pooled(x, self.stage)
        low = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(images, 2),
                                              scale_factor=2, mode="nearest")
        blended = torch.lerp(low, images, self.alpha)
        return self.generator._full(blended).reshape(x.shape)

    # ----------------------------------------------------------------- the recipe
    @property
    def objective_defaults(self) -> dict[str, Any]:  # type: ignore[override]
        """WGAN-GP (λ = 10) with the drift penalty, ``n_critic`` critic steps per generator
        step, and the validation metric's feature space."""
        return {**super().objective_defaults, "drift": self.drift}

    @property
    def fit_defaults(self) -> dict[str, Any]:  # type: ignore[override]
        """Adam with the paper's settings (lr 1e-3, betas (0, 0.99)) for both players, the
        generator's weight average (0.99), batches of 64 and enough epochs on the digits
        (1,000 rows: 16 steps an epoch) to grow fully and train the last stage as long again;
        no early stopping, which would stop while the low stages plateau."""
        group = {"name": "adam", "lr": 1e-3, "betas": [0.0, 0.99]}
        grown = self.schedule.grown
        epochs = max(1, math.ceil(2 * grown / 16))
        return {"optimizer": {"generator": dict(group), "critic": dict(group)},
                "batch_size": 64, "epochs": epochs, "patience": None,
                "ema": self.weight_average}

    # ----------------------------------------------------------------- shapes and data
    @property
    def event_shape(self) -> torch.Size:
        return torch.Size([math.prod(self.image_shape)])

    @classmethod
    def for_data(cls, info: DataInfo, **kwargs: Any) -> GenerativeModel:
        """A Progressive GAN for the flat images described by ``info`` (``info.image_shape``
        with power-of-two sides)."""
        if not info.image_shape or len(info.event_shape) != 1:
            raise ModelError("ProgressiveGAN models flat images [N, C*H*W] with "
                             "DataInfo.image_shape set; these data have event shape "
                             f"{tuple(info.event_shape)}")
        return cls(tuple(info.image_shape), **{**cls._output_for(info), **kwargs})
