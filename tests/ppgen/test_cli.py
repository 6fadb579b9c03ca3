"""The ``ppgen`` command line, run in-process: files written, exit codes, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ppgen.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


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
    assert report["features"] == "raw" and {"modes", "high_quality"} <= set(report)  # a mode toy
    assert main(["evaluate", str(out), "--no-samples"]) == 2
    assert "drop --no-samples" in capsys.readouterr().err


SAMPLE_KEYS = ("fd", "kid", "precision", "recall", "density", "coverage")


def test_evaluate_adds_sample_metrics_in_the_runs_feature_space(fitted, tmp_path, capsys):
    """A likelihood model's report carries sample metrics beside its NLL: the digits
    classifier's space (with its real floor) for a digits run, raw features for --data FILE,
    none with --no-samples."""
    assert main(["evaluate", str(fitted), "--split", "val", "--no-progress"]) == 0
    report = json.loads((fitted / "eval-val.json").read_text())
    assert report["features"] == "digits" and report["n"] == 350
    assert {"nll", "fd_floor", "classes_hit", *SAMPLE_KEYS} <= set(report)
    assert report["fd"] > report["fd_floor"] > 0
    printed = capsys.readouterr().out
    assert "samples against the data (digits features)" in printed
    assert f"    {'fd':<14} {report['fd']:.3f}" in printed
    rows = tmp_path / "rows.npy"
    np.save(rows, _digits_rows(40))
    assert main(["evaluate", str(fitted), "--data", str(rows), "--no-progress"]) == 0
    report = json.loads((fitted / "eval-file-rows.json").read_text())
    assert report["features"] == "raw" and report["n"] == 40
    assert set(SAMPLE_KEYS) <= set(report) and "fd_floor" not in report
    assert "samples against the data (raw features)" in capsys.readouterr().out
    assert main(["evaluate", str(fitted), "--split", "val", "--no-samples"]) == 0
    report = json.loads((fitted / "eval-val.json").read_text())
    assert "nll" in report and not {"features", "fd_floor", *SAMPLE_KEYS} & set(report)
    assert "samples against" not in capsys.readouterr().out


def _digits_rows(n: int) -> np.ndarray:
    from ppgen.data import load_digits

    return load_digits("categorical").test[:n].numpy()


@pytest.fixture(scope="module")
def diffusion(tmp_path_factory):
    """A DDPM with T = 50 (so DDIM-50 is every step) and a tiny MLP denoiser, one epoch on the
    digits."""
    out = tmp_path_factory.mktemp("cli") / "ddpm"
    assert main(["fit", "ddpm", "--data", "digits", "--epochs", "1", "--out", str(out),
                 "--no-progress", "--set", "num_steps=50", "--set",
                 'denoiser={"kind": "mlp", "width": 8, "blocks": 1}']) == 0
    return out


BOUND_TERMS = ("bound_prior", "bound_steps", "bound_decoder")


def test_diffusion_evaluate_shows_its_bound_decomposition_and_ddim_samples_also_under_torchrun(
        diffusion, tmp_path, capsys):
    """One process: the bound with its terms, samples drawn with DDIM-50. Two gloo processes:
    each bounds a block of rows and the means (the bound's terms too) are weighted over both;
    rank 0 draws as many samples as rows and compares them with every row, so the sample
    metrics equal the one-process run's (the same seeded draws)."""
    import os
    import subprocess
    import sys

    assert main(["evaluate", str(diffusion), "--no-progress"]) == 0
    whole = json.loads((diffusion / "eval-test.json").read_text())
    assert whole["nll"] == whole["elbo"] and whole["num_particles"] == 1
    assert sum(whole[k] for k in BOUND_TERMS) == pytest.approx(whole["elbo"], rel=1e-6)
    assert whole["sample_options"] == {"sampler": "ddim", "steps": 50}
    assert whole["features"] == "digits" and {"fd_floor", *SAMPLE_KEYS} <= set(whole)
    printed = capsys.readouterr().out
    assert "the bound's decomposition: elbo = prior + steps + decoder" in printed
    assert "(digits features; drawn with sampler=ddim, steps=50)" in printed
    for key in ("nll", "elbo", *BOUND_TERMS, "fd", "kid"):
        assert f"    {key:<14} {whole[key]:.3f}" in printed, key

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    launch = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "ppgen", "evaluate", str(diffusion), "--no-progress"],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert launch.returncode == 0, launch.stderr[-3000:]
    sharded = json.loads((diffusion / "eval-test.json").read_text())
    assert sharded["n"] == whole["n"] == 447
    # every term is a mean over all rows (rank 0's block alone would not sum to the bound)
    assert sum(sharded[k] for k in BOUND_TERMS) == pytest.approx(sharded["elbo"], rel=1e-6)
    assert sharded["elbo"] == pytest.approx(whole["elbo"], abs=2.0)  # one noise draw per step
    for key in ("mmd", "fd", "fd_floor", "kid", "kid_std", "precision", "recall", "density",
                "coverage", "classes_hit"):
        assert sharded[key] == pytest.approx(whole[key], rel=1e-6), key
