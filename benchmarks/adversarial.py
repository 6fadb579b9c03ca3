"""Adversarial benchmarks (issue 12): mode coverage, digits sample quality, likelihood-free
fitting, and the engine's overhead on a GAN step.

(a) modes — the VEEGAN / PacGAN protocol (BENCHMARKS.md): a ring of 8 Gaussians (radius 1,
    σ 0.01) and a 5x5 grid (spacing 2, σ 0.05), 100k training points; an MLP ``GAN`` per loss;
    2,500 draws scored by ``ppgen.metrics.mode_metrics`` (modes captured, share of high-quality
    draws within 3σ, KL of the nearest-mode histogram to uniform).
(b) digits — ``DCGAN`` per loss with its ``fit_defaults`` on the continuous digits; 447 draws
    against the test split: MMD, Fréchet distance, KID, precision/recall (k = 3),
    density/coverage (k = 5), beside the real floor (the 350 validation images against the
    test split). Feature space: raw pixels (the digits feature classifier is still to come).
(b') labelled digits — ``CGAN``, ``ACGAN`` (labels ``y``) and ``InfoGAN`` (10-way categorical
    code, 2 continuous codes, no labels) on the continuous digits with their ``fit_defaults``.
    Scored by a digits classifier: the package's feature classifier when it exists
    (``ppgen.metrics.features``), else an RBF support-vector classifier trained here on the
    training split (its test accuracy recorded). Conditional models: the share of draws
    (447, the classes in turn) classified as their label. InfoGAN: the categorical code matched
    to the digit classes by the best one-to-one assignment (``linear_sum_assignment``), both as
    Q's code of the real test images against their labels (Chen et al.'s measure) and as the
    classifier's digit of 100 draws per code value; plus the sample metrics of (b).
(c) simulator — the g-and-k fit of ``examples/adversarial_simulator.py``: parameter error of the
    adversarial fit and of maximum likelihood on the same data, per seed.
(d) overhead — a training step (critic, then generator) through ppgen's engine vs a hand-written
    PyTorch loop with the same networks, optimisers and batch; alternating repeats in one
    process, median ratio (target <= 1.10).

    python benchmarks/adversarial.py modes --toys ring --seeds 0 1 2 --steps 10000
    python benchmarks/adversarial.py digits --seeds 0 1 2
    python benchmarks/adversarial.py labelled --models acgan infogan --seeds 0 1 2
    python benchmarks/adversarial.py simulator --seeds 0 1 2
    python benchmarks/adversarial.py overhead
    python benchmarks/adversarial.py table --tables labelled modes

(e) table — the tables of benchmarks/RESULTS.md printed from the result files (no training):
    ``labelled``, ``modes``, ``digits``, ``simulator``, ``overhead``; ``--results`` names other
    files than :data:`TABLE_RESULTS`.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from common import markdown_table, mean_sd, read_results, write_results  # noqa: E402

import ppgen  # noqa: E402
from ppgen.data import load_digits  # noqa: E402
from ppgen.metrics import ModeSet, mode_metrics, sample_metrics  # noqa: E402
from ppgen.models import ACGAN, CGAN, DCGAN, GAN, InfoGAN  # noqa: E402

LOSSES = ["minimax", "non-saturating", "least-squares", "wgan-gp", "hinge"]
#: the mode-coverage recipe: MLP sizes, batch, Adam rate with a cosine decay (betas by loss, as
#: GAN.fit_defaults); the R1 penalty (--r1, default 1) is what makes every loss find the modes
TOY_MODEL = {"latent_dim": 16, "hidden_dims": (128, 128), "critic_dims": (128, 128)}
TOY_BATCH, TOY_LR = 100, 1e-3


def _mean_sd(values: list[float]) -> dict[str, float]:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "sd": sd, "values": values}


# --------------------------------------------------------------------------- (a) modes
def toy_recipe(args: argparse.Namespace) -> dict:
    """The mode-coverage recipe: the defaults above, overridden on the command line."""
    model = {**TOY_MODEL, "pack": args.pack}
    if args.latent_dim:
        model["latent_dim"] = args.latent_dim
    if args.hidden:
        model["hidden_dims"] = tuple(args.hidden)
    if args.critic:
        model["critic_dims"] = tuple(args.critic)
    return {"model": model, "batch_size": args.toy_batch or TOY_BATCH,
            "lr": args.lr or TOY_LR, "r1": args.r1, "steps": args.steps}


def run_modes(toy: str, loss: str, seed: int, recipe: dict) -> dict:
    """One GAN on one mixture; returns its mode metrics."""
    modes = ModeSet.ring() if toy == "ring" else ModeSet.grid()
    x = modes.sample(100_000, seed=seed)
    torch.manual_seed(seed)
    model = GAN(2, loss=loss, r1=recipe["r1"], **recipe["model"])
    group = {**model.fit_defaults["optimizer"]["generator"], "lr": recipe["lr"]}
    batch = recipe["batch_size"]
    epochs = max(1, math.ceil(recipe["steps"] * batch / len(x)))
    start = time.perf_counter()
    ppgen.fit(model, x, None, epochs=epochs, batch_size=batch, seed=seed, progress=False,
              optimizer={"generator": group, "critic": dict(group)}, lr_schedule="cosine")
    torch.manual_seed(seed + 1000)
    scores = mode_metrics(model.sample(2500), modes)
    return {**scores, "seconds": time.perf_counter() - start,
            "steps": epochs * math.ceil(len(x) / batch)}


def modes_table(args: argparse.Namespace) -> dict:
    rows, recipe = {}, toy_recipe(args)
    for toy in args.toys:
        for loss in args.losses:
            runs = [run_modes(toy, loss, s, recipe) for s in args.seeds]
            rows[f"{toy}/{loss}"] = {k: _mean_sd([float(r[k]) for r in runs])
                                     for k in ("modes", "high_quality", "mode_kl", "seconds")}
            m, hq = rows[f"{toy}/{loss}"]["modes"], rows[f"{toy}/{loss}"]["high_quality"]
            print(f"{toy:>5} {loss:>15}: modes {m['mean']:.1f} ± {m['sd']:.1f} of "
                  f"{runs[0]['num_modes']}, high quality {100 * hq['mean']:.1f}%", flush=True)
    return {"recipe": {**recipe["model"], **{k: v for k, v in recipe.items() if k != "model"},
                       "lr_schedule": "cosine"}, "rows": rows}


# --------------------------------------------------------------------------- (b) digits
def run_digits(loss: str, seed: int) -> dict:
    digits = load_digits("continuous", seed=seed)
    torch.manual_seed(seed)
    model = DCGAN.for_data(digits.info, loss=loss)
    start = time.perf_counter()
    history = ppgen.fit(model, digits.train, digits.val, seed=seed, progress=False)
    seconds = time.perf_counter() - start
    torch.manual_seed(seed + 1000)
    fake = model.eval().sample(len(digits.test))
    scores = sample_metrics(digits.test, fake)
    scores["fd_350"] = sample_metrics(digits.test, fake[:350])["fd"]  # the floor's N
    return {**scores, "epochs": len(history), "best_epoch": history.best_epoch,
            "seconds": seconds}


def digits_table(args: argparse.Namespace) -> dict:
    digits = load_digits("continuous", seed=0)
    floor = sample_metrics(digits.test, digits.val)
    print("real floor (val 350 vs test 447): " + _fmt(floor), flush=True)
    rows = {}
    for loss in args.losses:
        runs = [run_digits(loss, s) for s in args.seeds]
        keys = [k for k in runs[0] if isinstance(runs[0][k], float | int)]
        rows[loss] = {k: _mean_sd([float(r[k]) for r in runs]) for k in keys}
        print(f"dcgan {loss:>15}: " + _fmt({k: v["mean"] for k, v in rows[loss].items()}),
              flush=True)
    return {"features": "raw pixels", "floor": floor, "rows": rows}


def _fmt(scores: dict) -> str:
    keys = ("mmd", "fd", "fd_350", "kid", "precision", "recall", "density", "coverage")
    return ", ".join(f"{k} {scores[k]:.3f}" for k in keys if k in scores)


# --------------------------------------------------------------------------- (b') labelled
LABELLED = {"cgan": CGAN, "acgan": ACGAN, "infogan": InfoGAN}


def digits_classifier(digits) -> tuple[object, float, str]:
    """A classifier of continuous digits ``[N, 64] -> [N]`` labels, its test accuracy and
    what it is: an RBF SVM on the training split (the package's feature classifier is not in
    ``ppgen.metrics`` yet)."""
    from sklearn.svm import SVC

    svm = SVC(C=10.0, gamma="scale").fit(digits.train.numpy(), digits.labels["train"].numpy())
    accuracy = float((svm.predict(digits.test.numpy()) == digits.labels["test"].numpy()).mean())
    return svm, accuracy, "RBF SVM (C=10) on the training split, raw continuous pixels"


def matched_accuracy(codes: torch.Tensor, classes: torch.Tensor, k: int = 10) -> float:
    """Accuracy of ``codes`` as ``classes`` under the best one-to-one code -> class map."""
    from scipy.optimize import linear_sum_assignment

    counts = torch.zeros(k, k)
    counts.index_put_((codes.long(), classes.long()), torch.ones(len(codes)), accumulate=True)
    rows, cols = linear_sum_assignment(counts.numpy(), maximize=True)
    return float(counts[rows, cols].sum() / len(codes))


def run_labelled(name: str, loss: str, seed: int, classify, epochs: int | None = None) -> dict:
    digits = load_digits("continuous", seed=seed)
    torch.manual_seed(seed)
    model = LABELLED[name].for_data(digits.info, loss=loss)
    labels = {} if name == "infogan" else {"labels": digits.labels["train"],
                                           "val_labels": digits.labels["val"]}
    start = time.perf_counter()
    history = ppgen.fit(model, digits.train, digits.val, seed=seed, progress=False,
                        epochs=epochs, **labels)
    seconds = time.perf_counter() - start
    torch.manual_seed(seed + 1000)
    model.eval()
    n = len(digits.test)
    y = torch.arange(n) % 10
    fake = model.sample(n) if name == "infogan" else model.sample(n, y=y)
    scores = sample_metrics(digits.test, fake)
    if name == "infogan":
        q_codes = model.infer_code(digits.test)
        scores["code_accuracy_q"] = matched_accuracy(q_codes, digits.labels["test"])
        sweep = model.sweep("code", list(range(10)), n=100, seed=seed)  # [10, 100, 64]
        predicted = torch.as_tensor(classify(sweep.reshape(-1, sweep.shape[-1]).numpy()))
        scores["code_accuracy_samples"] = matched_accuracy(
            torch.arange(10).repeat_interleave(100), predicted)
    else:
        predicted = torch.as_tensor(classify(fake.numpy()))
        scores["label_accuracy"] = float((predicted == y).float().mean())
    return {**scores, "epochs": len(history), "best_epoch": history.best_epoch,
            "seconds": seconds}


def labelled_table(args: argparse.Namespace) -> dict:
    digits = load_digits("continuous", seed=0)
    classifier, accuracy, what = digits_classifier(digits)
    print(f"scoring classifier: {what}; test accuracy {accuracy:.3f}", flush=True)
    rows = {}
    for name in args.models:
        for loss in args.losses:
            runs = [run_labelled(name, loss, s, classifier.predict, args.epochs)
                    for s in args.seeds]
            keys = [k for k in runs[0] if isinstance(runs[0][k], float | int)]
            row = rows[f"{name}/{loss}"] = {k: _mean_sd([float(r[k]) for r in runs])
                                            for k in keys}
            print(f"{name} {loss:>15}: " + _fmt({k: v["mean"] for k, v in row.items()}) + ", "
                  + ", ".join(f"{k} {row[k]['values']}" for k in row if "accuracy" in k),
                  flush=True)
    return {"features": "raw pixels", "classifier": {"what": what, "test_accuracy": accuracy},
            "rows": rows}


# --------------------------------------------------------------------------- (c) simulator
def simulator_table(args: argparse.Namespace) -> dict:
    import adversarial_simulator as sim

    rows = []
    for seed in args.seeds:
        x = sim.simulate(3000, seed=seed)
        train, val = x[:2000], x[2000:]
        fits = {"adversarial": sim.fit_adversarially(train, val, seed=seed),
                "mle": sim.fit_by_maximum_likelihood(train, val, seed=seed)}
        row = {"seed": seed}
        for name, fitted in fits.items():
            error = math.sqrt(sum((fitted[k] - v) ** 2 for k, v in sim.TRUE.items()))
            row[name] = {"parameters": fitted, "error": error}
        print(f"seed {seed}: error adversarial {row['adversarial']['error']:.3f}, "
              f"maximum likelihood {row['mle']['error']:.3f}", flush=True)
        rows.append(row)
    return {"true": sim.TRUE, "n_train": 2000, "rows": rows,
            "adversarial_error": _mean_sd([r["adversarial"]["error"] for r in rows]),
            "mle_error": _mean_sd([r["mle"]["error"] for r in rows])}


# --------------------------------------------------------------------------- (d) overhead
def _hand_written(model: GAN, batch: torch.Tensor, optimizers: dict) -> None:
    """One non-saturating step written directly in PyTorch: critic, then generator."""
    G, D = model.generator, model.critic
    fake = G(torch.randn(len(batch), model.latent_dim)).detach()
    loss = F.softplus(-D(batch)).mean() + F.softplus(D(fake)).mean()
    optimizers["critic"].zero_grad(set_to_none=True)
    loss.backward()
    optimizers["critic"].step()
    loss = F.softplus(-D(G(torch.randn(len(batch), model.latent_dim)))).mean()
    optimizers["generator"].zero_grad(set_to_none=True)
    loss.backward()
    optimizers["generator"].step()


def overhead_table(args: argparse.Namespace) -> dict:
    from ppgen.engine.distributed import Cluster
    from ppgen.engine.optim import Optimizers, group_specs
    from ppgen.engine.precision import Precision
    from ppgen.engine.step import Stepper
    from ppgen.inference import make_objective

    torch.manual_seed(0)
    x = torch.randn(args.batch, 2)
    ours, theirs = GAN(2, **TOY_MODEL), GAN(2, **TOY_MODEL)
    objective = make_objective("adversarial", **ours.objective_defaults)
    groups = objective.param_groups(ours)
    optimizers = Optimizers(group_specs(groups, "adam", 1e-4, 0.0, None, 0, None))
    optimizers.build(groups)
    stepper = Stepper(objective(ours), optimizers, Cluster(), Precision("fp32", x.device), None)
    plain = {"critic": torch.optim.Adam(theirs.critic.parameters(), 1e-4),
             "generator": torch.optim.Adam(theirs.generator.parameters(), 1e-4)}
    ratios = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for step in range(args.timed_steps):
            stepper.step(x, {}, step, 1, 1.0)
        t1 = time.perf_counter()
        for _ in range(args.timed_steps):
            _hand_written(theirs, x, plain)
        t2 = time.perf_counter()
        ratios.append((t1 - t0) / (t2 - t1))
    median = statistics.median(ratios)
    print(f"ppgen step / hand-written step: median {median:.3f} over {args.repeats} repeats "
          f"of {args.timed_steps} steps (batch {args.batch})", flush=True)
    return {"ratio_median": median, "ratios": ratios, "batch": args.batch,
            "steps": args.timed_steps, "model": TOY_MODEL, "target": 1.10}


# --------------------------------------------------------------------------- (e) tables
#: the result files each table reads by default
TABLE_RESULTS = {
    "labelled": ["adversarial-labelled-acgan", "adversarial-labelled-infogan"],
    "modes": ["adversarial-modes-ring", "adversarial-modes-grid"],
    "digits": ["adversarial-digits-a", "adversarial-digits-b"],
    "simulator": ["adversarial-simulator"],
    "overhead": ["adversarial-overhead", "adversarial-overhead-b1024"],
}
#: issue 12: InfoGAN's categorical code should match the digit classes (best one-to-one map)
INFOGAN_TARGET = 0.85
#: published mode coverage (BENCHMARKS.md: PacGAN Table 1, VEEGAN Table 1): modes captured,
#: share of high-quality samples
MODE_REFERENCES = {
    "ring": [("GAN (PacGAN paper)", 6.3, 0.982), ("PacGAN2", 7.9, 0.956), ("VEEGAN", 8.0, 0.529)],
    "grid": [("GAN (PacGAN paper)", 17.3, 0.948), ("PacGAN2", 23.8, 0.913),
             ("VEEGAN", 24.6, 0.40)],
}


def _cell(row: dict, key: str, fmt: str = "{:.3f}") -> str:
    return mean_sd(row[key]["values"], fmt) if key in row else "—"


def labelled_results_table(names: list[str]) -> str:
    """Label / code accuracy of the labelled-digits GANs over seeds, and their sample metrics
    (raw pixels)."""
    header = ["model / loss", "seeds", "label accuracy", "code→class, Q on test",
              "code→class, draws", f"target ≥ {INFOGAN_TARGET}", "FD (raw)", "precision",
              "recall", "coverage", "epochs"]
    rows, classifiers = [], set()
    for name in names:
        payload = read_results(name)
        classifiers.add(f"{payload['classifier']['what']}, test accuracy "
                        f"{payload['classifier']['test_accuracy']:.3f}")
        for key, row in payload["rows"].items():
            code = row.get("code_accuracy_q")
            verdict = "—" if code is None else (
                "met" if min(code["mean"], row["code_accuracy_samples"]["mean"])
                >= INFOGAN_TARGET else "**missed**")
            rows.append([key, str(len(row["fd"]["values"])), _cell(row, "label_accuracy"),
                         _cell(row, "code_accuracy_q"), _cell(row, "code_accuracy_samples"),
                         verdict, *(_cell(row, k) for k in ("fd", "precision", "recall",
                                                            "coverage")),
                         ", ".join(f"{v:.0f}" for v in row["epochs"]["values"])])
    return markdown_table(header, rows) + "\n\nscoring classifier: " + "; ".join(classifiers)


def modes_results_table(names: list[str]) -> str:
    """Modes captured and high-quality share over seeds, beside the published numbers."""
    header = ["mixture", "loss", "seeds", "modes captured", "high quality", "mode KL",
              "s per run"]
    rows, recipes, toys = [], set(), []
    for name in names:
        payload = read_results(name)
        recipes.add(", ".join(f"{k} {v}" for k, v in payload["recipe"].items()))
        for key, row in payload["rows"].items():
            toy, loss = key.split("/")
            toys += [toy] if toy not in toys else []
            share = [100 * v for v in row["high_quality"]["values"]]
            rows.append([toy, loss, str(len(share)), _cell(row, "modes", "{:.1f}"),
                         mean_sd(share, "{:.1f}") + "%", _cell(row, "mode_kl", "{:.4f}"),
                         f"{statistics.fmean(row['seconds']['values']):.0f}"])
    for toy in toys:
        rows += [[toy, f"{who}, published", "—", f"{m}", f"{100 * hq:.1f}%", "—", "—"]
                 for who, m, hq in MODE_REFERENCES[toy]]
    return markdown_table(header, rows) + "\n\nrecipe: " + "; ".join(sorted(recipes))


def digits_results_table(names: list[str]) -> str:
    """DCGAN per loss on the continuous digits (raw pixels), beside the real floor."""
    keys = ("fd", "fd_350", "kid", "mmd", "precision", "recall", "density", "coverage")
    header = ["DCGAN loss", "seeds", "FD", "FD (350 draws)", "KID", "MMD", "precision",
              "recall", "density", "coverage"]
    rows, floor = [], None
    for name in names:
        payload = read_results(name)
        floor = payload["floor"]
        for loss, row in payload["rows"].items():
            rows.append([loss, str(len(row["fd"]["values"])),
                         *(_cell(row, k, "{:.4f}" if k in ("kid", "mmd") else "{:.3f}")
                           for k in keys)])
    # the floor compares 350 rows with the test split: its FD sits in the 350-draw column
    floor_cells = {**floor, "fd_350": floor["fd"], "fd": None}
    rows.insert(0, ["real (val 350 vs test 447)", "—",
                    *("—" if floor_cells[k] is None else
                      f"{floor_cells[k]:.4f}" if k in ("kid", "mmd") else
                      f"{floor_cells[k]:.3f}" for k in keys)])
    return markdown_table(header, rows)


def simulator_results_table(names: list[str]) -> str:
    """Fitted g-and-k parameters and their Euclidean error, mean ± sd over seeds."""
    header = ["fit", "seeds", "A", "B", "g", "k", "parameter error"]
    rows = []
    for name in names:
        payload = read_results(name)
        rows.append(["true", "—", *(f"{v:.2f}" for v in payload["true"].values()), "—"])
        for fit, label in (("adversarial", "adversarial (critic, no density)"),
                           ("mle", "maximum likelihood (numerical density)")):
            rs = [r[fit] for r in payload["rows"]]
            rows.append([label, ", ".join(str(r["seed"]) for r in payload["rows"]),
                         *(mean_sd([r["parameters"][k] for r in rs], "{:.3f}")
                           for k in payload["true"]),
                         mean_sd([r["error"] for r in rs], "{:.3f}")])
    return markdown_table(header, rows)


def overhead_results_table(names: list[str]) -> str:
    """The engine's GAN step against the hand-written one: median ratio and target."""
    rows = []
    for name in names:
        p = read_results(name)
        rows.append([str(p["batch"]), str(p["steps"]), str(len(p["ratios"])),
                     f"{p['ratio_median']:.3f}", f"≤ {p['target']:.2f}",
                     "met" if p["ratio_median"] <= p["target"] else "**missed**",
                     p["commit"]])
    return markdown_table(["batch", "steps per repeat", "repeats", "median ratio", "target",
                           "target met", "commit"], rows)


