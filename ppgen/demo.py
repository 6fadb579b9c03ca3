"""``ppgen demo``: the main job on the bundled digits, every family, in about 3 minutes.

Trains the discrete baselines (closed-form smoothed maximum likelihood), a VAE (its benchmark
recipe: the shared engine, early stopping on validation NLL), a DCGAN and an improved DDPM (short
recipes, :data:`RECIPES`), then prints two tables next to the reference numbers of
BENCHMARKS.md: the test NLL (the diffusion model's is an upper bound, the GAN has none) and the
sample quality of every model in the digits classifier's features beside the real floor. It
writes sample grids (the diffusion model's from DDIM with 50 steps), the diffusion model's reverse
chain, the VAE's training curves and latent codes, and a markdown report that records what
produced the numbers (command, seed, date, versions, settings). Progress goes to stderr as plain
lines, so a log file or CI shows it too.

Every model starts from the same seed, so a model's numbers do not depend on which other models
ran before it (``models=``), and the same command and seed give the same numbers. The demo runs
torch on one CPU thread unless told otherwise (``threads=``): on a quiet machine more threads
are faster (about 1.5x on two cores), but on a busy one several threads spin-wait and run
several times slower, and with one thread the numbers do not depend on the machine's core count
(the GAN's training does depend on the thread count).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyro
import torch

from ppgen import plots
from ppgen.api import fit
from ppgen.checkpoint import read_checkpoint
from ppgen.data import DataSplits, load_digits
from ppgen.demo_report import (
    REFERENCE_COLUMN,
    REFERENCES,
    DemoRow,
    likelihood_table,
    sample_table,
    write_report,
)
from ppgen.devices import resolve_device
from ppgen.errors import ArgumentError
from ppgen.evaluate import nll_report
from ppgen.metrics import sample_metrics
from ppgen.provenance import provenance
from ppgen.reverse_chain import reverse_chain_figure

__all__ = ["run_demo", "MODELS", "RECIPES", "REFERENCES", "REFERENCE_COLUMN", "DemoRow"]

#: the demo's models, in the tables' order
MODELS = ("independent-categorical", "markov-chain", "vae", "dcgan", "improved-ddpm")

#: the short recipes of the models whose benchmark recipes take a quarter of an hour or more:
#: constructor options, training options on top of ``fit_defaults`` and objective options.
#: DCGAN: small batches for more steps, and the R1 penalty, which keeps every digit class in a
#: short run (full recipe: ``benchmarks/adversarial.py``). Improved DDPM: ``T = 50`` steps (its
#: bound costs one network pass per step), a short warm-up and weight average for a short run,
#: two network passes per datum in the validation bound (full recipe, ``T = 1000``:
#: ``benchmarks/diffusion.py``).
RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "dcgan": {"model": {"r1": 1.0}, "training": {"epochs": 20, "batch_size": 16},
              "objective": {}},
    "improved-ddpm": {"model": {"num_steps": 50},
                      "training": {"epochs": 40, "batch_size": 50, "lr": 2e-3,
                                   "warmup_steps": 20, "ema": 0.98},
                      "objective": {"validation_steps": 2}},
}

#: DDIM steps of the diffusion model's sample grid and sample metrics
DDIM_STEPS = 50


@dataclass
class _Run:
    """What every model's step reads: the data, the output folder and the options."""

    digits: DataSplits
    out: Path
    device: torch.device
    seed: int
    epochs: Callable[[str], int | None]
    num_particles: int
    progress: bool
    say: Callable[[str], None]


def run_demo(
    out: str | Path = "ppgen-demo",
    *,
    models: Sequence[str] | None = None,
    epochs: int | Mapping[str, int] | None = None,
    num_particles: int = 1000,
    device: str = "auto",
    seed: int = 0,
    threads: int | None = 1,
    progress: bool = True,
    command: str | None = None,
) -> list[DemoRow]:
    """Run the demo and write its figures and ``report.md`` into ``out``.

    Args:
        out: output folder.
        models: the models to run, a subset of :data:`MODELS` (default: all, in that order).
        epochs: epochs of every trained model, or ``{model: epochs}`` for some (default: the
            VAE's benchmark recipe, ``VAE.fit_defaults``, with early stopping, and the short
            recipes of :data:`RECIPES`); the baselines are fitted in closed form.
        num_particles: ``K`` of the VAE's importance-weighted test NLL.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        seed: training seed (every model starts from it).
        threads: torch's CPU threads while the demo runs (restored afterwards; ``None``
            leaves torch's setting). One by default (see the module docstring).
        progress: show progress: the engine's bar on a terminal, and plain lines on stderr
            (which a log file or CI keeps).
        command: the command line to record in the report (default: this process's).

    Returns:
        The rows of the tables.

    Raises:
        ArgumentError: an unknown model name (in ``models`` or ``epochs``).
    """
    chosen = _check_models(models, epochs)
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        return _run(Path(out), chosen, epochs, num_particles, device, seed, progress,
                    {**provenance(command), "seed": seed, "threads": torch.get_num_threads()})
    finally:
        torch.set_num_threads(before)


