"""Behavioural tests of the training engine (:func:`ppgen.engine.train`) on a Gaussian."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from testkit import TinyGaussian

from ppgen.checkpoint import load_model, read_checkpoint
from ppgen.engine import train
from ppgen.errors import CheckpointError, TrainingError
from ppgen.history import History
from ppgen.objective import Objective
from ppgen.protocol import GenerativeModel

__all__: list[str] = []

LOC = torch.tensor([1.0, -2.0, 0.5])
SCALE = torch.tensor([0.5, 2.0, 1.0])


# --------------------------------------------------------------------------- fixtures
class GaussianNLL(Objective):
    """Mean negative log-likelihood; ``noise`` > 0 jitters the batch with the torch RNG."""

    name = "engine-test-nll"

    def __init__(self, noise: float = 0.0) -> None:
        self.noise = noise

    def loss(self, model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
        if self.noise:
            batch = batch + self.noise * torch.randn_like(batch)
        return self.validation_loss(model, batch).mean()

    def validation_loss(self, model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
        normal = torch.distributions.Normal(model.loc, model.log_scale.exp())
        return -normal.log_prob(batch).sum(-1)

    def get_config(self) -> dict:
        return {"name": self.name, "noise": self.noise}


class ScriptedValidation(GaussianNLL):
    """Validation loss read from a script, one value per epoch (one val batch per epoch)."""

    def __init__(self, script: list[float]) -> None:
        super().__init__()
        self.script = list(script)

    def validation_loss(self, model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
        if not model.training and self.script:
            return torch.full((len(batch),), self.script.pop(0))
        return super().validation_loss(model, batch)


class Sabotage(GaussianNLL):
    """From step ``at`` on, the loss becomes ``inf`` (``"inf"``) or its gradient NaN (``"nan"``)."""

    def __init__(self, at: int, how: str) -> None:
        super().__init__()
        self.at, self.how, self.steps = at, how, 0

    def loss(self, model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
        loss = super().loss(model, batch)
        self.steps += 1
        if self.steps <= self.at:
            return loss
        return loss + math.inf if self.how == "inf" else loss * math.nan


class Killed(Exception):
    """Stands for the process being killed mid-epoch."""


class KilledAt(GaussianNLL):
    """A stochastic objective "killed" at step ``at`` (same config as the plain one)."""

    def __init__(self, at: int, noise: float) -> None:
        super().__init__(noise)
        self.at, self.steps = at, 0

    def loss(self, model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
        self.steps += 1
        if self.steps > self.at:
            raise Killed
        return super().loss(model, batch)


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    """Train ``[400, 3]`` and val ``[100, 3]`` draws from N(LOC, SCALE^2), fixed seed."""
    generator = torch.Generator().manual_seed(0)
    x = LOC + SCALE * torch.randn(500, 3, generator=generator)
    return x[:400], x[400:]


def run(objective: Objective, data: Any, model: GenerativeModel | None = None, **options: Any):
    """Train a fresh (or the given) model; returns ``(model, history)``."""
    model = TinyGaussian() if model is None else model
    defaults = {"epochs": 4, "batch_size": 64, "lr": 0.05, "device": "cpu", "progress": False}
    history = train(model, objective, data[0], data[1], **{**defaults, **options})
    return model, history


def assert_same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name


def without_seconds(history: History) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history.records]


# --------------------------------------------------------------------------- convergence
def test_training_reaches_the_closed_form_mle(data):
    x = data[0]
    model, history = run(
        GaussianNLL(), (x, x), epochs=150, batch_size=100, lr=0.05, lr_schedule="cosine"
    )
    mean, std = x.mean(0), x.std(0, unbiased=False)
    # the MLE is the sample mean/std; tolerances are far below their standard errors (~0.1)
    assert torch.allclose(model.loc.detach(), mean, atol=0.02)
    assert torch.allclose(model.log_scale.detach().exp(), std, rtol=0.02)
    min_nll = float((0.5 * torch.log(2 * math.pi * std**2) + 0.5).sum())
    assert history.records[-1]["val_loss"] == pytest.approx(min_nll, abs=1e-3)
    assert history.column("train_loss")[-1] < history.column("train_loss")[0]
    assert len(history) == 150 and history.best_epoch is not None


def test_history_records(data):
    _, history = run(GaussianNLL(), data, epochs=3)
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert set(history.records[0]) == {"epoch", "train_loss", "val_loss", "seconds", "lr"}
    assert history.best_val == min(history.column("val_loss"))
    assert History.from_dict(history.to_dict()).to_dict() == history.to_dict()


def test_without_validation_the_last_state_is_kept(data):
    model, history = run(GaussianNLL(), (data[0], None), epochs=3, patience=1)
    assert history.best_epoch is None and history.best_val is None
    assert "val_loss" not in history.records[0] and len(history) == 3


# --------------------------------------------------------------------------- early stopping
def test_early_stopping_restores_the_best_epoch(data):
    objective = ScriptedValidation([5.0, 3.0, 2.0, 4.0, 6.0, 7.0, 8.0, 9.0])
    model, history = run(objective, data, epochs=8, batch_size=128, patience=2)
    assert len(history) == 5  # epochs 4 and 5 do not improve on epoch 3
    assert (history.best_epoch, history.best_val) == (3, 2.0)
    reference, _ = run(GaussianNLL(), data, epochs=3, batch_size=128)
    assert_same_parameters(model, reference)


# --------------------------------------------------------------------------- NaN guard
@pytest.mark.parametrize("how, culprit", [("inf", "train_loss"), ("nan", "parameters")])
def test_nan_guard_restores_the_last_good_epoch(data, tmp_path, how, culprit):
    # 400 / 64 -> 7 steps an epoch: step 15 falls in epoch 3
    model = TinyGaussian()
    with pytest.raises(TrainingError, match=rf"epoch 3: .*{culprit}.*checkpoint\.pt.*lr") as info:
        run(Sabotage(at=14, how=how), data, model=model, epochs=5, out_dir=tmp_path)
    assert "max_grad_norm" in str(info.value)
    reference, _ = run(GaussianNLL(), data, epochs=2)
    assert_same_parameters(model, reference)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert saved["epoch"] == 2 and len(saved["history"]) == 2
    for name, value in reference.state_dict().items():
        assert torch.equal(saved["model_state"][name], value)
    assert len(History.from_csv(tmp_path / "history.csv")) == 2
    assert not (tmp_path / "model.pt").exists()


# --------------------------------------------------------------------------- files
def test_out_dir_files(data, tmp_path):
    model, history = run(GaussianNLL(), data, epochs=3, out_dir=tmp_path, extra={"note": "hi"})
    with open(tmp_path / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and {"epoch", "train_loss", "val_loss", "lr"} <= set(rows[0])
    assert History.from_csv(tmp_path / "history.csv").records == history.records
    loaded = load_model(tmp_path / "model.pt")
    assert_same_parameters(loaded, model)
    extra = read_checkpoint(tmp_path / "model.pt")["extra"]
    assert extra["note"] == "hi" and extra["training"]["best_epoch"] == history.best_epoch
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)  # plain data only
    assert saved["epoch"] == 3 and saved["best_epoch"] == history.best_epoch
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.pt",
        "history.csv",
        "model.pt",
    ]


# --------------------------------------------------------------------------- exact resume
def fresh_model() -> TinyGaussian:
    """A new model whose initial values differ from the run's (they must be overwritten)."""
    model = TinyGaussian()
    with torch.no_grad():
        model.loc.fill_(7.0)
    return model


