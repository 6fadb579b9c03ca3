"""Energy-based models (issue 15): AIS likelihoods with their reverse-AIS bracket.

(a) toys: an ``EBM`` per toy (eight Gaussians, checkerboard, rings; 10,000 training points,
the zoo's recipe ``EBM.fit_defaults`` with :data:`TOY_FIT` on top), then the 2,000 test points
scored by bidirectional AIS (:func:`ppgen.evaluate.nll_report`): the NLL with its interval in
nats per point, paired with the true density's NLL of the same points
(``ppgen.data.toy_log_density``, as ``benchmarks/diffusion_toys.py`` does) and beside the floor
of BENCHMARKS.md. Targets: interval width ≤ 0.02 nats, NLL within 0.10 nats of the floor.

(b) digits: an ``EBM`` on the dequantised digits (uniform dequantisation, y = (x + u) / 17) and
its discrete bound ``E_u[-log p(y)] + 64 ln 17`` in nats per image, with the AIS interval
(the dequantisation average is over one draw of u per test image). Targets: width ≤ 2 nats,
below the Markov chain's 101.8, ≤ 95.

(c) anomaly: protocols A and B of BENCHMARKS.md with ``Detector("ebm")`` (scores ``-E(x) -
log Ẑ``: the ranking of ``-E``; thresholds from held-out rows with ``fpr=``), on the splits of
``benchmarks/anomaly.py`` (imported, not copied) beside the same run's baselines.

(d) decoders: AIS estimates of ``log p(x)`` of decoder-based models on the digits (Wu et al.
2017, :func:`ppgen.energy.decoder_log_likelihood`): a VAE's decoder without its encoder, beside
its IWAE estimate, and a DCGAN's generator with Gaussian observation noise.

Every run pins one thread (``torch.set_num_threads(1)``: a shared machine).

    python benchmarks/energy.py toys --seeds 0 1 2
    python benchmarks/energy.py digits --seeds 0 1 2
    python benchmarks/energy.py anomaly --seeds 0 1 2
    python benchmarks/energy.py decoders --seeds 0
    python benchmarks/energy.py table
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table, mean_sd, read_results, write_results  # noqa: E402
from diffusion_toys import TOY_FLOORS, paired  # noqa: E402

import ppgen  # noqa: E402
from ppgen.data import load_digits, load_toy, toy_log_density  # noqa: E402
from ppgen.energy import energies  # noqa: E402
from ppgen.evaluate import nll_report  # noqa: E402
from ppgen.models import EBM  # noqa: E402

#: (a) the training options over EBM.fit_defaults, and the AIS run of the test scores
TOY_MODEL: dict = {}
TOY_FIT: dict = {}
TOY_OBJECTIVE: dict = {}
TOY_AIS = {"num_distributions": 2000}
TOY_CHAINS = 1024
#: (a) targets: interval width and excess over the floor, nats per point
TOY_WIDTH, TOY_EXCESS = 0.02, 0.10


# --------------------------------------------------------------------------- (a) toys
def run_toy(toy: str, seed: int, epochs: int | None = None) -> dict:
    """Train an EBM on ``toy`` and score its test points by bidirectional AIS."""
    data = load_toy(toy, seed=seed)
    torch.manual_seed(seed)
    ebm = EBM.for_data(data.info, ais=TOY_AIS, **TOY_MODEL)
    start = time.perf_counter()
    history = ppgen.fit(ebm, data.train, data.val, seed=seed, progress=False,
                        objective_options=TOY_OBJECTIVE or None,
                        **{"epochs": epochs, **TOY_FIT})
    seconds = time.perf_counter() - start
    ebm.eval()
    torch.manual_seed(seed)
    start = time.perf_counter()
    report = nll_report(ebm, data.test, num_particles=TOY_CHAINS)
    ais_seconds = time.perf_counter() - start
    true = -toy_log_density(toy, data.test)
    model_nll = energies(ebm, data.test).double() + report["log_z_forward"]
    return {"toy": toy, "seed": seed, "floor": TOY_FLOORS[toy], "true": float(true.mean()),
            "paired": paired(model_nll, true.double()),
            **{k: report[k] for k in ("nll", "nll_lower", "nll_upper", "nll_width",
                                      "nll_forward", "nll_reverse", "num_distributions",
                                      "num_chains", "ais_ess", "ais_acceptance",
                                      "log_z_forward_se", "log_z_reverse_se")},
            "epochs": len(history), "best_epoch": history.best_epoch,
            "seconds": seconds, "ais_seconds": ais_seconds, "model": TOY_MODEL, "fit": TOY_FIT,
            "objective": TOY_OBJECTIVE, "ais": TOY_AIS}


def toys(args) -> None:
    runs = []
    for toy in args.toys or TOY_FLOORS:
        for seed in args.seeds:
            r = run_toy(toy, seed, args.epochs)
            runs.append(r)
            print(f"{toy:<16} seed {seed}: NLL {r['nll']:.3f} in [{r['nll_lower']:.3f}, "
                  f"{r['nll_upper']:.3f}] (width {r['nll_width']:.3f}); floor {r['floor']:.3f}, "
                  f"true NLL {r['true']:.3f}, excess {r['paired']['excess']:.3f} ± "
                  f"{r['paired']['excess_se']:.3f}; {r['epochs']} epochs {r['seconds']:.0f} s, "
                  f"AIS {r['ais_seconds']:.0f} s", flush=True)
            seeds = "".join(map(str, args.seeds))  # written after every run: a slow machine
            path = write_results(args.name or f"energy-toys-seeds{seeds}", {"runs": runs},
                                 args.seeds)
    print(f"written {path}")


def toys_table(names: list[str]) -> str:
    header = ["toy", "seeds", "floor", "AIS NLL", "interval (lower, upper)", "width",
              "excess over floor", "paired excess over true NLL", f"width ≤ {TOY_WIDTH}",
              f"excess ≤ {TOY_EXCESS:.2f}"]
    runs = _runs(names)
    rows = []
    for toy in dict.fromkeys(r["toy"] for r in runs):
        rs = sorted((r for r in runs if r["toy"] == toy), key=lambda r: r["seed"])
        floor = rs[0]["floor"]
        widths = [r["nll_width"] for r in rs]
        excess = [r["nll"] - floor for r in rs]
        rows.append([toy, ", ".join(str(r["seed"]) for r in rs), f"{floor:.3f}",
                     mean_sd([r["nll"] for r in rs], "{:.3f}"),
                     "; ".join(f"({r['nll_lower']:.3f}, {r['nll_upper']:.3f})" for r in rs),
                     mean_sd(widths, "{:.3f}"), mean_sd(excess, "{:.3f}"),
                     mean_sd([r["paired"]["excess"] for r in rs], "{:.3f}"),
                     _verdict(max(widths), TOY_WIDTH),
                     _verdict(statistics.mean(excess), TOY_EXCESS)])
    return markdown_table(header, rows)


# --------------------------------------------------------------------------- (b) digits
#: (b) the EBM on the dequantised digits: constructor, training and objective options, AIS
DIGITS_MODEL: dict = {"hidden_dims": [256, 256]}
DIGITS_FIT: dict = {"epochs": 40, "batch_size": 100}
DIGITS_OBJECTIVE: dict = {"steps": 20, "validation_distributions": 50,
                          "validation_chains": 32}
DIGITS_AIS = {"num_distributions": 4000}
DIGITS_CHAINS = 256
#: (b) targets (nats per image): interval width, the Markov chain's NLL, the issue's target
DIGITS_WIDTH, MARKOV_CHAIN, DIGITS_TARGET = 2.0, 101.8, 95.0


def run_digits(seed: int, epochs: int | None = None) -> dict:
    """Train an EBM on the dequantised digits; the test set's discrete bound by AIS."""
    data = load_digits("continuous", seed=seed)
    torch.manual_seed(seed)
    ebm = EBM.for_data(data.info, ais=DIGITS_AIS, **DIGITS_MODEL)
    # the Gaussian base from every training image, not the engine's first batch (100 rows
    # in 64 dimensions: 147.5 nats/image on the test set against 131.6 from all 1,000)
    ebm.fit_base(data.train)
    ebm.initialize = lambda x, **kwargs: None
    start = time.perf_counter()
    history = ppgen.fit(ebm, data.train, data.val, seed=seed, progress=False,
                        objective_options=DIGITS_OBJECTIVE,
                        **{**DIGITS_FIT, **({"epochs": epochs} if epochs else {})})
    seconds = time.perf_counter() - start
    ebm.eval()
    torch.manual_seed(seed)
    start = time.perf_counter()
    report = nll_report(ebm, data.test, num_particles=DIGITS_CHAINS)
    shift = data.info.num_dims * math.log(data.info.num_levels)  # 64 ln 17
    out = {k: report[k] + shift for k in ("nll", "nll_lower", "nll_upper", "nll_forward",
                                           "nll_reverse")}
    base = float(-ebm.base().log_prob(data.test).double().mean()) + shift
    return {"seed": seed, **out, "nll_width": report["nll_width"], "base_nll": base,
            "continuous_nll": report["nll"], "dequantization": "uniform, one draw per image",
            **{k: report[k] for k in ("num_distributions", "num_chains", "ais_ess",
                                      "ais_acceptance")},
            "epochs": len(history), "best_epoch": history.best_epoch, "seconds": seconds,
            "ais_seconds": time.perf_counter() - start, "model": DIGITS_MODEL,
            "fit": DIGITS_FIT, "objective": DIGITS_OBJECTIVE, "ais": DIGITS_AIS}


