"""ALI/BiGAN and adversarial variational Bayes benchmarks (issue 14 part 2).

(a) digits — ``BiGAN.for_data`` (DCGAN-sized convolutional generator, encoder and joint critic,
    deterministic encoder unless ``--encoder stochastic``) trained by ALI with its recipe on the
    continuous digits, ``--epochs`` capping the epochs (early stopping on the Fréchet distance in
    the digits classifier's space). Scored on the test split: the sample metrics of 447 draws
    (``sample_metrics(..., features="digits")``: FD, KID, precision/recall, density/coverage,
    classes hit) beside the DCGAN row of ``results/sample-quality-a.json`` (full recipe, seed 0)
    and the real floor; the encoder's representation by a linear probe (multinomial logistic
    regression on the training split's codes, accuracy on the test split) beside the same probe
    on raw pixels and on the codes of an untrained (randomly initialised) encoder of the same
    architecture, all in the same run; and the mean squared reconstruction error of
    ``G(E(x))`` on the test split.
(b) avb — the conjugate Normal–Normal model of ``tests/inference/test_avb.py`` (``z_n ~ N(0, 1)``,
    ``x_n | z_n ~ N(z_n, 0.5²)``, posterior ``N(0.8 x_n, 0.2)``): an implicit guide (noise
    through an MLP) trained by AVB, against an amortised Gaussian guide (MLP mean and scale)
    trained by the ELBO (``objective="elbo"``), both through ``ppgen.fit``; posterior mean and
    variance of 4,000 guide draws at x = -1.5, ..., 1.5 against the closed form (max absolute
    mean error, max relative variance error), and for a Gaussian guide flagged implicit the RMSE
    of AVB's critic against the true log q(z|x) - log p(z).
(c) table — the Markdown tables of benchmarks/RESULTS.md from the result files.

    python benchmarks/bigan.py digits --seeds 0 1 2 --epochs 80
    python benchmarks/bigan.py digits --seeds 0 --epochs 80 --encoder stochastic \\
        --name bigan-digits-stochastic       # and --seeds 1 2 --name bigan-digits-stochastic-s12
    python benchmarks/bigan.py digits --seeds 0 --epochs 200 --name bigan-digits-long  # -s1, -s2
    python benchmarks/bigan.py avb --seeds 0 1 2
    python benchmarks/bigan.py table
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import avb_conjugate as avb  # noqa: E402
from common import RESULTS, markdown_table, mean_sd, read_results, write_results  # noqa: E402

import ppgen  # noqa: E402
from ppgen.data import load_digits  # noqa: E402
from ppgen.inference import AVB, ProgramPair, avb_critic  # noqa: E402
from ppgen.inference.program_pair import guide_trace  # noqa: E402
from ppgen.metrics import sample_metrics  # noqa: E402
from ppgen.models import BiGAN  # noqa: E402

SAMPLE_KEYS = ("fd", "kid", "precision", "recall", "density", "coverage", "classes_hit")


# --------------------------------------------------------------------------- (a) digits
def linear_probe(train: torch.Tensor, y_train: torch.Tensor, test: torch.Tensor,
                 y_test: torch.Tensor) -> float:
    """Test accuracy of a logistic regression on standardised training features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    probe.fit(train.numpy(), y_train.numpy())
    return float(probe.score(test.numpy(), y_test.numpy()))


def run_digits(seed: int, epochs: int, encoder: str) -> dict:
    digits = load_digits("continuous", seed=seed)
    y = digits.labels
    pyro.set_rng_seed(seed)
    model = BiGAN.for_data(digits.info, encoder=encoder)
    untrained = linear_probe(model.encode(digits.train), y["train"],
                             model.encode(digits.test), y["test"])
    start = time.perf_counter()
    history = ppgen.fit(model, digits.train, digits.val, epochs=epochs, seed=seed,
                        progress=False)
    seconds = time.perf_counter() - start
    model.eval()
    pyro.set_rng_seed(seed + 1000)
    scores = sample_metrics(digits.test, model.sample(len(digits.test)), features="digits")
    probe = linear_probe(model.encode(digits.train), y["train"], model.encode(digits.test),
                         y["test"])
    mse = float((model.reconstruct(digits.test) - digits.test).square().mean())
    return {**{k: float(scores[k]) for k in SAMPLE_KEYS}, "probe": probe,
            "probe_untrained": untrained, "reconstruction_mse": mse, "epochs": len(history),
            "best_epoch": history.best_epoch, "seconds": seconds}


