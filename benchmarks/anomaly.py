"""Anomaly detection: generative models vs. the classic detectors (BENCHMARKS.md, A and B;
issue 17, C).

Protocol A (one-class digits): for each digit c, train on 70% of the images of c (random split,
seed fixed), test on the other 30% of c plus every image of the other digits as anomalies;
AUROC per digit, mean over the 10 digits, over seeds. Protocol B (breast cancer): standardised
features, train on 70% of the benign cases, test on the other 30% plus every malignant case.

Protocol C (contaminated, unlabelled training data): for each digit c, the other nine digits
are normal and digit c is mixed in at 1%, 3% and 10% of the normal count; the normal and the
anomalous images are each split 70/30 (seeded), the fitted mixture is drawn from the 70%
parts (all normal rows, a random subset of the anomalies) and a held-out mixture the same way
from the 30% parts. Every detector is fitted on the mixture without its labels and scores
(a) the same rows (neighbour methods leave each row out of its own neighbourhood) and (b) the
held-out mixture. Reported: the mean AUROC over the ten digits and seeds per rate, and the
worst digit (its mean over seeds). Breast cancer: the benign cases with 1%, 5%, 10% malignant
mixed in, standardised with the fitted mixture's statistics, the same two scorings. Raw
integer pixels throughout (categorical models: 17 levels).

``default (rule)`` is ppgen's detector chosen without labels: of the candidates whose score is
a log-density of the same real features (one model, a validation split; not a ratio or a
typicality), the one whose validation rows — held out of its own fit, contaminated like the
rest — have the highest mean log-likelihood once their least likely 10% (``TRIM``, Detector's
default contamination) are left out. It is computed per case from the recorded runs, beside
issue 17's target (its margin over the best baseline, its worst digit against
IsolationForest's).

ppgen's detectors (``ppgen.anomaly.Detector``) and the scikit-learn baselines (kNN, LOF,
IsolationForest, OCSVM, KDE, GMM, PCA reconstruction, on the same features) run in the same
script on the same splits, so the table compares like with like.

    python benchmarks/anomaly.py                          # protocols A and B, 5 seeds
    python benchmarks/anomaly.py --protocols B --seeds 0  # a quick look
    python benchmarks/anomaly.py contaminated             # protocol C, 5 seeds (~10 min)
    python benchmarks/anomaly.py contaminated --data digits --seeds 0 --digits 1 8 \\
        --rates 0.03 --detectors ppca kNN                 # a quick look
    python benchmarks/anomaly.py table benchmarks/results/anomaly-c.json  # its tables again
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KernelDensity, LocalOutlierFactor, NearestNeighbors
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_results  # noqa: E402

from ppgen.anomaly import Detector, anomaly_metrics  # noqa: E402
from ppgen.models import PPCA  # noqa: E402

#: ppgen detectors per protocol: name -> Detector options (each a model family)
PPGEN = {
    "A": {
        "ppca (latent, L=16)": {"model": "ppca", "model_options": {"latent_dim": 16},
                                "validation_fraction": 0.0},
        "made (autoregressive)": {"model": "made", "likelihood": "categorical", "num_levels": 17},
        "vae (latent)": {"model": "vae", "likelihood": "categorical", "num_levels": 17,
                         "num_particles": 100},
        "maf (flow, dequantised)": {"model": "maf", "likelihood": "categorical",
                                    "num_levels": 17, "num_particles": 100},
        **{f"ppca{name} (rule)": {"model": "ppca", "num_particles": 1, **trim}
           for name, trim in (("", {}), (" trim1", {"trim_rounds": 1}),
                              (" trim2", {"trim_rounds": 2}))},
    },
    "B": {
        "ppca (latent)": {"model": "ppca"},
        "rnade (autoregressive)": {"model": "rnade"},
        "vae (latent)": {"model": "vae", "num_particles": 100},
        "maf (flow)": {"model": "maf"},
        "maf x10 (flow ensemble)": {"model": "maf", "n_estimators": 10},
        **{f"ppca{name} (rule)": {"model": "ppca", "num_particles": 1, **trim}
           for name, trim in (("", {}), (" trim1", {"trim_rounds": 1}),
                              (" trim2", {"trim_rounds": 2}))},
        "maf trim1 (rule)": {"model": "maf", "trim_rounds": 1},
    },
}

#: references (BENCHMARKS.md): mean AUROC of the best classic detector, and the targets
TARGETS = {"A": 0.996, "B": 0.97}


# ---------------------------------------------------------------------------- baselines
# Each baseline fits on ``train`` and returns ``score(x)``: anomaly scores (higher = more
# abnormal) of new rows ``x``, or of the training rows themselves with ``x=None`` (each row
# left out of its own neighbourhood, as scikit-learn's ``kneighbors()`` and LOF's
# ``negative_outlier_factor_`` do).
Scorer = Callable[[np.ndarray | None], np.ndarray]


def knn(train: np.ndarray, seed: int = 0) -> Scorer:
    """Distance to the 5th nearest training point."""
    nn = NearestNeighbors(n_neighbors=5).fit(train)
    return lambda x: nn.kneighbors(x)[0][:, -1]


def lof(train: np.ndarray, seed: int = 0) -> Scorer:
    model = LocalOutlierFactor(n_neighbors=20, novelty=True).fit(train)
    return lambda x: -(model.negative_outlier_factor_ if x is None else model.score_samples(x))


def _on(train: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> Scorer:
    """A scorer from a function of the rows (the training rows for ``x=None``)."""
    return lambda x: fn(train if x is None else x)


def iforest(train: np.ndarray, seed: int = 0) -> Scorer:
    model = IsolationForest(random_state=seed).fit(train)
    return _on(train, lambda x: -model.score_samples(x))


def ocsvm(train: np.ndarray, seed: int = 0) -> Scorer:
    model = OneClassSVM(gamma="scale", nu=0.1).fit(train)
    return _on(train, lambda x: -model.score_samples(x))


def kde(train: np.ndarray, seed: int = 0) -> Scorer:
    """Gaussian KDE, bandwidth by 5-fold cross-validated likelihood."""
    grid = {"bandwidth": np.logspace(-1, 1.5, 12) * train.std()}
    model = GridSearchCV(KernelDensity(), grid, cv=5).fit(train).best_estimator_
    return _on(train, lambda x: -model.score_samples(x))


def gmm(train: np.ndarray, seed: int = 0) -> Scorer:
    """Gaussian mixture (diagonal, 4 components, regularised)."""
    model = GaussianMixture(4, covariance_type="diag", reg_covar=1e-2, random_state=seed)
    model.fit(train)
    return _on(train, lambda x: -model.score_samples(x))


def pca(train: np.ndarray, seed: int = 0) -> Scorer:
    """Reconstruction error from the principal components explaining 90% of the variance."""
    model = PCA(n_components=0.9).fit(train)
    return _on(train, lambda x: ((x - model.inverse_transform(model.transform(x))) ** 2).sum(1))


BASELINES: dict[str, Callable[..., Scorer]] = {
    "kNN": knn, "PCA reconstruction": pca, "LOF": lof, "OCSVM": ocsvm,
    "IsolationForest": iforest, "KDE": kde, "GMM": gmm,
}


# ---------------------------------------------------------------------------- protocols
def splits_a(seed: int):
    """Protocol A: (digit, train, test, is_anomaly) for every digit, pixels 0..16."""
    data = load_digits()
    x, y = data.data.astype(np.int64), data.target
    rng = np.random.default_rng(seed)
    for c in range(10):
        own = rng.permutation(np.flatnonzero(y == c))
        cut = int(round(0.7 * len(own)))
        test = np.concatenate([own[cut:], np.flatnonzero(y != c)])
        yield c, x[own[:cut]], x[test], (y[test] != c).astype(int)


def splits_b(seed: int):
    """Protocol B: one split; features standardised with the training (benign) rows."""
    data = load_breast_cancer()
    x, benign = data.data, data.target == 1  # target 1 = benign
    rng = np.random.default_rng(seed)
    own = rng.permutation(np.flatnonzero(benign))
    cut = int(round(0.7 * len(own)))
    test = np.concatenate([own[cut:], np.flatnonzero(~benign)])
    scaler = StandardScaler().fit(x[own[:cut]])
    train, test_x = scaler.transform(x[own[:cut]]), scaler.transform(x[test])
    yield "all", train, test_x, (~benign[test]).astype(int)


SPLITS = {"A": splits_a, "B": splits_b}


def score_ppgen(options: dict, train, test, seed: int, device: str) -> tuple:
    """Anomaly scores of ``test`` and the rule's criterion (``None`` outside the rule)."""
    det, _, criterion = fit_detector(options, train, seed, device)
    return -det.score_samples(_detector_rows(options, test)), criterion


