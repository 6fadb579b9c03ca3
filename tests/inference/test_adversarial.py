"""Adversarial inference: the losses against their formulas, the optimal critic of a 1-D case in
closed form, every loss training a toy generator, resume in the middle of an n_critic cycle."""

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
from ppgen.errors import ModelError
from ppgen.inference import (
    OBJECTIVES,
    Adversarial,
    AdversarialLoss,
    ProgramModel,
    make_objective,
    mlp_critic,
)
from ppgen.inference.adversarial import (
    critic_losses,
    generator_loss,
    gradient_penalty,
    r1_penalty,
    simulate,
)
from ppgen.objective import StepContext

pytestmark = pytest.mark.usefixtures("one_thread", "clean_param_store")


def affine(x: torch.Tensor) -> torch.Tensor:
    """A user's program: ``x = loc + scale * z``, ``z ~ N(0, I)``, as a reparameterised site."""
    n, d = x.shape
    loc = pyro.param("loc", torch.zeros(d))
    scale = pyro.param("scale", torch.ones(d), constraint=dist.constraints.positive)
    base = dist.Normal(torch.zeros(n, d, device=x.device), 1.0).to_event(1)
    shift = dist.transforms.AffineTransform(loc, scale, event_dim=1)
    with pyro.plate("data", n):
        return pyro.sample("x", dist.TransformedDistribution(base, [shift]), obs=x)


def adam(lr_critic: float, lr_generator: float) -> dict:
    return {"critic": {"name": "adam", "lr": lr_critic, "betas": [0.5, 0.9]},
            "generator": {"name": "adam", "lr": lr_generator, "betas": [0.5, 0.9]}}


# --------------------------------------------------------------------------- the formulas
def test_losses_match_their_formulas():
    d_r, d_f = torch.tensor([0.3, -1.2]), torch.tensor([0.5, 2.0])
    sig = torch.sigmoid
    gan = -(sig(d_r).log().mean() + (1 - sig(d_f)).log().mean())
    expected_critic = {
        "minimax": gan, "non-saturating": gan,
        "least-squares": 0.5 * ((d_r - 1) ** 2).mean() + 0.5 * (d_f ** 2).mean(),
        "wgan-gp": d_f.mean() - d_r.mean(),
        "hinge": (1 - d_r).clamp_min(0).mean() + (1 + d_f).clamp_min(0).mean(),
    }
    expected_generator = {
        "minimax": (1 - sig(d_f)).log().mean(), "non-saturating": -sig(d_f).log().mean(),
        "least-squares": 0.5 * ((d_f - 1) ** 2).mean(), "wgan-gp": -d_f.mean(),
        "hinge": -d_f.mean(),
    }
    for loss in AdversarialLoss:
        assert critic_losses(loss, d_r, d_f) == pytest.approx(float(expected_critic[loss]))
        assert generator_loss(loss, d_f) == pytest.approx(float(expected_generator[loss]))


def test_penalties_on_a_linear_critic():
    """D(x) = w·x + b has gradient w everywhere: the penalties are functions of |w| alone."""
    critic = torch.nn.Linear(2, 1)
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    for norm in (2.0, 0.5):
        with torch.no_grad():
            critic.weight.copy_(torch.tensor([[0.6, 0.8]]) * norm)
        assert gradient_penalty(critic, real, fake, {}).item() == pytest.approx((norm - 1) ** 2)
        one_sided = gradient_penalty(critic, real, fake, {}, one_sided=True)
        assert one_sided.item() == pytest.approx(max(norm - 1, 0) ** 2)
        x = real.clone().requires_grad_(True)
        assert r1_penalty(critic(x).squeeze(1), x).item() == pytest.approx(norm ** 2)
    objective = Adversarial("hinge", critic=critic, r1=2.0, gradient_penalty=3.0)
    generator = TinyGaussian(2)
    torch.manual_seed(0)
    out = objective.critic_step(generator, real, {})
    torch.manual_seed(0)
    fake = simulate(generator, real)  # the same draws
    with torch.no_grad():
        hinge = critic_losses(AdversarialLoss.HINGE, critic(real)[:, 0], critic(fake)[:, 0])
    assert set(out) == {"loss", "gap", "penalty", "r1"}
    assert out["r1"] == pytest.approx(0.25) and out["penalty"] == pytest.approx(0.25)
    assert out["loss"].item() == pytest.approx(float(hinge) + 3.0 * 0.25 + 0.5 * 2.0 * 0.25)


def test_names_and_options():
    assert {"adversarial", "minimax", "non-saturating", "least-squares", "wgan-gp",
            "hinge"} <= set(OBJECTIVES)
    wgan = make_objective("wgan-gp")
    assert (wgan.n_critic, wgan.gp_weight, wgan.get_config()["name"]) == (5, 10.0, "wgan-gp")
    hinge = make_objective("adversarial", loss="hinge", r1=1.0)
    assert (hinge.loss_kind, hinge.n_critic, hinge.gp_weight) == ("hinge", 1, 0.0)
    assert hinge.updates(0, ("generator", "critic")) == [("critic",), ("generator",)]
    assert [wgan.updates(s, ()) for s in (3, 4)] == [[("critic",)], [("critic",), ("generator",)]]
    with pytest.raises(ppgen.PpgenError, match="unknown adversarial loss"):
        make_objective("adversarial", loss="bogus")
    with pytest.raises(ppgen.PpgenError, match="'adversarial' to choose another"):
        make_objective("wgan-gp", loss="hinge")


