"""Conditional VAEs on the digits: draw each digit, and complete bottom halves from top halves.

* ``CVAE`` — ``p(x | y)`` trained with the digits' labels through ``ppgen.fit(labels=...)``;
  ``model.sample(n, y=c)`` draws digit ``c``, and the shipped digits classifier says how often
  the draws are the digit they were asked for.
* ``StructuredCVAE`` (Sohn et al., 2015) — ``p(bottom half | top half)``: the test NLL of the
  bottom halves given the top halves (``ppgen.log_likelihood`` scores the missing part only),
  and ``model.complete(top_halves, n)``, whose completions keep the given pixels exactly.

    python examples/cvae_digits.py                  # a few minutes on a CPU
    python examples/cvae_digits.py --epochs 5 --out cvae
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import ppgen
from ppgen import plots
from ppgen.data import load_digits
from ppgen.metrics.classes import class_accuracy
from ppgen.models import CVAE, StructuredCVAE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--out", default="cvae-digits", help="folder for the figures")
    args = parser.parse_args()
    out = Path(args.out)
    digits = load_digits("categorical")  # integer pixels 0..16, labels per split
    labels = digits.labels

    cvae = CVAE.for_data(digits.info)  # 10 classes
    ppgen.fit(cvae, digits.train, digits.val, labels=labels["train"], val_labels=labels["val"],
              epochs=args.epochs, seed=0, progress=False)
    cvae.eval()
    torch.manual_seed(0)
    y = torch.arange(10).repeat_interleave(10)
    draws = cvae.sample(len(y), y=y)  # row c: digit c
    print(f"CVAE draws classified as their digit: {class_accuracy(draws, y):.1%}")
    plots.save(plots.image_grid(draws, (8, 8), ncols=10, vmax=16,
                                title="CVAE: one row per digit"), out / "cvae-by-class.png")

    completer = StructuredCVAE.for_data(digits.info)  # the top 32 pixels observed
    ppgen.fit(completer, digits.train, digits.val, epochs=args.epochs, seed=0, progress=False)
    completer.eval()
    nll = -ppgen.log_likelihood(completer, digits.test, num_particles=100).mean()
    print(f"test -log p(bottom half | top half): {nll:.2f} nats/image (IWAE-100)")
    tops = digits.test[:10, :32]
    completed = completer.complete(tops, 5)  # [5, 10, 64]: 5 completions of 10 top halves
    assert torch.equal(completed[..., :32], tops.expand(5, 10, 32))  # the given half is kept
    grid = torch.cat([digits.test[:10], completed.reshape(-1, 64)])  # first row: the originals
    plots.save(plots.image_grid(grid, (8, 8), ncols=10, vmax=16,
                                title="top row: test digits; below: bottoms completed"),
               out / "completions.png")
    print(f"figures in {out}/")


if __name__ == "__main__":
    main()
