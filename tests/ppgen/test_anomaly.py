"""ppgen.anomaly: the scikit-learn detector, its PyOD view, explanations, metrics and plots."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from ppgen.anomaly import (
    Detector,
    anomaly_metrics,
    fpr_at_recall,
    plot_explanation,
    roc_curves,
    score_histogram,
)
from ppgen.errors import ModelError
from ppgen.models import IndependentCategorical, MarkovChain
from ppgen.plots import save

pytestmark = pytest.mark.usefixtures("clean_param_store")

#: a small exact model that trains in a blink (scikit-learn's checks fit it ~40 times)
FAST = {"model": "rnade", "model_options": {"hidden_dim": 8, "num_components": 2},
        "epochs": 2, "batch_size": 64}


@parametrize_with_checks([Detector(**FAST)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def gaussian(n: int, seed: int) -> np.ndarray:
    """Rows of a correlated 2-D Gaussian."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2)) @ np.array([[1.0, 0.8], [0.0, 0.6]])


def levels(n: int, seed: int, D: int = 6, K: int = 4) -> np.ndarray:
    """Integer levels with unequal marginals (pixel d favours level d % K)."""
    rng = np.random.default_rng(seed)
    p = np.full((D, K), 0.1)
    p[np.arange(D), np.arange(D) % K] = 1 - 0.1 * (K - 1)
    return np.stack([rng.choice(K, size=n, p=p[d]) for d in range(D)], axis=1)


# ---------------------------------------------------------------------------- the scores


def test_closed_form_model_scores_are_its_exact_log_likelihood():
    """With a closed-form model the scores are exactly the fitted log-probabilities, so the
    ranking of any data is the true ranking of the fitted density."""
    X = levels(400, 0)
    det = Detector(IndependentCategorical(6, 4), validation_fraction=0).fit(X)
    model = det.model_
    x = torch.as_tensor(levels(50, 1))
    exact = model.distribution().log_prob(x).detach().double().numpy()
    np.testing.assert_allclose(det.score_samples(x.numpy()), exact, rtol=1e-6)
    # the instance passed in is untouched: a copy is trained
    assert det.model is not det.model_


def test_ranking_matches_the_true_density():
    """Trained on a Gaussian, the scores rank fresh points like the true density does:
    Spearman correlation >= 0.97 (seed fixed; a correct model reaches ~0.995)."""
    torch.manual_seed(0)
    det = Detector("rnade", model_options={"hidden_dim": 16, "num_components": 3},
                   epochs=40, batch_size=100, random_state=0).fit(gaussian(1000, 0))
    test = gaussian(400, 1)
    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    true = stats.multivariate_normal(np.zeros(2), cov).logpdf(test)
    rho = stats.spearmanr(det.score_samples(test), true).statistic
    assert rho >= 0.97, rho


def test_latent_model_scores_are_repeatable_importance_weighted_estimates():
    X = levels(200, 0).astype(np.float64) / 3
    det = Detector("vae", model_options={"latent_dim": 2, "hidden_dims": [16]}, epochs=2,
                   num_particles=20).fit(X)
    a, b = det.score_samples(X[:10]), det.score_samples(X[:10])
    np.testing.assert_array_equal(a, b)
    assert det.__sklearn_tags__().non_deterministic


def test_contamination_sets_the_share_of_training_outliers():
    X = gaussian(500, 0)
    det = Detector(**{**FAST, "epochs": 5}, contamination=0.1).fit(X)
    assert abs((det.predict(X) == -1).mean() - 0.1) <= 0.01
    np.testing.assert_allclose(det.decision_function(X), det.score_samples(X) - det.offset_)


def test_fpr_threshold_comes_from_held_out_normal_data():
    X = gaussian(1000, 0)
    det = Detector(**{**FAST, "epochs": 5}, fpr=0.05, validation_fraction=0.3).fit(X)
    g = torch.Generator().manual_seed(0)
    val = X[torch.randperm(1000, generator=g)[:300].numpy()]
    assert abs((det.predict(val) == -1).mean() - 0.05) <= 0.01


