"""``ppgen demo`` end to end on a tiny schedule: the table, the figures and the report."""

from __future__ import annotations

from ppgen.cli import main


def test_demo_writes_table_figures_and_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "1", "--particles", "5",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    for name in ("independent-categorical", "markov-chain", "vae"):
        assert name in printed
    expected = {
        "report.md", "samples-independent-categorical.png", "samples-markov-chain.png",
        "samples-vae.png", "curves-vae.png", "latent-vae.png",
    }
    assert expected <= {p.name for p in out.iterdir()}
    assert all((out / name).stat().st_size > 1000 for name in expected if name.endswith(".png"))
    report = (out / "report.md").read_text()
    assert "| markov-chain | 101.8" in report  # the exact closed-form baseline
    assert (out / "vae" / "model.pt").exists()