def digits(args) -> None:
    runs = []
    for seed in args.seeds:
        r = run_digits(seed, args.epochs)
        runs.append(r)
        print(f"digits seed {seed}: discrete bound {r['nll']:.2f} in [{r['nll_lower']:.2f}, "
              f"{r['nll_upper']:.2f}] (width {r['nll_width']:.2f}); Gaussian base "
              f"{r['base_nll']:.2f}; {r['epochs']} epochs {r['seconds']:.0f} s, AIS "
              f"{r['ais_seconds']:.0f} s", flush=True)
    seeds = "".join(map(str, args.seeds))
    path = write_results(args.name or f"energy-digits-seeds{seeds}", {"runs": runs},
                         args.seeds)
    print(f"written {path}")


def digits_table(names: list[str]) -> str:
    runs = sorted(_runs(names), key=lambda r: r["seed"])
    header = ["model", "seeds", "discrete bound, AIS (nats/image)", "interval per seed",
              "width", "Gaussian base alone", f"width ≤ {DIGITS_WIDTH:.0f}",
              f"< {MARKOV_CHAIN} (Markov chain)", f"≤ {DIGITS_TARGET:.0f}"]
    nll = statistics.mean(r["nll"] for r in runs)
    widths = [r["nll_width"] for r in runs]
    return markdown_table(header, [[
        "EBM (MLP 256-256, PCD), uniform dequantisation", ", ".join(str(r["seed"]) for r in runs),
        mean_sd([r["nll"] for r in runs]),
        "; ".join(f"[{r['nll_lower']:.2f}, {r['nll_upper']:.2f}]" for r in runs),
        mean_sd(widths), mean_sd([r["base_nll"] for r in runs]),
        _verdict(max(widths), DIGITS_WIDTH), _verdict(nll, MARKOV_CHAIN - 1e-9),
        _verdict(nll, DIGITS_TARGET)]])


