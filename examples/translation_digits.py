"""A CycleGAN from original to bold digits: train it unpaired, translate, score against the truth.

The digit domains (``ppgen.data.domains``) are known transformations of the 8x8 digits; the
CycleGAN trains on disjoint digits in each domain (no pair is ever seen) and is scored on the
paired test split, where every translation has a ground truth: the mean absolute error in levels
beside that of the identity map (the source image itself). The picture shows test digits, their
translations and the true bold digits, one row each.

Run: ``python examples/translation_digits.py [EPOCHS]`` (default 6; a few minutes on 2 CPU
cores). The same from the command line::

    ppgen fit cyclegan --data digits-domains:original,bold --out runs/bold
    ppgen translate runs/bold --to bold --out bold.png
"""

from __future__ import annotations

import sys

import torch

import ppgen
from ppgen import plots
from ppgen.data.domains import load_digit_domains
from ppgen.data.transforms import quantize
from ppgen.models import CycleGAN


def train(epochs: int = 6, seed: int = 0, **options) -> tuple[CycleGAN, object]:
    """A CycleGAN between original and bold digits, trained with its recipe."""
    data = load_digit_domains(["original", "bold"], seed=seed)
    torch.manual_seed(seed)  # the initial weights
    model = CycleGAN.for_data(data.info, domains=data.domains, paired=data.paired)
    history = ppgen.fit(model, data.train, data.val, labels=data.labels["train"],
                        val_labels=data.labels["val"], epochs=epochs, seed=seed,
                        progress=False, **options)
    return model, history


def score(model: CycleGAN, seed: int = 0) -> dict[str, float]:
    """Mean absolute errors in levels on the test digits: the translation and the identity."""
    data = load_digit_domains(["original", "bold"], seed=seed)
    levels = load_digit_domains(["original", "bold"], "categorical", seed=seed)
    fake = quantize(model.eval().translate(data.block("test", "original"), "bold"), 17)
    truth = levels.block("test", "bold")
    return {"translation": float((fake - truth).abs().float().mean()),
            "identity": float((levels.block("test", "original") - truth).abs().float().mean())}


def main() -> None:
    epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    torch.set_num_threads(1)  # tiny convolutions: one thread is fastest on a shared machine
    model, history = train(epochs)
    errors = score(model)
    print(f"CycleGAN original → bold: {len(history)} epochs; test error "
          f"{errors['translation']:.2f} levels (identity map: {errors['identity']:.2f})")
    data = load_digit_domains(["original", "bold"])
    x = data.block("test", "original")[:12]
    rows = torch.cat([x, model.translate(x, "bold"), data.block("test", "bold")[:12]])
    figure = plots.image_grid(rows, (8, 8), ncols=12, vmax=1.0, title="CycleGAN original → bold",
                              row_labels=["input", "translation", "truth"])
    plots.save(figure, "translation_digits.png")
    print("wrote translation_digits.png")


if __name__ == "__main__":
    main()
