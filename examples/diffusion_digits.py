"""A diffusion model on the digits: its likelihood bound, DDIM samples and the reverse chain.

Improved DDPM (Nichol & Dhariwal, 2021) on the 17 pixel levels, with the decoder over the levels
(so the bound is a bound on the discrete NLL, in nats per image), trained with its default
objective (``L_hybrid``) through ``ppgen.fit``. Then:

* the test bound through the shared evaluation layer, ``-ppgen.elbo(model, None, x,
  analytic_kl=True)``: the program's guide is the forward process, so this *is* the diffusion
  bound, ``L_T + sum_t L_{t-1} + L_0``; its terms per step from ``model.bound_terms``;
* samples from DDIM with 50 steps (``eta = 0``) and from the ancestral program;
* the reverse chain x_T -> x_0 of the program, read off its Pyro trace
  (``ppgen.reverse_chain``);
* a save / load round trip.

    python examples/diffusion_digits.py                   # about 15 minutes on 2 CPU cores
    python examples/diffusion_digits.py --epochs 5 --steps 100 --out diffusion-quick
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import pyro
import torch

import ppgen
from ppgen import plots
from ppgen.data import load_digits
from ppgen.models import ImprovedDDPM
from ppgen.reverse_chain import reverse_chain_figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="default: the model's recipe")
    parser.add_argument("--steps", type=int, default=1000, help="T of the diffusion")
    parser.add_argument("--out", default="diffusion-digits", help="folder for run and figures")
    args = parser.parse_args()
    out = Path(args.out)

    digits = load_digits("categorical")  # integer pixels 0..16
    pyro.set_rng_seed(0)
    model = ImprovedDDPM.for_data(digits.info, num_steps=args.steps)  # a U-Net for 8x8 images
    ppgen.fit(model, digits.train, digits.val, epochs=args.epochs, out_dir=out / "run", seed=0)
    model.eval()

    pyro.set_rng_seed(0)
    bound = -ppgen.elbo(model, None, digits.test, analytic_kl=True)
    print(f"test bound: {bound.mean():.2f} nats/image "
          f"({ppgen.evaluate.bits_per_dim(bound.mean(), 64):.3f} bits/dim)")
    terms = model.bound_terms(digits.test)
    print(f"  prior L_T {terms.prior.mean():.3f}, sum of L_(t-1) "
          f"{terms.steps[:, 1:].sum(-1).mean():.2f}, decoder L_0 {terms.steps[:, 0].mean():.2f}")
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.semilogy(range(1, args.steps + 1), terms.steps.mean(0).clamp(min=1e-6).numpy())
    ax.set(xlabel="t", ylabel="nats per image", title="bound term of each step")
    plots.save(fig, out / "bound-terms.png")

    torch.manual_seed(1)
    ddim = model.sample(64, sampler="ddim", steps=50, eta=0.0)
    plots.save(plots.image_grid(ddim, (8, 8), ncols=8, vmax=16, title="DDIM, 50 steps"),
               out / "samples-ddim50.png")
    ancestral = model.sample(64)
    plots.save(plots.image_grid(ancestral, (8, 8), ncols=8, vmax=16,
                                title=f"ancestral, {args.steps} steps"),
               out / "samples-ancestral.png")

    plots.save(reverse_chain_figure(model, n=6, columns=10),  # x_T ... x_0, left to right
               out / "reverse-chain.png")

    again = ppgen.load(out / "run" / "model.pt")
    pyro.set_rng_seed(2)
    a = again.bound_terms(digits.test[:20]).total
    pyro.set_rng_seed(2)
    diff = float((a - model.bound_terms(digits.test[:20]).total).abs().max())
    print(f"reloaded from {out / 'run' / 'model.pt'}: the same bound (max difference {diff:.1e})")
    print(f"figures in {out}/")


if __name__ == "__main__":
    main()