def test_draws_are_differentiable_and_conditioned_on_the_data_shape():
    model = ProgramModel(affine, (2,))
    fake = simulate(model, torch.zeros(7, 2), check=True)
    assert fake.shape == (7, 2) and fake.requires_grad
    fake.sum().backward()
    assert model.unconstrained["loc"].grad.tolist() == [7.0, 7.0]


def test_a_program_without_rsample_or_critic_is_a_clear_error():
    def poisson(x):
        rate = pyro.param("rate", torch.tensor(2.0), constraint=dist.constraints.positive)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Poisson(rate).expand([x.shape[0], 1]).to_event(1), obs=x)

    x = torch.ones(64, 1)
    with pytest.raises(ModelError, match="carries no critic"):
        train(ProgramModel(poisson, (1,)), Adversarial(), x, epochs=1, device="cpu",
              progress=False)
    with pytest.raises(ModelError, match="'x' .*has no rsample"):
        train(ProgramModel(poisson, (1,)), Adversarial(critic=mlp_critic(1)), x, epochs=1,
              device="cpu", progress=False)


# --------------------------------------------------------------------------- optimal critic
class CriticOnly(Adversarial):
    """Trains the critic alone: the generator is frozen."""

    def updates(self, step, groups):
        return [("critic",)]


class Quadratic(torch.nn.Module):
    """``D(x) = a x² + b x + c``: the family of log-ratios of two Gaussians."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def forward(self, x):
        return self.linear(torch.cat([x, x.square()], dim=-1))


def normal_log_ratio(x, loc, scale):
    """``log N(x; 0, 1) - log N(x; loc, scale)``."""
    return (torch.distributions.Normal(0.0, 1.0).log_prob(x)
            - torch.distributions.Normal(loc, scale).log_prob(x))


@pytest.mark.parametrize("loss, critic, tolerance", [("minimax", Quadratic, 0.03),
                                                     ("least-squares", None, 0.06)])
def test_the_critic_learns_the_optimal_discriminator(loss, critic, tolerance):
    """With the generator frozen at N(0.8, 0.7²) and data N(0, 1), the minimax critic's optimum
    is D*(x) = p_data / (p_data + p_g) (Goodfellow et al. 2014, Prop. 1: a sigmoid of the
    quadratic log-ratio, which the quadratic critic represents exactly); the least-squares
    critic's optimum (Mao et al. 2017, Prop. 1 with a = 0, b = 1) is the same function, learnt
    by an MLP. Compared on [-1.5, 1.5], where both densities have mass. Seeded data and fakes;
    the tolerances are about 4x the errors seen (0.007 for the exact quadratic family, whose
    error is the sampling error of 4,000 points; 0.03 for the MLP, which also approximates)."""
    torch.manual_seed(0)
    generator = TinyGaussian(1)
    with torch.no_grad():
        generator.loc.fill_(0.8)
        generator.log_scale.fill_(math.log(0.7))
    network = Quadratic() if critic else mlp_critic(1, (32, 32))
    data = torch.randn(4000, 1, generator=torch.Generator().manual_seed(1))
    train(generator, CriticOnly(loss, critic=network), data, epochs=12, batch_size=200,
          device="cpu", progress=False, optimizer=adam(0.02, 1e-3))  # generator never updated
    assert generator.loc.item() == pytest.approx(0.8)  # frozen
    grid = torch.linspace(-1.5, 1.5, 31)[:, None]
    optimal = torch.sigmoid(normal_log_ratio(grid, 0.8, 0.7))
    with torch.no_grad():
        out = network(grid)
    learnt = torch.sigmoid(out) if loss == "minimax" else out
    assert (learnt - optimal).abs().max() < tolerance


# --------------------------------------------------------------------------- every loss trains
@pytest.mark.parametrize("loss", [loss.value for loss in AdversarialLoss])
def test_every_loss_trains_a_generator_toward_the_data(loss):
    """x = loc + scale z fitted to N((2, -1), diag(0.5, 0.3)²) from 1,000 points (seeded; the
    fitted values are within ±0.1 of the truth, the tolerance is ±0.15). WGAN-GP runs two
    critic steps per generator step here (five would need 2.5x the steps)."""
    g = torch.Generator().manual_seed(0)
    mean, std = torch.tensor([2.0, -1.0]), torch.tensor([0.5, 0.3])
    data = mean + std * torch.randn(1000, 2, generator=g)
    val = mean + std * torch.randn(500, 2, generator=g)
    torch.manual_seed(0)
    model = ProgramModel(affine, (2,))
    wgan = loss == "wgan-gp"
    objective = Adversarial(loss, critic=mlp_critic(2, (32, 32)), n_critic=2 if wgan else None)
    history = train(model, objective, data, val, epochs=80 if wgan else 40, batch_size=100,
                    device="cpu", progress=False, optimizer=adam(2e-3, 2e-2),
                    lr_schedule="cosine")
    fitted = model.constrained()
    assert torch.allclose(fitted["loc"], mean, atol=0.15)
    assert torch.allclose(fitted["scale"], std, atol=0.15)
    assert {"train_loss_critic", "train_loss_generator", "train_gap"} <= set(history.records[0])


# --------------------------------------------------------------------------- resume
class Killed(Adversarial):
    """WGAN-GP whose process dies at global step ``kill_at``; records the updates it ran."""

    def __init__(self, kill_at: int | None = None, **options) -> None:
        super().__init__("wgan-gp", **options)
        self.kill_at, self.seen = kill_at, []

    def losses(self, model, batch, context: StepContext, **kwargs):
        if context.step == self.kill_at:
            raise KeyboardInterrupt
        self.seen.append((context.step, context.update))
        return super().losses(model, batch, context, **kwargs)


def fit_killable(out: Path, kill_at: int | None = None, resume: bool = False):
    torch.manual_seed(5)  # the same critic in every run
    objective = Killed(kill_at, critic=mlp_critic(2, (16,)))
    model = TinyGaussian(2)
    data = 1.0 + torch.randn(96, 2, generator=torch.Generator().manual_seed(0))
    history = train(model, objective, data, data[:40], epochs=5, batch_size=32, device="cpu",
                    progress=False, ema=0.9, optimizer=adam(1e-2, 5e-2), out_dir=out,
                    resume=resume)
    return model, objective, history


def test_resume_in_the_middle_of_an_n_critic_cycle(tmp_path):
    full, _, full_history = fit_killable(tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):  # 3 steps an epoch: the cycle is cut at step 6
        fit_killable(tmp_path / "killed", kill_at=8)
    saved = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)
    assert saved["step"] == 6 and saved["step"] % 5 != 0
    assert any(k.startswith("critic.") for k in saved["objective_state"])
    torch.randn(100)  # another process starts from another random state
    resumed, objective, history = fit_killable(tmp_path / "killed", resume=True)
    assert objective.seen[0] == (6, ("critic",))
    assert [s for s, u in objective.seen if u == ("generator",)] == [9, 14]
    for name, value in full.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)
    for part in ("objective_state", "ema"):
        for name, value in a[part].items():
            assert torch.equal(value, b[part][name]), (part, name)
    assert set(a["ema"]) == {"loc", "log_scale"}  # the generator alone is averaged
    assert history.column("val_loss") == full_history.column("val_loss")


# --------------------------------------------------------------------------- validation metric
def resampler(bank: torch.Tensor):
    """A program whose draws are rows of ``bank`` (e.g. real images)."""

    def program(x: torch.Tensor) -> torch.Tensor:
        with pyro.plate("data", x.shape[0]):
            i = pyro.sample("i", dist.Categorical(logits=torch.zeros(len(bank))))
            return pyro.sample("x", dist.Delta(bank[i], event_dim=1), obs=x)

    return program


def test_the_validation_metric_on_digits_is_the_frechet_distance_in_the_digits_space():
    """features='digits': the Fréchet distance of the digits classifier's features of the
    validation rows and as many seeded draws (the training random stream untouched); a
    generator of real digits sits near the real-vs-real floor, uniform noise far above it.
    Without
    features: the MMD on the data, as before."""
    from ppgen.data import load_digits
    from ppgen.metrics import fd_floor, feature_space, frechet_distance_of, mmd2

    digits = load_digits("continuous")
    real = ProgramModel(resampler(digits.train), (64,))
    objective = Adversarial(features="digits")
    state = torch.get_rng_state()
    metric = objective.validation_metric(real, digits.val)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(objective.validation_seed)
    draws = simulate(real, digits.val)
    space = feature_space("digits")
    assert float(metric) == pytest.approx(float(frechet_distance_of(digits.val, draws,
                                                                    space.embed)), rel=1e-6)
    floor = fd_floor(space)
    assert float(metric) < 2 * floor
    uniform = torch.rand(1000, 64, generator=torch.Generator().manual_seed(0))
    noise = ProgramModel(resampler(uniform), (64,))
    assert float(objective.validation_metric(noise, digits.val)) > 10 * floor
    on_data = Adversarial()
    assert float(on_data.validation_metric(real, digits.val)) == pytest.approx(
        float(mmd2(digits.val, draws)), rel=1e-6)
    assert objective.get_config()["features"] == "digits"
    assert "features" not in on_data.get_config()  # older runs' checkpoints still resume
    with pytest.raises(ppgen.PpgenError, match="unknown feature space 'inception'"):
        Adversarial(features="inception")
