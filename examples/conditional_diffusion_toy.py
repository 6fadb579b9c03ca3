"""A class-conditional diffusion model on a 2-D toy: classifier-free guidance, and its density
three ways (bound, probability-flow ODE, truth) with the bound's decomposition.

The data are the eight Gaussians (``ppgen.data.load_toy``: std 0.2, means on the circle of
radius 2 every 45 degrees) with a label per point, its side of the line through the origin at
22.5 degrees: ``y = 1`` for the four blobs at 45 to 180 degrees, ``y = 0`` for the other four.
The line passes between blobs, so ``p(x | y)`` is four whole blobs, two of them next to the
other class (the *edge* blobs, half of its mass); and since ``y`` is a function of ``x``,
``p(x | y) = 2 p(x)`` on its side: the true density of each point given its label is known. A
DDPM of real data with ``num_classes=2`` (an MLP denoiser; each training label dropped to the
null label with probability ``p_uncond = 0.1``, so the same network also learns ``p(x)``) is
trained with ``ppgen.fit(..., labels=y)``. Then:

* **classifier-free guidance** (Ho & Salimans, 2022, arXiv:2207.12598):
  ``model.sample(n, y=1, guidance=w)`` predicts ``(1 + w) eps(x_t, y) - w eps(x_t, null)``,
  roughly sampling ``p(x | y) p(y | x)^w`` with ``p(y | x)`` judged at every noise level: as
  ``w`` grows, mass leaves the edge blobs, the ones a noisy point could mistake for the other
  class (half of it at ``w = 0``, as in the data), for the two in the middle of the class.
  Diversity traded for typicality. Figure ``guidance.png``.
* **the density of the test points given their labels**, in nats per point: the variational
  bound ``L_T + sum_t L_{t-1} + L_0`` (``model.bound_decomposition``; under one seed the same sum as
  ``-ppgen.elbo(model, None, x, y=y, analytic_kl=True)``), the exact density of the model's
  probability-flow ODE (Song et al., 2021; ``model.ode_log_likelihood``: a density, not a
  bound) and the true one (``-toy_log_density - log 2``). Figure ``likelihoods.png``: each
  point's model NLL against its true NLL.
* **the bound's decomposition**: the prior term ``L_T``, the sum of the steps' KL terms and the
  decoder's ``L_0 = -log p(x_0 | x_1)`` (negative for real data: a density, not a probability),
  and each step's term (``model.bound_terms``). Figure ``bound-terms.png``.

Everything is written to the ``--out`` folder (created; only the three figures are written).

    python examples/conditional_diffusion_toy.py              # about 2 minutes on 2 CPU cores
    python examples/conditional_diffusion_toy.py --epochs 20 --out cdiff-quick
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import pyro
import torch
from matplotlib.figure import Figure

import ppgen
from ppgen import plots
from ppgen.data import DataSplits, load_toy, toy_log_density
from ppgen.models import DDPM

TOY = "eight_gaussians"
#: real 2-D data at unit scale, a small MLP denoiser, two classes (and the null label)
MODEL = {"likelihood": "continuous", "num_classes": 2,
         "denoiser": {"kind": "mlp", "width": 128, "blocks": 2}}
#: a short recipe: a few thousand steps are enough for the blobs' shape, not their last nat
FIT = {"batch_size": 256, "lr": 2e-3, "weight_decay": 0.0, "patience": False,
       "warmup_steps": 50, "ema": 0.99, "lr_schedule": "cosine"}
#: the guidance scales compared
WEIGHTS = (0.0, 1.0, 3.0)
#: the labels' boundary: the line through the origin at this angle, between two pairs of blobs
BOUNDARY = math.pi / 8


def side(x: torch.Tensor) -> torch.Tensor:
    """The label of each point ``[N]``: 1 left of the boundary (the blobs at 45 to 180
    degrees), 0 right of it."""
    normal = torch.tensor([-math.sin(BOUNDARY), math.cos(BOUNDARY)], dtype=x.dtype)
    return (x @ normal > 0).long()


def on_edge_blobs(x: torch.Tensor) -> float:
    """The share of points nearest the four blobs next to the boundary (at 0, 45, 180 and
    225 degrees)."""
    k = torch.round(torch.atan2(x[:, 1], x[:, 0]) / (math.pi / 4)).long() % 8
    return float(torch.isin(k, torch.tensor([0, 1, 4, 5])).float().mean())


def train(epochs: int = 150, num_steps: int = 1000, n_train: int = 4000, n_test: int = 500,
          seed: int = 0) -> tuple[DDPM, DataSplits]:
    """A class-conditional DDPM trained on the labelled toy; the model (in eval mode) and the
    data splits."""
    data = load_toy(TOY, n_train=n_train, n_val=500, n_test=n_test, seed=seed)
    pyro.set_rng_seed(seed)  # the initial weights
    model = DDPM(2, num_steps=num_steps, **MODEL)
    ppgen.fit(model, data.train, data.val, labels=side(data.train),
              val_labels=side(data.val), epochs=epochs, seed=seed, progress=False, **FIT)
    return model.eval(), data


def guided_samples(model: DDPM, n: int = 1000, steps: int = 100, seed: int = 1
                   ) -> dict[float, torch.Tensor]:
    """``n`` draws of class 1 per guidance scale of :data:`WEIGHTS` (``[n, 2]`` each; the
    ancestral sampler on the process respaced to ``steps`` steps, the same noise for all)."""
    draws = {}
    for w in WEIGHTS:
        pyro.set_rng_seed(seed)
        draws[w] = model.sample(n, y=1, guidance=w, steps=steps)
    return draws


def likelihoods(model: DDPM, x: torch.Tensor, ode_steps: int = 50, seed: int = 2
                ) -> dict[str, torch.Tensor]:
    """``-log p(x | y)`` ``[N]`` of each point given its label, three ways (``"bound"``,
    ``"ode"``, ``"true"``), and the bound's parts (``"prior"``, ``"steps"``, ``"decoder"``,
    summing to ``"bound"``)."""
    y = side(x)
    pyro.set_rng_seed(seed)  # one draw of the forward process per point
    parts = model.bound_decomposition(x, y)
    return {**parts, "bound": sum(parts.values()),
            "ode": -model.ode_log_likelihood(x, y=y, steps=ode_steps),
            "true": -toy_log_density(TOY, x) - math.log(2)}


def guidance_figure(draws: dict[float, torch.Tensor], data: torch.Tensor) -> Figure:
    """The class-1 data beside the draws at each guidance scale."""
    panels = {"data, y = 1": data[side(data) == 1]}
    panels.update({f"guidance w = {w:g}": x for w, x in draws.items()})
    fig = Figure(figsize=(3.2 * len(panels), 3.4), layout="constrained")
    axes = fig.subplots(1, len(panels), sharex=True, sharey=True)
    for ax, (title, x) in zip(axes, panels.items()):
        ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), s=2, alpha=0.5)
        ax.axline((0.0, 0.0), slope=math.tan(BOUNDARY), color="grey", lw=0.5)
        ax.set(title=f"{title}\n{on_edge_blobs(x):.0%} on the edge blobs", aspect="equal",
               xlim=(-3, 3), ylim=(-3, 3))
    return fig


def likelihood_figure(nll: dict[str, torch.Tensor]) -> Figure:
    """Each point's model NLL (bound and ODE) against its true NLL."""
    fig = Figure(figsize=(4.5, 4.5), layout="constrained")
    ax = fig.subplots()
    for key, label in (("bound", "bound (one draw)"), ("ode", "probability-flow ODE")):
        ax.scatter(nll["true"].numpy(), nll[key].numpy(), s=4, alpha=0.5,
                   label=f"{label}: {nll[key].mean():.2f}")
    lo, hi = float(nll["true"].min()), float(nll["true"].max())
    ax.plot([lo, hi], [lo, hi], color="black", lw=0.8, label=f"truth: {nll['true'].mean():.2f}")
    ax.set(xlabel="true -log p(x | y)", ylabel="model -log p(x | y)",
           title="test points, nats (mean in the legend)")
    ax.legend(fontsize=8)
    return fig


