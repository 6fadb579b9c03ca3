"""Adversarial variational Bayes on a user's model/guide pair, against a conjugate posterior.

The model is a per-datum Normal–Normal pair, ``z_n ~ N(0, 1)``, ``x_n | z_n ~ N(z_n, σ²)``
(σ = 0.5), whose posterior is ``N(x_n / (1 + σ²), σ² / (1 + σ²)) = N(0.8 x_n, 0.2)``.
Each training test is one seeded run (seed fixed; failure budget: the seed may be bumped once);
its tolerances are about three times the errors the run shows, and far below what a guide that
ignores the critic (or a critic that ignores the guide) reaches.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

import ppgen
from ppgen.inference import AVB, ProgramPair, avb_critic, make_objective
from ppgen.inference.program_pair import guide_trace
from ppgen.objective import StepContext

pytestmark = pytest.mark.usefixtures("one_thread", "clean_param_store")

SIGMA = 0.5
POST_VAR = SIGMA**2 / (1 + SIGMA**2)  # 0.2
POST_SLOPE = 1 / (1 + SIGMA**2)  # 0.8


def model(x):
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 1), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z, SIGMA).to_event(1), obs=x)


class NoiseGuide(nn.Module):
    """An implicit guide: ``z = f([x, eps])``, ``eps ~ N(0, I_2)``: no density."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            eps = pyro.sample("eps", dist.Normal(x.new_zeros(x.shape[0], 2), 1.0).to_event(1))
            return pyro.sample("z", dist.Delta(self.net(torch.cat([x, eps], -1))).to_event(1))


def gaussian_guide(x):
    a = pyro.param("a", torch.tensor(0.3))
    s = pyro.param("s", torch.tensor(0.8), constraint=dist.constraints.positive)
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(a * x, s).to_event(1))


def data(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, generator=g) + SIGMA * torch.randn(n, 1, generator=g)


def test_an_implicit_guide_recovers_the_conjugate_posterior():
    """At x = -1, -0.5, 0, 0.5, 1: posterior means within 0.12 of 0.8 x (a quarter of the
    posterior sd), each variance within a factor 1.6 of 0.2 and their average within 15%
    (seeds 0, 1, 2 of this recipe: mean errors ≤ 0.06, variances 0.14-0.28, averages within
    7%)."""
    torch.manual_seed(0)
    pair = ProgramPair(model, NoiseGuide(), event_shape=(1,))
    history = ppgen.fit(pair, data(1024), objective=AVB(critic=avb_critic(1, 1), n_critic=2),
                        epochs=60, batch_size=256, lr=3e-3, lr_schedule="cosine",
                        device="cpu", seed=0, progress=False)
    assert len(history) == 60
    x = torch.linspace(-1, 1, 5).unsqueeze(1)
    with torch.no_grad():  # 4,000 draws at each x, in one run of the guide
        z = guide_trace(pair, x.repeat(4000, 1), {}).nodes["z"]["value"].reshape(4000, 5)
    mean, var = z.mean(0), z.var(0)
    assert (mean - POST_SLOPE * x.squeeze(1)).abs().max() < 0.12, mean
    assert ((var / POST_VAR).log().abs() < torch.tensor(1.6).log()).all(), var
    assert abs(var.mean() / POST_VAR - 1) < 0.15, var


def test_the_critic_approaches_the_true_log_density_ratio():
    """A Gaussian guide flagged implicit (its density hidden from the objective): AVB fits its
    slope and scale to the posterior's (0.8, √0.2) and the critic to log q(z|x) - log p(z),
    whose closed form the test knows: RMSE below a third of the ratio's spread (run: ~0.2)."""
    torch.manual_seed(0)
    pair = ProgramPair(model, gaussian_guide, event_shape=(1,), implicit_guide=True)
    objective = AVB(critic=avb_critic(1, 1), n_critic=2)
    ppgen.fit(pair, data(1024), objective=objective, epochs=40, batch_size=128,
              lr={"model": 1e-2, "critic": 2e-3}, lr_schedule="cosine", device="cpu", seed=0,
              progress=False)
    q = pair.constrained()["guide"]
    assert abs(q["a"] - POST_SLOPE) < 0.1 and abs(q["s"] - POST_VAR**0.5) < 0.1, q
    g = torch.Generator().manual_seed(1)
    x = 1.1 * torch.randn(4000, 1, generator=g)
    z = q["a"] * x + q["s"] * torch.randn(4000, 1, generator=g)
    true = (dist.Normal(q["a"] * x, q["s"]).log_prob(z) - dist.Normal(0.0, 1.0).log_prob(z))
    with torch.no_grad():
        estimate = objective.log_ratio(x, z)
    error = (estimate - true.squeeze(1)).square().mean().sqrt()
    assert error < true.std() / 3, (error, true.std())