def test_pyod_view_is_the_mirror_image():
    X = gaussian(300, 0)
    det = Detector(**FAST, contamination=0.2).fit(X)
    view = det.pyod()
    np.testing.assert_allclose(det.decision_scores_, -det.score_samples(X))
    assert det.threshold_ == -det.offset_
    np.testing.assert_array_equal(det.labels_, (det.predict(X) == -1).astype(int))
    np.testing.assert_array_equal(view.predict(X), det.labels_)
    np.testing.assert_allclose(view.decision_function(X[:5]), -det.score_samples(X[:5]))
    assert set(np.unique(view.labels_)) == {0, 1}


def test_pipeline_and_tensors():
    X = gaussian(300, 0) * 50 + 7
    pipe = make_pipeline(StandardScaler(), Detector(**FAST)).fit(X)
    assert pipe.predict(X[:4]).shape == (4,)
    det = Detector(**FAST).fit(torch.as_tensor(X, dtype=torch.float32))
    scores = det.score_samples(torch.as_tensor(X[:4], dtype=torch.float32))
    assert scores.dtype == np.float64 and scores.shape == (4,)


# ---------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def categorical_detector():
    return Detector(MarkovChain(6, 4), likelihood="categorical").fit(levels(300, 0))


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((3, 5)), "5 features.*expecting 6"),
        (torch.zeros(3, 5, dtype=torch.long), "5 features.*expecting 6"),
        (np.full((2, 6), np.nan), "NaN"),
        (np.full((2, 6), 4), "outside|levels|0..3"),
        (np.full((2, 6), 1.5), "integer"),
        (torch.zeros(2, 2, 3), "2-D"),
    ],
)
def test_bad_input_is_a_clear_error_never_a_score(categorical_detector, bad, match):
    with pytest.raises(ValueError, match=match):
        categorical_detector.score_samples(bad)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"contamination": 0.7}, "contamination"),
        ({"fpr": 1.5}, "fpr"),
        ({"fpr": 0.1, "validation_fraction": 0.0}, "held-out"),
        ({"likelihood": "poisson"}, "likelihood"),
        ({"model": 3}, "model must be"),
        ({"model": "no-such-model"}, "unknown model"),
        ({"image_shape": (3, 3)}, "image_shape"),
        ({"n_estimators": 0}, "n_estimators"),
        ({"n_estimators": 2.5}, "n_estimators"),
    ],
)
def test_bad_options_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        Detector(**{**FAST, **options}).fit(gaussian(50, 0))


def test_an_ensemble_scores_the_mean_of_its_members_log_likelihoods():
    """n_estimators models from different seeds on one split; the score is their mean
    log-likelihood (each member's exact log p from the evaluation layer), and the per-feature
    explanations of the ensemble still sum to it."""
    import ppgen

    X = levels(300, 0)
    det = Detector("fvsbn", likelihood="categorical", num_levels=4, epochs=5, batch_size=100,
                   n_estimators=3).fit(X)
    assert len(det.estimators_) == len(det.histories_) == 3 and det.model_ is det.estimators_[0]
    members = [torch.nn.utils.parameters_to_vector(m.parameters()) for m in det.estimators_]
    assert not torch.allclose(members[0], members[1])  # different initial weights and shuffles
    x = levels(40, 1)
    each = np.stack([ppgen.log_likelihood(m, torch.as_tensor(x)).double().numpy()
                     for m in det.estimators_])
    np.testing.assert_allclose(det.score_samples(x), each.mean(0), rtol=1e-6)
    np.testing.assert_allclose(det.explain(x).sum(1), det.score_samples(x), rtol=1e-5)
    # the threshold is a quantile of the ensemble's scores, as for one model
    assert np.mean(det.predict(X) == -1) == pytest.approx(det.contamination, abs=0.02)


def test_an_ensemble_with_fpr_thresholds_on_rows_no_member_trained_on(monkeypatch):
    import ppgen
    from ppgen.anomaly import metrics

    seen, fit = [], ppgen.fit

    def recording_fit(model, train, val=None, **options):
        seen.append((train, val))
        return fit(model, train, val, **options)

    monkeypatch.setattr(ppgen, "fit", recording_fit)
    X = gaussian(200, 0)
    det = Detector("rnade", model_options={"hidden_dim": 8, "num_components": 2}, epochs=3,
                   n_estimators=2, fpr=0.1, random_state=3).fit(X)
    _, held_out = det._split(torch.as_tensor(X), 3)  # set aside before the members split
    assert len(seen) == 2 and len(held_out) == 40
    everything = {tuple(r) for r in torch.as_tensor(X).float().tolist()}
    held = {tuple(r) for r in held_out.float().tolist()}  # members see float32 rows
    for train, val in seen:  # each member: its own split of the other 160 rows
        assert len(train) + len(val) == 160
        rows = {tuple(r) for r in torch.cat([train, val]).float().tolist()}
        assert len(rows) == 160 and not held & rows and rows | held == everything
    assert not torch.equal(seen[0][1], seen[1][1])
    expected = metrics.threshold_at_fpr(det.score_samples(held_out.numpy()), 0.1)
    assert det.offset_ == pytest.approx(expected)


