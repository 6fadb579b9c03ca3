"""A DCGAN on the 8x8 digits: train it, draw digits, and compare samples with real ones.

The digits' 17 pixel levels are dequantised to ``[0, 1)`` (``load_digits("continuous")``), the
representation a GAN with a sigmoid output models; drawn images are mapped back to the 17 levels
for display (``sample(n, quantized=True)``). A GAN has no likelihood, so it is judged by its
samples: MMD, Fréchet distance, KID, precision/recall and density/coverage against the test
split (``ppgen.metrics``), beside the same numbers for real validation images (the floor any
model can reach with this many images). The metrics are computed on raw pixels here.

Run: ``python examples/adversarial_gan_digits.py [LOSS]`` (LOSS: non-saturating (default),
minimax, least-squares, wgan-gp, hinge; one to two minutes on 2 CPU cores).
"""

from __future__ import annotations

import sys

import torch

import ppgen
from ppgen import plots
from ppgen.data import load_digits
from ppgen.metrics import sample_metrics
from ppgen.models import DCGAN

KEYS = ("mmd", "fd", "kid", "precision", "recall", "density", "coverage")


def train(loss: str = "non-saturating", seed: int = 0, **options) -> tuple[DCGAN, object]:
    """A DCGAN trained on the digits with its recipe (``DCGAN.fit_defaults``)."""
    digits = load_digits("continuous", seed=seed)
    torch.manual_seed(seed)  # the initial weights
    model = DCGAN.for_data(digits.info, loss=loss)
    history = ppgen.fit(model, digits.train, digits.val, seed=seed, progress=False, **options)
    return model, history


def compare(model: DCGAN, seed: int = 0) -> dict[str, dict[str, float]]:
    """Sample metrics of 447 draws and of the 350 real validation images, against the test
    split (lower MMD / FD / KID and higher precision / recall / coverage are better)."""
    digits = load_digits("continuous", seed=seed)
    torch.manual_seed(seed)
    fake = model.eval().sample(len(digits.test))
    return {"dcgan": sample_metrics(digits.test, fake),
            "real (val)": sample_metrics(digits.test, digits.val)}


def main() -> None:
    loss = sys.argv[1] if len(sys.argv) > 1 else "non-saturating"
    torch.set_num_threads(1)  # tiny convolutions: one thread is fastest on a shared machine
    model, history = train(loss)
    print(f"DCGAN ({loss}): {len(history)} epochs, best validation MMD "
          f"{history.best_val:.4f} at epoch {history.best_epoch}")
    scores = compare(model)
    print(f"{'':>12}" + "".join(f"{k:>11}" for k in KEYS))
    for name, values in scores.items():
        print(f"{name:>12}" + "".join(f"{values[k]:11.4f}" for k in KEYS))
    images = model.sample(64, quantized=True)
    plots.save(plots.image_grid(images, (8, 8), vmax=16, title=f"DCGAN ({loss})"),
               "dcgan_digits.png")
    print("wrote dcgan_digits.png")


if __name__ == "__main__":
    main()
