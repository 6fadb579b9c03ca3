"""Every command-line mistake: exit code 2 and exactly one line on stderr, no traceback."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from testkit import NORMAL_MODEL_SOURCE

from ppgen.checkpoint import read_checkpoint, save_model
from ppgen.cli import _one_line, build_parser, main

__all__: list[str] = []


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """A fitted Markov-chain run, the same run with NaN weights, data files and a program."""
    from ppgen.api import load

    root = tmp_path_factory.mktemp("mistakes")
    run = root / "run"
    assert main(["fit", "markov-chain", "--data", "digits", "--out", str(run)]) == 0
    model = load(run / "model.pt")
    model.load_state_dict({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                           for k, v in model.state_dict().items()})
    nan_run = root / "nan-run"
    nan_run.mkdir()
    save_model(model, nan_run / "model.pt", extra=read_checkpoint(run / "model.pt")["extra"])
    np.savetxt(root / "rows.csv", np.random.default_rng(0).integers(0, 17, (5, 64)),
               fmt="%d", delimiter=",")
    np.save(root / "y.npy", np.random.default_rng(0).normal(size=20).astype(np.float32))
    (root / "prog.py").write_text(NORMAL_MODEL_SOURCE)
    return {"run": str(run), "nan_run": str(nan_run), "csv": str(root / "rows.csv"),
            "y": str(root / "y.npy"), "prog": str(root / "prog.py")}


MISTAKES = [
    # --set: unknown or misspelt keys list the valid ones; values must fit the option
    (["fit", "vae", "--set", "latnt_dim=8", "--out", "{tmp}/o"], "latent_dim"),
    (["fit", "vae", "--set", "num_layers=abc", "--out", "{tmp}/o"], "num_layers"),
    (["fit", "maf", "--set", "num_layers=abc", "--out", "{tmp}/o"], "num_layers"),
    (["fit", "maf", "--set", "num_layers=2.5", "--out", "{tmp}/o"], "num_layers"),
    # numbers out of range
    (["fit", "vae", "--particles", "0", "--out", "{tmp}/o"], "--particles"),
    (["evaluate", "{run}", "--particles", "0"], "--particles"),
    (["evaluate", "{run}", "--batch-size", "0"], "--batch-size"),
    (["fit", "markov-chain", "--epochs", "0", "--out", "{tmp}/o"], "--epochs"),
    (["fit", "vae", "--epochs", "-1", "--out", "{tmp}/o"], "--epochs"),
    (["fit", "ppca", "--epochs", "-1", "--out", "{tmp}/o"], "--epochs"),
    (["fit", "vae", "--lr", "-1", "--out", "{tmp}/o"], "--lr"),
    (["fit", "vae", "--lr", "nan", "--out", "{tmp}/o"], "--lr"),
    (["fit", "vae", "--batch-size", "0", "--out", "{tmp}/o"], "--batch-size"),
    (["fit", "vae", "--patience", "-1", "--out", "{tmp}/o"], "--patience"),
    (["fit", "vae", "--ema", "1.5", "--out", "{tmp}/o"], "--ema"),
    (["score", "{run}", "--data", "{csv}", "--out", "{tmp}/s.csv", "--threshold", "nan"],
     "--threshold"),
    (["posterior", "{prog}:model", "--data", "{y}", "--out", "{tmp}/p", "--samples", "3"],
     "--samples"),
    # outputs of the wrong kind
    (["sample", "{run}", "--out", "{run}"], "directory"),
    (["sample", "{run}", "--out", "{tmp}/x.txt"], ".png"),
    (["sample", "{run}", "--out", "{tmp}/g.png", "--npy", "{tmp}"], "directory"),
    (["fit", "markov-chain", "--out", "{run}/model.pt"], "is a file"),
    (["score", "{run}", "--data", "{csv}", "--out", "{run}", "--threshold", "0"], "directory"),
    (["posterior", "{prog}:model", "--data", "{y}", "--out", "{csv}"], "is a file"),
    # named arrays of ppgen posterior
    (["posterior", "{prog}:model", "--data", "1y={y}", "--out", "{tmp}/p"], "keyword name"),
    (["posterior", "{prog}:model", "--data", "{y}", "--data", "{y}", "--out", "{tmp}/p"],
     "name them"),
    (["posterior", "{prog}:model", "--data", "x={y}", "--data", "x={y}", "--out", "{tmp}/p"],
     "given twice"),
    (["posterior", "{prog}:model", "--data", "x={tmp}/a.npz", "--out", "{tmp}/p"], "alone"),
    (["posterior", "{prog}:model", "--data", "{tmp}/missing.npz", "--out", "{tmp}/p"],
     "no such file"),
    # a broken model
    (["sample", "{nan_run}", "-n", "4", "--out", "{tmp}/g.png"], "NaN"),
    # argparse's own mistakes
    (["fit", "markov-chain", "--out", "{tmp}/o", "--bogus"], "unrecognized arguments"),
    (["fit", "markov-chain", "--representation", "rgb", "--out", "{tmp}/o"], "invalid choice"),
]


@pytest.mark.parametrize("argv, message", MISTAKES, ids=lambda v: " ".join(v)[:60]
                         if isinstance(v, list) else None)
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
    assert not (tmp_path / "o").exists()  # nothing was trained


def test_a_misspelt_set_key_suggests_and_lists_the_valid_ones(tmp_path, capsys):
    assert main(["fit", "vae", "--set", "latnt_dim=8", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "did you mean latent_dim" in err
    assert "hidden_dims (default [256, 256])" in err and "ppgen fit vae --help" in err


def test_fit_model_help_lists_its_set_options_with_defaults(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "vae", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--set options of vae" in out
    assert "latent_dim" in out and "default 16" in out


def test_verbose_works_after_the_subcommand(tmp_path):
    args = build_parser().parse_args(["fit", "markov-chain", "--out", "x", "-v"])
    assert args.verbose is True
    assert build_parser().parse_args(["-v", "fit", "markov-chain"]).verbose is True
    assert build_parser().parse_args(["fit", "markov-chain"]).verbose is False
    assert main(["fit", "markov-chain", "--out", str(tmp_path / "run"), "-v"]) == 0


def test_pyros_trace_shapes_dump_is_not_part_of_a_one_line_message():
    err = ValueError("Shape mismatch inside plate('data') at site z dim -1, 1 vs 50\n"
                     "Trace Shapes:\n Param Sites:\nSample Sites:\n  z dist 50 |\n")
    line = _one_line(err)
    assert line == "Shape mismatch inside plate('data') at site z dim -1, 1 vs 50"
