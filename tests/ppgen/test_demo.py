"""``ppgen demo`` end to end on a tiny schedule: the table, the figures and the report."""

from __future__ import annotations

from ppgen.cli import main


def test_demo_writes_table_figures_and_report(tmp_path, capsys, monkeypatch):
    from ppgen import plots

    figures = {}
    real = plots.save
    monkeypatch.setattr(plots, "save", lambda fig, path, **kw: (
        figures.__setitem__(path.name, fig), real(fig, path, **kw))[1])
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "1", "--particles", "5",
                 "--seed", "4"]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    for name in ("independent-categorical", "markov-chain", "vae"):
        assert name in printed
    # not on a terminal (captured): progress as plain lines on stderr
    progress = captured.err.splitlines()
    assert any("markov-chain" in line for line in progress)
    assert any("vae" in line and "train" in line for line in progress)
    expected = {
        "report.md", "samples-independent-categorical.png", "samples-markov-chain.png",
        "samples-vae.png", "curves-vae.png", "latent-vae.png",
    }
    assert expected <= {p.name for p in out.iterdir()}
    assert all((out / name).stat().st_size > 1000 for name in expected if name.endswith(".png"))
    report = (out / "report.md").read_text()
    assert "| markov-chain | 101.8" in report  # the exact closed-form baseline
    assert (out / "vae" / "model.pt").exists()
    assert "| reference test NLL" in report and "≈ 93.1 (−ELBO ≈ 96.5)" in report
    legend = figures["curves-vae.png"].axes[0].get_legend().get_texts()
    assert [t.get_text() for t in legend][:2] == ["training IWAE-5", "validation IWAE-20 NLL"]
    # what produced the numbers
    for text in ("ppgen demo --out", "seed: 4", "torch ", "pyro ", "date:", '"epochs": 1',
                 '"num_particles": 5'):
        assert text in report, text


def test_demo_is_quiet_with_no_progress(tmp_path, capsys, monkeypatch):
    from ppgen import demo

    monkeypatch.setattr(demo, "_vae", lambda *args: None)
    monkeypatch.setattr(demo, "_baseline", lambda *args: None)
    monkeypatch.setattr(demo, "_table", lambda rows: "table")
    monkeypatch.setattr(demo, "_write_report", lambda *args, **kwargs: None)
    assert main(["demo", "--out", str(tmp_path / "d"), "--no-progress"]) == 0
    assert capsys.readouterr().err == ""


def test_the_reference_column_says_what_it_is():
    from ppgen.demo import DemoRow, _table

    table = _table([DemoRow("markov-chain", {"nll": 101.81}, 0.1, 10),
                    DemoRow("vae", {"nll": 90.0, "elbo": 95.0}, 1.0, 100)])
    header = table.splitlines()[0]
    assert "| reference test NLL (benchmarks/RESULTS.md) |" in header
    assert "| vae | 90.00 | 95.00 | ≈ 93.1 (−ELBO ≈ 96.5) |" in table
    assert "| markov-chain | 101.81 | — | ≈ 101.8 |" in table
