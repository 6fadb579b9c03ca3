"""What ``ppgen.analysis.posterior`` costs over calling Pyro's MCMC directly, one process.

Effective samples per second on the non-centered eight-schools model (the program of
``examples/eight_schools.py``): bulk ESS of every scalar parameter (``mu``, ``tau``, the eight
``eta``), minimum and mean, divided by the wall time of warm-up plus sampling, for

- ppgen: ``analysis.posterior(non_centered, y, sigma=sigma, method="nuts", ...)`` (its NUTS
  subclass records per-draw sampler statistics), timed on the sampling alone
  (``posterior.attrs["sampling_time"]``) and on the whole call (which also builds the
  log-likelihood, posterior-predictive and prior groups of the InferenceData);
- Pyro: ``pyro.infer.MCMC(NUTS(non_centered), ...)`` run directly, chain ``c`` under
  ``pyro.set_rng_seed(seed + c)``, the same seeds, chains, warm-up and draws.

Chains run in turn on both sides (``chain_method="sequential"``), so the two samplers see the
same random numbers and draw the *same* chains: the script checks that, so the ESS is equal
and the ratio is a pure timing ratio. Repeats alternate the two sides; the medians are
compared, in wall time and (robust on a shared machine) CPU time. The last line prints the
ratio of Pyro's ESS/s to ppgen's (sampling only); 1.0 means the wrapper costs nothing.

    python benchmarks/posterior.py [--samples 300 --warmup 300 --chains 2 --repeats 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
import warnings
from pathlib import Path

import arviz as az
import numpy as np
import pyro
import torch
from pyro.infer.mcmc import MCMC, NUTS

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_results  # noqa: E402

from ppgen import analysis  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "eight_schools.py"


def load_example():
    """``examples/eight_schools.py`` as a module (its programs and data; main() is not run)."""
    spec = importlib.util.spec_from_file_location("eight_schools", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_ppgen(ex, args) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Draws ``{site: [C, D, ...]}`` and seconds: sampling (wall), whole call (wall, CPU)."""
    wall, cpu = time.perf_counter(), time.process_time()
    idata = analysis.posterior(ex.non_centered, ex.y, sigma=ex.sigma, num_samples=args.samples,
                               num_warmup=args.warmup, num_chains=args.chains, seed=args.seed,
                               chain_method="sequential")
    seconds = {"ppgen_total": time.perf_counter() - wall,
               "ppgen_total_cpu": time.process_time() - cpu,
               "ppgen_sampling": float(idata.posterior.attrs["sampling_time"])}
    return {k: idata.posterior[k].values for k in ("mu", "tau", "eta")}, seconds


def run_pyro(ex, args) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """The same chains with Pyro's ``MCMC`` called directly: draws, seconds (wall, CPU)."""
    chains = []
    wall, cpu = time.perf_counter(), time.process_time()
    for c in range(args.chains):
        pyro.set_rng_seed(args.seed + c)
        mcmc = MCMC(NUTS(ex.non_centered), num_samples=args.samples,
                    warmup_steps=args.warmup, num_chains=1, disable_progbar=True)
        mcmc.run(ex.y, sigma=ex.sigma)
        chains.append({k: v.numpy() for k, v in mcmc.get_samples().items()})
    seconds = {"pyro": time.perf_counter() - wall, "pyro_cpu": time.process_time() - cpu}
    return {k: np.stack([ch[k] for ch in chains]) for k in chains[0]}, seconds


def bulk_ess(draws: dict[str, np.ndarray]) -> np.ndarray:
    """Bulk ESS of every scalar parameter."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ess = az.ess(az.from_dict(posterior=draws), method="bulk")
    return np.concatenate([np.atleast_1d(ess[k].values).ravel() for k in draws])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # a 10-parameter model: threads only add contention
    ex = load_example()
    times: dict[str, list[float]] = {}
    for _ in range(args.repeats):  # alternate the two sides
        ours, ours_s = run_ppgen(ex, args)
        theirs, theirs_s = run_pyro(ex, args)
        for k, v in {**ours_s, **theirs_s}.items():
            times.setdefault(k, []).append(v)
    same = all(np.allclose(ours[k], theirs[k]) for k in ours)
    ess = bulk_ess(theirs)
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = [
        {"what": what, "seconds": med[key], "ess_min_per_s": ess.min() / med[key],
         "ess_mean_per_s": ess.mean() / med[key]}
        for what, key in (("pyro MCMC(NUTS) directly", "pyro"),
                          ("ppgen posterior(), sampling", "ppgen_sampling"),
                          ("ppgen posterior(), whole call", "ppgen_total"),
                          ("pyro directly, CPU time", "pyro_cpu"),
                          ("ppgen whole call, CPU time", "ppgen_total_cpu"))
    ]
    for r in rows:
        print(f"{r['what']:<31} {r['seconds']:7.2f} s   ESS/s min {r['ess_min_per_s']:7.1f}   "
              f"mean {r['ess_mean_per_s']:7.1f}")
    ratio = med["ppgen_sampling"] / med["pyro"]
    payload = {"rows": rows, "times": times, "same_draws": same,
               "ess_bulk_min": float(ess.min()), "ess_bulk_mean": float(ess.mean()),
               "settings": vars(args), "ratio": ratio,
               "ratio_whole_call": med["ppgen_total"] / med["pyro"],
               "ratio_whole_call_cpu": med["ppgen_total_cpu"] / med["pyro_cpu"]}
    path = write_results("posterior", payload, args.seed)
    print(f"identical draws on both sides: {same}")
    print(f"written {path}")
    print(f"ratio {ratio:.3f} (Pyro's ESS/s over ppgen's, sampling wall time); whole call "
          f"{payload['ratio_whole_call']:.3f} wall, {payload['ratio_whole_call_cpu']:.3f} CPU")


if __name__ == "__main__":
    main()
