"""An energy-based model on a 2-D toy, with an honest likelihood: AIS and its bracket.

Trains ``EBM`` (an MLP energy relative to a Gaussian base) on the eight Gaussians by persistent
contrastive divergence through ``ppgen.fit``, then estimates its test NLL by annealed importance
sampling with the reverse-AIS bracket (``ppgen.evaluate.nll_report``), and prints it beside the
toy's floor (the entropy of the true density, BENCHMARKS.md: eight Gaussians 1.698 nats), the
true density's NLL on the same test points, and — possible only in 2-D — the model's NLL with
``Z`` by quadrature on a grid, an independent check of the AIS interval. Writes two figures:
the model's density next to data and samples (``ppgen.plots.density_heatmap``), and Langevin
chains from the base walking into the modes over the energy's contours.

    python examples/ebm_toys.py                       # eight Gaussians, about 2 minutes
    python examples/ebm_toys.py --toy rings --epochs 40 --out ebm-rings
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from matplotlib.figure import Figure

import ppgen
from ppgen import plots
from ppgen.data import load_toy, toy_log_density
from ppgen.energy import energies
from ppgen.evaluate import nll_report
from ppgen.models import EBM

#: the floor of each toy (BENCHMARKS.md: entropy of the true density, nats per point)
FLOORS = {"eight_gaussians": 1.698, "checkerboard": math.log(8), "rings": 2.410}


def train(toy: str, epochs: int | None, n_train: int, seed: int) -> tuple[EBM, object]:
    """An EBM trained on ``toy`` with the zoo's recipe (``EBM.fit_defaults``)."""
    data = load_toy(toy, n_train=n_train, seed=seed)
    torch.manual_seed(seed)
    ebm = EBM.for_data(data.info)
    ppgen.fit(ebm, data.train, data.val, epochs=epochs, seed=seed, progress=False)
    return ebm.eval(), data


def quadrature_nll(ebm: EBM, x: torch.Tensor, limit: float = 8.0, n: int = 800) -> float:
    """The test NLL with ``log Z`` by the midpoint rule on an ``n²`` grid over ``[-limit,
    limit]²``. The box must hold the model's tails, not only the data: an energy network can
    fall off more slowly than the base far out (a barely trained model on ``[-5, 5]²`` misses
    0.005 nats of its mass)."""
    xs = torch.linspace(-limit, limit, n)
    grid = torch.stack(torch.meshgrid(xs, xs, indexing="ij"), -1).reshape(-1, 2)
    log_z = torch.logsumexp(-energies(ebm, grid).double(), 0) + 2 * math.log(xs[1] - xs[0])
    return float(energies(ebm, x).double().mean() + log_z)


def chains_figure(ebm: EBM, data: torch.Tensor, num_chains: int = 12, steps: int = 200
                  ) -> Figure:
    """Langevin (MALA) chains from the base, every 5th state, over the energy's contours."""
    path = ebm.sample_chains(num_chains, record_every=5, steps=steps).cpu()
    xs = torch.linspace(-3.5, 3.5, 150)
    grid = torch.stack(torch.meshgrid(xs, xs, indexing="xy"), -1).reshape(-1, 2)
    energy = energies(ebm, grid).reshape(150, 150)
    fig = Figure(figsize=(5.5, 5), layout="constrained")
    ax = fig.subplots()
    ax.contourf(xs, xs, (-energy).exp(), levels=20, cmap="Greys")
    for k in range(num_chains):
        ax.plot(path[:, k, 0], path[:, k, 1], lw=0.8, alpha=0.9)
        ax.scatter(path[0, k, 0], path[0, k, 1], s=10, marker="o", color="tab:red")
        ax.scatter(path[-1, k, 0], path[-1, k, 1], s=14, marker="x", color="black")
    ax.set(xlim=(-3.5, 3.5), ylim=(-3.5, 3.5), aspect="equal",
           title=f"MALA chains from the base ({steps} steps; o start, x end)")
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toy", default="eight_gaussians", choices=sorted(FLOORS))
    parser.add_argument("--epochs", type=int, default=None, help="default: the EBM recipe's")
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--distributions", type=int, default=1000, help="AIS steps")
    parser.add_argument("--chains", type=int, default=1024, help="AIS chains")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="ebm-toys", help="folder for the figures")
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny tensors: more threads only spin-wait on a busy machine

    start = time.perf_counter()
    ebm, data = train(args.toy, args.epochs, args.n_train, args.seed)
    print(f"trained in {time.perf_counter() - start:.0f} s")
    ebm.ais = {"num_distributions": args.distributions}
    start = time.perf_counter()
    report = nll_report(ebm, data.test, num_particles=args.chains)
    print(f"AIS ({report['num_distributions']} distributions, {report['num_chains']} chains, "
          f"{time.perf_counter() - start:.0f} s): test NLL {report['nll']:.3f} nats/point in "
          f"[{report['nll_lower']:.3f}, {report['nll_upper']:.3f}] "
          f"(width {report['nll_width']:.3f}; forward {report['nll_forward']:.3f}, reverse "
          f"{report['nll_reverse']:.3f})")
    print(f"quadrature check: {quadrature_nll(ebm, data.test):.3f}")
    truth = float(-toy_log_density(args.toy, data.test).mean())
    print(f"floor {FLOORS[args.toy]:.3f} (true density on these points {truth:.3f}): excess "
          f"{report['nll'] - FLOORS[args.toy]:.3f}")
    out = Path(args.out)
    fig = plots.density_heatmap(ebm, data.test, num_particles=args.chains,
                                title=f"EBM on {args.toy}")
    plots.save(fig, out / f"{args.toy}-density.png")
    plots.save(chains_figure(ebm, data.test), out / f"{args.toy}-chains.png")
    print(f"figures in {out}/")


if __name__ == "__main__":
    main()
