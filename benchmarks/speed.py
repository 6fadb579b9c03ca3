"""Sampling time per image and evaluation throughput of each exact model on the digits.

Speed does not depend on the weights, so the models are timed as built by ``for_data`` (no
training): sampling ``--samples`` images (autoregressive models run one network pass per
dimension), and exact log-likelihoods of the 447 test images through ``ppgen.log_likelihood``.
Medians over ``--repeats`` runs.

    python benchmarks/speed.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pyro
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_results  # noqa: E402

import ppgen  # noqa: E402
import ppgen.models  # noqa: E402,F401
from ppgen.data import load_digits  # noqa: E402
from ppgen.devices import resolve_device  # noqa: E402
from ppgen.protocol import model_class  # noqa: E402

MODELS = ["independent-categorical", "markov-chain", "fvsbn", "nade", "made", "pixelcnn",
          "pixelrnn", "vae"]


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        if isinstance(out, torch.Tensor) and out.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name: str, digits, device, samples: int, repeats: int) -> dict:
    pyro.set_rng_seed(0)
    model = model_class(name).for_data(digits.info).to(device).eval()
    test = digits.test.to(device)
    sample_s = median_time(lambda: model.sample(samples), repeats)
    eval_s = median_time(lambda: ppgen.log_likelihood(model, test, num_particles=1), repeats)
    return {"model": name, "ms_per_sample": 1e3 * sample_s / samples,
            "loglik_per_s": test.shape[0] / eval_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--name", help="results file name (default speed-<device>)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    digits = load_digits("categorical")
    rows = [measure(name, digits, device, args.samples, args.repeats) for name in args.models]
    print("| model | sampling (ms per image) | evaluation (log-likelihoods per s) |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['ms_per_sample']:.2f} | {r['loglik_per_s']:,.0f} |")
    print("(the VAE's evaluation is one importance sample per image, K = 1)")
    name = args.name or f"speed-{device.type}"
    print(f"written {write_results(name, {'rows': rows}, 0)}")


if __name__ == "__main__":
    main()
