"""Same command and seed, same files; a model's recipe applies whether its objective is named."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import ppgen
from ppgen.checkpoint import read_checkpoint
from ppgen.cli import main
from ppgen.data import load_digits
from ppgen.models import VAE

__all__: list[str] = []


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def _metrics(path: Path) -> dict:
    """metrics.json without what differs between identical runs (time taken; the command's
    --out and the date, under "run")."""
    return {k: v for k, v in json.loads(path.read_text()).items() if k not in ("seconds", "run")}


def test_the_same_fit_command_and_seed_give_the_same_files(tmp_path):
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert main(["fit", "vae", "--data", "digits", "--epochs", "2", "--seed", "3",
                     "--set", "hidden_dims=[32]", "--out", str(out), "--no-progress"]) == 0
        runs.append(out)
    assert _rows(runs[0] / "history.csv") == _rows(runs[1] / "history.csv")
    assert _metrics(runs[0] / "metrics.json") == _metrics(runs[1] / "metrics.json")


def test_naming_the_default_objective_keeps_the_model_recipe(tmp_path):
    digits = load_digits("categorical")
    vae = VAE.for_data(digits.info, hidden_dims=[16])
    ppgen.fit(vae, digits.train[:100], digits.val[:50], objective=vae.default_objective,
              epochs=1, progress=False, out_dir=tmp_path)
    objective = read_checkpoint(tmp_path / "model.pt")["extra"]["training"]["objective"]
    assert objective["num_particles"] == VAE.objective_defaults["num_particles"]
    assert objective["validation_particles"] == VAE.objective_defaults["validation_particles"]
