"""The tables and ``report.md`` of ``ppgen demo`` (:mod:`ppgen.demo` runs the models).

Two tables, printed and written to the report: the test likelihood of every model with a
density (exact, importance-weighted, or an upper bound marked ``≤``; ``—`` for a model without
one) next to the reference numbers of the benchmarks, and the sample quality of every model in
the digits classifier's feature space next to the real floor (the validation digits scored as if
they were samples).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DemoRow",
    "REFERENCES",
    "REFERENCE_COLUMN",
    "FD_REFERENCES",
    "SAMPLE_COLUMNS",
    "likelihood_table",
    "sample_table",
    "write_report",
]

#: reference test NLLs (nats per image) on the digits protocol (BENCHMARKS.md; the targets
#: benchmarks/RESULTS.md compares with), the VAE's reference −ELBO, and the full recipes'
#: bound of the diffusion model (benchmarks/diffusion.py, three seeds)
REFERENCES = {
    "independent-categorical": "≈ 106.3",
    "markov-chain": "≈ 101.8",
    "vae": "≈ 93.1 (−ELBO ≈ 96.5)",
    "dcgan": "none: no likelihood",
    "improved-ddpm": "≤ 80.8 (full recipe, T = 1000)",
}

#: the header of the reference column: what the numbers are and where they come from
REFERENCE_COLUMN = "reference test NLL (benchmarks/RESULTS.md)"

#: the Fréchet distance of each model's full recipe (benchmarks/sample_quality.py, seed 0;
#: benchmarks/results/sample-quality-{a,b}.json)
FD_REFERENCES = {"vae": 0.613, "dcgan": 0.629, "improved-ddpm": 0.493}

#: the sample table's metric columns: (report key, header, format)
SAMPLE_COLUMNS = [("fd", "FD", "{:.3f}"), ("kid", "KID", "{:.4f}"),
                  ("precision", "precision", "{:.3f}"), ("recall", "recall", "{:.3f}"),
                  ("density", "density", "{:.3f}"), ("coverage", "coverage", "{:.3f}"),
                  ("classes_hit", "classes hit", "{:d}")]

#: the sample table's first row: the real data's own spread
FLOOR_ROW = "real (val 350 vs test 447)"


@dataclass
class DemoRow:
    """One model of the demo: its test report (likelihood and sample metrics) and its cost.

    Attributes:
        model: the model's registered name.
        report: :func:`~ppgen.evaluate.nll_report` of the test split (``nll`` absent for a
            model without a likelihood; the sample metrics' keys when they were drawn).
        seconds: fitting time.
        num_parameters: trainable parameters.
        settings: training settings and objective, recorded in the report.
        bound: the ``nll`` is an upper bound (a variational bound), not an estimate.
        sampler: how the samples of the sample table were drawn.
        figures: ``(caption, file name)`` of the figures written for this model.
    """

    model: str
    report: dict[str, Any]
    seconds: float
    num_parameters: int
    settings: dict[str, Any] = field(default_factory=dict)
    bound: bool = False
    sampler: str = ""
    figures: list[tuple[str, str]] = field(default_factory=list)


# ----------------------------------------------------------------------------- the tables
def likelihood_table(rows: list[DemoRow]) -> str:
    """The test NLL table (nats per image): ``≤`` marks an upper bound, ``—`` no likelihood."""
    lines = [
        f"| model | test NLL (nats/image) | −ELBO | {REFERENCE_COLUMN} | parameters "
        "| fit time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {_nll_cell(r)} | {_number(r.report.get('elbo'))} "
            f"| {REFERENCES.get(r.model, '')} | {r.num_parameters:,} | {r.seconds:.1f} |"
        )
    return "\n".join(lines)


def _nll_cell(row: DemoRow) -> str:
    if "nll" not in row.report:
        return "—"
    return ("≤ " if row.bound else "") + f"{row.report['nll']:.2f}"


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def sample_table(rows: list[DemoRow], floor: dict[str, Any]) -> str:
    """The sample-quality table: the real floor, then every row with sample metrics."""
    header = "| model | samples | " + " | ".join(h for _, h, _ in SAMPLE_COLUMNS)
    lines = [header + " | FD, full recipe |", "|" + "---|" * (len(SAMPLE_COLUMNS) + 3)]
    lines.append(_sample_line(FLOOR_ROW, "validation digits", floor, "—"))
    for r in rows:
        if "fd" in r.report:
            reference = FD_REFERENCES.get(r.model)
            lines.append(_sample_line(r.model, r.sampler, r.report,
                                      "" if reference is None else f"{reference:.3f}"))
    return "\n".join(lines)


def _sample_line(name: str, sampler: str, report: dict[str, Any], reference: str) -> str:
    cells = [fmt.format(report[k]) if k in report else "—" for k, _, fmt in SAMPLE_COLUMNS]
    return f"| {name} | {sampler} | " + " | ".join(cells) + f" | {reference} |"


# ----------------------------------------------------------------------------- report.md
def write_report(out: Path, rows: list[DemoRow], tables: tuple[str, str], num_test: int,
                 num_particles: int, run: dict | None = None) -> None:
    """``out/report.md``: what was run, the two tables, the figures and the run's record."""
    likelihood, samples = tables
    figures = "\n".join(f"- {caption}: ![{name}]({name})" for r in rows
                        for caption, name in r.figures)
    text = f"""# ppgen demo: the bundled digits, every family

Data: scikit-learn's 8×8 digits, 17 grey levels, ordered split train 1000 / val 350 /
test {num_test}. The baselines are fitted in closed form and the VAE with its benchmark recipe
(`benchmarks/digits.py` repeats this over three seeds); the GAN and the diffusion model use the
demo's short recipes (the settings below; their full recipes are in `benchmarks/`).

## Likelihood

Test negative log-likelihoods in nats per image (lower is better). Baselines are exact; the
VAE's NLL is the importance-weighted estimate with K = {num_particles}, its −ELBO uses the
closed-form KL. {_bound_note(rows)}A GAN has no likelihood (`—`). The reference column holds
the test NLLs this protocol is benchmarked against (for the VAE also its −ELBO), as listed with
the project's own results in `benchmarks/RESULTS.md`; for the diffusion model, the bound of its
full recipe over three seeds (`benchmarks/diffusion.py`, `benchmarks/results/`).

{likelihood}

## Sample quality

{num_test} samples of each model against the {num_test} test digits, in the features of the
digits classifier shipped with ppgen (`ppgen.metrics`): Fréchet distance (FD) and KID (lower is
better), precision / recall (k = 3) and density / coverage (k = 5) (higher is better; density
near 1), the digit classes the samples hit (of 10). The first row is the real floor: the 350
validation digits scored as if they were samples, the spread between two real samples. It is
not a bound: the Fréchet distance grows as the sample shrinks, so a generator scored with 447
samples can fall below it; an FD near the floor means samples about as close to the test digits
as other real digits are. The last column is the FD of the model's full recipe
(`benchmarks/sample_quality.py`).

{samples}

## Figures

{figures}
{_run_section(run or {}, rows, num_particles)}"""
    (out / "report.md").write_text(text)


def _bound_note(rows: list[DemoRow]) -> str:
    """The sentence that says which NLLs are upper bounds (``≤``), with their step counts."""
    bounds = [f"{r.model}'s variational bound" + (
        f" over its T = {r.settings['model']['num_steps']} steps (its decoder is over the 17 "
        "levels, so this bounds the discrete NLL)"
        if "num_steps" in r.settings.get("model", {}) else "") + _terms(r.report)
        for r in rows if r.bound]
    return f"`≤` marks an upper bound on the NLL: {'; '.join(bounds)}. " if bounds else ""


def _terms(report: dict[str, Any]) -> str:
    """A diffusion bound's terms (``bound_prior``, ``bound_steps``, ``bound_decoder``)."""
    if "bound_steps" not in report:
        return ""
    return (f", {report['nll']:.2f} = prior L_T {report['bound_prior']:.2f} + steps "
            f"Σ L_t-1 {report['bound_steps']:.2f} + decoder L_0 {report['bound_decoder']:.2f}")


def _run_section(run: dict, rows: list[DemoRow], num_particles: int) -> str:
    """What produced the numbers: command, seed, date, versions and each model's settings."""
    if not run:
        return ""
    versions = ", ".join(f"{k} {v}" for k, v in run["versions"].items())
    settings = "".join(_settings_lines(r) for r in rows if r.settings)
    return f"""
## Run

- command: `{run["command"]}`
- seed: {run["seed"]}
- CPU threads: {run.get("threads", "")}
- date: {run["date"]}
- versions: {versions}
{settings}- test NLL estimate: importance-weighted, `{json.dumps({"num_particles": num_particles})}`
"""


def _settings_lines(row: DemoRow) -> str:
    """The report lines of one model's recorded settings (model options, training, objective)."""
    names = {"model": "model options", "training": "training settings", "objective": "objective"}
    return "".join(f"- {row.model} {label}: `{json.dumps(row.settings[key], sort_keys=True)}`\n"
                   for key, label in names.items() if key in row.settings)
