"""``ppgen score --reference RUN`` (likelihood ratio) and ``--contamination RATE``, on two
closed-form runs of a tiny categorical data set: the ratio written is the evaluation layer's,
the share flagged is the one asked for, and mistakes exit 2 with nothing written."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import ppgen
from ppgen.anomaly.metrics import threshold_at_fpr
from ppgen.checkpoint import read_checkpoint
from ppgen.cli import main
from ppgen.data import load_record

pytestmark = pytest.mark.usefixtures("clean_param_store")


def rows(n: int, seed: int, D: int = 8, K: int = 4) -> np.ndarray:
    """``[n, D]`` levels ``0..K-1``: i.i.d. except that pixel 1 copies pixel 0 (a dependence
    only the Markov chain explains)."""
    x = np.random.default_rng(seed).integers(0, K, size=(n, D))
    x[:, 1] = x[:, 0]
    return x


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A Markov chain, its independent-pixel reference (same data), and an independent model
    of 7-pixel rows; the rows to score, with a few copies broken."""
    tmp = tmp_path_factory.mktemp("score")
    np.save(tmp / "train.npy", rows(400, 0))
    np.save(tmp / "narrow.npy", rows(400, 0)[:, :7])
    new = np.unique(rows(400, 2), axis=0)[:100]  # distinct rows, and distinct scores
    new[:5, 1] = (new[:5, 0] + 1) % 4
    np.save(tmp / "new.npy", new)
    for name, model, data in [("mc", "markov-chain", "train.npy"),
                              ("ic", "independent-categorical", "train.npy"),
                              ("narrow", "independent-categorical", "narrow.npy")]:
        assert main(["fit", model, "--data", str(tmp / data), "--representation",
                     "categorical", "--out", str(tmp / name), "--no-progress"]) == 0
    return tmp


def score(tmp, *extra: str) -> tuple[int, dict]:
    out = tmp / "scores.csv"
    out.unlink(missing_ok=True)
    out.with_suffix(".png").unlink(missing_ok=True)
    code = main(["score", str(tmp / "mc"), "--data", str(tmp / "new.npy"), "--out", str(out),
                 *extra])
    return code, (np.genfromtxt(out, delimiter=",", names=True) if code == 0 else None)


def test_the_ratio_written_is_the_evaluation_layers(runs):
    code, table = score(runs, "--reference", str(runs / "ic"), "--threshold", "0")
    assert code == 0
    x = torch.as_tensor(np.load(runs / "new.npy"))
    model, ref = ppgen.load(runs / "mc" / "model.pt"), ppgen.load(runs / "ic" / "model.pt")
    ll, ll_ref = (ppgen.log_likelihood(m, x).double().numpy() for m in (model, ref))
    np.testing.assert_allclose(table["log_likelihood"], ll, atol=2e-6)
    np.testing.assert_allclose(table["reference_log_likelihood"], ll_ref, atol=2e-6)
    np.testing.assert_allclose(table["log_likelihood_ratio"], ll - ll_ref, atol=4e-6)
    np.testing.assert_allclose(table["anomaly_score"], -(ll - ll_ref), atol=4e-6)
    assert not np.allclose(ll - ll_ref, ll, atol=1.0)  # the reference changes the score
    # the rows whose copy is broken are the five least likely under the ratio
    assert set(np.argsort(ll - ll_ref)[:5]) == set(range(5))
    assert table["is_anomaly"].tolist() == (ll - ll_ref < 0).astype(int).tolist()


def test_fpr_with_a_reference_thresholds_the_ratio_of_the_validation_split(runs, capsys):
    code, table = score(runs, "--reference", str(runs / "ic"), "--fpr", "0.1")
    assert code == 0
    run = ppgen.load(runs / "mc" / "model.pt")
    val = load_record(read_checkpoint(runs / "mc" / "model.pt")["extra"]["data"]).val
    ref = ppgen.load(runs / "ic" / "model.pt")
    ratio = (ppgen.log_likelihood(run, val) - ppgen.log_likelihood(ref, val)).double().numpy()
    printed = float(re.search(r"ratio < (-?[\d.]+)", capsys.readouterr().out).group(1))
    assert printed == pytest.approx(threshold_at_fpr(ratio, 0.1), abs=1e-3)
    assert table["is_anomaly"].sum() == (table["log_likelihood_ratio"] < printed).sum()


@pytest.mark.parametrize("rate, flagged", [("0.1", 10), ("0.05", 5), ("0.5", 50)])
@pytest.mark.parametrize("reference", [False, True])
def test_contamination_flags_that_share_of_the_rows_with_the_lowest_scores(
        runs, rate, flagged, reference):
    extra = ["--reference", str(runs / "ic")] if reference else []
    code, table = score(runs, "--contamination", rate, *extra)
    assert code == 0
    s = table["log_likelihood_ratio" if reference else "log_likelihood"]
    assert len(np.unique(s)) == len(s)  # no ties: the share is exact
    assert table["is_anomaly"].sum() == flagged
    assert set(np.flatnonzero(table["is_anomaly"])) == set(np.argsort(s)[:flagged])


@pytest.mark.parametrize("extra, message", [
    (["--reference", "{narrow}"], "shape (7,)"),
    (["--reference", "{mc}"], "the scored model itself"),
    (["--reference", "{mc}/model.pt"], "the scored model itself"),
    (["--reference", "{missing}"], "missing"),
])
def test_a_reference_that_cannot_take_the_data_is_refused(runs, capsys, extra, message):
    extra = [e.format(narrow=runs / "narrow", mc=runs / "mc", missing=runs / "missing")
             for e in extra]
    assert score(runs, *extra)[0] == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (runs / "scores.csv").exists() and not (runs / "scores.png").exists()


def test_a_reference_of_other_levels_is_refused(runs, tmp_path, capsys):
    np.save(tmp_path / "binary.npy", rows(200, 2, K=2))
    assert main(["fit", "independent-categorical", "--data", str(tmp_path / "binary.npy"),
                 "--representation", "categorical", "--out", str(tmp_path / "b"),
                 "--no-progress"]) == 0
    assert score(runs, "--reference", str(tmp_path / "b"))[0] == 2
    assert "num_levels" in capsys.readouterr().err
    assert not (runs / "scores.csv").exists()


@pytest.mark.parametrize("extra, message", [
    (["--contamination", "0.6"], "must be in (0, 0.5], got 0.6"),
    (["--contamination", "0"], "must be in (0, 0.5], got 0"),
    (["--contamination", "nan"], "must be in (0, 0.5]"),
    (["--contamination", "0.1", "--threshold", "0"], "not allowed with argument"),
    (["--contamination", "0.1", "--fpr", "0.1"], "not allowed with argument"),
])
def test_bad_contamination_options_exit_2(runs, capsys, extra, message):
    with pytest.raises(SystemExit) as info:
        score(runs, *extra)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (runs / "scores.csv").exists() and not (runs / "scores.png").exists()