def score_baseline(fn, train, test, seed: int) -> np.ndarray:
    return fn(train.astype(np.float64), seed)(test.astype(np.float64))


def run(protocol: str, seeds: list[int], device: str, only: list[str] | None) -> dict:
    """AUROC per method, seed and split."""
    methods = {**{k: ("ppgen", v) for k, v in PPGEN[protocol].items()},
               **{k: ("baseline", v) for k, v in BASELINES.items()}}
    if only:
        methods = {k: v for k, v in methods.items() if any(o in k for o in only)}
    results = {name: [] for name in methods}
    for seed in seeds:
        for split, train, test, is_anomaly in SPLITS[protocol](seed):
            for name, (kind, what) in methods.items():
                torch.manual_seed(seed)
                start = time.perf_counter()
                if kind == "ppgen":
                    scores, criterion = score_ppgen(what, train, test, seed, device)
                else:
                    scores, criterion = score_baseline(what, train, test, seed), None
                auroc = anomaly_metrics(is_anomaly, scores)["auroc"]
                results[name].append({"seed": seed, "split": split, "auroc": auroc,
                                      "criterion": criterion,
                                      "seconds": time.perf_counter() - start})
            line = "  ".join(f"{n.split()[0]} {results[n][-1]['auroc']:.4f}" for n in methods)
            print(f"{protocol} seed {seed} split {split}: {line}", flush=True)
    return results