def test_unfitted_detector_says_so():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        Detector().score_samples(np.zeros((1, 2)))


# ---------------------------------------------------------------------------- explanations


def test_explanations_sum_to_the_score_and_point_at_the_odd_pixel():
    """Rows at every pixel's most likely level except one pixel set to a rare level: the
    explanation's lowest contribution is that pixel."""
    X = levels(600, 0)
    det = Detector("fvsbn", likelihood="categorical", num_levels=4, epochs=40,
                   batch_size=100).fit(X)
    odd = np.tile(np.arange(6) % 4, (6, 1))  # the modes
    odd[np.arange(6), np.arange(6)] = (np.arange(6) % 4 + 2) % 4  # row r: pixel r is rare
    contributions = det.explain(odd)
    np.testing.assert_allclose(contributions.sum(1), det.score_samples(odd), rtol=1e-5)
    np.testing.assert_array_equal(contributions.argmin(1), np.arange(6))


def test_explanations_need_a_decomposable_model():
    vae = Detector("vae", model_options={"latent_dim": 2, "hidden_dims": [8]}, epochs=1,
                   num_particles=5).fit(gaussian(50, 0))
    with pytest.raises(ModelError, match="per-feature"):
        vae.explain(gaussian(2, 1))


# ---------------------------------------------------------------------------- metrics, plots


def test_metrics_against_hand_computed_values():
    y = [0, 0, 0, 0, 1, 1]
    s = [0.1, 0.2, 0.5, 0.4, 0.9, 0.3]
    m = anomaly_metrics(y, s, recall=1.0)
    # pairs (anomaly, normal) ranked right: 0.9 beats 4, 0.3 beats 2 -> 6 / 8
    assert m["auroc"] == pytest.approx(0.75)
    # precision at the two anomalies' thresholds: 1/1 and 2/4 -> AP = 0.5 * 1 + 0.5 * 0.5
    assert m["auprc"] == pytest.approx(0.75)
    assert m["fpr_at_recall"] == pytest.approx(0.5)  # catching 0.3 lets 0.4 and 0.5 through
    assert fpr_at_recall(y, s, 0.5) == 0.0
    with pytest.raises(ValueError, match="both"):
        anomaly_metrics([0, 0], [1.0, 2.0])
    with pytest.raises(ValueError, match="NaN"):
        anomaly_metrics([0, 1], [1.0, math.nan])


def test_infinite_scores_rank_at_the_ends():
    # log p(x) = -inf (a row far outside the data) is the most anomalous score there is
    y = [0, 0, 1, 1, 0]
    s = [0.1, -math.inf, math.inf, 0.3, 0.2]
    finite = [0.1, -10.0, 10.0, 0.3, 0.2]  # the same ranks
    for key in ("auroc", "auprc", "fpr_at_recall"):
        assert anomaly_metrics(y, s)[key] == anomaly_metrics(y, finite)[key]
    assert anomaly_metrics([0, 1], [-math.inf, math.inf])["auroc"] == 1.0