def bound_terms_figure(model: DDPM, x: torch.Tensor, seed: int = 2) -> Figure:
    """The bound's term of each step ``t``, averaged over the points (nats)."""
    pyro.set_rng_seed(seed)
    steps = model.bound_terms(x, side(x)).steps.mean(0)
    fig = Figure(figsize=(6, 3), layout="constrained")
    ax = fig.subplots()
    ax.plot(range(2, len(steps) + 1), steps[1:].numpy())
    ax.set(xlabel="t", ylabel="L_(t-1), nats per point", yscale="log",
           title=f"bound terms of the {len(steps)} steps (decoder L_0 = {steps[0]:.2f})")
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--out", default="conditional-diffusion-toy", help="folder for figures")
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} is a file: name a folder")
    torch.set_num_threads(1)  # a small MLP: one thread is fastest on a shared machine
    start = time.perf_counter()

    model, data = train(args.epochs)
    draws = guided_samples(model)
    print("class-1 draws on the edge blobs (data: 50%) and on the other side (data: 0%):")
    for w, x in draws.items():
        other = float((side(x) == 0).float().mean())
        print(f"  guidance w = {w:g}: {on_edge_blobs(x):6.1%}  {other:6.1%}")
    plots.save(guidance_figure(draws, data.test), out / "guidance.png")

    nll = likelihoods(model, data.test)
    print(f"test -log p(x | y), nats per point: bound {nll['bound'].mean():.3f}, "
          f"ODE {nll['ode'].mean():.3f}, true {nll['true'].mean():.3f}")
    print(f"  the bound = prior {nll['prior'].mean():.2e} + steps {nll['steps'].mean():.3f} "
          f"+ decoder {nll['decoder'].mean():.3f}")
    plots.save(likelihood_figure(nll), out / "likelihoods.png")
    plots.save(bound_terms_figure(model, data.test), out / "bound-terms.png")
    print(f"figures in {out}/ ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