# --------------------------------------------------------------------------- (c) anomaly
#: (c) Detector("ebm") per protocol: thresholds from held-out rows (fpr on the validation
#: split), log Ẑ from a short AIS run (it shifts every score alike: the ranking is -E's)
_EBM_DETECTOR = {"model": "ebm", "validation_fraction": 0.2, "fpr": 0.05, "num_particles": 32,
                 "epochs": 40, "batch_size": 64,
                 "fit_options": {"objective_options": {"validation_distributions": 20,
                                                       "validation_chains": 16}}}
EBM_DETECTORS = {
    "A": {"ebm (energy, MLP 128-128)": {**_EBM_DETECTOR, "model_options": {
        "ais": {"num_distributions": 100}}}},
    "B": {"ebm (energy, MLP 128-128)": {**_EBM_DETECTOR, "model_options": {
        "ais": {"num_distributions": 100}}}},
}
#: (c) the baselines run beside it (benchmarks/anomaly.py BASELINES, same splits)
ANOMALY_BASELINES = ["kNN", "PCA reconstruction", "LOF", "OCSVM", "IsolationForest", "KDE",
                     "GMM"]
#: (c) ppgen's recorded rows (benchmarks/anomaly.py, 5 seeds) shown beside the EBM
RECORDED_ANOMALY = {"A": [("anomaly-ab-rule", "ppca (latent, L=16)"),
                          ("anomaly-a-deep", "made (autoregressive)"),
                          ("anomaly-a-deep", "vae (latent)"),
                          ("anomaly-a-deep", "maf (flow, dequantised)")],
                    "B": [("anomaly-ab-rule", "ppca (latent)"),
                          ("anomaly-ab-rule", "maf (flow)"),
                          ("anomaly-b", "rnade (autoregressive)"),
                          ("anomaly-b", "vae (latent)")]}