def test_plots(tmp_path):
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(50), np.ones(20)]
    s = np.r_[rng.normal(size=50), rng.normal(2, 1, size=20)]
    figs = [roc_curves(y, {"a": s, "b": -s}), score_histogram(y, s, threshold=1.0),
            plot_explanation(rng.normal(size=(3, 16)), (4, 4), images=rng.random((3, 16)))]
    for i, fig in enumerate(figs):
        assert save(fig, tmp_path / f"{i}.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="do not fit"):
        plot_explanation(np.zeros((1, 10)), (4, 4))


# ---------------------------------------------------------------------------- the CLI


def test_cli_fit_on_a_csv_of_normal_data_then_score(tmp_path, capsys):
    from ppgen.cli import main

    normal, new = tmp_path / "normal.csv", tmp_path / "new.csv"
    np.savetxt(normal, gaussian(400, 0), delimiter=",")
    rows = np.concatenate([gaussian(20, 1), np.full((2, 2), 6.0)])  # two far-away rows
    np.savetxt(new, rows, delimiter=",")
    run = tmp_path / "run"
    argv = ["fit", "rnade", "--data", str(normal), "--out", str(run), "--epochs", "30",
            "--set", "hidden_dim=8", "--no-progress"]
    assert main(argv) == 0
    out = tmp_path / "scores.csv"
    assert main(["score", str(run), "--data", str(new), "--out", str(out)]) == 0
    table = np.genfromtxt(out, delimiter=",", names=True)
    assert table.shape == (22,) and table["row"].tolist() == list(range(22))
    np.testing.assert_allclose(table["anomaly_score"], -table["log_likelihood"], atol=1e-5)
    assert table["is_anomaly"][-2:].tolist() == [1, 1] and table["is_anomaly"][:20].sum() <= 4
    assert "false-positive rate 0.05" in capsys.readouterr().out
    # an explicit threshold on the log-likelihood
    assert main(["score", str(run), "--data", str(new), "--out", str(out),
                 "--threshold", "1e9"]) == 0
    assert np.genfromtxt(out, delimiter=",", names=True)["is_anomaly"].sum() == 22


@pytest.mark.parametrize(
    "rows, message",
    [(np.zeros((3, 5)), "shape"), (np.array([[np.nan, 1.0]]), "NaN")],
)
def test_cli_score_refuses_bad_rows(tmp_path, capsys, rows, message):
    from ppgen.cli import main

    np.savetxt(tmp_path / "normal.csv", gaussian(100, 0), delimiter=",")
    assert main(["fit", "rnade", "--data", str(tmp_path / "normal.csv"), "--out",
                 str(tmp_path / "run"), "--epochs", "1", "--no-progress"]) == 0
    np.savetxt(tmp_path / "bad.csv", rows, delimiter=",")
    code = main(["score", str(tmp_path / "run"), "--data", str(tmp_path / "bad.csv"),
                 "--out", str(tmp_path / "s.csv")])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "s.csv").exists()


# ------------------------------------------------ contaminated, unlabelled training data


def simple_anomalies(seed: int, n: int = 2000, k: int = 100, D: int = 40):
    """Binary rows, normal: sparse i.i.d. pixels (p = 0.2) except that pixel 1 copies pixel 0;
    the planted anomalies: blank rows (simple: likelier than any normal row under every fit)
    whose pixels 0 and 1 disagree. All of them are in the training data, unlabelled."""
    rng = np.random.default_rng(seed)
    normal = (rng.random((n, D)) < 0.2).astype(np.int64)
    normal[:, 1] = normal[:, 0]
    odd = np.zeros((k, D), dtype=np.int64)
    odd[:, 0] = rng.integers(0, 2, k)
    odd[:, 1] = 1 - odd[:, 0]
    return np.concatenate([normal, odd]), np.r_[np.zeros(n), np.ones(k)]


def test_likelihood_ratio_ranks_the_planted_simple_anomalies_first_where_raw_likelihood_fails():
    """Closed-form Markov chain vs its independent-pixel reference, fitted on the mixture: the
    blank rows' likelihood is high (raw AUROC near 0), but what only the chain explains — the
    copied pixel — they break, and the background's complexity cancels in the ratio."""
    X, y = simple_anomalies(0)
    options = {"likelihood": "categorical", "num_levels": 2, "contamination": 0.05}
    raw = -Detector("markov-chain", **options).fit(X).score_samples(X)
    ratio_det = Detector("markov-chain", reference="independent-categorical", **options).fit(X)
    ratio = -ratio_det.score_samples(X)
    assert anomaly_metrics(y, raw)["auroc"] < 0.05
    assert ratio[y == 1].min() > ratio[y == 0].max()  # every anomaly ranked first
    import ppgen

    chain, ref = ratio_det.model_, ratio_det.references_[0]
    x = torch.as_tensor(X[-5:])  # five anomalies
    expected = (ppgen.log_likelihood(chain, x) - ppgen.log_likelihood(ref, x)).double().numpy()
    np.testing.assert_allclose(ratio_det.score_samples(X[-5:]), expected, rtol=1e-6)
    parts = ratio_det.explain(X[-5:])  # per-pixel ratios, summing to the score
    np.testing.assert_allclose(parts.sum(1), expected, rtol=1e-5, atol=1e-5)
    assert (np.argmin(parts, axis=1) == 1).all()  # the broken copy explains each of them


