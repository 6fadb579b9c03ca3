"""Translation between digit domains (issue 13): CycleGAN per domain pair, StarGAN across all.

Domains are known transformations of the 8x8 digits (``ppgen.data.domains``); models train
**unpaired** (each domain's training images are disjoint digits of the training split) and are
scored **paired** on the 447 test digits, every test digit in every domain, so each translation
has a ground truth. Per direction ``s → t`` (the test images of ``s`` translated into ``t``):

* **error** — mean absolute error in levels (0..16) between the translation (quantised,
  ``floor(17 y)``) and the true image in ``t``; baselines: the **identity** map (the source image
  itself) and the pixel-wise best **constant** (the per-pixel median of ``t``'s training images,
  the constant with the least absolute error);
* **content kept** — the share of translations the shipped digits classifier
  (``ppgen.metrics``) labels as the source digit. The classifier reads original digits, so a
  translation into an invertible domain (inverted, rotated, mirrored) is mapped back by the
  known inverse first; bold and thin are read as they are. ``truth`` is the same share on the
  true images of ``t`` (the ceiling of this measure);
* **target domain** — the share a domain classifier assigns to ``t`` among the model's domains
  (a CycleGAN's two, StarGAN's six): a small convnet trained here deterministically (seed 0) on
  the 1,000 training digits in all six domains; its six-way test accuracy on the true images
  is recorded, and ``truth`` is the share on the true images of ``t`` (mirror-symmetric digits
  cap it for original and mirrored).

Targets (issue 13): content kept ≥ 90%, target domain ≥ 95%, error below half the identity
baseline's; StarGAN within 10% of the pairwise CycleGANs (its error on their directions).

    python benchmarks/translation.py run --task inverted --seed 0
    python benchmarks/translation.py run --task stargan --seed 0
    python benchmarks/translation.py table

Tasks: ``inverted``, ``bold``, ``rotated`` (a CycleGAN between ``original`` and that domain;
``rotated`` uses the generator's dense bottleneck, ``network={"dense": true}``, since
convolutions alone cannot rotate) and ``stargan`` (one StarGAN over all six domains, with the
dense bottleneck too). Each run writes ``results/translation-TASK-seedS.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table, mean_sd, read_results, write_results  # noqa: E402

import ppgen  # noqa: E402
from ppgen.data import load_digits  # noqa: E402
from ppgen.data.domains import DIGIT_DOMAINS, load_digit_domains, transform_digits  # noqa: E402
from ppgen.data.transforms import quantize  # noqa: E402
from ppgen.metrics import load_digits_classifier  # noqa: E402
from ppgen.models import CycleGAN, StarGAN  # noqa: E402

ALL = tuple(DIGIT_DOMAINS)
#: the training recipe of each task: domains, model, constructor options, engine options
TASKS = {
    "inverted": (("original", "inverted"), CycleGAN, {}, {"epochs": 40, "patience": 8}),
    "bold": (("original", "bold"), CycleGAN, {}, {"epochs": 40, "patience": 8}),
    "rotated": (("original", "rotated"), CycleGAN, {"network": {"dense": True}},
                {"epochs": 20, "patience": 6}),
    "stargan": (ALL, StarGAN, {"network": {"dense": True}}, {"epochs": 30, "patience": 8}),
}
#: the inverse of each invertible domain (levels [N, 8, 8]), for the content classifier
INVERSE = {"original": lambda x: x, "inverted": lambda x: 16 - x,
           "rotated": lambda x: torch.rot90(x, -1, (-2, -1)),
           "mirrored": lambda x: torch.flip(x, (-1,))}
PAIRWISE = ("inverted", "bold", "rotated")


# --------------------------------------------------------------------------- the domain classifier
def train_domain_classifier(seed: int = 0, epochs: int = 15) -> tuple[nn.Module, float]:
    """A convnet of the six domains on levels / 16, trained deterministically on the training
    digits in every domain; returns it and its test accuracy on the true images."""
    digits = load_digits("categorical")

    def in_all(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.cat([transform_digits(x, d) for d in ALL]).float() / 16
        return images, torch.arange(len(ALL)).repeat_interleave(len(x))

    x, y = in_all(digits.train)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                            nn.Linear(256, len(ALL)))
        optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
        generator = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            for rows in torch.randperm(len(x), generator=generator).split(100):
                loss = F.cross_entropy(net(x[rows]), y[rows])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    net.eval()
    x_test, y_test = in_all(digits.test)
    with torch.no_grad():
        accuracy = float((net(x_test).argmax(-1) == y_test).float().mean())
    return net, accuracy


# --------------------------------------------------------------------------- scoring
@torch.no_grad()
def score_direction(model, data, levels, source: str, target: str, classifiers) -> dict:
    """The numbers of one direction ``source → target`` on the paired test split."""
    digit_net, domain_net = classifiers
    x = data.block("test", source)
    truth = levels.block("test", target)
    fake = quantize(model.translate(x, target), 17).cpu()
    constant = levels.block("train", target).median(dim=0).values
    classes = data.classes["test"][data.labels["test"] == data.domains.index(source)]

    def content(images: torch.Tensor) -> float:
        back = INVERSE.get(target, lambda t: t)(images.reshape(-1, 8, 8)).reshape(-1, 64)
        return float((digit_net(back).argmax(-1) == classes).float().mean())

    def domain_share(images: torch.Tensor) -> float:
        among = [ALL.index(d) for d in data.domains]  # the model's domains
        predicted = domain_net(images.float() / 16)[:, among].argmax(-1)
        return float((predicted == data.domains.index(target)).float().mean())

    return {"source": source, "target": target,
            "error": float((fake - truth).abs().float().mean()),
            "identity_error": float((levels.block("test", source) - truth).abs().float().mean()),
            "constant_error": float((constant - truth).abs().float().mean()),
            "content": content(fake), "content_truth": content(truth),
            "domain": domain_share(fake), "domain_truth": domain_share(truth)}


def run(args: argparse.Namespace) -> dict:
    domains, cls, options, engine = TASKS[args.task]
    data = load_digit_domains(domains, seed=args.seed)
    levels = load_digit_domains(domains, "categorical", seed=args.seed)
    torch.manual_seed(args.seed)
    model = cls.for_data(data.info, domains=data.domains, paired=True, **options)
    engine = {**engine, **({"epochs": args.epochs} if args.epochs else {})}
    start = time.perf_counter()
    history = ppgen.fit(model, data.train, data.val, labels=data.labels["train"],
                        val_labels=data.labels["val"], seed=args.seed, progress=False, **engine)
    seconds = time.perf_counter() - start
    domain_net, domain_accuracy = train_domain_classifier()
    classifiers = (load_digits_classifier().eval(), domain_net)
    model.eval()
    directions = [score_direction(model, data, levels, s, t, classifiers)
                  for s in domains for t in domains if s != t]
    return {"task": args.task, "model": model.name, "domains": list(domains),
            "config": model.get_config(), "engine": engine, "epochs_run": len(history),
            "best_epoch": history.best_epoch, "best_val": history.best_val,
            "seconds": seconds, "threads": torch.get_num_threads(),
            "domain_classifier_test_accuracy": domain_accuracy, "directions": directions}


# --------------------------------------------------------------------------- the table
def _runs(task: str) -> list[dict]:
    files = sorted((Path(__file__).resolve().parent / "results").glob(
        f"translation-{task}-seed*.json"))
    return [read_results(str(f)) for f in files]


def _pair_rows(runs: list[dict], pairs: list[tuple[str, str]]) -> list[list[float]]:
    """Per run, the direction averages of each key over ``pairs`` (``None``: all)."""
    keys = ("error", "identity_error", "constant_error", "content", "content_truth", "domain",
            "domain_truth")
    out = []
    for r in runs:
        chosen = [d for d in r["directions"] if (d["source"], d["target"]) in pairs] if pairs \
            else r["directions"]
        out.append([statistics.mean(d[k] for d in chosen) for k in keys])
    return out


def _cells(rows: list[list[float]]) -> list[str]:
    columns = list(zip(*rows))
    cells = [mean_sd(list(columns[i])) for i in range(3)]
    cells += [mean_sd([100 * v for v in columns[i]], "{:.1f}") for i in range(3, 7)]
    return cells


def _verdict(rows: list[list[float]]) -> str:
    means = [statistics.mean(c) for c in zip(*rows)]
    error, identity, _, content, _, domain, _ = means
    checks = [("error < identity/2", error < identity / 2), ("content ≥ 90%", content >= 0.9),
              ("domain ≥ 95%", domain >= 0.95)]
    verdict = "; ".join(f"{name}: {'met' if ok else '**missed**'}" for name, ok in checks)
    return verdict + (" (error above the best constant's)" if error > means[2] else "")


def table(args: argparse.Namespace) -> None:
    header = ["model", "directions", "seeds", "error (levels)", "identity", "best constant",
              "content kept %", "content of truth %", "target domain %", "domain of truth %",
              "targets"]
    lines, cyclegan_error = [], {}
    for task in PAIRWISE:
        runs = _runs(task)
        if not runs:
            continue
        pairs = [("original", task), (task, "original")]
        rows = _pair_rows(runs, pairs)
        cyclegan_error[task] = statistics.mean(r[0] for r in rows)
        lines.append(["CycleGAN", f"original ↔ {task}", str(len(runs)), *_cells(rows),
                      _verdict(rows)])
    star = _runs("stargan")
    if star:
        rows = _pair_rows(star, [])
        lines.append(["StarGAN", "all 30 of 6 domains", str(len(star)), *_cells(rows),
                      _verdict(rows)])
        for task in PAIRWISE:
            pair_rows = _pair_rows(star, [("original", task), (task, "original")])
            mine = statistics.mean(r[0] for r in pair_rows)
            ref = cyclegan_error.get(task)
            versus = "" if ref is None else (
                f"error {mine / ref - 1:+.0%} vs CycleGAN: "
                f"{'met' if mine <= 1.1 * ref else '**missed**'} (≤ +10%)")
            lines.append(["StarGAN", f"original ↔ {task}", str(len(star)), *_cells(pair_rows),
                          versus])
    print(markdown_table(header, lines))
    every = [r for task in (*PAIRWISE, "stargan") for r in _runs(task)]
    if every:
        accuracy = every[0]["domain_classifier_test_accuracy"]
        minutes = [r["seconds"] / 60 for r in every]
        print(f"\nDomain classifier test accuracy on the true images: {100 * accuracy:.1f}%. "
              f"Training time per run: {min(minutes):.1f}–{max(minutes):.1f} min on "
              f"{every[0]['machine']} ({every[0]['threads']} thread), commit "
              f"{every[0]['commit']}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["run", "table"])
    parser.add_argument("--task", choices=list(TASKS), default="inverted")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, help="maximum epochs (default: the task's)")
    args = parser.parse_args()
    if args.what == "table":
        table(args)
        return
    torch.set_num_threads(1)
    path = write_results(f"translation-{args.task}-seed{args.seed}", run(args), args.seed)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
