"""A run a user can trust: seeded evaluations, recorded data, checksummed checkpoints, full
provenance, and nothing already saved lost or replaced without asking."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from testkit import TinyGaussian, randomize

import ppgen
from ppgen.checkpoint import atomic_save, load_model, read_checkpoint, safe_load, save_model
from ppgen.cli import main
from ppgen.errors import CheckpointError

__all__: list[str] = []


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("integrity") / "vae"
    assert main(["fit", "vae", "--data", "digits", "--epochs", "1", "--set", "hidden_dims=[16]",
                 "--set", "latent_dim=2", "--out", str(out), "--no-progress"]) == 0
    return out


def _bits(path: Path, rows: int, seed: int = 0) -> Path:
    data = (np.random.default_rng(seed).random((rows, 5)) < 0.3).astype(int)
    np.savetxt(path, data, fmt="%d", delimiter=",")
    return path


def _digit_rows(path: Path, rows: int) -> Path:
    data = np.random.default_rng(0).integers(0, 17, (rows, 64))
    np.savetxt(path, data, fmt="%d", delimiter=",")
    return path


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


# --------------------------------------------------------------------------- 1. seeds
def test_evaluate_seed_reproduces_the_estimate(vae_run):
    reports = []
    for _ in range(2):
        assert main(["evaluate", str(vae_run), "--particles", "10", "--seed", "1"]) == 0
        reports.append((vae_run / "eval-test.json").read_text())
    assert reports[0] == reports[1]
    assert main(["evaluate", str(vae_run), "--particles", "10", "--seed", "2"]) == 0
    assert (vae_run / "eval-test.json").read_text() != reports[0]


# --------------------------------------------------------------------------- 2. data
def test_a_run_records_its_data_file_and_works_from_another_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    csv = _bits(tmp_path / "bits.csv", 60)
    out = tmp_path / "run"
    assert main(["fit", "independent-bernoulli", "--data", "bits.csv", "--representation",
                 "binary", "--out", str(out)]) == 0
    data = read_checkpoint(out / "model.pt")["extra"]["data"]
    assert data["path"] == str(csv.resolve())
    assert data["sha256"] == hashlib.sha256(csv.read_bytes()).hexdigest()
    assert json.loads((out / "metrics.json").read_text())["data"] == data
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["evaluate", str(out), "--split", "val"]) == 0
    assert json.loads((out / "eval-val.json").read_text())["n"] == 9
    assert main(["score", str(out), "--data", str(csv), "--out", "s.csv"]) == 0


def test_a_changed_data_file_is_refused(tmp_path, capsys):
    csv = _bits(tmp_path / "bits.csv", 60)
    out = tmp_path / "run"
    assert main(["fit", "independent-bernoulli", "--data", str(csv), "--representation",
                 "binary", "--out", str(out)]) == 0
    _bits(csv, 80, seed=1)
    assert main(["evaluate", str(out)]) == 2
    err = _one_line_error(capsys)
    assert "bits.csv" in err and "changed" in err
    assert not (out / "eval-test.json").exists()


def test_evaluate_data_scores_any_file_also_for_a_model_saved_from_python(tmp_path, capsys):
    x = torch.randn(40, 3)
    model = TinyGaussian(dim=3)
    ppgen.fit(model, x[:30], x[30:], epochs=2, progress=False, out_dir=tmp_path / "py")
    assert main(["evaluate", str(tmp_path / "py")]) == 2
    assert "--data FILE" in _one_line_error(capsys)
    np.save(tmp_path / "new.npy", np.random.default_rng(1).normal(size=(7, 3)))
    assert main(["evaluate", str(tmp_path / "py"), "--data", str(tmp_path / "new.npy")]) == 0
    report = json.loads((tmp_path / "py" / "eval-file-new.json").read_text())
    assert report["n"] == 7 and np.isfinite(report["nll"])
    assert report["data"]["path"] == str((tmp_path / "new.npy").resolve())


# --------------------------------------------------------------------------- 3. checksums
def _flip_inside(path: Path, tensor: torch.Tensor) -> None:
    """Flip one bit in the middle of ``tensor``'s bytes in the file at ``path``."""
    raw = bytearray(path.read_bytes())
    needle = tensor.detach().contiguous().numpy().tobytes()
    at = raw.find(needle)
    assert at >= 0 and raw.find(needle, at + 1) < 0
    raw[at + len(needle) // 2] ^= 0x04
    path.write_bytes(bytes(raw))


def test_a_flipped_byte_in_model_pt_is_a_checkpoint_error(tmp_path):
    model = randomize(TinyGaussian(dim=64), seed=3)
    path = tmp_path / "model.pt"
    save_model(model, path)
    load_model(path)  # intact: loads
    _flip_inside(path, model.loc)
    with pytest.raises(CheckpointError, match=r"model\.pt.*checksum"):
        load_model(path)


def test_a_flipped_byte_in_a_training_checkpoint_is_a_checkpoint_error(tmp_path):
    state = {"format": "ppgen-train", "model_state": {"w": torch.randn(256)}, "epoch": 3}
    path = tmp_path / "checkpoint.pt"
    atomic_save(state, path)
    loaded = safe_load(path, what="training checkpoint")
    assert loaded.keys() == state.keys() and torch.equal(loaded["model_state"]["w"],
                                                         state["model_state"]["w"])
    _flip_inside(path, state["model_state"]["w"])
    with pytest.raises(CheckpointError, match=r"training checkpoint.*checkpoint\.pt.*checksum"):
        safe_load(path, what="training checkpoint")


def test_an_old_file_without_a_checksum_loads_with_a_warning(tmp_path, caplog):
    model = randomize(TinyGaussian(dim=4), seed=1)
    path = tmp_path / "old.pt"
    save_model(model, path)
    payload = torch.load(path, weights_only=True)
    del payload["checksum"]
    torch.save(payload, path)
    with caplog.at_level(logging.WARNING, logger="ppgen.checkpoint"):
        loaded = load_model(path)
    assert torch.equal(loaded.loc, model.loc)
    assert "no checksum" in caplog.text and "old.pt" in caplog.text


# --------------------------------------------------------------------------- 4. provenance
def test_metrics_record_command_seed_versions_date_and_settings(vae_run):
    import pyro

    metrics = json.loads((vae_run / "metrics.json").read_text())
    run = metrics["run"]
    assert run["command"].startswith("ppgen fit vae --data digits --epochs 1")
    assert run["versions"] == {"ppgen": ppgen.__version__, "torch": torch.__version__,
                               "pyro": pyro.__version__, "python": run["versions"]["python"]}
    assert run["date"][:4].isdigit() and "T" in run["date"]
    assert metrics["seed"] == 0
    from ppgen.models import VAE

    settings = metrics["settings"]
    assert settings["epochs"] == 1  # the option wins over the model's recipe
    for key, value in VAE.fit_defaults.items():
        if key != "epochs":
            assert settings[key] == value, key
    assert metrics["objective"]["num_particles"] == VAE.objective_defaults["num_particles"]


# --------------------------------------------------------------------------- 5. no data lost
def test_score_refuses_to_write_over_its_input(vae_run, tmp_path, capsys):
    x = _digit_rows(tmp_path / "x.csv", 3)
    before = x.read_bytes()
    assert main(["score", str(vae_run), "--data", str(x), "--out", str(x),
                 "--threshold", "0"]) == 2
    assert "input" in _one_line_error(capsys)
    os.symlink(x, tmp_path / "link.csv")
    assert main(["score", str(vae_run), "--data", str(x), "--out", str(tmp_path / "link.csv"),
                 "--threshold", "0"]) == 2
    assert "input" in _one_line_error(capsys)
    assert x.read_bytes() == before


def test_fit_into_a_finished_run_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["fit", "markov-chain", "--out", str(out)]) == 0
    before = (out / "model.pt").read_bytes()
    assert main(["fit", "independent-categorical", "--out", str(out)]) == 2
    assert "--overwrite" in _one_line_error(capsys)
    assert (out / "model.pt").read_bytes() == before
    assert main(["fit", "independent-categorical", "--out", str(out), "--overwrite"]) == 0
    assert read_checkpoint(out / "model.pt")["model"] == "independent-categorical"


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_while_saving_a_model_is_one_line_and_leaves_no_file(tmp_path, monkeypatch,
                                                                       capsys):
    def fill_up(obj, f, *args, **kwargs):
        f.write(b"x" * 1000)
        _disk_full()

    monkeypatch.setattr(torch, "save", fill_up)
    out = tmp_path / "run"
    assert main(["fit", "markov-chain", "--out", str(out)]) == 1
    err = _one_line_error(capsys)
    assert "model.pt" in err and "space" in err
    assert sorted(p.name for p in out.iterdir()) == ["history.csv"]  # no model.pt, no temp


def test_disk_full_while_writing_scores_is_one_line_and_leaves_no_file(vae_run, tmp_path,
                                                                       monkeypatch, capsys):
    x = _digit_rows(tmp_path / "x.csv", 3)
    monkeypatch.setattr(os, "fsync", _disk_full)
    out = tmp_path / "out"
    out.mkdir()
    assert main(["score", str(vae_run), "--data", str(x), "--out", str(out / "s.csv"),
                 "--threshold", "0"]) == 1
    err = _one_line_error(capsys)
    assert "s.csv" in err and "space" in err
    assert list(out.iterdir()) == []


# --------------------------------------------------------------------------- 7. figures
def test_fit_writes_training_curves_and_score_a_histogram(vae_run, tmp_path):
    assert (vae_run / "curves.png").stat().st_size > 1000
    x = _digit_rows(tmp_path / "x.csv", 20)
    assert main(["score", str(vae_run), "--data", str(x), "--out", str(tmp_path / "s.csv"),
                 "--particles", "2"]) == 0
    assert (tmp_path / "s.png").stat().st_size > 1000
