"""One process vs. several: the same training run started plainly and by ``torchrun``.

Trains a zoo model on the digits with the same global batch, epochs and seed, once on one
process (``--threads`` intra-op threads) and once on ``--processes`` processes started by
``torchrun`` (gloo on the CPU, NCCL with ``--device cuda``; the threads split between them),
and records epochs per second (median of ``--repeats`` alternating runs) and the final test
NLL of each. Every run is a subprocess of this script, on the same machine.

    python benchmarks/distributed.py                        # MADE, 2 processes, 30 epochs
    python benchmarks/distributed.py --model vae --epochs 20
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))

from common import write_results  # noqa: E402


def worker(args: argparse.Namespace) -> None:
    """One training run (one of torchrun's processes, or the only one)."""
    import pyro
    import torch

    import ppgen
    import ppgen.models  # noqa: F401
    from ppgen.data import load_digits
    from ppgen.evaluate import nll_report
    from ppgen.protocol import model_class

    rank = int(os.environ.get("RANK", "0"))
    digits = load_digits("categorical")
    pyro.set_rng_seed(args.seed)
    model = model_class(args.model).for_data(digits.info)
    start = time.perf_counter()
    history = ppgen.fit(model, digits.train, digits.val, epochs=args.epochs, patience=None,
                        seed=args.seed, device=args.device, progress=False)
    seconds = time.perf_counter() - start
    if rank != 0:
        return
    torch.manual_seed(args.seed)
    report = nll_report(model, digits.test.to(model.device), num_particles=args.particles)
    Path(args.worker).write_text(json.dumps({
        "seconds": seconds, "epochs": len(history), "epochs_per_second": len(history) / seconds,
        "test_nll": report["nll"], "best_val": history.best_val,
    }))


def launch(args: argparse.Namespace, processes: int, out: Path) -> dict:
    """Run :func:`worker` on ``processes`` processes; returns its record."""
    threads = max(args.threads // processes, 1)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env.pop("WORLD_SIZE", None)
    worker_args = [str(HERE), "--worker", str(out), "--model", args.model, "--epochs",
                   str(args.epochs), "--seed", str(args.seed), "--device", args.device,
                   "--particles", str(args.particles), "--threads", str(threads)]
    if processes == 1:
        command = [sys.executable, *worker_args]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={processes}", *worker_args]
    subprocess.run(command, env=env, check=True)
    return {"processes": processes, "threads_each": threads, **json.loads(out.read_text())}


def _median_run(runs: list[dict]) -> dict:
    """The run with the median speed (its NLL is the same in every repeat: same seed)."""
    ordered = sorted(runs, key=lambda r: r["epochs_per_second"])
    return {**ordered[len(ordered) // 2],
            "all_epochs_per_second": [r["epochs_per_second"] for r in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="made")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--particles", type=int, default=100, help="K for latent models")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each")
    parser.add_argument("--name", default="distributed", help="results file name")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        return worker(args)
    with tempfile.TemporaryDirectory() as tmp:
        repeats = [[launch(args, n, Path(tmp) / f"run{n}.json") for n in (1, args.processes)]
                   for _ in range(args.repeats)]  # alternating, so both share the same load
    runs = [_median_run([r[i] for r in repeats]) for i in (0, 1)]
    one, many = runs
    ratio = many["epochs_per_second"] / one["epochs_per_second"]
    lines = ["| processes | threads each | epochs/s | test NLL (nats/image) | best val |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['processes']} | {r['threads_each']} | {r['epochs_per_second']:.3f} | "
              f"{r['test_nll']:.2f} | {r['best_val']:.2f} |" for r in runs]
    table = "\n".join(lines)
    print(table)
    print(f"throughput ratio ({args.processes} vs 1 processes): {ratio:.2f}")
    payload = {"model": args.model, "epochs": args.epochs, "device": args.device,
               "runs": runs, "throughput_ratio": ratio, "table": table}
    print(f"written {write_results(args.name, payload, args.seed)}")


if __name__ == "__main__":
    main()
