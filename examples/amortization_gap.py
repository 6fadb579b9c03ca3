"""The amortisation gap of a VAE: how much its encoder loses against per-datum inference.

A small VAE (2-D latent, Bernoulli decoder) is trained for a short recipe on the binary digits.
For a few test digits the exact posterior p(z | x) is sampled with NUTS, through the same
``ppgen.analysis.posterior`` machinery as any Pyro program, and compared with the encoder's
amortised guide q(z | x) and with q*, the best diagonal Gaussian for that one digit (Cremer, Li
& Duvenaud, 2018, "Inference Suboptimality in Variational Autoencoders"):

    log p(x) - ELBO[q]  =  (log p(x) - ELBO[q*])  +  (ELBO[q*] - ELBO[q])
    inference gap          approximation gap         amortisation gap

all in nats per digit. The figure shows the three posteriors of each digit and the two gaps.

    python examples/amortization_gap.py [--out DIR] [--epochs N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import ppgen
from ppgen.analysis import amortization_gap, plot_amortization_gap
from ppgen.data import load_digits
from ppgen.models import VAE

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="amortization-gap", help="output folder")
parser.add_argument("--epochs", type=int, default=60, help="VAE training epochs (60)")
parser.add_argument("--digits", type=int, default=3, help="test digits to analyse (3)")
args = parser.parse_args()

torch.manual_seed(0)
digits = load_digits("binary")  # pixel >= 8, on the benchmark split
vae = VAE.for_data(digits.info, latent_dim=2, hidden_dims=(128, 128), dropout=0.0)
ppgen.fit(vae, digits.train, digits.val, epochs=args.epochs, seed=0, progress=False)
test_nll = -ppgen.log_likelihood(vae, digits.test, num_particles=500).mean()
print(f"VAE test NLL (IWAE-500): {test_nll:.2f} nats per digit")

x = digits.test[: args.digits]
gap = amortization_gap(vae, x, num_samples=500, num_warmup=500, num_chains=2,
                       num_particles=5000, seed=0)
print(gap)
print("Monte Carlo standard errors (nats):",
      {k: [round(float(s), 3) for s in v] for k, v in gap.se.items()})
out = Path(args.out)
plot_amortization_gap(gap, out / "amortization_gap.png")
gap.idata.to_netcdf(str(out / "nuts_posterior.nc"))
print(f"wrote {out}/amortization_gap.png and {out}/nuts_posterior.nc")