def test_resume_is_bit_identical(data, tmp_path: Path):
    full, full_history = run(GaussianNLL(noise=0.3), data, epochs=6, out_dir=tmp_path / "a")
    run(GaussianNLL(noise=0.3), data, epochs=3, out_dir=tmp_path / "b")
    torch.randn(1000)  # a new process would start from another RNG state
    resumed, history = run(
        GaussianNLL(noise=0.3),
        data,
        model=fresh_model(),
        epochs=6,
        out_dir=tmp_path / "b",
        resume=True,
    )
    assert_same_parameters(resumed, full)
    assert without_seconds(history) == without_seconds(full_history)
    assert (history.best_epoch, history.best_val) == (
        full_history.best_epoch,
        full_history.best_val,
    )


def test_resume_after_a_killed_run_with_more_epochs(data, tmp_path: Path):
    full, full_history = run(GaussianNLL(noise=0.3), data, epochs=8, patience=8)
    with pytest.raises(Killed):  # killed in epoch 5 (7 steps an epoch)
        run(KilledAt(at=30, noise=0.3), data, epochs=6, patience=8, out_dir=tmp_path)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["epoch"] == 4
    resumed, history = run(
        GaussianNLL(noise=0.3),
        data,
        model=fresh_model(),
        epochs=8,
        patience=8,
        out_dir=tmp_path,
        resume=True,
    )
    assert_same_parameters(resumed, full)
    assert without_seconds(history) == without_seconds(full_history)


def test_resume_refuses_a_missing_or_foreign_checkpoint(data, tmp_path: Path):
    with pytest.raises(CheckpointError, match="does not exist"):
        run(GaussianNLL(), data, out_dir=tmp_path, resume=True)
    run(GaussianNLL(), data, epochs=1, out_dir=tmp_path)
    with pytest.raises(CheckpointError, match="model config"):
        run(GaussianNLL(), data, model=TinyGaussian(dim=4), out_dir=tmp_path, resume=True)
    with pytest.raises(CheckpointError, match="objective config"):
        run(GaussianNLL(noise=0.5), data, out_dir=tmp_path, resume=True)
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        run(GaussianNLL(), data, out_dir=tmp_path, resume=True)


# --------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    "options, message",
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"optimizer": "lbfgs"}, "unknown optimizer"),
        ({"lr": -1.0}, "lr"),
        ({"lr": {"other": 0.1}}, "parameter group"),
        ({"lr_schedule": "bogus"}, "lr_schedule"),
        ({"patience": 0}, "patience"),
        ({"resume": True}, "out_dir"),
    ],
)
def test_bad_arguments_are_refused(data, options, message):
    with pytest.raises(TrainingError, match=message):
        run(GaussianNLL(), data, **options)


def test_empty_data_is_refused(data):
    with pytest.raises(TrainingError, match="empty"):
        run(GaussianNLL(), (data[0][:0], None))


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_optimizers_and_lr_per_group(data, optimizer):
    _, history = run(GaussianNLL(), data, epochs=2, optimizer=optimizer, lr={"model": 0.01})
    assert history.column("lr") == [0.01, 0.01]
