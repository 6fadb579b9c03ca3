"""An adversarial autoencoder on the digits with a mixture-of-10-Gaussians prior.

Makhzani et al. (2016): the latent critic matches the codes of the training digits to any prior
a program can sample. Here a 2-d Gaussian-encoder AAE is matched to ten Gaussians on a circle;
the script prints the MMD between the test codes and the prior (beside the floor of two prior
samples), the importance-weighted test NLL (this AAE has a density: Gaussian encoder, prior with
a density) and the linear-probe accuracy of its codes, and draws the codes coloured by digit.

    python examples/aae_digits.py --out /tmp/aae --epochs 100     # a few minutes on one CPU
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import ppgen
from ppgen import plots
from ppgen.data import load_digits
from ppgen.metrics import mmd2
from ppgen.models import AAE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="aae-digits", help="folder for the figure")
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args()
    torch.manual_seed(0)
    digits = load_digits("categorical")
    aae = AAE.for_data(digits.info, latent_dim=2, prior="mixture10")
    ppgen.fit(aae, digits.train, digits.val, epochs=args.epochs)

    z = ppgen.represent(aae, digits.test)                      # [447, 2] encoder means
    prior = aae.prior_codes(len(z))
    print(f"MMD² q(z) vs prior: {mmd2(z, prior):.4f} "
          f"(two prior samples: {mmd2(aae.prior_codes(len(z)), prior):.4f})")
    nll = -ppgen.log_likelihood(aae, digits.test, num_particles=100).mean()
    print(f"test NLL (importance-weighted, K=100): {nll:.1f} nats per image")

    from sklearn.linear_model import LogisticRegression

    probe = LogisticRegression(max_iter=2000).fit(ppgen.represent(aae, digits.train),
                                                  digits.labels["train"])
    print(f"linear probe on the 2-d codes: {probe.score(z, digits.labels['test']):.3f}")
    fig = plots.representation_scatters({"AAE, mixture10 prior": z, "prior": prior},
                                        digits.labels["test"])
    print(f"wrote {plots.save(fig, Path(args.out) / 'codes.png')}")


if __name__ == "__main__":
    main()