def test_the_losses_are_the_papers():
    """Critic: logistic regression of q-pairs against prior pairs; model: -E[log p(x|z) - T]."""
    torch.manual_seed(0)
    pair = ProgramPair(model, gaussian_guide, event_shape=(1,))
    objective = make_objective("avb", critic=avb_critic(1, 1))
    x = data(16)
    assert set(objective.param_groups(pair)) == {"model", "critic"}
    assert objective.updates(0, ("model", "critic")) == [("critic",), ("model",)]
    torch.manual_seed(1)
    out = objective.losses(pair, x, StepContext(0, 1, ("model",)))
    torch.manual_seed(1)
    z = guide_trace(pair, x, {}).nodes["z"]["value"]
    log_lik = dist.Normal(z, SIGMA).log_prob(x).sum(-1)
    expected = -(log_lik - objective.critic(torch.cat([x, z], 1)).squeeze(1)).mean()
    assert torch.allclose(out["loss"], expected, atol=1e-5)
    critic = objective.losses(pair, x, StepContext(0, 1, ("critic",)))
    assert critic["loss"].shape == () and critic["loss"] > 0
    assert objective.validation_loss(pair, x).shape == (16,)


def test_clear_errors():
    with pytest.raises(ppgen.TrainingError, match="needs a critic"):
        AVB()
    pair = ProgramPair(model, gaussian_guide, event_shape=(1,), implicit_guide=True)
    with pytest.raises(ppgen.ImplicitModelError, match="no density"):
        ppgen.elbo(pair, None, data(4))

    def discrete_guide(x):
        p = pyro.param("p", torch.tensor(0.5), constraint=dist.constraints.unit_interval)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Bernoulli(p.expand(x.shape[0], 1)).to_event(1))

    bad = ProgramPair(model, discrete_guide, event_shape=(1,))
    with pytest.raises(ppgen.ModelError, match="no rsample"):
        AVB(critic=avb_critic(1, 1)).losses(bad, data(4), StepContext(0, 1, ("model",)))

    def global_model(x):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(z, SIGMA).expand([x.shape[0], 1]).to_event(1), obs=x)

    def global_guide(x):
        pyro.sample("z", dist.Normal(pyro.param("m", torch.tensor(0.0)), 1.0))

    pair = ProgramPair(global_model, global_guide, event_shape=(1,))
    with pytest.raises(ppgen.ModelError, match="global latents"):
        AVB(critic=avb_critic(1, 1)).losses(pair, data(4), StepContext(0, 1, ("model",)))


def test_the_example_runs():
    from testkit import load_example

    example = load_example("avb_conjugate")
    pair = example.train(example.ImplicitGuide(), AVB(critic=avb_critic(1, 1)), epochs=1)
    rows = example.posterior_table(pair, torch.tensor([[0.0], [1.0]]), draws=100)
    assert [len(r) for r in rows] == [5, 5] and rows[1][2] == pytest.approx(0.8)


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    """The critic is the objective's state: it is checkpointed with the pair's parameters, and
    a run stopped after 2 epochs and resumed to 4 equals a run of 4 (bit for bit)."""

    def run(epochs: int, resume: bool, out, init_seed: int = 0):
        torch.manual_seed(init_seed)
        pair = ProgramPair(model, NoiseGuide(), event_shape=(1,))
        objective = AVB(critic=avb_critic(1, 1))
        ppgen.fit(pair, data(256), data(64), objective=objective, epochs=epochs,
                  batch_size=128, out_dir=out, resume=resume, device="cpu", seed=0,
                  progress=False)
        return [*pair.state_dict().values(), *objective.state_dict().values()]

    whole = run(4, False, tmp_path / "whole")
    run(2, False, tmp_path / "halves")
    resumed = run(4, True, tmp_path / "halves", init_seed=5)  # weights come from the file
    assert all(torch.equal(a, b) for a, b in zip(whole, resumed))