def table(protocol: str, results: dict) -> str:
    results = with_rule(results)
    splits = sorted({r["split"] for runs in results.values() for r in runs}, key=str)
    per_split = len(splits) > 1
    head = "| method | mean AUROC | sd over seeds | worst split |" if per_split else \
        "| method | mean AUROC | sd over seeds |"
    lines = [head, "|---|---|---|" + ("---|" if per_split else "")]
    rows = []
    for name, runs in results.items():
        by_seed = {}
        for r in runs:
            by_seed.setdefault(r["seed"], []).append(r["auroc"])
        means = [statistics.mean(v) for v in by_seed.values()]
        sd = statistics.stdev(means) if len(means) > 1 else 0.0
        row = f"| {name} | {statistics.mean(means):.4f} | {sd:.4f} |"
        if per_split:
            by_split = {s: statistics.mean(r["auroc"] for r in runs if r["split"] == s)
                        for s in splits}
            worst = min(by_split, key=by_split.get)
            row += f" {by_split[worst]:.4f} (digit {worst}) |"
        rows.append((statistics.mean(means), row))
    lines += [row for _, row in sorted(rows, key=lambda t: -t[0])]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- protocol C
#: contamination rates of protocol C (anomalies mixed in per normal row)
RATES_C = {"digits": (0.01, 0.03, 0.10), "cancer": (0.01, 0.05, 0.10)}
#: share of the normal and of the anomalous pool in the fitted mixture (the rest: held out)
FIT_SHARE = 0.7

_EXACT = {"num_particles": 1, "validation_fraction": 0.2}  # PPCA: exact with one particle
_LEVELS = {"likelihood": "categorical", "num_levels": 17, "validation_fraction": 0.2}
#: ppgen candidates on protocol C: name -> Detector options (``"on"``: only that data set)
PPGEN_C = {
    "ppca": {"model": "ppca", **_EXACT},
    "ppca trim1": {"model": "ppca", "trim_rounds": 1, **_EXACT},
    "ppca trim2": {"model": "ppca", "trim_rounds": 2, **_EXACT},
    "ppca typicality": {"model": "ppca", "statistic": "typicality", **_EXACT},
    "markov-chain": {"model": "markov-chain", "on": "digits", **_LEVELS},
    "markov/independent": {"model": "markov-chain", "reference": "independent-categorical",
                           "on": "digits", **_LEVELS},
    "ppca/ppca(L=1)": {"model": "ppca", "reference": "ppca",
                       "reference_options": {"latent_dim": 1}, **_EXACT},
    "maf": {"model": "maf", "on": "cancer", "validation_fraction": 0.2},
    "maf trim1": {"model": "maf", "trim_rounds": 1, "on": "cancer", "validation_fraction": 0.2},
}
#: the label-free rule: of the candidates whose score is a log-density of the same (real)
#: features, the one whose validation rows (held out of its fit) are likeliest, their least
#: likely TRIM share left out (Detector's default contamination)
TRIM = 0.1
RULE = "default (rule)"
BASELINES_C = ("kNN", "PCA reconstruction", "LOF", "OCSVM", "IsolationForest", "GMM")