def anomaly(args) -> None:
    import anomaly as protocols  # benchmarks/anomaly.py: its splits, baselines and loop

    payload = {}
    for protocol in args.protocols:
        protocols.PPGEN[protocol] = EBM_DETECTORS[protocol]
        runs = protocols.run(protocol, args.seeds, "cpu",
                             only=[*EBM_DETECTORS[protocol], *ANOMALY_BASELINES])
        payload[protocol] = {"runs": runs, "detectors": EBM_DETECTORS[protocol]}
    seeds = "".join(map(str, args.seeds))
    path = write_results(args.name or f"energy-anomaly-seeds{seeds}", payload, args.seeds)
    print(f"written {path}")
    for protocol in payload:
        print(anomaly_table(payload, protocol), flush=True)


def anomaly_table(payload: dict, protocol: str) -> str:
    """Mean AUROC over seeds (sd over seeds) of the EBM, the same run's baselines, and
    ppgen's recorded rows; ``payload[protocol]["runs"]`` may merge several runs (seeds)."""
    rows = []

    def add(name: str, runs: list[dict], source: str) -> None:
        by_seed: dict = {}
        for r in runs:
            by_seed.setdefault(r["seed"], []).append(r["auroc"])
        means = [statistics.mean(v) for v in by_seed.values()]
        rows.append((statistics.mean(means), [name, f"{statistics.mean(means):.4f}",
                                              f"{statistics.stdev(means):.4f}"
                                              if len(means) > 1 else "—",
                                              str(len(means)), source]))

    for name, runs in payload[protocol]["runs"].items():
        add(name, runs, "this run")
    for file, name in RECORDED_ANOMALY[protocol]:
        add(name, read_results(file)[protocol]["runs"][name], f"{file}.json")
    rows.sort(key=lambda t: -t[0])
    return markdown_table(["method", "mean AUROC", "sd over seeds", "seeds", "source"],
                          [row for _, row in rows])


# --------------------------------------------------------------------------- (d) decoders
#: (d) the models: a VAE (its benchmark recipe) and a DCGAN (the demo's short recipe)
DECODER_MODELS = {"vae": {"model": {}, "fit": {"epochs": 60}, "representation": "categorical"},
                  "dcgan": {"model": {"r1": 1.0}, "fit": {"epochs": 10, "batch_size": 16},
                            "representation": "continuous"}}
#: (d) AIS: chains per image, path; the GAN's noise scale is chosen on validation images
DECODER_AIS = {"num_distributions": 300, "num_leapfrog": 3, "pilot_distributions": 50,
               "initial_step_size": 0.1}
DECODER_CHAINS, DECODER_IMAGES, VALIDATION_IMAGES = 16, 50, 20
NOISE_SCALES = (0.03, 0.05, 0.1, 0.2)


