"""The engine's step for every family: several players on a k-step schedule with a gradient
penalty, per-group optimisers, warm-up, the weight average, mixed precision, a scalar
validation metric and a network that grows while it trains — each resumed exactly."""

from __future__ import annotations

import math
from pathlib import Path

import pyro
import pyro.distributions as dist
import pytest
import torch
from testkit import TinyGaussian

import ppgen
from ppgen.engine import train
from ppgen.engine.precision import Precision
from ppgen.errors import TrainingError
from ppgen.objective import Objective, StepContext
from ppgen.protocol import GenerativeModel

__all__: list[str] = []

pytestmark = pytest.mark.usefixtures("one_thread")

N_CRITIC = 5


# --------------------------------------------------------------------------- a two-player toy
class Shift(GenerativeModel):
    """An implicit generator ``x = loc + noise``: what it learns is ``loc`` ``[D]``."""

    def __init__(self, dim: int = 2) -> None:
        super().__init__()
        self.dim = dim
        self.loc = torch.nn.Parameter(torch.zeros(dim))

    def model(self, x=None, num_samples=None):
        n = x.shape[0] if x is not None else num_samples
        with pyro.plate("data", n):
            noise = pyro.sample("noise", dist.Normal(torch.zeros(self.dim), 1.0).to_event(1))
            return self.loc + noise

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size([self.dim])


class ToyWGAN(Objective):
    """WGAN-GP on :class:`Shift`: the critic (this objective's state) steps ``N_CRITIC`` times
    per generator step, one batch each; ``kill_at`` raises at that global step."""

    name = "toy-wgan"

    def __init__(self, kill_at: int | None = None) -> None:
        super().__init__()
        with torch.random.fork_rng():  # the same critic in every run
            torch.manual_seed(0)
            self.critic = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(),
                                              torch.nn.Linear(16, 1))
        self.kill_at = kill_at
        self.seen: list[tuple[int, tuple[str, ...]]] = []

    def param_groups(self, model):
        return {"generator": list(model.parameters()), "critic": list(self.critic.parameters())}

    def updates(self, step, groups):
        return [("critic",)] + ([("generator",)] if step % N_CRITIC == N_CRITIC - 1 else [])

    def losses(self, model, batch, context: StepContext):
        if context.step == self.kill_at:
            raise KeyboardInterrupt  # stands for the process being killed
        self.seen.append((context.step, context.update))
        fake = model.loc + torch.randn_like(batch)
        if context.update == ("generator",):
            return {"loss": -self.critic(fake).mean()}
        fake = fake.detach()
        mix = torch.rand(len(batch), 1)
        points = (mix * batch + (1 - mix) * fake).requires_grad_(True)
        grad, = torch.autograd.grad(self.critic(points).sum(), points, create_graph=True)
        penalty = ((grad.norm(dim=1) - 1) ** 2).mean()
        gap = self.critic(fake).mean() - self.critic(batch).mean()
        return {"loss": gap + 10.0 * penalty, "penalty": penalty.detach()}

    def validation_metric(self, model, data):
        return ((model.loc - data.mean(0)) ** 2).sum()


TARGET = torch.tensor([2.0, -1.0])


@pytest.fixture(scope="module")
def shifted() -> torch.Tensor:
    return TARGET + torch.randn(96, 2, generator=torch.Generator().manual_seed(0))


def fit_gan(data, objective, **options):
    model = Shift()
    settings = {"epochs": 5, "batch_size": 32, "device": "cpu", "progress": False,
                "ema": 0.9, "optimizer": {"critic": {"name": "adam", "lr": 1e-2, "betas": [0.0,
                                                                                       0.9]},
                                          "generator": {"name": "adam", "lr": 5e-2}}}
    history = train(model, objective, data, data, **{**settings, **options})
    return model, history