def digits_run(args: argparse.Namespace) -> None:
    digits = load_digits("continuous", seed=0)
    floor = sample_metrics(digits.test, digits.val, features="digits")
    pixels = linear_probe(digits.train, digits.labels["train"], digits.test,
                          digits.labels["test"])
    print(f"real floor FD {floor['fd']:.3f}; raw-pixel probe {pixels:.3f}", flush=True)
    runs = []
    for seed in args.seeds:
        runs.append({"seed": seed, **run_digits(seed, args.epochs, args.encoder)})
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in runs[-1].items()},
              flush=True)
        write_results(args.name, {"encoder": args.encoder, "epochs_cap": args.epochs,
                                  "floor": {k: float(floor[k]) for k in SAMPLE_KEYS},
                                  "probe_pixels": pixels, "runs": runs}, args.seeds)
    print(digits_table([read_results(args.name)]))


def digits_table(results: list[dict]) -> str:
    """Sample metrics beside DCGAN's and the floor, one BiGAN row per encoder and epoch cap
    (the runs of every file with those); the linear probes."""
    by_recipe: dict[tuple[str, int], list[dict]] = {}
    for result in results:
        key = (result["encoder"], result["epochs_cap"])
        by_recipe.setdefault(key, []).extend(result["runs"])
    first, keys = results[0], SAMPLE_KEYS[:-1]
    fmt = {"fd": "{:.3f}", "kid": "{:.4f}"}
    rows = [["real (val 350 vs test 447)", *[fmt.get(k, "{:.3f}").format(first["floor"][k])
                                             for k in keys], "10", "—", "—"]]
    dcgan = _dcgan_reference()
    if dcgan:
        rows.append(["DCGAN (sample-quality-a, seed 0, full recipe)",
                     *[fmt.get(k, "{:.3f}").format(dcgan[k]) for k in keys],
                     str(dcgan["classes_hit"]), str(dcgan["epochs"]), "—"])
    probes = [["raw pixels (64)", f"{first['probe_pixels']:.3f}"]]
    for (encoder, cap), runs in by_recipe.items():
        seeds = f"{len(runs)} seed" + ("s" if len(runs) > 1 else "")
        name = f"BiGAN, {encoder} encoder, cap {cap} ({seeds})"
        rows.append([name, *[mean_sd([r[k] for r in runs], fmt.get(k, "{:.3f}")) for k in keys],
                     mean_sd([r["classes_hit"] for r in runs], "{:.1f}"),
                     mean_sd([r["epochs"] for r in runs], "{:.0f}"),
                     mean_sd([r["seconds"] / 60 for r in runs], "{:.1f}")])
        probes += [[f"{name}: untrained encoder (16)",
                    mean_sd([r["probe_untrained"] for r in runs], "{:.3f}")],
                   [f"{name}: trained encoder (16)", mean_sd([r["probe"] for r in runs],
                                                             "{:.3f}")],
                   [f"{name}: reconstruction MSE of G(E(x))",
                    mean_sd([r["reconstruction_mse"] for r in runs], "{:.4f}")]]
    header = ["model", "FD", "KID", "precision", "recall", "density", "coverage",
              "classes hit", "epochs", "minutes"]
    probe_header = ["features (linear probe: logistic regression, train → test)",
                    "test accuracy"]
    return markdown_table(header, rows) + "\n\n" + markdown_table(probe_header, probes)


def _dcgan_reference() -> dict | None:
    try:
        rows = read_results("sample-quality-a")["rows"]
    except FileNotFoundError:
        return None
    return next((r for r in rows if r.get("row") == "dcgan"), None)


# --------------------------------------------------------------------------- (b) avb
GRID = torch.linspace(-1.5, 1.5, 7).unsqueeze(1)
#: the conjugate model, its guides and its data are examples/avb_conjugate.py's
conjugate_model, NoiseGuide, GaussianGuide = avb.model, avb.ImplicitGuide, avb.GaussianGuide
conjugate_data, SIGMA = avb.simulate, avb.SIGMA


def posterior_errors(pair: ProgramPair) -> dict:
    """Max |mean error| and max |relative variance error| over the grid, 4,000 draws each."""
    post_var, slope = SIGMA**2 / (1 + SIGMA**2), 1 / (1 + SIGMA**2)
    with torch.no_grad():
        z = guide_trace(pair, GRID.repeat(4000, 1), {}).nodes["z"]["value"].reshape(4000, -1)
    return {"mean_error": float((z.mean(0) - slope * GRID.squeeze(1)).abs().max()),
            "var_error": float((z.var(0) / post_var - 1).abs().max()),
            "mean_var_ratio": float(z.var(0).mean() / post_var)}