def _run(out: Path, chosen: list[str], epochs, num_particles: int, device: str, seed: int,
         progress: bool, run: dict[str, Any]) -> list[DemoRow]:
    import ppgen.models as zoo

    steps = {"independent-categorical": (_baseline, zoo.IndependentCategorical),
             "markov-chain": (_baseline, zoo.MarkovChain), "vae": (_vae, zoo.VAE),
             "dcgan": (_gan, zoo.DCGAN), "improved-ddpm": (_diffusion, zoo.ImprovedDDPM)}
    out.mkdir(parents=True, exist_ok=True)
    say = _say if progress else _quiet
    digits = load_digits("categorical")
    ctx = _Run(digits, out, resolve_device(device), seed, _epochs_of(epochs), num_particles,
               progress, say)
    rows = []
    for name in chosen:
        pyro.set_rng_seed(seed)  # each model alone: its numbers do not depend on the others
        start = time.perf_counter()
        step, cls = steps[name]
        rows.append(step(cls, ctx))
        say(f"{name}: done in {time.perf_counter() - start:.1f} s")
    floor = sample_metrics(digits.test, digits.val, features="digits")
    tables = (likelihood_table(rows), sample_table(rows, floor))
    print(tables[0] + "\n\n" + tables[1])
    write_report(out, rows, tables, len(digits.test), num_particles, run=run)
    print(f"\nfigures and report.md written to {out}/")
    return rows


def _check_models(models: Sequence[str] | None, epochs: Any) -> list[str]:
    chosen = list(MODELS if models is None else models)
    named = list(epochs) if isinstance(epochs, Mapping) else []
    unknown = [m for m in [*chosen, *named] if m not in MODELS]
    if unknown:
        raise ArgumentError(f"unknown demo model(s) {unknown}: choose from {list(MODELS)}")
    return [m for m in MODELS if m in chosen]


def _epochs_of(epochs: int | Mapping[str, int] | None) -> Callable[[str], int | None]:
    if isinstance(epochs, Mapping):
        return lambda name: epochs.get(name)
    return lambda name: epochs


def _say(message: str) -> None:
    """One plain progress line on stderr."""
    print(f"ppgen demo: {message}", file=sys.stderr, flush=True)


def _quiet(message: str) -> None:
    """``--no-progress``."""


# ----------------------------------------------------------------------------- the models
def _baseline(cls, ctx: _Run) -> DemoRow:
    digits = ctx.digits
    model = cls.for_data(digits.info)
    ctx.say(f"{model.name}: fitting in closed form")
    start = time.perf_counter()
    fit(model, digits.train, digits.val, device=ctx.device)
    seconds = time.perf_counter() - start
    report = _score(model, digits.test.to(ctx.device))
    ctx.say(f"{model.name}: test NLL {report['nll']:.2f} nats ({seconds:.1f} s)")
    return DemoRow(model.name, report, seconds, model.num_parameters(), sampler="exact",
                   figures=[_samples(model, ctx)])


def _vae(cls, ctx: _Run) -> DemoRow:
    digits = ctx.digits
    model = cls.for_data(digits.info)
    epochs = ctx.epochs(model.name)
    settings = {**model.fit_defaults, **({} if epochs is None else {"epochs": epochs})}
    ctx.say(f"{model.name}: training for up to {settings.get('epochs')} epochs with early "
            "stopping (a progress bar shows on a terminal)")
    seconds, history, objective = _train(model, digits, ctx, epochs=epochs)
    ctx.say(f"{model.name}: trained {len(history)} epochs in {seconds:.1f} s (best epoch "
            f"{history.best_epoch}); estimating the test NLL with K = {ctx.num_particles}")
    test = digits.test.to(ctx.device)
    report = _score(model, test, num_particles=ctx.num_particles)
    plots.save(plots.training_curves(history, title="VAE on digits", objective=objective),
               ctx.out / "curves-vae.png")
    plots.save(plots.latent_scatter(model.encode(test), digits.labels.get("test"),
                                    title="VAE latent codes (test digits)"),
               ctx.out / "latent-vae.png")
    figures = [_samples(model, ctx), ("VAE training curves", "curves-vae.png"),
               ("VAE latent codes of the test digits (first two principal components)",
                "latent-vae.png")]
    return DemoRow(model.name, report, seconds, model.num_parameters(),
                   {"training": settings, "objective": objective}, bound="iwae" not in report,
                   sampler="ancestral", figures=figures)