def test_typicality_flags_inputs_likelier_than_normal_ones():
    """N(0, I_100) with 5% of rows planted near the origin, the mode: the raw likelihood ranks
    them most normal; their distance from the typical log-likelihood (100/2 nats below the
    mode's, while normal rows spread by sqrt(100/2) ~ 7 nats) ranks them first. PPCA's
    likelihood is exact with one particle."""
    D = 100
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(950, D)), 0.05 * rng.normal(size=(50, D))])
    y = np.r_[np.zeros(950), np.ones(50)]
    options = {"model_options": {"latent_dim": 2}, "contamination": 0.05, "num_particles": 1}
    raw = -Detector("ppca", **options).fit(X).score_samples(X)
    det = Detector("ppca", statistic="typicality", **options).fit(X)
    typical = -det.score_samples(X)
    assert anomaly_metrics(y, raw)["auroc"] < 0.01
    assert typical[y == 1].min() > typical[y == 0].max()
    assert (det.score_samples(X) <= 0).all()
    # the typical score of N(0, I_D) is -D/2 log(2 pi e); the fit's variance is shrunk by the
    # planted rows (5% at ~0): about -D/2 log(0.95) = +2.6 nats, well inside 10
    assert abs(det.typical_ + D / 2 * np.log(2 * np.pi * np.e)) < 10
    with pytest.raises(ModelError, match="typicality"):
        det.explain(X[:2])


def test_trimmed_likelihood_drops_the_least_likely_share_and_refits_on_the_rest():
    """5% far outliers pull a closed-form PPCA fit; two trimming rounds drop exactly them, so
    the detector equals one fitted on the clean rows alone."""
    rng = np.random.default_rng(1)
    clean = rng.normal(size=(950, 3)) @ np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3],
                                                  [0.0, 0.0, 0.5]])
    X = np.concatenate([clean, 6.0 + 0.1 * rng.normal(size=(50, 3))])
    options = {"model_options": {"latent_dim": 1}, "contamination": 0.05,
               "validation_fraction": 0, "num_particles": 1}
    trimmed = Detector("ppca", trim_rounds=2, **options).fit(X)
    reference = Detector("ppca", **options).fit(clean)
    untrimmed = Detector("ppca", **options).fit(X)
    probe = rng.normal(size=(20, 3))
    np.testing.assert_allclose(trimmed.score_samples(probe), reference.score_samples(probe),
                               rtol=1e-5)
    assert not np.allclose(untrimmed.score_samples(probe), reference.score_samples(probe),
                           rtol=1e-2)


@pytest.mark.parametrize("options, match", [
    ({"statistic": "median"}, "statistic"),
    ({"trim_rounds": -1}, "trim_rounds"),
    ({"reference": 3}, "reference"),
])
def test_bad_remedy_options_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        Detector("ppca", **options).fit(np.random.default_rng(0).normal(size=(50, 3)))


def test_a_diffusion_detector_scores_by_its_declared_bound():
    """Detector("ddpm") with the default num_particles ranks by the model's declared number (its
    variational bound with closed-form KL terms), seeded; its per-pixel parts are a seeded
    draw of the same bound: repeatable, and close to the score."""
    import ppgen

    X = np.random.default_rng(0).integers(0, 3, size=(120, 4))
    options = {"likelihood": "categorical", "num_levels": 3, "fit_options": {"epochs": 1},
               "model_options": {"num_steps": 10, "denoiser": {"width": 8, "blocks": 1}}}
    det = Detector("ddpm", **options).fit(X)
    torch.manual_seed(det.random_state)
    expected = ppgen.evaluate.headline_log_likelihood(det.model_, torch.as_tensor(X[:5]))
    np.testing.assert_allclose(det.score_samples(X[:5]), expected.double().numpy(), rtol=1e-6)
    parts = det.explain(X[:5])
    np.testing.assert_array_equal(parts, det.explain(X[:5]))
    assert parts.shape == (5, 4) and np.isfinite(parts).all()
    assert np.abs(parts.sum(1) - det.score_samples(X[:5])).max() < 5.0
    with pytest.raises(ValueError, match="num_particles"):
        Detector("ddpm", num_particles=0, **options).fit(X)
