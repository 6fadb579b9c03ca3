"""Latent models and representations (issue 14): adversarial autoencoders and encoder features.

(a) aae — on the categorical digits (train split, ``fit_defaults`` of ``AAE`` unless ``--epochs``
    and ``--hidden`` say otherwise (recorded with the results), 2-d codes as in
    Makhzani et al.'s figures): for each prior (``--priors``: gaussian, mixture10, swiss-roll,
    uniform) a Gaussian-encoder AAE; the unbiased squared MMD (median-heuristic Gaussian kernel,
    ``ppgen.metrics.mmd2``) between the test codes ``q(z)`` (encoder means) and as many prior
    draws, beside the VAE's (2-d, ``N(0, I)`` prior, its own recipe) and beside the floor (two
    prior samples of that size). The semi-supervised AAE (10 labels per class of the training
    split, the rest ``-1``; 8-d style) and its test accuracy (target >= 90%); the clustering AAE
    (10-way categorical code, no labels) and its test accuracy under the best one-to-one
    cluster -> digit assignment (``scipy.optimize.linear_sum_assignment``).
(b) represent — every model named by ``--models`` (zoo names; any model whose ``encode`` works)
    trained on the digits with its ``fit_defaults`` (epochs capped by ``--max-epochs``), and
    encoded with ``ppgen.represent``; baselines in the same run: raw pixels and PCA (16
    components, fitted on the training split). Per representation: the linear probe
    (logistic regression on the standardised training features, test accuracy), 5-NN test
    accuracy, and the semi-supervised accuracy with 10 labels per class (logistic regression on
    the 100 labelled training rows). A 2-D scatter (t-SNE) of every model's test features,
    coloured by digit, is written beside the results (``--figure``).

    python benchmarks/latent.py aae --seed 0
    python benchmarks/latent.py represent --seed 0 --models vae aae ppca maf
    python benchmarks/latent.py table

(c) table — the tables of benchmarks/RESULTS.md printed from the result files
    (``results/latent-aae-seed*.json``, ``results/latent-represent-seed*.json``).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, markdown_table, mean_sd, write_results  # noqa: E402

import ppgen  # noqa: E402
import ppgen.models  # noqa: E402,F401  (registers the zoo)
from ppgen.data import load_digits  # noqa: E402
from ppgen.errors import ModelError  # noqa: E402
from ppgen.metrics import mmd2  # noqa: E402
from ppgen.models import AAE, VAE  # noqa: E402
from ppgen.protocol import model_class  # noqa: E402

PRIORS = ["gaussian", "mixture10", "swiss-roll", "uniform"]
#: labels per class of the semi-supervised measures
LABELS_PER_CLASS = 10
#: the semi-supervised target (issue 14)
TARGET_ACCURACY = 0.90


# ----------------------------------------------------------------------------- helpers
def few_labels(y: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """``y`` with all but ``per_class`` random rows of each class set to ``-1``."""
    g = torch.Generator().manual_seed(seed)
    part = torch.full_like(y, -1)
    for c in range(int(y.max()) + 1):
        rows = (y == c).nonzero().flatten()
        pick = rows[torch.randperm(len(rows), generator=g)[:per_class]]
        part[pick] = c
    return part


def matched_accuracy(codes: torch.Tensor, classes: torch.Tensor, k: int = 10) -> float:
    """Accuracy of ``codes`` as ``classes`` under the best one-to-one code -> class map."""
    from scipy.optimize import linear_sum_assignment

    counts = np.zeros((k, k))
    np.add.at(counts, (codes.numpy(), classes.numpy()), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(codes))


def timed_fit(model, digits, **options) -> dict:
    start = time.perf_counter()
    history = ppgen.fit(model, digits.train, digits.val, **options)
    return {"seconds": round(time.perf_counter() - start, 1), "epochs": len(history)}


# ----------------------------------------------------------------------------- (a) aae
def run_aae(args: argparse.Namespace) -> dict:
    digits = load_digits("categorical")
    test = digits.test
    out: dict = {"mmd": {}, "floor": {}, "fits": {}}
    for prior in args.priors:
        torch.manual_seed(args.seed)
        model = AAE.for_data(digits.info, prior=prior, latent_dim=2, network=_network(args))
        out["fits"][f"aae-{prior}"] = timed_fit(model, digits, epochs=args.epochs)
        out["mmd"][f"aae-{prior}"] = _mmd(model.encode(test), model.prior_codes(len(test)))
        out["floor"][prior] = _mmd(model.prior_codes(len(test)), model.prior_codes(len(test)))
        print(f"aae {prior}: MMD² {out['mmd'][f'aae-{prior}']:.4f}", flush=True)
    torch.manual_seed(args.seed)
    vae = VAE.for_data(digits.info, latent_dim=2, hidden_dims=args.hidden or (256, 256))
    out["fits"]["vae"] = timed_fit(vae, digits, epochs=args.epochs)
    out["mmd"]["vae"] = _mmd(vae.encode(test), torch.randn(len(test), 2))
    print(f"vae: MMD² {out['mmd']['vae']:.4f}", flush=True)
    out["semi_supervised"] = semi_supervised(digits, args)
    out["clustering"] = clustering(digits, args)
    return out


def _network(args: argparse.Namespace) -> dict | None:
    """Hidden and critic widths of the AAEs of (a) (``--hidden``; default the model's)."""
    return None if args.hidden is None else {"hidden_dims": args.hidden,
                                             "critic_dims": args.hidden}


def _mmd(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(mmd2(a.float().cpu(), b.float().cpu()))


def semi_supervised(digits, args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    labels = few_labels(digits.labels["train"], LABELS_PER_CLASS, args.seed)
    model = AAE.for_data(digits.info, variant="semi-supervised", latent_dim=8,
                         network=_network(args))
    fit = timed_fit(model, digits, epochs=args.epochs, labels=labels,
                    val_labels=torch.full((len(digits.val),), -1))
    accuracy = float((model.classify(digits.test) == digits.labels["test"]).float().mean())
    print(f"semi-supervised AAE: test accuracy {accuracy:.3f}", flush=True)
    return {"accuracy": accuracy, "labels": int((labels >= 0).sum()), **fit}


def clustering(digits, args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    model = AAE.for_data(digits.info, variant="clustering", latent_dim=8, network=_network(args))
    fit = timed_fit(model, digits, epochs=args.epochs)
    accuracy = matched_accuracy(model.classify(digits.test).cpu(), digits.labels["test"])
    print(f"clustering AAE: matched test accuracy {accuracy:.3f}", flush=True)
    return {"accuracy": accuracy, **fit}


def run_semi(args: argparse.Namespace) -> dict:
    """(a) again for the semi-supervised or clustering AAE alone (``--variant``)."""
    digits = load_digits("categorical")
    run = semi_supervised if args.variant == "semi-supervised" else clustering
    return {args.variant: run(digits, args)}


# ----------------------------------------------------------------------------- (b) represent
def trained_model(name: str, seed: int, max_epochs: int | None):
    """The zoo model ``name`` trained on the digits with its recipe, and its data splits:
    the categorical digits, or the continuous ones for a model that takes only reals."""
    for representation in ("categorical", "continuous"):
        digits = load_digits(representation, seed=seed)
        torch.manual_seed(seed)
        try:
            model = model_class(name).for_data(digits.info)
            model.check_data(digits.train[:2])
        except (ModelError, ppgen.DataError):
            continue
        epochs = model.fit_defaults.get("epochs")
        cap = {} if max_epochs is None or epochs is None else {"epochs": min(epochs, max_epochs)}
        fit = timed_fit(model, digits, **cap)
        return model, digits, {**fit, "data": representation}
    raise ModelError(f"{name} takes neither the categorical nor the continuous digits")


def probes(train: np.ndarray, test: np.ndarray, digits, seed: int) -> dict:
    """Linear-probe, 5-NN and 10-labels-per-class accuracies of features on the test split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y_train, y_test = digits.labels["train"].numpy(), digits.labels["test"].numpy()

    def logistic():
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))

    few = few_labels(digits.labels["train"], LABELS_PER_CLASS, seed).numpy() >= 0
    return {
        "linear": float(logistic().fit(train, y_train).score(test, y_test)),
        "knn": float(KNeighborsClassifier(5).fit(train, y_train).score(test, y_test)),
        "semi": float(logistic().fit(train[few], y_train[few]).score(test, y_test)),
        "features": int(train.shape[1]),
    }


def run_represent(args: argparse.Namespace) -> dict:
    from sklearn.decomposition import PCA

    digits = load_digits("categorical")
    pixels = {s: getattr(digits, s).double().numpy() / 16 for s in ("train", "test")}
    out: dict = {"probes": {}, "fits": {}, "failed": {}}
    out["probes"]["raw pixels"] = probes(pixels["train"], pixels["test"], digits, args.seed)
    pca = PCA(16, random_state=args.seed).fit(pixels["train"])
    out["probes"]["PCA-16"] = probes(pca.transform(pixels["train"]), pca.transform(
        pixels["test"]), digits, args.seed)
    figure = {}
    for name in args.models:
        try:
            model, data, fit = trained_model(name, args.seed, args.max_epochs)
            train, test = (ppgen.represent(model, getattr(data, s)).double().cpu().numpy()
                           for s in ("train", "test"))
        except ModelError as err:  # a model without an encoder, or data it cannot take
            out["failed"][name] = str(err)
            print(f"{name}: skipped ({err})", flush=True)
            continue
        out["fits"][name] = fit
        out["probes"][name] = probes(train, test, digits, args.seed)
        figure[name] = test
        print(f"{name}: {out['probes'][name]}", flush=True)
    if args.figure and figure:
        _scatter(figure, digits, args)
    return out


def _scatter(features: dict, digits, args: argparse.Namespace) -> None:
    from ppgen import plots

    fig = plots.representation_scatters(features, digits.labels["test"], seed=args.seed,
                                        title="test features, coloured by digit")
    tag = f"-{args.tag}" if args.tag else ""
    plots.save(fig, RESULTS / f"latent-scatter{tag}-seed{args.seed}.png")


# ----------------------------------------------------------------------------- (c) tables
def _results(kind: str) -> list[dict]:
    """Every result file of ``kind`` (``latent-KIND[-TAG]-seedS.json``), in name order."""
    import json

    return [json.loads(p.read_text()) for p in sorted(RESULTS.glob(f"latent-{kind}*seed*.json"))]


def aae_table() -> str:
    runs = _results("aae")
    if not runs:
        return "(no latent-aae results yet)"
    rows = []
    for key in runs[0]["mmd"]:
        prior = "gaussian" if key == "vae" else key.removeprefix("aae-")
        floor = [r["floor"].get(prior) for r in runs if r["floor"].get(prior) is not None]
        rows.append([key.replace("aae-", "AAE, "), prior if key != "vae" else "N(0, I)",
                     mean_sd([r["mmd"][key] for r in runs], "{:.4f}"),
                     mean_sd(floor, "{:.4f}") if floor else "—"])
    table = markdown_table(["model (2-d code)", "prior", "MMD² q(z) vs p(z)",
                            "floor (two prior samples)"], rows)
    semi, clus, where = _categorical_runs(runs)
    met = "met" if min(semi) >= TARGET_ACCURACY else "**missed**"
    lines = [table, "",
             markdown_table(["AAE", "test accuracy", "target"], [
                 ["semi-supervised, 10 labels per class", mean_sd(semi, "{:.3f}"),
                  f"≥ {TARGET_ACCURACY:.2f}: {met}"],
                 ["clustering, 10-way categorical code (best one-to-one map)",
                  mean_sd(clus, "{:.3f}"), "—"]]),
             "", _provenance(runs), where]
    return "\n".join(lines)


def _categorical_runs(runs: list[dict]) -> tuple[list[float], list[float], str]:
    """Accuracies of the semi-supervised and clustering AAEs: from their own runs
    (``latent-semi-VARIANT-seedS.json``) when there are any, else from the (a) runs."""
    own = {v: [r[v]["accuracy"] for r in _results(f"semi-{v}")]
           for v in ("semi-supervised", "clustering")}
    semi = own["semi-supervised"] or [r["semi_supervised"]["accuracy"] for r in runs]
    clus = own["clustering"] or [r["clustering"]["accuracy"] for r in runs]
    rerun = [r for v in own for r in _results(f"semi-{v}")]
    where = "" if not rerun else "Semi-supervised and clustering rows: " + _provenance(rerun)
    return semi, clus, where


def represent_table() -> str:
    runs = _results("represent")
    if not runs:
        return "(no latent-represent results yet)"
    by_seed: dict[tuple[str, int], dict] = {}  # a (model, seed) counts once over the files
    for run in runs:
        for name, probe in run["probes"].items():
            by_seed.setdefault((name, run["seed"]), probe)
    rows = []
    for name in dict.fromkeys(name for name, _ in by_seed):
        have = [p for (n, _), p in by_seed.items() if n == name]
        rows.append([name, str(have[0]["features"]),
                     *(mean_sd([h[k] for h in have], "{:.3f}") for k in ("linear", "knn", "semi")),
                     str(len(have))])
    table = markdown_table(["representation", "F", "linear probe", "5-NN",
                            "10 labels per class", "seeds"], rows)
    return "\n".join([table, "", _provenance(runs)])


def _provenance(runs: list[dict]) -> str:
    seeds = ", ".join(sorted({str(r["seed"]) for r in runs}))
    commands = dict.fromkeys(
        "`{}` (commit {})".format(re.sub(r"--seed \d+", "--seed S", r["command"]), r["commit"])
        for r in runs)
    return f"Seeds {seeds} (mean ± sd); {runs[0]['machine']}; " + "; ".join(commands) + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["aae", "semi", "represent", "table"])
    parser.add_argument("--variant", choices=["semi-supervised", "clustering"],
                        default="semi-supervised", help="the AAE of `semi`")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--priors", nargs="+", default=PRIORS)
    parser.add_argument("--epochs", type=int, help="AAE/VAE epochs in (a) (default: recipe)")
    parser.add_argument("--hidden", type=int, nargs="+",
                        help="hidden (and critic) widths of the AAEs and the VAE in (a)")
    parser.add_argument("--models", nargs="+", default=["vae", "aae", "ppca", "maf"])
    parser.add_argument("--max-epochs", type=int, default=150,
                        help="cap on a recipe's epochs in (b)")
    parser.add_argument("--figure", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tag", help="results file latent-WHAT-TAG-seedS.json (more models of "
                        "(b) run apart; the table merges them by seed)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.what == "table":
        print("### Adversarial autoencoders\n\n" + aae_table())
        print("\n### Representations\n\n" + represent_table())
        return
    run = {"aae": run_aae, "semi": run_semi, "represent": run_represent}[args.what]
    payload = {"benchmark": f"latent-{args.what}", "options": vars(args), **run(args)}
    tag = f"-{args.tag}" if args.tag else (f"-{args.variant}" if args.what == "semi" else "")
    path = write_results(f"latent-{args.what}{tag}-seed{args.seed}", payload, args.seed)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
