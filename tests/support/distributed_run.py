"""Training runs started by ``torchrun`` for ``tests/ppgen/test_engine_distributed.py``.

``python -m torch.distributed.run --standalone --nproc_per_node=2 distributed_run.py STAGE OUT``

* ``train``: (a) a deterministic flow (ActNorm, no dropout) trained by maximum likelihood,
  whose final weights the test compares with a one-process run; (b) early stopping on a
  validation loss that differs by rank; (c) an uninterrupted stochastic VAE run; (d) the same
  run killed in its third epoch (the process exits without cleaning up).
* ``resume``: (d) resumed from its checkpoint; then ``ppgen fit`` and ``ppgen evaluate`` on the
  command line.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

import ppgen
from ppgen.engine import train
from ppgen.errors import TrainingError
from ppgen.models import VAE, RealNVP
from ppgen.objective import Objective

EPOCHS = 3
#: plain SGD with momentum for the flow compared with one process: Adam's first steps divide
#: by the gradient's size, which turns float-level differences of near-zero gradients (the
#: couplings' zero-initialised last layers) into differences of the learning rate's size
SGD = {"model": {"name": "sgd", "momentum": 0.9}}
KILL_AT = 9  # global step: 200 rows, 40 a batch -> 5 steps an epoch, epoch 2 ends at step 10


def flow() -> RealNVP:
    torch.manual_seed(0)
    return RealNVP(4, num_layers=2, hidden_features=16, num_blocks=1, dropout=0.0)


def flow_data() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(96, 4, generator=g) ** 3 + torch.randn(96, 4, generator=g)


def vae() -> VAE:
    torch.manual_seed(0)
    return VAE(16, latent_dim=2, hidden_dims=(16,), likelihood="bernoulli")


def vae_data() -> torch.Tensor:
    return (torch.rand(260, 16, generator=torch.Generator().manual_seed(2)) < 0.4).float()


VAE_OPTIONS = {"epochs": EPOCHS, "batch_size": 40, "lr": 1e-2, "device": "cpu",
               "progress": False, "objective": "elbo"}


class ByRank(Objective):
    """Per-datum validation losses that differ by rank: only their mean decides."""

    name = "by-rank"
    unused_parameters = True  # the loss leaves the model's log_scale alone
    SCRIPTS = ([4.0, 2.0, 2.0, 9.0, 9.0, 9.0, 9.0], [6.0, 4.0, 2.0, -5.0, 5.0, 5.0, 5.0])

    def __init__(self) -> None:
        super().__init__()
        self.script = list(self.SCRIPTS[dist.get_rank() if dist.is_initialized() else 0])

    def loss(self, model, batch):
        return -torch.distributions.Normal(model.loc, 1.0).log_prob(batch).sum(-1).mean()

    def validation_loss(self, model, batch):
        return torch.full((len(batch),), self.script.pop(0))


class Undeclared(ByRank):
    """:class:`ByRank` without declaring its unused parameter."""

    name = "undeclared"
    unused_parameters = False


class Killed(Objective):
    """The VAE's ELBO whose process dies at global step ``KILL_AT``."""

    name = "elbo"

    def __init__(self) -> None:
        super().__init__()
        from ppgen.inference import ELBO

        self.elbo = ELBO()

    def losses(self, model, batch, context):
        if context.step == KILL_AT:
            sys.stdout.flush()
            os._exit(3)
        return {"loss": self.elbo.loss(model, batch)}

    def validation_loss(self, model, batch):
        return self.elbo.validation_loss(model, batch)

    def get_config(self):
        return self.elbo.get_config()


def main(stage: str, out: Path) -> None:
    rank = int(os.environ["RANK"])
    x = vae_data()
    if stage == "resume":
        ppgen.fit(vae(), x[:200], x[200:], out_dir=out / "vae-killed", resume=True,
                  **VAE_OPTIONS)
        from ppgen.cli import main as cli

        run = str(out / "cli")
        assert cli(["fit", "fvsbn", "--data", "digits", "--representation", "binary",
                    "--epochs", "2", "--ema", "0.9", "--out", run, "--no-progress"]) == 0
        assert cli(["evaluate", run]) == 0
        return
    model = flow()
    train(model, _mle(), flow_data(), epochs=2, batch_size=32, lr=1e-2, optimizer=SGD,
          device="cpu", progress=False)
    torch.save(model.state_dict(), out / f"flow-rank{rank}.pt")
    from testkit import TinyGaussian

    history = train(TinyGaussian(), ByRank(), flow_data()[:, :3], flow_data()[:8, :3],
                    epochs=7, batch_size=32, patience=2, device="cpu", progress=False)
    (out / f"early-rank{rank}.json").write_text(json.dumps(
        {"epochs": len(history), "best": [history.best_epoch, history.best_val],
         "val": history.column("val_loss")}))
    try:  # the same objective, undeclared: the unused log_scale is named as the fix
        train(TinyGaussian(), Undeclared(), flow_data()[:, :3], epochs=1, batch_size=32,
              device="cpu", progress=False)
    except TrainingError as err:
        (out / f"undeclared-rank{rank}.txt").write_text(str(err))
    ppgen.fit(vae(), x[:200], x[200:], out_dir=out / "vae-full", **VAE_OPTIONS)
    options = {**VAE_OPTIONS, "objective": Killed()}
    ppgen.fit(vae(), x[:200], x[200:], out_dir=out / "vae-killed", **options)


def _mle():
    from ppgen.inference import MaximumLikelihood

    return MaximumLikelihood()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
    dist.barrier()
    dist.destroy_process_group()