def test_critic_steps_k_times_per_generator_step(shifted):
    objective = ToyWGAN()
    _, history = fit_gan(shifted, objective, epochs=4)
    steps = 4 * 3  # 96 rows / 32 a batch
    critic = [s for s, u in objective.seen if u == ("critic",)]
    generator = [s for s, u in objective.seen if u == ("generator",)]
    assert critic == list(range(steps)) and generator == [4, 9]
    record = history.records[-1]
    assert {"train_loss_critic", "train_loss_generator", "train_penalty", "val_loss",
            "lr_critic", "lr_generator"} <= set(record)
    assert record["lr_critic"] == 1e-2 and record["lr_generator"] == 5e-2


def test_two_players_learn_the_location(shifted):
    model, history = fit_gan(shifted, ToyWGAN(), epochs=150, ema=None)
    assert torch.allclose(model.loc.detach(), shifted.mean(0), atol=0.3)
    assert history.best_val < 0.1


def test_two_players_resume_mid_cycle_exactly(shifted, tmp_path: Path):
    full, full_history = fit_gan(shifted, ToyWGAN(), out_dir=tmp_path / "full")
    # 3 steps an epoch, a 5-step cycle: epoch 2 ends at step 6, in the middle of a cycle
    with pytest.raises(KeyboardInterrupt):
        fit_gan(shifted, ToyWGAN(kill_at=8), out_dir=tmp_path / "killed")
    saved = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)
    assert saved["epoch"] == 2 and saved["step"] == 6 and saved["step"] % N_CRITIC != 0
    torch.randn(100)  # another process would start from another random state
    resumed_objective = ToyWGAN()
    resumed, history = fit_gan(shifted, resumed_objective, out_dir=tmp_path / "killed",
                               resume=True)
    assert resumed_objective.seen[0] == (6, ("critic",))
    assert torch.equal(resumed.loc, full.loc)
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)
    for part in ("model_state", "objective_state", "ema"):
        for name, value in a[part].items():
            assert torch.equal(value, b[part][name]), (part, name)
    assert tuple(a["optimizers"]["critic"]["param_groups"][0]["betas"]) == (0.0, 0.9)
    drop = {"seconds"}
    assert ([{k: v for k, v in r.items() if k not in drop} for r in history] ==
            [{k: v for k, v in r.items() if k not in drop} for r in full_history])


# --------------------------------------------------------------------------- optimisers
class GaussianNLL(Objective):
    name = "players-test-nll"

    def __init__(self, record: bool = False) -> None:
        super().__init__()
        self.record, self.params = record, []

    def loss(self, model, batch):
        if self.record:
            self.params.append(model.loc.detach().clone())
        return self.validation_loss(model, batch).mean()

    def validation_loss(self, model, batch):
        normal = torch.distributions.Normal(model.loc, model.log_scale.exp())
        return -normal.log_prob(batch).sum(-1)


@pytest.fixture(scope="module")
def gauss() -> torch.Tensor:
    return 1.0 + torch.randn(96, 3, generator=torch.Generator().manual_seed(1))


def fit_nll(data, objective=None, val=None, **options):
    model = TinyGaussian()
    settings = {"epochs": 3, "batch_size": 32, "lr": 0.1, "device": "cpu", "progress": False}
    history = train(model, objective or GaussianNLL(), data, val, **{**settings, **options})
    return model, history


def test_warm_up_and_schedule_at_step_granularity(gauss):
    _, history = fit_nll(gauss, warmup_steps=6, epochs=4)
    # 3 steps an epoch; each epoch records the rate of its first step
    assert history.column("lr") == pytest.approx([0.1 / 6, 0.1 * 4 / 6, 0.1, 0.1])
    _, history = fit_nll(gauss, lr_schedule="cosine", epochs=2)
    assert history.column("lr") == pytest.approx([0.1, 0.1 * 0.5 * (1 + math.cos(math.pi / 2))])


