"""A variational diffusion model on the digits: its bound at T steps and in continuous time, and
the noise schedule it learned.

VDM (Kingma, Salimans, Poole & Ho, 2021) on the 17 pixel levels with the categorical decoder
over the levels, trained on the continuous-time bound (objective ``"vdm"``) through
``ppgen.fit``; its schedule's endpoints follow the bound, its shape the variance of the bound's
estimate. Then:

* the test bound through the shared evaluation layer, ``-ppgen.elbo(model, None, x,
  analytic_kl=True)`` at ``T`` steps (the program's guide is the forward process), and the
  continuous-time bound it approaches as ``T`` grows (``model.continuous_bound``);
* the learned ``gamma(t) = -log SNR(t)`` and the bound's share of each step;
* DDIM (deterministic, 50 steps) and ancestral samples;
* a save / load round trip.

    python examples/vdm_digits.py                      # about 15 minutes on 2 CPU cores
    python examples/vdm_digits.py --epochs 5 --steps 100 --out vdm-quick
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
from ppgen.models import VDM


def schedule_figure(model: VDM, terms) -> plt.Figure:
    """``gamma(t)`` beside the bound's term of each step (nats per image)."""
    T = model.num_steps
    t = torch.linspace(0, 1, T + 1)
    with torch.no_grad():
        gamma = model.schedule(t)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3), constrained_layout=True)
    left.plot(t.numpy(), gamma.numpy())
    left.set(xlabel="t", ylabel="gamma(t) = -log SNR", title="learned noise schedule")
    right.plot(t[1:].numpy(), terms.steps[:, 1:].mean(0).numpy())
    right.set(xlabel="t", ylabel="nats per image", title=f"bound term of each of {T} steps")
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="default: the model's recipe")
    parser.add_argument("--steps", type=int, default=1000, help="T of the reported bound")
    parser.add_argument("--out", default="vdm-digits", help="folder for run and figures")
    args = parser.parse_args()
    out = Path(args.out)

    digits = load_digits("categorical")  # integer pixels 0..16
    pyro.set_rng_seed(0)
    model = VDM.for_data(digits.info, num_steps=args.steps)  # a U-Net, the levels head
    ppgen.fit(model, digits.train, digits.val, epochs=args.epochs, out_dir=out / "run", seed=0)
    model.eval()

    pyro.set_rng_seed(0)
    bound = -ppgen.elbo(model, None, digits.test, analytic_kl=True)
    continuous = model.continuous_bound(digits.test, num_times=100)
    print(f"test bound at T = {args.steps}: {bound.mean():.2f} nats/image "
          f"({ppgen.evaluate.bits_per_dim(bound.mean(), 64):.3f} bits/dim); "
          f"continuous time: {continuous.total.mean():.2f}")
    terms = model.bound_terms(digits.test)
    print(f"  prior {terms.prior.mean():.3f}, sum of steps {terms.steps[:, 1:].sum(-1).mean():.2f}"
          f", reconstruction {terms.steps[:, 0].mean():.3f}")
    gamma_0, gamma_1 = (float(g.detach()) for g in model.schedule.endpoints())
    print(f"  learned endpoints: gamma_0 = {gamma_0:.2f}, gamma_1 = {gamma_1:.2f}")
    plots.save(schedule_figure(model, terms), out / "schedule.png")

    torch.manual_seed(1)
    ddim = model.sample(64, sampler="ddim", steps=50)
    plots.save(plots.image_grid(ddim, (8, 8), ncols=8, vmax=16, title="DDIM, 50 steps"),
               out / "samples-ddim50.png")
    ancestral = model.sample(64)
    plots.save(plots.image_grid(ancestral, (8, 8), ncols=8, vmax=16,
                                title=f"ancestral, {args.steps} steps"),
               out / "samples-ancestral.png")

    again = ppgen.load(out / "run" / "model.pt")
    pyro.set_rng_seed(2)
    a = again.bound_terms(digits.test[:20]).total
    pyro.set_rng_seed(2)
    diff = float((a - model.bound_terms(digits.test[:20]).total).abs().max())
    print(f"reloaded from {out / 'run' / 'model.pt'}: the same bound (max difference {diff:.1e})")
    print(f"figures in {out}/")


if __name__ == "__main__":
    main()
