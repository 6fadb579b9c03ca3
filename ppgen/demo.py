"""``ppgen demo``: the main job on the bundled digits, end to end in a few minutes.

Trains the discrete baselines (closed-form smoothed maximum likelihood) and a VAE (the shared
engine, early stopping on validation NLL), prints the test NLL table next to the reference
numbers of BENCHMARKS.md, and writes sample grids, training curves, a 2-D latent plot and a
markdown report that records what produced the numbers (command, seed, date, versions, settings).
Progress goes to stderr as plain lines, so a log file or CI shows it too.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ppgen import plots
from ppgen.api import fit
from ppgen.checkpoint import read_checkpoint
from ppgen.data import DataSplits, load_digits
from ppgen.devices import resolve_device
from ppgen.evaluate import nll_report
from ppgen.provenance import provenance

__all__ = ["run_demo", "REFERENCES"]


#: reference test NLLs (nats per image) on the digits protocol (BENCHMARKS.md; the targets
#: benchmarks/RESULTS.md compares with), and the VAE's reference −ELBO
REFERENCES = {
    "independent-categorical": "≈ 106.3",
    "markov-chain": "≈ 101.8",
    "vae": "≈ 93.1 (−ELBO ≈ 96.5)",
}

#: the header of the reference column: what the numbers are and where they come from
REFERENCE_COLUMN = "reference test NLL (benchmarks/RESULTS.md)"


@dataclass
class DemoRow:
    """One line of the demo's table."""

    model: str
    report: dict[str, Any]
    seconds: float
    num_parameters: int
    settings: dict[str, Any] = field(default_factory=dict)  #: training settings, objective


def run_demo(
    out: str | Path = "ppgen-demo",
    *,
    epochs: int | None = None,
    num_particles: int = 1000,
    device: str = "auto",
    seed: int = 0,
    progress: bool = True,
    command: str | None = None,
) -> list[DemoRow]:
    """Run the demo and write its figures and ``report.md`` into ``out``.

    Args:
        out: output folder.
        epochs: VAE epochs (default: the model's benchmark recipe, ``VAE.fit_defaults``, with
            early stopping; about a minute on two CPU cores).
        num_particles: ``K`` of the VAE's importance-weighted test NLL.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        seed: training seed.
        progress: show progress: the engine's bar on a terminal, and plain lines on stderr
            (which a log file or CI keeps).
        command: the command line to record in the report (default: this process's).

    Returns:
        The table rows.
    """
    from ppgen.models import VAE, IndependentCategorical, MarkovChain

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = _say if progress else _quiet
    run = {**provenance(command), "seed": seed}
    dev = resolve_device(device)
    digits = load_digits("categorical")
    torch.manual_seed(seed)
    rows = [_baseline(cls, digits, out, dev, say) for cls in (IndependentCategorical, MarkovChain)]
    rows.append(_vae(VAE, digits, out, dev, epochs, num_particles, seed, progress, say))
    table = _table(rows)
    print(table)
    _write_report(out, rows, table, digits, num_particles, run=run)
    print(f"\nfigures and report.md written to {out}/")
    return rows


def _say(message: str) -> None:
    """One plain progress line on stderr."""
    print(f"ppgen demo: {message}", file=sys.stderr, flush=True)


def _quiet(message: str) -> None:
    """``--no-progress``."""


def _baseline(cls, digits: DataSplits, out: Path, device: torch.device, say=_quiet) -> DemoRow:
    model = cls.for_data(digits.info)
    say(f"{model.name}: fitting in closed form")
    start = time.perf_counter()
    fit(model, digits.train, digits.val, device=device)
    seconds = time.perf_counter() - start
    report = nll_report(model, digits.test.to(device))
    say(f"{model.name}: test NLL {report['nll']:.2f} nats ({seconds:.1f} s)")
    _samples(model, digits, out / f"samples-{model.name}.png")
    return DemoRow(model.name, report, seconds, model.num_parameters())


