"""``ppgen demo`` end to end on a tiny schedule: the two tables, the figures and the report."""

from __future__ import annotations

import math

import pytest
import torch

from ppgen.cli import main

#: tiny tensors: several threads spin-wait on a busy machine
pytestmark = pytest.mark.usefixtures("one_thread")

ALL = ["independent-categorical", "markov-chain", "vae", "dcgan", "improved-ddpm"]


def _rows(table: str) -> dict[str, list[str]]:
    """``{first cell: the other cells}`` of a markdown table's body."""
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    return {cells[0]: cells[1:] for cells in
            ([c.strip() for c in line.strip("|").split("|")] for line in lines[1:])}


def _tables(printed: str) -> tuple[str, str]:
    likelihood, samples = printed.split("\n\n")[:2]
    return likelihood, samples


def test_demo_writes_tables_figures_and_report(tmp_path, capsys, monkeypatch):
    """Every model with one epoch, the diffusion model with eight (its bound then beats the
    independent baseline's 106.37 nats: about 102 at seed 4)."""
    from ppgen import plots

    figures = {}
    real = plots.save
    monkeypatch.setattr(plots, "save", lambda fig, path, **kw: (
        figures.__setitem__(path.name, fig), real(fig, path, **kw))[1])
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "1", "improved-ddpm=8",
                 "--particles", "5", "--seed", "4"]) == 0
    captured = capsys.readouterr()
    likelihood, samples = _tables(captured.out)

    # the likelihood table: every model, the GAN without a likelihood, the bound marked
    assert likelihood.splitlines()[0] == (
        "| model | test NLL (nats/image) | −ELBO | reference test NLL (benchmarks/RESULTS.md) "
        "| parameters | fit time (s) |")
    rows = _rows(likelihood)
    assert list(rows) == ALL
    assert rows["markov-chain"][:2] == ["101.81", "—"]  # the exact closed-form baseline
    assert rows["dcgan"][:3] == ["—", "—", "none: no likelihood"]
    bound = rows["improved-ddpm"][0]
    assert bound.startswith("≤ ") and bound[2:] == rows["improved-ddpm"][1]
    assert math.isfinite(float(bound[2:])) and float(bound[2:]) < float(
        rows["independent-categorical"][0])
    assert not rows["vae"][0].startswith("≤")  # K = 5: an estimate, not the bound

    # the sample table: the floor, then every model, every metric a number
    header = [c.strip() for c in samples.splitlines()[0].strip("|").split("|")]
    assert header == ["model", "samples", "FD", "KID", "precision", "recall", "density",
                      "coverage", "classes hit", "FD, full recipe"]
    rows = _rows(samples)
    assert list(rows) == ["real (val 350 vs test 447)", *ALL]
    assert rows["real (val 350 vs test 447)"][1] == "0.691"
    for name in ALL:
        assert all(math.isfinite(float(v)) for v in rows[name][1:8]), name
    assert rows["improved-ddpm"][0] == "DDIM, 50 steps, η = 0"

    # not on a terminal (captured): progress as plain lines on stderr, with each model's time
    progress = captured.err.splitlines()
    assert any("markov-chain" in line for line in progress)
    assert any("vae" in line and "train" in line for line in progress)
    assert all(any(line.startswith(f"ppgen demo: {m}: done in") for line in progress)
               for m in ALL)

    expected = {
        "report.md", "samples-independent-categorical.png", "samples-markov-chain.png",
        "samples-vae.png", "curves-vae.png", "latent-vae.png", "samples-dcgan.png",
        "samples-improved-ddpm-ddim50.png", "reverse-chain-improved-ddpm.png",
    }
    assert expected <= {p.name for p in out.iterdir()}
    assert all((out / name).stat().st_size > 1000 for name in expected if name.endswith(".png"))
    chain = figures["reverse-chain-improved-ddpm.png"].axes
    assert len(chain) == 6 * 11 and chain[0].get_title() == "$x_{50}$"
    assert chain[10].get_title() == "x"
    report = (out / "report.md").read_text()
    assert likelihood in report and samples in report
    assert all(f"({name})" in report for name in expected if name.endswith(".png"))
    for name in ("vae", "dcgan", "improved-ddpm"):
        assert (out / name / "model.pt").exists()
    assert "≈ 93.1 (−ELBO ≈ 96.5)" in report
    legend = figures["curves-vae.png"].axes[0].get_legend().get_texts()
    assert [t.get_text() for t in legend][:2] == ["training IWAE-5", "validation IWAE-20 NLL"]
    # what produced the numbers
    for text in ("ppgen demo --out", "seed: 4", "torch ", "pyro ", "date:", '"epochs": 1',
                 '"num_particles": 5', '"epochs": 8', '"num_steps": 50', '"r1": 1.0',
                 "upper bound on the NLL: improved-ddpm's variational bound over its T = 50",
                 "- CPU threads: 1", "= prior L_T 0.00 + steps Σ L_t-1 "):
        assert text in report, text


