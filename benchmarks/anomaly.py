"""Anomaly detection: generative models vs. the classic detectors (BENCHMARKS.md, A and B).

Protocol A (one-class digits): for each digit c, train on 70% of the images of c (random split,
seed fixed), test on the other 30% of c plus every image of the other digits as anomalies;
AUROC per digit, mean over the 10 digits, over seeds. Protocol B (breast cancer): standardised
features, train on 70% of the benign cases, test on the other 30% plus every malignant case.

ppgen's detectors (``ppgen.anomaly.Detector``) and the scikit-learn baselines (kNN, LOF,
IsolationForest, OCSVM, KDE, GMM, PCA reconstruction, on the same features) run in the same
script on the same splits, so the table compares like with like.

    python benchmarks/anomaly.py                          # both protocols, 5 seeds
    python benchmarks/anomaly.py --protocols B --seeds 0  # a quick look
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_results  # noqa: E402

from ppgen.anomaly import Detector, anomaly_metrics  # noqa: E402

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
    },
    "B": {
        "ppca (latent)": {"model": "ppca"},
        "rnade (autoregressive)": {"model": "rnade"},
        "vae (latent)": {"model": "vae", "num_particles": 100},
        "maf (flow)": {"model": "maf"},
        "maf x10 (flow ensemble)": {"model": "maf", "n_estimators": 10},
    },
}

#: references (BENCHMARKS.md): mean AUROC of the best classic detector, and the targets
TARGETS = {"A": 0.996, "B": 0.97}


# ---------------------------------------------------------------------------- baselines
def knn(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Distance to the 5th nearest training point."""
    nn = NearestNeighbors(n_neighbors=5).fit(train)
    return nn.kneighbors(test)[0][:, -1]


def lof(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    return -LocalOutlierFactor(n_neighbors=20, novelty=True).fit(train).score_samples(test)


def iforest(train: np.ndarray, test: np.ndarray, seed: int = 0) -> np.ndarray:
    return -IsolationForest(random_state=seed).fit(train).score_samples(test)


def ocsvm(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    return -OneClassSVM(gamma="scale", nu=0.1).fit(train).score_samples(test)


def kde(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Gaussian KDE, bandwidth by 5-fold cross-validated likelihood."""
    grid = {"bandwidth": np.logspace(-1, 1.5, 12) * train.std()}
    search = GridSearchCV(KernelDensity(), grid, cv=5).fit(train)
    return -search.best_estimator_.score_samples(test)


def gmm(train: np.ndarray, test: np.ndarray, seed: int = 0) -> np.ndarray:
    """Gaussian mixture (diagonal, 4 components, regularised)."""
    model = GaussianMixture(4, covariance_type="diag", reg_covar=1e-2, random_state=seed)
    return -model.fit(train).score_samples(test)


def pca(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Reconstruction error from the principal components explaining 90% of the variance."""
    model = PCA(n_components=0.9).fit(train)
    return ((test - model.inverse_transform(model.transform(test))) ** 2).sum(1)


BASELINES: dict[str, Callable[..., np.ndarray]] = {
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


def score_ppgen(options: dict, train, test, seed: int, device: str) -> np.ndarray:
    det = Detector(**options, random_state=seed, device=device).fit(train)
    return -det.score_samples(test)


def score_baseline(fn, train, test, seed: int) -> np.ndarray:
    kwargs = {"seed": seed} if "seed" in fn.__code__.co_varnames else {}
    return fn(train.astype(np.float64), test.astype(np.float64), **kwargs)


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
                    scores = score_ppgen(what, train, test, seed, device)
                else:
                    scores = score_baseline(what, train, test, seed)
                auroc = anomaly_metrics(is_anomaly, scores)["auroc"]
                results[name].append({"seed": seed, "split": split, "auroc": auroc,
                                      "seconds": time.perf_counter() - start})
            line = "  ".join(f"{n.split()[0]} {results[n][-1]['auroc']:.4f}" for n in methods)
            print(f"{protocol} seed {seed} split {split}: {line}", flush=True)
    return results


def table(protocol: str, results: dict) -> str:
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


def main() -> None:
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