def _draw(normal: np.ndarray, anomalous: np.ndarray, rate: float, rng) -> tuple:
    """Rows ``normal`` plus ``round(rate * len(normal))`` (at least one) of ``anomalous`` drawn
    at random, and their labels (1 = anomaly)."""
    k = max(1, int(round(rate * len(normal))))
    odd = anomalous[rng.permutation(len(anomalous))[:k]]
    return np.concatenate([normal, odd]), np.r_[np.zeros(len(normal)), np.ones(k)].astype(int)


def _pools(normal: np.ndarray, anomalous: np.ndarray, rng) -> tuple:
    """(fitted normal, fitted anomalous, held-out normal, held-out anomalous) rows."""
    cuts = []
    for rows in (normal, anomalous):
        rows = rows[rng.permutation(len(rows))]
        cut = int(round(FIT_SHARE * len(rows)))
        cuts.append((rows[:cut], rows[cut:]))
    return cuts[0][0], cuts[1][0], cuts[0][1], cuts[1][1]


def mixtures_c(data: str, seed: int, rates, digits=range(10)):
    """Protocol C: ``(split, rate, fit_x, fit_y, held_x, held_y)``: a mixture to fit and score
    without its labels, and a held-out mixture drawn the same way from rows it does not hold."""
    if data == "digits":
        bunch = load_digits()
        x, y = bunch.data.astype(np.int64), bunch.target
        groups = [(c, x[y != c], x[y == c]) for c in digits]
    else:  # breast cancer: benign normal (target 1), malignant anomalous
        bunch = load_breast_cancer()
        groups = [("all", bunch.data[bunch.target == 1], bunch.data[bunch.target == 0])]
    for split, normal, anomalous in groups:
        rng = np.random.default_rng([seed, 0 if split == "all" else split])
        fit_n, fit_a, held_n, held_a = _pools(normal, anomalous, rng)
        for rate in rates:
            fit_x, fit_y = _draw(fit_n, fit_a, rate, rng)
            held_x, held_y = _draw(held_n, held_a, rate, rng)
            if data == "cancer":  # standardised with the (unlabelled) fitted mixture
                scaler = StandardScaler().fit(fit_x)
                fit_x, held_x = scaler.transform(fit_x), scaler.transform(held_x)
            yield split, rate, fit_x, fit_y, held_x, held_y


class _PPCA(PPCA, register=False):
    """PPCA declaring what its exact guide allows: one importance sample is exact. (Speed
    only: ``ppgen.fit`` records a closed-form fit's NLL with the declared particles, 1,000
    for an undeclared latent model, ~20 s a fit here; the scores are the same.)"""

    evaluation_defaults = {"num_particles": 1}


def _instances(options: dict, num_dims: int) -> dict:
    """``options`` with the zoo name ``"ppca"`` (model or reference) built as :class:`_PPCA`."""
    out = dict(options)
    for key, opts in (("model", "model_options"), ("reference", "reference_options")):
        if out.get(key) == "ppca":
            out[key] = _PPCA(num_dims, **(out.pop(opts, None) or {}))
    return out


def _detector_rows(options: dict, x: np.ndarray) -> np.ndarray:
    return x.astype(np.int64 if options.get("likelihood") == "categorical" else np.float64)


def in_rule(options: dict) -> bool:
    """Whether a candidate's score is a plain log-density of real features, from one model
    with a validation split (comparable with the others' by the rule)."""
    return (options.get("likelihood", "continuous") == "continuous"
            and options.get("statistic", "likelihood") == "likelihood"
            and options.get("reference") is None and options.get("n_estimators", 1) == 1
            and options.get("validation_fraction", 0.2) > 0)


def trimmed_mean(log_likelihood: np.ndarray, share: float = TRIM) -> float:
    """The mean log-likelihood of the rows outside the ``share`` least likely."""
    return float(log_likelihood[log_likelihood >= np.quantile(log_likelihood, share)].mean())


def fit_detector(what: dict, train: np.ndarray, seed: int, device: str) -> tuple:
    """A Detector fitted on ``train`` (as the candidate's rows), those rows, and the rule's
    criterion: the trimmed mean log-likelihood of the validation rows the fit held out
    (``None`` outside the rule)."""
    options = _instances({k: v for k, v in what.items() if k != "on"}, train.shape[1])
    rows = _detector_rows(options, train)
    det = Detector(**options, random_state=seed, device=device).fit(rows)
    if not in_rule(what):
        return det, rows, None
    # Detector.fit's own split (the same seed), applied to row numbers; until the detector
    # reports its validation score itself (the change proposed with protocol C)
    _, val = det._split(torch.arange(len(rows))[:, None], seed)
    return det, rows, trimmed_mean(det.score_samples(rows[val[:, 0].numpy()]))