@pytest.mark.parametrize("options, message", [
    ({"optimizer": {"critic": {"lr": 0.1}}}, "parameter group"),
    ({"optimizer": {"model": {"name": "adam", "betas": "no"}}}, "bad options"),
    ({"optimizer": {"model": {"name": "lbfgs"}}}, "unknown optimizer"),
    ({"warmup_steps": -1}, "warmup_steps"),
    ({"ema": 1.5}, "ema"),
    ({"precision": "fp8"}, "precision"),
])
def test_bad_engine_options_are_refused(gauss, options, message):
    with pytest.raises(TrainingError, match=message):
        fit_nll(gauss, **options)


def test_optimizer_settings_per_group_as_json(gauss, tmp_path):
    fit_nll(gauss, optimizer={"model": {"name": "sgd", "lr": 0.05, "momentum": 0.5}},
            out_dir=tmp_path)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    group = saved["optimizers"]["model"]["param_groups"][0]
    assert group["momentum"] == 0.5 and group["lr"] == 0.05


# --------------------------------------------------------------------------- weight average
def test_weight_average_is_what_model_pt_holds(gauss, tmp_path):
    objective = GaussianNLL(record=True)
    decay = 0.8
    model, _ = fit_nll(gauss, objective, ema=decay, out_dir=tmp_path)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    raw = saved["model_state"]["loc"]
    average = objective.params[0]  # the initial weights
    for weights in [*objective.params[1:], raw]:
        average = decay * average + (1 - decay) * weights
    assert torch.allclose(model.loc.detach(), average, atol=1e-6)
    assert torch.allclose(saved["ema"]["loc"], average, atol=1e-6)
    assert not torch.allclose(raw, average)
    loaded = ppgen.load(tmp_path / "model.pt")
    assert torch.equal(loaded.loc, model.loc)


def test_validation_scores_the_weight_average(gauss):
    model, history = fit_nll(gauss, val=gauss[:40], ema=0.5, epochs=3, patience=5)
    nll = GaussianNLL().validation_loss(model, gauss[:40]).mean().detach()
    assert history.best_val == pytest.approx(float(nll), rel=1e-6)


# --------------------------------------------------------------------------- scalar metric
class ScriptedMetric(GaussianNLL):
    def __init__(self, script: list[float]) -> None:
        super().__init__()
        self.script = list(script)

    def validation_loss(self, model, batch):
        if not model.training:
            raise AssertionError("a scalar metric replaces per-datum validation")
        return super().validation_loss(model, batch)

    def validation_metric(self, model, data):
        return torch.tensor(self.script.pop(0))


def test_early_stopping_on_a_scalar_metric(gauss):
    objective = ScriptedMetric([5.0, 3.0, 2.0, 4.0, 6.0, 7.0])
    _, history = fit_nll(gauss, objective, val=gauss[:10], epochs=6, patience=2)
    assert len(history) == 5 and (history.best_epoch, history.best_val) == (3, 2.0)


# --------------------------------------------------------------------------- precision
def test_autocast_runs_the_networks_only_and_returns_fp32():
    layer = torch.nn.Linear(64, 64)
    x = torch.randn(8, 64, generator=torch.Generator().manual_seed(0))
    exact = layer(x)
    precision = Precision("bf16", torch.device("cpu"))
    precision.install(layer)
    assert torch.equal(layer(x), exact)  # outside a training step: fp32
    with precision.training():
        low = layer(x)
        logp = torch.distributions.Normal(low, 1.0).log_prob(x)
    assert low.dtype == torch.float32 and logp.dtype == torch.float32
    assert not torch.equal(low, exact) and torch.allclose(low, exact, atol=0.05)
    precision.remove()
    assert "forward" not in vars(layer)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_and_evaluates_in_fp32(precision):
    from ppgen.models import MADE

    x = (torch.rand(200, 6, generator=torch.Generator().manual_seed(0)) < 0.3).long()
    model = MADE(6, likelihood="bernoulli", hidden_dims=(32,))
    history = ppgen.fit(model, x[:150], x[150:], epochs=4, batch_size=50, lr=1e-2,
                        precision=precision, device="cpu", progress=False)
    assert history.column("train_loss")[-1] < history.column("train_loss")[0]
    nll = -ppgen.log_likelihood(model, x[150:]).mean()
    assert history.best_val == pytest.approx(float(nll), abs=1e-5)


