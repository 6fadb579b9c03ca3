"""Anomaly detection with a generative model, the scikit-learn way.

Train on images of one digit (the "normal" class), score held-out images of that digit and
every other digit, and compare with a classic detector on the same split. The detector's
score is the model's log-likelihood from ppgen's evaluation layer (higher = more normal);
an autoregressive model also says which pixels made an image unusual.

    python examples/anomaly_detection.py --digit 3 --out anomaly-example

Writes ``roc.png`` (ppgen vs. IsolationForest), ``scores.png`` (score histograms with the
threshold) and ``explanations.png`` (per-pixel contributions of the most unusual images).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.ensemble import IsolationForest

from ppgen.anomaly import (
    Detector,
    anomaly_metrics,
    plot_explanation,
    roc_curves,
    score_histogram,
)
from ppgen.plots import save


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digit", type=int, default=3, help="the normal class (0-9)")
    parser.add_argument("--model", default="made", help="any explicit zoo model (made)")
    parser.add_argument("--out", default="anomaly-example", help="output folder")
    args = parser.parse_args()

    digits = load_digits()
    x, y = digits.data.astype(np.int64), digits.target
    rng = np.random.default_rng(0)
    own = rng.permutation(np.flatnonzero(y == args.digit))
    cut = int(0.7 * len(own))
    train = x[own[:cut]]
    test = np.concatenate([x[own[cut:]], x[y != args.digit]])
    is_anomaly = np.r_[np.zeros(len(own) - cut), np.ones((y != args.digit).sum())]

    # the detector: levels 0..16 per pixel, 5% of held-out normal images may be flagged
    detector = Detector(args.model, likelihood="categorical", num_levels=17,
                        image_shape=(8, 8), fpr=0.05).fit(train)
    scores = -detector.score_samples(test)  # higher = more abnormal (PyOD's convention)
    flagged = detector.predict(test) == -1
    forest = IsolationForest(random_state=0).fit(train)
    forest_scores = -forest.score_samples(test)

    m = anomaly_metrics(is_anomaly, scores)
    print(f"normal digit {args.digit}: {int(is_anomaly.sum())} anomalies, "
          f"{int((1 - is_anomaly).sum())} normal test images")
    print(f"{args.model}: AUROC {m['auroc']:.4f}, AUPRC {m['auprc']:.4f}, FPR at 95% recall "
          f"{m['fpr_at_recall']:.3f}; flagged {flagged.mean():.1%} of the test images")
    print(f"IsolationForest: AUROC {anomaly_metrics(is_anomaly, forest_scores)['auroc']:.4f}")

    out = Path(args.out)
    save(roc_curves(is_anomaly, {args.model: scores, "IsolationForest": forest_scores}),
         out / "roc.png")
    save(score_histogram(is_anomaly, scores, threshold=detector.threshold_,
                         title=f"-log p(x) under {args.model}, normal digit {args.digit}"),
         out / "scores.png")
    worst = test[np.argsort(-scores)[:6]]
    save(plot_explanation(detector.explain(worst), (8, 8), images=worst,
                          title="the six most unusual test images and their pixels"),
         out / "explanations.png")
    print(f"figures in {out}/")


if __name__ == "__main__":
    main()
