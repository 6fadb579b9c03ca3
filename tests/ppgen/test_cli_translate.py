"""The command line of the translation models: ``ppgen fit cyclegan`` on the digit domains and on
user arrays (``--data A.npy --data-b B.npy``), ``ppgen translate``, and their mistakes (exit
code 2, one line on stderr)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ppgen.api import load
from ppgen.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--set", 'network={"channels": 4, "num_blocks": 1}', "--set", "critic_channels=4",
        "--epochs", "1", "--batch-size", "250", "--no-progress"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """A CycleGAN run on original ↔ inverted digits, user image arrays, a Markov-chain run."""
    root = tmp_path_factory.mktemp("translate")
    run = root / "cyclegan"
    assert main(["fit", "cyclegan", "--data", "digits-domains:original,inverted", "--out",
                 str(run), *TINY]) == 0
    rng = np.random.default_rng(0)
    np.save(root / "photos.npy", rng.uniform(size=(40, 8, 8)).astype(np.float32))
    np.save(root / "sketches.npy", rng.uniform(size=(40, 64)).astype(np.float32))
    np.save(root / "small.npy", rng.uniform(size=(4, 6, 6)).astype(np.float32))
    markov = root / "markov"
    assert main(["fit", "markov-chain", "--out", str(markov)]) == 0
    return {"run": str(run), "root": str(root), "markov": str(markov),
            "a": str(root / "photos.npy"), "b": str(root / "sketches.npy"),
            "small": str(root / "small.npy")}


def test_fit_on_the_digit_domains_writes_a_translation_model(files):
    model = load(f"{files['run']}/model.pt")
    assert model.name == "cyclegan" and model.domains == ("original", "inverted")
    assert model.paired  # the digit domains' validation images are paired
    metrics = json.loads(open(f"{files['run']}/metrics.json").read())
    assert metrics["objective"]["name"] == "translation" and metrics["epochs"] == 1


def test_translate_writes_inputs_beside_translations(files, tmp_path):
    grid, npy = tmp_path / "grid.png", tmp_path / "t.npy"
    assert main(["translate", files["run"], "--to", "inverted", "--out", str(grid), "--npy",
                 str(npy), "-n", "5"]) == 0
    assert grid.stat().st_size > 0 and np.load(npy).shape == (5, 64)
    assert main(["translate", files["run"], "--to", "0", "--data", files["a"], "--out",
                 str(tmp_path / "mine.png")]) == 0


def test_fit_on_user_arrays_names_the_domains_by_file(files, tmp_path):
    out = tmp_path / "user"
    assert main(["fit", "stargan", "--data", files["a"], "--data-b", files["b"], "--out",
                 str(out), *TINY[:4], "--epochs", "1", "--batch-size", "32",
                 "--no-progress"]) == 0
    model = load(out / "model.pt")
    assert model.domains == ("photos", "sketches") and not model.paired


MISTAKES = [
    (["translate", "{run}", "--to", "bold", "--out", "{tmp}/g.png"], "unknown domain 'bold'"),
    (["translate", "{run}", "--to", "inverted", "--out", "{tmp}/g.txt"], "--out"),
    (["translate", "{run}", "--to", "inverted", "--data", "{small}", "--out", "{tmp}/g.png"],
     "6x6 images"),
    (["translate", "{run}", "--to", "inverted", "--data", "{a}", "--from", "original",
      "--out", "{tmp}/g.png"], "--from"),
    (["translate", "{markov}", "--to", "bold", "--out", "{tmp}/g.png"],
     "not a translation model"),
    (["translate", "{run}", "--out", "{tmp}/g.png"], "--to"),
    (["fit", "markov-chain", "--data-b", "{b}", "--out", "{tmp}/o"], "--data-b"),
    (["fit", "cyclegan", "--data", "digits-domains:original,italic", "--out", "{tmp}/o"],
     "unknown digit domain"),
    (["fit", "cyclegan", "--representation", "categorical", "--out", "{tmp}/o"],
     "--representation"),
    (["fit", "stargan", "--data", "{a}", "--out", "{tmp}/o"], "two or more"),
    (["fit", "cyclegan", "--data", "{a}", "--data-b", "{small}", "--out", "{tmp}/o"],
     "different shapes"),
    (["fit", "cyclegan", "--data", "digits-domains:original,bold,thin", "--out", "{tmp}/o"],
     "StarGAN"),
]


@pytest.mark.parametrize("argv, message", MISTAKES, ids=lambda v: " ".join(v)[:60]
                         if isinstance(v, list) else v)
def test_each_mistake_exits_2_with_one_line(argv, message, files, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path, **files) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse exits by itself
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