def _vae(cls, digits, out, device, epochs, num_particles, seed, progress, say=_quiet) -> DemoRow:
    model = cls.for_data(digits.info)
    settings = {**model.fit_defaults, **({} if epochs is None else {"epochs": epochs})}
    say(f"{model.name}: training for up to {settings.get('epochs')} epochs with early "
        "stopping (a progress bar shows on a terminal)")
    start = time.perf_counter()
    history = fit(
        model, digits.train, digits.val, epochs=epochs, device=device,
        seed=seed, out_dir=out / "vae", progress=progress,
        extra={"data": {"spec": "digits", "representation": "categorical", "seed": 0},
               "info": digits.info.to_dict()},
    )
    seconds = time.perf_counter() - start
    say(f"{model.name}: trained {len(history)} epochs in {seconds:.1f} s (best epoch "
        f"{history.best_epoch}); estimating the test NLL with K = {num_particles}")
    test = digits.test.to(device)
    report = nll_report(model, test, num_particles=num_particles)
    training = read_checkpoint(out / "vae" / "model.pt")["extra"]["training"]
    plots.save(plots.training_curves(history, title="VAE on digits",
                                     objective=training["objective"]), out / "curves-vae.png")
    z = model.encode(test)
    plots.save(plots.latent_scatter(z, digits.labels.get("test"), title="VAE latent codes "
                                    "(test digits)"), out / "latent-vae.png")
    _samples(model, digits, out / "samples-vae.png")
    return DemoRow(model.name, report, seconds, model.num_parameters(),
                   {"training": settings, "objective": training["objective"]})


def _samples(model, digits: DataSplits, path: Path) -> None:
    images = model.sample(64)
    fig = plots.image_grid(images, digits.info.image_shape, vmax=digits.info.num_levels - 1,
                           title=f"{model.name} samples")
    plots.save(fig, path)


def _table(rows: list[DemoRow]) -> str:
    lines = [
        f"| model | test NLL (nats/image) | −ELBO | {REFERENCE_COLUMN} | parameters "
        "| fit time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        neg_elbo = f"{r.report['elbo']:.2f}" if "elbo" in r.report else "—"
        lines.append(
            f"| {r.model} | {r.report['nll']:.2f} | {neg_elbo} | {REFERENCES.get(r.model, '')} "
            f"| {r.num_parameters:,} | {r.seconds:.1f} |"
        )
    return "\n".join(lines)


def _write_report(
    out: Path, rows, table: str, digits: DataSplits, num_particles: int, run: dict | None = None
) -> None:
    text = f"""# ppgen demo: density estimation on the bundled digits

Data: scikit-learn's 8×8 digits, 17 grey levels, ordered split train 1000 / val 350 /
test {digits.test.shape[0]}. Numbers are test negative log-likelihoods in nats per image (lower
is better). Baselines are exact; the VAE's NLL is the importance-weighted estimate with
K = {num_particles}, its −ELBO uses the closed-form KL. Every model is trained with its
benchmark defaults (`benchmarks/digits.py` repeats this over three seeds). The reference column
holds the test NLLs this protocol is benchmarked against (for the VAE also its −ELBO), as listed
with the project's own results in `benchmarks/RESULTS.md`.

{table}

## Figures

- Samples: ![independent](samples-independent-categorical.png)
  ![markov](samples-markov-chain.png) ![vae](samples-vae.png)
- VAE training curves: ![curves](curves-vae.png)
- VAE latent codes of the test digits (first two principal components): ![latent](latent-vae.png)
{_run_section(run or {}, rows, num_particles)}"""
    (out / "report.md").write_text(text)


def _run_section(run: dict, rows, num_particles: int) -> str:
    """What produced the numbers: command, seed, date, versions and the VAE's settings."""
    if not run:
        return ""
    versions = ", ".join(f"{k} {v}" for k, v in run["versions"].items())
    vae = next((r.settings for r in rows if r.settings), {})
    return f"""
## Run

- command: `{run["command"]}`
- seed: {run["seed"]}
- date: {run["date"]}
- versions: {versions}
- VAE training settings: `{json.dumps(vae.get("training", {}), sort_keys=True)}`
- VAE objective: `{json.dumps(vae.get("objective", {}), sort_keys=True)}`
- test NLL estimate: importance-weighted, `{json.dumps({"num_particles": num_particles})}`
"""
