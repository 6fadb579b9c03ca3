"""A Progressive GAN on the 8x8 digits: grow 2x2 -> 4x4 -> 8x8, draw a row of samples at the
end of each stage, and score the grown model against the test digits.

The growth is one engine run: the model's schedule (``stage_steps``, ``fade_steps``) is keyed on
the global step, and a run resumes exactly at any stage or fade point. So the figure trains to
the end of each stage (``model.stage_ends``), draws, and resumes — the same run as one call to
``ppgen.fit`` with snapshots between (no validation here: the weights drawn are the generator's
running average at that point). Samples of the early stages are upsampled to 8x8.

Run: ``python examples/progressive_gan_digits.py [OUT_DIR]`` (a few CPU minutes; writes
``OUT_DIR/stages.png``, default ``progressive-gan-digits``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

import ppgen
from ppgen import plots
from ppgen.data import load_digits
from ppgen.metrics import sample_metrics
from ppgen.models import ProgressiveGAN

STEPS_PER_EPOCH = 16  # 1,000 training digits in batches of 64 (the recipe's)


def grow(out: Path, seed: int = 0, epochs: int | None = None, **options) -> tuple[
        ProgressiveGAN, dict[str, torch.Tensor]]:
    """Train with the recipe (``fit_defaults``), stage by stage; 10 draws at each stage's end."""
    digits = load_digits("continuous", seed=seed)
    torch.manual_seed(seed)  # the initial weights
    model = ProgressiveGAN.for_data(digits.info, **options)
    total = epochs or model.fit_defaults["epochs"]
    rows = {}
    for i, epoch in enumerate([*model.stage_ends(STEPS_PER_EPOCH), total]):
        ppgen.fit(model, digits.train, epochs=epoch, seed=seed, out_dir=out / "run",
                  resume=i > 0, progress=False)
        h, w = model.resolution
        torch.manual_seed(seed + 1)  # the same noise in every row
        rows[f"{h}x{w}"] = model.sample(10)
    return model, rows


def main(out: str = "progressive-gan-digits") -> None:
    model, rows = grow(Path(out))
    plots.save(plots.stage_samples(rows, (8, 8), vmax=1.0, title="Progressive GAN, per stage"),
               Path(out) / "stages.png")
    digits = load_digits("continuous")
    torch.manual_seed(1)
    fake = sample_metrics(digits.test, model.sample(447), features="digits")
    real = sample_metrics(digits.test, digits.val, features="digits")
    for key in ("fd", "kid", "precision", "recall", "coverage"):
        print(f"{key:>10}  samples {fake[key]:.3f}   real floor {real[key]:.3f}")
    print(f"wrote {Path(out) / 'stages.png'}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