def run_avb(seed: int, method: str) -> dict:
    x = conjugate_data(1024, seed)
    torch.manual_seed(seed)
    fit = {"epochs": 60, "batch_size": 256, "lr_schedule": "cosine", "device": "cpu",
           "seed": seed, "progress": False}
    start = time.perf_counter()
    if method == "elbo":
        pair = ProgramPair(conjugate_model, GaussianGuide(), event_shape=(1,))
        ppgen.fit(pair, x, objective="elbo", lr=3e-3, **fit)
        out = posterior_errors(pair)
    elif method == "avb":
        pair = ProgramPair(conjugate_model, NoiseGuide(), event_shape=(1,))
        ppgen.fit(pair, x, objective=AVB(critic=avb_critic(1, 1), n_critic=2), lr=3e-3, **fit)
        out = posterior_errors(pair)
    else:  # a Gaussian guide flagged implicit: the critic's ratio is known in closed form
        pair = ProgramPair(conjugate_model, GaussianGuide(), event_shape=(1,),
                           implicit_guide=True)
        objective = AVB(critic=avb_critic(1, 1), n_critic=2)
        ppgen.fit(pair, x, objective=objective, lr=3e-3, **fit)
        out = {**posterior_errors(pair), **_critic_error(pair, objective)}
    return {**out, "seconds": time.perf_counter() - start}


def _critic_error(pair: ProgramPair, objective: AVB) -> dict:
    """The critic's RMSE against the true log q(z|x) - log p(z) on guide draws, and the true
    ratio's standard deviation (the scale to read it on)."""
    x = 1.1 * torch.randn(4000, 1, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        h = pair.guide_program.program.net(x)
        loc, scale = h[:, :1], nn.functional.softplus(h[:, 1:])
        z = loc + scale * torch.randn_like(loc)
        true = (dist.Normal(loc, scale).log_prob(z) - dist.Normal(0.0, 1.0).log_prob(z))
        error = (objective.log_ratio(x, z) - true.squeeze(1)).square().mean().sqrt()
    return {"critic_rmse": float(error), "ratio_sd": float(true.std())}


AVB_METHODS = {"avb": "AVB, implicit guide (noise through an MLP)",
               "avb-gaussian": "AVB, Gaussian guide flagged implicit",
               "elbo": "ELBO (ppgen.elbo), amortised Gaussian guide"}


def avb_run(args: argparse.Namespace) -> None:
    rows = {}
    for method in AVB_METHODS:
        rows[method] = [{"seed": s, **run_avb(s, method)} for s in args.seeds]
        print(method, rows[method], flush=True)
        write_results(args.name, {"model": "z ~ N(0,1), x | z ~ N(z, 0.5^2); posterior "
                                  "N(0.8 x, 0.2); grid x = -1.5..1.5 (7 points)",
                                  "rows": rows}, args.seeds)
    print(avb_table(read_results(args.name)))


def avb_table(result: dict) -> str:
    rows = []
    for method, runs in result["rows"].items():
        rmse = [r["critic_rmse"] for r in runs if "critic_rmse" in r]
        spread = [r["ratio_sd"] for r in runs if "ratio_sd" in r]
        rows.append([AVB_METHODS[method], mean_sd([r["mean_error"] for r in runs], "{:.3f}"),
                     mean_sd([r["var_error"] for r in runs], "{:.3f}"),
                     mean_sd([r["mean_var_ratio"] for r in runs], "{:.3f}"),
                     f"{mean_sd(rmse, '{:.3f}')} (sd {mean_sd(spread, '{:.2f}')})" if spread
                     else "—",
                     mean_sd([r["seconds"] for r in runs], "{:.0f}")])
    header = ["guide, objective", "max \\|mean error\\|", "max \\|var / 0.2 - 1\\|",
              "mean var / 0.2", "critic RMSE vs true log q/p (its sd)", "seconds"]
    return markdown_table(header, rows)


# --------------------------------------------------------------------------- the command
def table(args: argparse.Namespace) -> None:
    found = [name for name in args.digits if (RESULTS / f"{name}.json").exists()]
    print(digits_table([read_results(name) for name in found]))
    print()
    print(avb_table(read_results(args.avb)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("digits")
    d.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    d.add_argument("--epochs", type=int, default=60, help="cap on the epochs")
    d.add_argument("--encoder", choices=["deterministic", "stochastic"],
                   default="deterministic")
    d.add_argument("--name", default="bigan-digits")
    a = sub.add_parser("avb")
    a.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    a.add_argument("--name", default="avb-conjugate")
    t = sub.add_parser("table")
    t.add_argument("--digits", nargs="+", help="result files (those that exist are read)",
                   default=["bigan-digits", "bigan-digits-stochastic",
                            "bigan-digits-stochastic-s12", "bigan-digits-long",
                            "bigan-digits-long-s1", "bigan-digits-long-s2"])
    t.add_argument("--avb", default="avb-conjugate")
    args = parser.parse_args()
    torch.set_num_threads(1)
    {"digits": digits_run, "avb": avb_run, "table": table}[args.command](args)


if __name__ == "__main__":
    main()