def test_a_subset_gives_the_same_numbers_as_the_whole(tmp_path, capsys, monkeypatch):
    """Every model starts from the seed: its row does not depend on the rows before it, and
    the same command gives the same numbers."""
    from ppgen import demo
    from ppgen.demo import run_demo

    monkeypatch.setattr(demo, "_samples", lambda *args, **kwargs: ("", ""))  # no grids: faster

    both = run_demo(tmp_path / "a", models=["markov-chain", "independent-categorical"],
                    progress=False)
    alone = run_demo(tmp_path / "b", models=["markov-chain"], progress=False)
    again = run_demo(tmp_path / "c", models=["markov-chain"], progress=False, threads=2)
    assert torch.get_num_threads() == 1  # restored (the module runs on one thread)
    assert "- CPU threads: 2\n" in (tmp_path / "c" / "report.md").read_text()
    assert [r.model for r in both] == ["independent-categorical", "markov-chain"]  # ordered
    assert both[1].report["fd"] == alone[0].report["fd"] == again[0].report["fd"]
    assert both[0].report["fd"] != both[1].report["fd"]
    printed = capsys.readouterr().out
    assert "| vae |" not in printed and "| markov-chain | exact |" in printed


def test_unknown_models_are_refused(tmp_path, capsys):
    from ppgen.demo import run_demo
    from ppgen.errors import ArgumentError

    with pytest.raises(ArgumentError, match="unknown demo model.*'gan'"):
        run_demo(tmp_path, models=["gan"], progress=False)
    with pytest.raises(ArgumentError, match="'vea'"):
        run_demo(tmp_path, epochs={"vea": 3}, progress=False)
    for argv in (["--models", "gan"], ["--epochs", "vea=3"], ["--epochs", "vae=0"]):
        with pytest.raises(SystemExit) as exit_:
            main(["demo", *argv])
        assert exit_.value.code == 2, argv
    err = capsys.readouterr().err
    assert "invalid choice: 'gan'" in err and "unknown model 'vea'" in err
    assert "must be at least 1" in err


def test_the_epochs_option_reads_one_number_or_one_per_model():
    from ppgen.cli.demo import MODELS, epochs_option
    from ppgen.demo import MODELS as DEMO_MODELS

    assert MODELS == DEMO_MODELS
    assert epochs_option(None) is None
    assert epochs_option([(None, 3)]) == 3
    assert epochs_option([("vae", 2), ("dcgan", 5)]) == {"vae": 2, "dcgan": 5}
    assert epochs_option([(None, 1), ("vae", 2)]) == {**dict.fromkeys(MODELS, 1), "vae": 2}


def test_demo_is_quiet_with_no_progress(tmp_path, capsys, monkeypatch):
    from ppgen import demo

    monkeypatch.setattr(demo, "_baseline", lambda cls, ctx: demo.DemoRow(cls.name, {}, 0, 0))
    monkeypatch.setattr(demo, "likelihood_table", lambda rows: "table")
    monkeypatch.setattr(demo, "sample_table", lambda rows, floor: "table")
    monkeypatch.setattr(demo, "write_report", lambda *args, **kwargs: None)
    assert main(["demo", "--out", str(tmp_path / "d"), "--no-progress", "--models",
                 "markov-chain"]) == 0
    assert capsys.readouterr().err == ""


def test_the_reference_column_says_what_it_is():
    from ppgen.demo import DemoRow
    from ppgen.demo_report import likelihood_table

    table = likelihood_table([DemoRow("markov-chain", {"nll": 101.81}, 0.1, 10),
                              DemoRow("vae", {"nll": 90.0, "elbo": 95.0}, 1.0, 100),
                              DemoRow("dcgan", {"fd": 1.0}, 1.0, 100),
                              DemoRow("improved-ddpm", {"nll": 88.0, "elbo": 88.0}, 1.0, 100,
                                      bound=True)])
    header = table.splitlines()[0]
    assert "| reference test NLL (benchmarks/RESULTS.md) |" in header
    assert "| vae | 90.00 | 95.00 | ≈ 93.1 (−ELBO ≈ 96.5) |" in table
    assert "| markov-chain | 101.81 | — | ≈ 101.8 |" in table
    assert "| dcgan | — | — | none: no likelihood |" in table
    assert "| improved-ddpm | ≤ 88.00 | 88.00 | ≤ 80.8 (full recipe, T = 1000) |" in table


def test_the_sample_table_puts_the_floor_first_and_skips_rows_without_samples():
    from ppgen.demo import DemoRow
    from ppgen.demo_report import sample_table

    metrics = {"fd": 0.5, "kid": 0.01, "precision": 0.6, "recall": 0.7, "density": 0.8,
               "coverage": 0.9, "classes_hit": 10}
    table = sample_table([DemoRow("dcgan", metrics, 1.0, 10, sampler="generator"),
                          DemoRow("mine", {"nll": 1.0}, 1.0, 10)], {**metrics, "fd": 0.691})
    lines = table.splitlines()
    assert len(lines) == 4
    assert lines[2].startswith("| real (val 350 vs test 447) | validation digits | 0.691 |")
    assert lines[3] == ("| dcgan | generator | 0.500 | 0.0100 | 0.600 | 0.700 | 0.800 | 0.900 "
                        "| 10 | 0.629 |")