def _gan(cls, ctx: _Run) -> DemoRow:
    data = load_digits("continuous", seed=ctx.seed)  # dequantised to [0, 1)
    model, settings = _build(cls, data, ctx)
    ctx.say(f"{model.name}: training {settings['training']['epochs']} epochs (short recipe)")
    seconds, history, settings["objective"] = _train(model, data, ctx, **settings["training"])
    ctx.say(f"{model.name}: trained {len(history)} epochs in {seconds:.1f} s (best epoch "
            f"{history.best_epoch}); sample metrics of {len(data.test)} draws")
    report = _score(model, data.test.to(ctx.device))
    figure = _samples(model, ctx, quantized=True)
    return DemoRow(model.name, report, seconds, model.num_parameters(), settings,
                   sampler="generator (weight average)", figures=[figure])


def _diffusion(cls, ctx: _Run) -> DemoRow:
    digits = ctx.digits
    model, settings = _build(cls, digits, ctx)
    T = model.num_steps
    ctx.say(f"{model.name}: training {settings['training']['epochs']} epochs, T = {T} "
            "(short recipe)")
    seconds, history, settings["objective"] = _train(
        model, digits, ctx, objective_options=settings["objective"], **settings["training"])
    ctx.say(f"{model.name}: trained {len(history)} epochs in {seconds:.1f} s (best epoch "
            f"{history.best_epoch}); the test bound ({T} network passes per image) and "
            f"DDIM-{DDIM_STEPS} sample metrics")
    ddim = {"sampler": "ddim", "steps": DDIM_STEPS, "eta": 0.0}
    report = _score(model, digits.test.to(ctx.device), sample_options=ddim)
    ctx.say(f"{model.name}: test bound {report['nll']:.2f} nats (prior "
            f"{report['bound_prior']:.2f}, steps {report['bound_steps']:.2f}, decoder "
            f"{report['bound_decoder']:.2f}); FD {report['fd']:.3f}")
    how = f"DDIM, {DDIM_STEPS} steps, η = 0"
    grid = _samples(model, ctx, f"-ddim{DDIM_STEPS}", how=how, **ddim)
    chain = f"reverse-chain-{model.name}.png"
    plots.save(reverse_chain_figure(model.eval()), ctx.out / chain)
    return DemoRow(model.name, report, seconds, model.num_parameters(), settings, bound=True,
                   sampler=how,
                   figures=[grid, (f"{model.name} reverse chain x_T → x_0 (one chain per row)",
                                   chain)])


def _build(cls, data: DataSplits, ctx: _Run):
    """The model of a short recipe and its settings: the recipe on top of the model's
    ``fit_defaults`` (``epochs`` overriding), and its objective options."""
    recipe = RECIPES[cls.name]
    model = cls.for_data(data.info, **recipe["model"])
    epochs = ctx.epochs(cls.name)
    training = {**model.fit_defaults, **recipe["training"],
                **({} if epochs is None else {"epochs": epochs})}
    return model, {"model": recipe["model"], "training": training,
                   "objective": recipe["objective"]}


def _train(model, data: DataSplits, ctx: _Run, **options) -> tuple[float, Any, dict]:
    """Fit ``model`` with the engine (checkpoint in ``out/<name>``): the seconds, the history
    and the objective as the run recorded it."""
    start = time.perf_counter()
    history = fit(
        model, data.train, data.val, device=ctx.device, seed=ctx.seed,
        out_dir=ctx.out / model.name, progress=ctx.progress,
        extra={"data": {"spec": "digits", "representation": data.info.likelihood,
                        "seed": ctx.seed}, "info": data.info.to_dict()},
        **options,
    )
    seconds = time.perf_counter() - start
    objective = read_checkpoint(ctx.out / model.name / "model.pt")["extra"]["training"]
    return seconds, history, objective["objective"]


def _score(model, test: torch.Tensor, **options) -> dict[str, Any]:
    """The test report: likelihood (where the model has one) and sample metrics."""
    return nll_report(model.eval(), test, samples=True, features="digits", **options)


def _samples(model, ctx: _Run, suffix: str = "", how: str = "", **options) -> tuple[str, str]:
    """A grid of 64 samples (sampler ``options``, described by ``how``) as
    ``samples-<model><suffix>.png``: its caption and file name."""
    name = f"samples-{model.name}{suffix}.png"
    title = f"{model.name} samples" + (f" ({how})" if how else "")
    images = model.sample(64, **options)
    info = ctx.digits.info
    plots.save(plots.image_grid(images, info.image_shape, vmax=info.num_levels - 1,
                                title=title), ctx.out / name)
    return title, name