def scores_c(kind: str, what, fit_x, held_x, seed: int, device: str) -> tuple:
    """Anomaly scores of the fitted rows and of the held-out rows after one fit, and the
    rule's criterion (``None`` outside the rule)."""
    if kind == "baseline":
        score = BASELINES[what](fit_x.astype(np.float64), seed)
        return score(None), score(held_x.astype(np.float64)), None
    det, rows, criterion = fit_detector(what, fit_x, seed, device)
    held = det.score_samples(_detector_rows(what, held_x))
    return -det.score_samples(rows), -held, criterion


def methods_c(data: str, only: list[str] | None) -> dict:
    methods = {**{k: ("ppgen", v) for k, v in PPGEN_C.items() if v.get("on", data) == data},
               **{k: ("baseline", k) for k in BASELINES_C}}
    if only:
        methods = {k: v for k, v in methods.items() if any(o in k for o in only)}
    return methods


def run_c(data: str, seeds: list[int], rates, digits, device: str, only) -> dict:
    """Protocol C on one data set: AUROC of both scorings per method, seed, split and rate."""
    methods = methods_c(data, only)
    results = {name: [] for name in methods}
    for seed in seeds:
        for split, rate, fit_x, fit_y, held_x, held_y in mixtures_c(data, seed, rates, digits):
            for name, (kind, what) in methods.items():
                torch.manual_seed(seed)
                start = time.perf_counter()
                same, held, criterion = scores_c(kind, what, fit_x, held_x, seed, device)
                results[name].append({
                    "seed": seed, "split": split, "rate": rate,
                    "same": anomaly_metrics(fit_y, same)["auroc"],
                    "held_out": anomaly_metrics(held_y, held)["auroc"],
                    "criterion": criterion, "seconds": time.perf_counter() - start})
            line = "  ".join(f"{n} {results[n][-1]['same']:.3f}/{results[n][-1]['held_out']:.3f}"
                             for n in methods)
            print(f"C {data} seed {seed} split {split} rate {rate}: {line}", flush=True)
    return results


def with_rule(results: dict) -> dict:
    """``results`` with the rule's column first: in each case (seed, split, rate), the runs of
    the candidate with the highest criterion (``"picked"`` names it)."""
    cases: dict[tuple, dict] = {}
    for name, runs in results.items():
        for r in runs:
            case = (r["seed"], r["split"], r.get("rate"))
            best = cases.get(case)
            if r.get("criterion") is not None and (best is None
                                                   or r["criterion"] > best["criterion"]):
                cases[case] = {**r, "picked": name}
    return {RULE: list(cases.values()), **results} if cases else dict(results)


def _scorings():
    return (("same", "fitted rows"), ("held_out", "held-out"))