RESULT_TABLES = {"labelled": labelled_results_table, "modes": modes_results_table,
                 "digits": digits_results_table, "simulator": simulator_results_table,
                 "overhead": overhead_results_table}


def print_tables(args: argparse.Namespace) -> None:
    for i, which in enumerate(args.tables):
        names = args.results or TABLE_RESULTS[which]
        print(("\n" if i else "") + f"{which} ({', '.join(names)}):")
        print(RESULT_TABLES[which](names))


# --------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["modes", "digits", "labelled", "simulator",
                                         "overhead", "table"])
    parser.add_argument("--models", nargs="+", default=["acgan", "infogan"],
                        choices=list(LABELLED), help="models (labelled)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--losses", nargs="+", default=LOSSES, choices=LOSSES)
    parser.add_argument("--toys", nargs="+", default=["ring", "grid"], choices=["ring", "grid"])
    parser.add_argument("--steps", type=int, default=10_000, help="training steps (modes)")
    parser.add_argument("--timed-steps", type=int, default=50, help="steps a repeat (overhead)")
    parser.add_argument("--epochs", type=int, help="epochs (labelled; default the model's)")
    parser.add_argument("--r1", type=float, default=1.0, help="R1 weight (modes)")
    parser.add_argument("--pack", type=int, default=1, help="PacGAN packing (modes)")
    parser.add_argument("--latent-dim", type=int, help="noise size (modes)")
    parser.add_argument("--hidden", type=int, nargs="+", help="generator widths (modes)")
    parser.add_argument("--critic", type=int, nargs="+", help="critic widths (modes)")
    parser.add_argument("--toy-batch", type=int, help="batch size (modes)")
    parser.add_argument("--lr", type=float, help="Adam rate of both players (modes)")
    parser.add_argument("--batch", type=int, default=256, help="batch (overhead)")
    parser.add_argument("--repeats", type=int, default=7, help="repeats (overhead)")
    parser.add_argument("--name", help="results file name (default adversarial-WHAT)")
    parser.add_argument("--tables", nargs="+", default=list(RESULT_TABLES),
                        choices=list(RESULT_TABLES), help="table: which tables")
    parser.add_argument("--results", nargs="+", default=None,
                        help="table: result files (names in results/ or paths) instead of "
                             "TABLE_RESULTS")
    args = parser.parse_args()
    if args.what == "table":
        print_tables(args)
        return
    torch.set_num_threads(1)
    table = {"modes": modes_table, "digits": digits_table, "labelled": labelled_table,
             "simulator": simulator_table, "overhead": overhead_table}[args.what](args)
    path = write_results(args.name or f"adversarial-{args.what}", table, args.seeds)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