# --------------------------------------------------------------------------- a growing network
class Growing(GenerativeModel):
    """A Gaussian whose mean is a sum of terms, one more every ``every`` steps (up to 3)."""

    def __init__(self, dim: int = 3, every: int = 4) -> None:
        super().__init__()
        self.dim, self.every = dim, every
        self.terms = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(dim))])
        self.log_scale = torch.nn.Parameter(torch.zeros(dim))

    def grow_to(self, step: int) -> bool:
        stages = min(step // self.every, 2) + 1
        grew = False
        while len(self.terms) < stages:
            self.terms.append(torch.nn.Parameter(torch.full((self.dim,), 0.1 * len(self.terms),
                                                            device=self.log_scale.device)))
            grew = True
        return grew

    @property
    def loc(self) -> torch.Tensor:
        return sum(self.terms)

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size([self.dim])


def test_a_growing_network_trains_and_resumes_exactly(gauss, tmp_path):
    options = {"epochs": 5, "batch_size": 32, "lr": 0.05, "device": "cpu", "progress": False,
               "ema": 0.9}
    full = Growing()
    train(full, GaussianNLL(), gauss, **options, out_dir=tmp_path / "full")
    assert len(full.terms) == 3 and not torch.equal(full.terms[2].detach(),
                                                    torch.full((3,), 0.2))
    part = Growing()
    train(part, GaussianNLL(), gauss, **{**options, "epochs": 3}, out_dir=tmp_path / "part")
    resumed = Growing()  # starts at stage 1: the engine grows it before loading
    train(resumed, GaussianNLL(), gauss, **options, out_dir=tmp_path / "part", resume=True)
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)["optimizers"]
    b = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)["optimizers"]
    for key, state in a["model"]["state"].items():
        assert torch.equal(state["exp_avg"], b["model"]["state"][key]["exp_avg"])


def test_a_network_that_grows_right_after_a_checkpoint_resumes_exactly(gauss, tmp_path):
    """3 steps an epoch, a new term every 3 steps: the checkpoint after epoch 2 holds the
    two-term shape and the next step grows the third; resuming loads the weights in the shape
    they were saved in and grows at that step, drawing as the uninterrupted run did."""
    options = {"epochs": 3, "batch_size": 32, "lr": 0.05, "device": "cpu", "progress": False}
    full = Growing(every=3)
    train(full, GaussianNLL(), gauss, **options, out_dir=tmp_path / "full")
    part = Growing(every=3)
    train(part, GaussianNLL(), gauss, **{**options, "epochs": 2}, out_dir=tmp_path / "part")
    assert len(part.terms) == 2
    resumed = Growing(every=3)
    train(resumed, GaussianNLL(), gauss, **options, out_dir=tmp_path / "part", resume=True)
    assert len(resumed.terms) == 3
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


class _RecipeGaussian(TinyGaussian, register=False):
    """A model whose recipe keeps a weight average and stops early."""

    fit_defaults = {"ema": 0.9, "patience": 3, "epochs": 2, "batch_size": 10}


def test_fit_false_switches_off_a_recipes_ema_and_patience_and_none_keeps_them(monkeypatch):
    import ppgen.engine

    seen = []
    monkeypatch.setattr(ppgen.engine, "train", lambda *a, **options: seen.append(options))
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(0))
    ppgen.fit(_RecipeGaussian(), x, x[:10], ema=None, patience=None)
    ppgen.fit(_RecipeGaussian(), x, x[:10], ema=False, patience=False)
    assert (seen[0]["ema"], seen[0]["patience"]) == (0.9, 3)
    assert (seen[1]["ema"], seen[1]["patience"]) == (None, None)