def _decoder_ais(model, x, seed: int, noise_scale=None, settings=None) -> dict:
    from ppgen.energy import AISSettings, decoder_log_likelihood

    settings = settings or AISSettings(**DECODER_AIS)
    start = time.perf_counter()
    result = decoder_log_likelihood(model, x, noise_scale=noise_scale,
                                    num_chains=DECODER_CHAINS, settings=settings,
                                    generator=torch.Generator().manual_seed(seed))
    return {**result.summary(), "seconds": time.perf_counter() - start}


def run_decoder(name: str, seed: int) -> dict:
    from ppgen.energy import AISSettings
    from ppgen.protocol import model_class

    recipe = DECODER_MODELS[name]
    data = load_digits(recipe["representation"], seed=seed)
    torch.manual_seed(seed)
    model = model_class(name).for_data(data.info, **recipe["model"])
    start = time.perf_counter()
    history = ppgen.fit(model, data.train, data.val, seed=seed, progress=False,
                        **recipe["fit"])
    out = {"model": name, "seed": seed, "epochs": len(history),
           "seconds": time.perf_counter() - start, "images": DECODER_IMAGES,
           "ais": DECODER_AIS, "chains": DECODER_CHAINS}
    model.eval()
    x = data.test[:DECODER_IMAGES]
    if name == "vae":
        torch.manual_seed(seed)
        out["iwae"] = -float(ppgen.log_likelihood(model, x, num_particles=1000).mean())
        torch.manual_seed(seed)
        out["elbo"] = -float(ppgen.elbo(model, x, num_particles=1).mean())
        out["decoder_ais"] = _decoder_ais(model, x, seed)
        return out
    # the GAN: the noise scale with the best validation AIS (a short path), then the test
    shift = data.info.num_dims * math.log(data.info.num_levels)  # discrete bound: + 64 ln 17
    short = AISSettings(**{**DECODER_AIS, "num_distributions": 50})
    val = {s: _decoder_ais(model, data.val[:VALIDATION_IMAGES], seed, s, short)["nll"] + shift
           for s in NOISE_SCALES}
    out["validation_nll_by_noise_scale"] = val
    out["noise_scale"] = min(val, key=val.get)
    ais = _decoder_ais(model, x, seed, out["noise_scale"])
    for key in ("nll", "nll_lower", "nll_upper", "nll_forward", "nll_reverse"):
        ais[key] += shift
    out["decoder_ais"] = {**ais, "dequantization": "uniform (the digits' continuous "
                                                   "representation), + 64 ln 17"}
    return out


def decoders(args) -> None:
    runs = []
    for name in args.decoders:
        for seed in args.seeds:
            r = run_decoder(name, seed)
            runs.append(r)
            a = r["decoder_ais"]
            print(f"{name} seed {seed}: decoder AIS NLL {a['nll']:.2f} in [{a['nll_lower']:.2f}"
                  f", {a['nll_upper']:.2f}] (width {a['nll_width']:.2f}, {a['seconds']:.0f} s)"
                  + (f"; IWAE-1000 {r['iwae']:.2f}, -ELBO {r['elbo']:.2f}" if "iwae" in r
                     else f"; noise scale {r['noise_scale']}"), flush=True)
    seeds = "".join(map(str, args.seeds))
    path = write_results(args.name or f"energy-decoders-seeds{seeds}", {"runs": runs},
                         args.seeds)
    print(f"written {path}")


def decoders_table(names: list[str]) -> str:
    header = ["model", "seeds", "test images", "AIS NLL of the decoder (nats/image)",
              "interval", "width", "other numbers, same images"]
    rows = []
    runs = _runs(names)
    for name in dict.fromkeys(r["model"] for r in runs):
        rs = sorted((r for r in runs if r["model"] == name), key=lambda r: r["seed"])
        a = [r["decoder_ais"] for r in rs]
        if name == "vae":
            other = (f"IWAE-1000 {mean_sd([r['iwae'] for r in rs])}, −ELBO "
                     f"{mean_sd([r['elbo'] for r in rs])}")
            label = "VAE decoder (encoder unused), categorical levels"
        else:
            other = (f"noise σ chosen on {VALIDATION_IMAGES} val images: "
                     + ", ".join(str(r["noise_scale"]) for r in rs))
            label = "DCGAN generator + Gaussian noise N(G(z), σ² I), discrete bound"
        rows.append([label, ", ".join(str(r["seed"]) for r in rs), str(rs[0]["images"]),
                     mean_sd([x["nll"] for x in a]),
                     "; ".join(f"[{x['nll_lower']:.2f}, {x['nll_upper']:.2f}]" for x in a),
                     mean_sd([x["nll_width"] for x in a]), other])
    return markdown_table(header, rows)