def table_c(results: dict) -> str:
    """Rows: rate x scoring; columns: each method's mean AUROC over splits and seeds, with the
    worst split (digit; its mean over seeds) where there are several."""
    results = with_rule(results)
    names = list(results)
    rates = sorted({r["rate"] for runs in results.values() for r in runs})
    splits = sorted({r["split"] for runs in results.values() for r in runs}, key=str)
    lines = ["| rate | scoring | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(names)]
    for rate in rates:
        for scoring, label in _scorings():
            cells = [_cell(results[n], rate, scoring, splits) for n in names]
            lines.append(f"| {rate:.0%} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _by_split(runs: list[dict], rate: float, scoring: str) -> dict:
    """Mean AUROC over seeds per split at ``rate``."""
    runs = [r for r in runs if r["rate"] == rate]
    splits = sorted({r["split"] for r in runs}, key=str)
    return {s: statistics.mean(r[scoring] for r in runs if r["split"] == s) for s in splits}


def _cell(runs: list[dict], rate: float, scoring: str, splits: list) -> str:
    by_split = _by_split(runs, rate, scoring)
    mean = statistics.mean(by_split.values())
    if len(splits) == 1:
        return f"{mean:.3f}"
    worst = min(by_split, key=by_split.get)
    return f"{mean:.3f} ({by_split[worst]:.2f}, {worst})"


def target_c(results: dict, candidate: str = RULE) -> str:
    """Issue 17's target per row: ``candidate``'s mean AUROC minus the best baseline's, and
    its worst split against IsolationForest's; which candidates the rule picked."""
    results = with_rule(results)
    rates = sorted({r["rate"] for r in results[candidate]})
    lines = ["| rate | scoring | mean | best baseline | margin | worst | IsolationForest worst |",
             "|---|---|---|---|---|---|---|"]
    for rate in rates:
        for scoring, label in _scorings():
            mine = _by_split(results[candidate], rate, scoring)
            means = {n: statistics.mean(_by_split(results[n], rate, scoring).values())
                     for n in BASELINES_C if n in results}
            best = max(means, key=means.get)
            forest = _by_split(results["IsolationForest"], rate, scoring)
            mean = statistics.mean(mine.values())
            lines.append(f"| {rate:.0%} | {label} | {mean:.3f} | {best} {means[best]:.3f} | "
                         f"{mean - means[best]:+.3f} | {min(mine.values()):.3f} | "
                         f"{min(forest.values()):.3f} |")
    picks = [r["picked"] for r in results.get(RULE, [])]
    counts = ", ".join(f"{n} {picks.count(n)}" for n in sorted(set(picks), key=picks.index))
    return "\n".join(lines) + (f"\n\nthe rule picked: {counts} (of {len(picks)} cases)"
                               if picks else "")


def contaminated(argv: list[str]) -> None:
    """``contaminated``: run protocol C, write its results and print its tables."""
    parser = argparse.ArgumentParser(prog="anomaly.py contaminated",
                                     description="protocol C: fitted on contaminated data")
    parser.add_argument("--data", nargs="+", default=["digits", "cancer"],
                        choices=["digits", "cancer"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--digits", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--rates", type=float, nargs="+",
                        help="contamination rates (default: 0.01 0.03 0.10 for the digits, "
                        "0.01 0.05 0.10 for breast cancer)")
    parser.add_argument("--detectors", nargs="+", help="only detectors whose name contains these")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads of torch and scikit-learn (default 1: many small fits)")
    parser.add_argument("--name", default="anomaly-c", help="results file name")
    args = parser.parse_args(argv)
    payload = {"protocol": "C", "fit_share": FIT_SHARE, "threads": args.threads}
    torch.set_num_threads(args.threads)
    with threadpool_limits(args.threads):
        for data in args.data:
            rates = args.rates or RATES_C[data]
            results = run_c(data, args.seeds, rates, args.digits, args.device, args.detectors)
            payload[data] = {"runs": results, "table": table_c(results)}
    path = write_results(args.name, payload, args.seeds)
    print_tables(path)


def print_tables(path: Path) -> None:
    """The tables of a results file: protocol C's from its runs, protocols A and B as recorded."""
    import json

    payload = json.loads(Path(path).read_text())
    if payload.get("protocol") != "C":
        print(f"{payload['command']} (commit {payload['commit']})")
        for protocol in ("A", "B"):
            if protocol in payload:
                target = payload[protocol]["target"]
                print(f"\nProtocol {protocol} (target: mean AUROC >= {target})\n"
                      f"{payload[protocol]['table']}")
        print(f"\nfrom {path}")
        return
    print(f"Protocol C: {payload['command']} (commit {payload['commit']})")
    for data in ("digits", "cancer"):
        if data in payload:
            runs = payload[data]["runs"]
            print(f"\n{data}: mean AUROC (worst split: its mean over seeds)\n{table_c(runs)}")
            if "IsolationForest" in runs and any(r.get("criterion") is not None
                                                  for v in runs.values() for r in v):
                print(f"\n{data}: issue 17's target for {RULE}\n{target_c(runs)}")
    print(f"\nfrom {path}")


def main() -> None:
    if sys.argv[1:2] == ["contaminated"]:
        return contaminated(sys.argv[2:])
    if sys.argv[1:2] == ["table"]:
        return print_tables(Path(sys.argv[2]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocols", nargs="+", default=["A", "B"], choices=["A", "B"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--methods", nargs="+", help="only methods whose name contains these")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--name", default="anomaly", help="results file name")
    args = parser.parse_args()
    payload = {}
    for protocol in args.protocols:
        results = run(protocol, args.seeds, args.device, args.methods)
        text = table(protocol, results)
        print(f"\nProtocol {protocol} (target: mean AUROC >= {TARGETS[protocol]})\n{text}\n")
        payload[protocol] = {"table": text, "runs": results, "target": TARGETS[protocol]}
    print(f"written {write_results(args.name, payload, args.seeds)}")


if __name__ == "__main__":
    main()
