"""The ``ppgen`` command line, run in-process: files written, exit codes, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ppgen.cli import main


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "mc"
    assert main(["fit", "markov-chain", "--data", "digits", "--out", str(out)]) == 0
    return out


def test_fit_writes_model_history_and_metrics(fitted):
    assert {"model.pt", "history.csv", "metrics.json"} <= {p.name for p in fitted.iterdir()}
    metrics = json.loads((fitted / "metrics.json").read_text())
    assert metrics["model"] == "markov-chain"
    assert metrics["num_parameters"] == 16 + 63 * 17 * 16
    assert metrics["data"] == {"spec": "digits", "representation": "categorical", "seed": 0}


def test_evaluate_writes_json_with_benchmark_nll(fitted, capsys):
    assert main(["evaluate", str(fitted)]) == 0
    report = json.loads((fitted / "eval-test.json").read_text())
    assert report["n"] == 447
    assert abs(report["nll"] - 101.8) < 0.5
    assert "nll" in capsys.readouterr().out


def test_sample_writes_png_and_npy(fitted, tmp_path):
    png, npy = tmp_path / "grid.png", tmp_path / "s.npy"
    assert main(["sample", str(fitted), "-n", "9", "--out", str(png), "--npy", str(npy)]) == 0
    assert png.stat().st_size > 0
    samples = np.load(npy)
    assert samples.shape == (9, 64) and samples.min() >= 0 and samples.max() <= 16


def test_list_names_the_models(capsys):
    assert main(["fit", "--list"]) == 0
    out = capsys.readouterr().out
    assert "markov-chain" in out and "independent-categorical" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["fit", "no-such-model", "--out", "x"], "unknown model 'no-such-model'"),
        (["fit", "markov-chain"], "--out DIR is required"),
        (["fit"], "a model name is required"),
        (["fit", "markov-chain", "--epochs", "ten", "--out", "x"], "invalid int value"),
        (["fit", "markov-chain", "--data", "missing.npy", "--out", "x"], "missing.npy"),
        (["evaluate", "no/such/dir"], "no/such/dir"),
        (["sample", "no/such/dir", "-n", "0"], "-n must be at least 1"),
        (["bogus"], "invalid choice"),
    ],
)
def test_mistakes_exit_2_with_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main(argv))
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1


def test_corrupt_checkpoint_is_a_clean_error(tmp_path, capsys):
    (tmp_path / "model.pt").write_bytes(b"not a checkpoint at all")
    assert main(["evaluate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "model.pt" in err and "Traceback" not in err


def test_fit_user_csv_and_set_options(tmp_path):
    rng = np.random.default_rng(0)
    data = (rng.random((60, 5)) < 0.3).astype(int)
    path = tmp_path / "bits.csv"
    np.savetxt(path, data, fmt="%d", delimiter=",")
    out = tmp_path / "run"
    argv = ["fit", "independent-bernoulli", "--data", str(path), "--representation", "binary",
            "--out", str(out)]
    assert main(argv) == 0
    assert main(["evaluate", str(out), "--split", "val"]) == 0
    assert json.loads((out / "eval-val.json").read_text())["n"] == 9


@pytest.fixture(scope="module")
def conditional(tmp_path_factory):
    """A class-conditional (dequantised) MAF fitted for one epoch on the labelled digits."""
    out = tmp_path_factory.mktemp("cli") / "cmaf"
    argv = ["fit", "maf", "--data", "digits", "--epochs", "1", "--out", str(out), "--set",
            "num_classes=10", "--set", "hidden_features=8", "--set", "num_layers=1"]
    assert main(argv) == 0
    return out


def test_class_conditional_run_evaluates_with_its_labels_and_samples_a_class(
    conditional, tmp_path
):
    assert main(["evaluate", str(conditional), "--particles", "2"]) == 0
    assert json.loads((conditional / "eval-test.json").read_text())["n"] == 447
    npy = tmp_path / "threes.npy"
    assert main(["sample", str(conditional), "-n", "4", "--label", "3", "--npy", str(npy),
                 "--out", str(tmp_path / "g.png")]) == 0
    samples = np.load(npy)
    assert samples.shape == (4, 64) and samples.min() >= 0 and samples.max() <= 16


def test_evaluate_reads_the_models_declared_particles(conditional, monkeypatch):
    """Without --particles the model's ``evaluation_defaults`` decide (not a fixed 1000)."""
    from ppgen.models import Dequantized

    monkeypatch.setattr(Dequantized, "evaluation_defaults", {"num_particles": 3})
    assert main(["evaluate", str(conditional), "--split", "val"]) == 0
    assert json.loads((conditional / "eval-val.json").read_text())["num_particles"] == 3


def test_score_takes_the_rows_labels(conditional, tmp_path, monkeypatch, capsys):
    from ppgen.data import load_digits
    from ppgen.models import Dequantized

    monkeypatch.setattr(Dequantized, "evaluation_defaults", {"num_particles": 2})
    digits = load_digits("categorical")
    x, y = tmp_path / "x.npy", tmp_path / "y.csv"
    np.save(x, digits.test[:12].numpy())
    np.savetxt(y, digits.labels["test"][:12].numpy(), fmt="%d")
    out = tmp_path / "scores.csv"
    argv = ["score", str(conditional), "--data", str(x), "--out", str(out)]
    assert main([*argv, "--labels", str(y)]) == 0  # --fpr on the run's labelled val split
    assert len(out.read_text().splitlines()) == 13
    assert main(argv) == 2
    assert "pass --labels FILE" in capsys.readouterr().err
    np.savetxt(y, np.full(12, 10), fmt="%d")
    assert main([*argv, "--labels", str(y), "--threshold", "-100"]) == 2
    assert "class range 0..9" in capsys.readouterr().err


def test_sample_set_passes_declared_options_and_refuses_others(conditional, tmp_path, capsys):
    npy = tmp_path / "s.npy"
    argv = ["sample", str(conditional), "-n", "3", "--npy", str(npy), "--out",
            str(tmp_path / "g.png")]
    assert main([*argv, "--set", "y=7"]) == 0 and np.load(npy).shape == (3, 64)
    assert main([*argv, "--set", "steps=10"]) == 2
    err = capsys.readouterr().err
    assert "unknown option(s) steps; valid options: y (class label in 0..9)" in err


def test_labels_for_an_unconditional_score_are_a_usage_error(fitted, tmp_path, capsys):
    x, y = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(x, np.zeros((2, 64), dtype=int))
    np.save(y, np.zeros(2, dtype=int))
    argv = ["score", str(fitted), "--data", str(x), "--labels", str(y), "--out",
            str(tmp_path / "s.csv"), "--threshold", "0"]
    assert main(argv) == 2
    assert "unconditional" in capsys.readouterr().err


def test_label_for_an_unconditional_run_is_a_usage_error(fitted, capsys):
    assert main(["sample", str(fitted), "--label", "3"]) == 2
    assert "unconditional" in capsys.readouterr().err


def test_evaluate_on_an_implicit_model_prints_its_sample_metrics_and_no_likelihood(
        tmp_path, capsys):
    out = tmp_path / "gan"
    assert main(["fit", "gan", "--data", "eight_gaussians", "--epochs", "1", "--out", str(out),
                 "--set", "hidden_dims=[16]", "--set", "critic_dims=[16]", "--batch-size", "1000",
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "eval-test.json").read_text())
    assert "nll" not in report and "nats" not in printed
    for key in ("fd", "kid", "precision", "recall", "density", "coverage"):
        assert f"    {key:<14} {report[key]:.3f}" in printed, key
