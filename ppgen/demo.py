"""``ppgen demo``: the main job on the bundled digits, end to end in a few minutes.

Trains the discrete baselines (closed-form smoothed maximum likelihood) and a VAE (the shared
engine, early stopping on validation NLL), prints the test NLL table next to the reference
numbers of BENCHMARKS.md, and writes sample grids, training curves, a 2-D latent plot and a
markdown report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ppgen import plots
from ppgen.api import fit
from ppgen.data import DataSplits, load_digits
from ppgen.devices import resolve_device
from ppgen.evaluate import nll_report

__all__ = ["run_demo", "REFERENCES"]


#: reference test NLLs (nats per image) on the digits protocol, from BENCHMARKS.md
REFERENCES = {
    "independent-categorical": "≈ 106.3",
    "markov-chain": "≈ 101.8",
    "vae": "≈ 96.5 / ≈ 93.1",
}


@dataclass
class DemoRow:
    """One line of the demo's table."""

    model: str
    report: dict[str, Any]
    seconds: float
    num_parameters: int


def run_demo(
    out: str | Path = "ppgen-demo",
    *,
    epochs: int | None = None,
    num_particles: int = 1000,
    device: str = "auto",
    seed: int = 0,
    progress: bool = True,
) -> list[DemoRow]:
    """Run the demo and write its figures and ``report.md`` into ``out``.

    Args:
        out: output folder.
        epochs: VAE epochs (default: the model's benchmark recipe, ``VAE.fit_defaults``, with
            early stopping; about a minute on two CPU cores).
        num_particles: ``K`` of the VAE's importance-weighted test NLL.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        seed: training seed.
        progress: show progress bars.

    Returns:
        The table rows.
    """
    from ppgen.models import VAE, IndependentCategorical, MarkovChain

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    digits = load_digits("categorical")
    torch.manual_seed(seed)
    rows = [_baseline(cls, digits, out, dev) for cls in (IndependentCategorical, MarkovChain)]
    rows.append(_vae(VAE, digits, out, dev, epochs, num_particles, seed, progress))
    table = _table(rows)
    print(table)
    _write_report(out, rows, table, digits, num_particles)
    print(f"\nfigures and report.md written to {out}/")
    return rows


def _baseline(cls, digits: DataSplits, out: Path, device: torch.device) -> DemoRow:
    model = cls.for_data(digits.info)
    start = time.perf_counter()
    fit(model, digits.train, digits.val, device=device)
    seconds = time.perf_counter() - start
    report = nll_report(model, digits.test.to(device))
    _samples(model, digits, out / f"samples-{model.name}.png")
    return DemoRow(model.name, report, seconds, model.num_parameters())


def _vae(cls, digits, out, device, epochs, num_particles, seed, progress) -> DemoRow:
    model = cls.for_data(digits.info)
    start = time.perf_counter()
    history = fit(
        model, digits.train, digits.val, epochs=epochs, device=device,
        seed=seed, out_dir=out / "vae", progress=progress,
        extra={"data": {"spec": "digits", "representation": "categorical", "seed": 0},
               "info": digits.info.to_dict()},
    )
    seconds = time.perf_counter() - start
    test = digits.test.to(device)
    report = nll_report(model, test, num_particles=num_particles)
    plots.save(plots.training_curves(history, title="VAE on digits"), out / "curves-vae.png")
    z = model.encode(test)
    plots.save(plots.latent_scatter(z, digits.labels.get("test"), title="VAE latent codes "
                                    "(test digits)"), out / "latent-vae.png")
    _samples(model, digits, out / "samples-vae.png")
    return DemoRow(model.name, report, seconds, model.num_parameters())


def _samples(model, digits: DataSplits, path: Path) -> None:
    images = model.sample(64)
    fig = plots.image_grid(images, digits.info.image_shape, vmax=digits.info.num_levels - 1,
                           title=f"{model.name} samples")
    plots.save(fig, path)


def _table(rows: list[DemoRow]) -> str:
    lines = [
        "| model | test NLL (nats/image) | −ELBO | reference | parameters | fit time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        neg_elbo = f"{r.report['elbo']:.2f}" if "elbo" in r.report else "—"
        lines.append(
            f"| {r.model} | {r.report['nll']:.2f} | {neg_elbo} | {REFERENCES.get(r.model, '')} "
            f"| {r.num_parameters:,} | {r.seconds:.1f} |"
        )
    return "\n".join(lines)


def _write_report(out: Path, rows, table: str, digits: DataSplits, num_particles: int) -> None:
    text = f"""# ppgen demo: density estimation on the bundled digits

Data: scikit-learn's 8×8 digits, 17 grey levels, ordered split train 1000 / val 350 /
test {digits.test.shape[0]}. Numbers are test negative log-likelihoods in nats per image (lower
is better). Baselines are exact; the VAE's NLL is the importance-weighted estimate with
K = {num_particles}, its −ELBO uses the closed-form KL. Every model is trained with its
benchmark defaults (`benchmarks/digits.py` repeats this over three seeds).

{table}

## Figures

- Samples: ![independent](samples-independent-categorical.png)
  ![markov](samples-markov-chain.png) ![vae](samples-vae.png)
- VAE training curves: ![curves](curves-vae.png)
- VAE latent codes of the test digits (first two principal components): ![latent](latent-vae.png)
"""
    (out / "report.md").write_text(text)
