"""The digits feature classifier (issue 12 §3): rebuild it, check it is bit-identical to the
shipped weights, and record its accuracy per split.

Trains :class:`ppgen.metrics.DigitsClassifier` with its deterministic recipe
(:func:`ppgen.metrics.digits_training.train_digits_classifier`: the 1,000 training digits only,
seed 0, one thread, deterministic algorithms), compares the rebuilt weights' digest with
``ppgen.metrics.features.WEIGHTS_DIGEST`` (the shipped ``ppgen/metrics/digits_classifier.pt``),
and reports the accuracy of the shipped and the rebuilt classifier on train / val / test, in
every representation the feature space reads (categorical levels, dequantised floats, binary).
Also the real-vs-real floor of the sample metrics in its feature space (val vs. test) against
shuffled pixels.

    python benchmarks/feature_classifier.py          # check; results/feature-classifier.json
    python benchmarks/feature_classifier.py --write  # (re)write the shipped weights
    python benchmarks/feature_classifier.py table    # the RESULTS.md table, from the JSON

Bit-identity holds for the same torch build on the same CPU instruction set; elsewhere the
script reports the largest difference of any weight instead of failing silently (exit 1).
"""

from __future__ import annotations

import argparse
import sys
import time
from importlib import resources
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table, read_results, write_results  # noqa: E402

from ppgen.data import load_digits  # noqa: E402
from ppgen.metrics import load_digits_classifier, sample_metrics  # noqa: E402
from ppgen.metrics.digits_training import (  # noqa: E402
    RECIPE,
    accuracy,
    state_digest,
    train_digits_classifier,
)
from ppgen.metrics.features import WEIGHTS_DIGEST, WEIGHTS_FILE  # noqa: E402

REPRESENTATIONS = ("categorical", "continuous", "binary")


def accuracies(net) -> dict:
    """``{representation: {split: accuracy}}`` of ``net`` on the bundled digits."""
    table = {}
    for rep in REPRESENTATIONS:
        digits = load_digits(rep)
        table[rep] = {s: accuracy(net, digits.split(s), digits.labels[s])
                      for s in ("train", "val", "test")}
    return table


def max_difference(a: dict, b: dict) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def floors() -> dict:
    """Sample metrics of the val split and of pixel-shuffled test images, against the test
    split, in the classifier's feature space."""
    digits = load_digits("categorical")
    generator = torch.Generator().manual_seed(0)
    shuffled = digits.test[:, torch.randperm(64, generator=generator)]
    return {"val_vs_test": sample_metrics(digits.test, digits.val, "digits"),
            "shuffled_pixels_vs_test": sample_metrics(digits.test, shuffled, "digits")}


def results_table(name: str) -> str:
    """The accuracy per split and representation, and the floors, from ``results/<name>``."""
    payload = read_results(name)
    accuracy = payload["accuracy"]["shipped"]
    lines = [markdown_table(["representation", "train", "val", "test"],
                            [[rep, *(f"{100 * a:.2f}%" for a in row.values())]
                             for rep, row in accuracy.items()]),
             "",
             f"{payload['num_parameters']:,} parameters; rebuilt bit-identical to the shipped "
             f"weights: {'yes' if payload['bit_identical'] else 'no'} (digest "
             f"{payload['digest'][:16]}..., commit {payload['commit']})",
             ""]
    keys = [("fd", "{:.3f}"), ("kid", "{:.4f}"), ("precision", "{:.3f}"), ("recall", "{:.3f}"),
            ("density", "{:.3f}"), ("coverage", "{:.3f}"), ("classes_hit", "{:d}"),
            ("class_kl", "{:.3f}")]
    rows = [[what.replace("_", " "), *(fmt.format(scores[k]) for k, fmt in keys)]
            for what, scores in payload["floors"].items()]
    lines.append(markdown_table(["against the test split", "FD", "KID", "precision", "recall",
                                 "density", "coverage", "classes hit", "class KL"], rows))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", default="check", choices=["check", "table"],
                        help="check: rebuild and record; table: print the recorded results")
    parser.add_argument("--write", action="store_true",
                        help="overwrite the shipped weights with the rebuild")
    parser.add_argument("--name", default="feature-classifier", help="results file name")
    args = parser.parse_args()
    if args.what == "table":
        print(results_table(args.name))
        return
    start = time.perf_counter()
    rebuilt = train_digits_classifier()
    seconds = time.perf_counter() - start
    digest = state_digest(rebuilt.state_dict())
    if args.write:
        path = Path(str(resources.files("ppgen.metrics").joinpath(WEIGHTS_FILE)))
        torch.save(rebuilt.state_dict(), path)
        print(f"wrote {path} (digest {digest}); set WEIGHTS_DIGEST to it")
        return
    shipped = load_digits_classifier()
    identical = digest == WEIGHTS_DIGEST
    difference = max_difference(shipped.state_dict(), rebuilt.state_dict())
    table = {"shipped": accuracies(shipped), "rebuilt": accuracies(rebuilt)}
    print(f"rebuilt in {seconds:.1f} s; digest {digest[:16]}... "
          f"{'==' if identical else '!='} shipped {WEIGHTS_DIGEST[:16]}... "
          f"(largest weight difference {difference:.3g})")
    for rep, row in table["shipped"].items():
        print(f"  {rep:<12} " + "  ".join(f"{s} {100 * a:.2f}%" for s, a in row.items()))
    payload = {"recipe": RECIPE, "digest": digest, "shipped_digest": WEIGHTS_DIGEST,
               "bit_identical": identical, "max_weight_difference": difference,
               "seconds": seconds, "num_parameters": sum(p.numel() for p in rebuilt.parameters()),
               "accuracy": table, "floors": floors()}
    print(f"wrote {write_results(args.name, payload, RECIPE['seed'])}")
    sys.exit(0 if identical else 1)


if __name__ == "__main__":
    main()
