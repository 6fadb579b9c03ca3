"""The same loop on two processes: ``torchrun`` with the gloo backend on the CPU.

Two launches of ``tests/support/distributed_run.py`` (about 30 s together): the first trains
(a flow compared with a one-process run, early stopping, an uninterrupted VAE, a VAE killed
mid-epoch), the second resumes the killed VAE.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ppgen.engine import train

SCRIPT = Path(__file__).resolve().parents[1] / "support" / "distributed_run.py"

__all__: list[str] = []


def torchrun(stage: str, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(SCRIPT.parent)}
    env.pop("WORLD_SIZE", None)
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(SCRIPT), stage, str(out)],
        env=env, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    first = torchrun("train", out)
    assert first.returncode != 0, "the killed run should have ended the launch"
    assert (out / "vae-full" / "model.pt").exists(), first.stderr[-3000:]
    second = torchrun("resume", out)
    assert second.returncode == 0, second.stderr[-3000:]
    return out


def test_two_processes_equal_one_with_the_same_global_batch(runs):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import distributed_run as script
    finally:
        sys.path.remove(str(SCRIPT.parent))
    torch.set_num_threads(1)
    model = script.flow()
    train(model, script._mle(), script.flow_data(), epochs=2, batch_size=32, lr=1e-2,
          optimizer=script.SGD,
          device="cpu", progress=False)
    ranks = [torch.load(runs / f"flow-rank{r}.pt", weights_only=True) for r in (0, 1)]
    for name, value in model.state_dict().items():
        assert torch.equal(ranks[0][name], ranks[1][name]), name  # the ranks agree exactly
        assert torch.allclose(ranks[0][name], value, atol=1e-5, rtol=1e-4), name


def test_early_stopping_stops_every_rank_on_the_same_epoch(runs):
    # per-rank validation scripts: means 5, 3, 2, 2, 7 -> best epoch 3, stop after epoch 5;
    # rank 1 alone would have improved in epoch 4
    results = [json.loads((runs / f"early-rank{r}.json").read_text()) for r in (0, 1)]
    assert results[0] == results[1]
    assert results[0]["epochs"] == 5 and results[0]["best"] == [3, 2.0]
    assert results[0]["val"] == [5.0, 3.0, 2.0, 2.0, 7.0]


def test_an_undeclared_unused_parameter_is_named_as_the_fix(runs):
    for rank in (0, 1):
        message = (runs / f"undeclared-rank{rank}.txt").read_text()
        assert "unused_parameters = True" in message and "Undeclared" in message


def test_a_killed_two_process_run_resumes_exactly(runs):
    full = torch.load(runs / "vae-full" / "checkpoint.pt", weights_only=True)
    resumed = torch.load(runs / "vae-killed" / "checkpoint.pt", weights_only=True)
    assert full["epoch"] == resumed["epoch"] == 3 and len(resumed["rng"]) == 2
    for name, value in full["model_state"].items():
        assert torch.equal(value, resumed["model_state"][name]), name
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in full["history"]]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in resumed["history"]]
    files = sorted(p.name for p in (runs / "vae-killed").iterdir())
    assert files == ["checkpoint.pt", "history.csv", "model.pt"]  # rank 0 alone wrote


def test_the_command_line_under_torchrun(runs, capsys):
    from ppgen.cli import main as cli

    run = runs / "cli"
    assert {"checkpoint.pt", "eval-test.json", "history.csv", "metrics.json", "model.pt"} <= {
        p.name for p in run.iterdir()}
    sharded = json.loads((run / "eval-test.json").read_text())
    assert cli(["evaluate", str(run)]) == 0  # one process, every row
    whole = json.loads((run / "eval-test.json").read_text())
    assert sharded["n"] == whole["n"] == 447
    assert sharded["nll"] == pytest.approx(whole["nll"], rel=1e-5)