# --------------------------------------------------------------------------- tables
def _runs(names: list[str]) -> list[dict]:
    return [run for name in names for run in read_results(name)["runs"]]


def _verdict(value: float, target: float) -> str:
    return "met" if value <= target else "**missed**"


TABLE_RESULTS = {"toys": ["energy-toys-seed0",
                          *(f"energy-toys-seed{s}-{toy}" for s in (1, 2) for toy in TOY_FLOORS)],
                 "digits": ["energy-digits-seed0", "energy-digits-seed1", "energy-digits-seed2"],
                 "anomaly": ["energy-anomaly-b", "energy-anomaly-a-seed0",
                             "energy-anomaly-a-seed1", "energy-anomaly-a-seed2"],
                 "decoders": ["energy-decoders-vae-seed0", "energy-decoders-dcgan-seed0"]}
RESULT_TABLES = {"toys": toys_table, "digits": digits_table, "decoders": decoders_table,
                 "anomaly": lambda names: _anomaly_tables(names)}


def _anomaly_tables(names: list[str]) -> str:
    """Protocols A and B, each merging the runs of every file that holds it."""
    merged: dict = {}
    for name in names:
        for protocol, part in read_results(name).items():
            if protocol in ("A", "B"):
                runs = merged.setdefault(protocol, {"runs": {}})["runs"]
                for method, rs in part["runs"].items():
                    runs.setdefault(method, []).extend(rs)
    return "\n\n".join(f"protocol {p}:\n" + anomaly_table(merged, p) for p in sorted(merged))


def tables(args) -> None:
    for i, which in enumerate(args.tables):
        names = args.results or TABLE_RESULTS[which]
        names = [n for n in names if (Path(__file__).parent / "results" / f"{n}.json").exists()]
        if not names:
            continue
        print(("\n" if i else "") + f"{which} ({', '.join(names)}):")
        print(RESULT_TABLES[which](names))


def _override(settings: list[str]) -> None:
    """Apply ``WHAT.KEY=JSON`` overrides to the module's recipe dicts (tuning runs)."""
    for item in settings:
        name, _, value = item.partition("=")
        what, _, key = name.partition(".")
        if key:
            globals()[what.upper()][key] = json.loads(value)
        else:
            globals()[what.upper()] = json.loads(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["toys", "digits", "anomaly", "decoders", "table"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe")
    parser.add_argument("--toys", nargs="+", default=None, help="toys: a subset")
    parser.add_argument("--name", default=None, help="results file name")
    parser.add_argument("--protocols", nargs="+", default=["A", "B"], choices=["A", "B"])
    parser.add_argument("--decoders", nargs="+", default=list(DECODER_MODELS),
                        choices=list(DECODER_MODELS))
    parser.add_argument("--tables", nargs="+", default=list(RESULT_TABLES),
                        choices=list(RESULT_TABLES), help="table: which tables")
    parser.add_argument("--results", nargs="+", default=None,
                        help="table: result files instead of TABLE_RESULTS")
    parser.add_argument("--set", nargs="+", default=[], metavar="WHAT.KEY=JSON",
                        help="tuning: override a recipe entry or constant, e.g. toy_fit.epochs=60 "
                             "toy_model.hidden_dims=[256,256] toy_objective.steps=20")
    args = parser.parse_args()
    _override(args.set)
    torch.set_num_threads(1)  # a shared machine: one thread
    {"toys": toys, "digits": digits, "anomaly": anomaly, "decoders": decoders,
     "table": tables}[args.what](args)


if __name__ == "__main__":
    main()
