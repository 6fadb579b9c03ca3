"""ALI / BiGAN on user program pairs: the optimal joint critic in closed form, the losses, the
encoder inverting the generator on a linear-Gaussian problem, clear errors.

Training tests are one seeded run each (failure budget: the seed may be bumped once); their
tolerances are several times the errors the run shows and far below an untrained pair's.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch

import ppgen
from ppgen.inference import ALI, ProgramPair, make_objective, mlp_critic
from ppgen.inference.adversarial import AdversarialLoss, critic_losses, generator_loss
from ppgen.inference.ali import encoder_loss, joint_pairs
from ppgen.objective import StepContext

pytestmark = pytest.mark.usefixtures("one_thread", "clean_param_store")


# ----------------------------------------------------------------------------- fixed Gaussians
def gaussian_model(x):
    """``z ~ N(0, 1)``, ``x | z ~ N(0.8 z, 0.6²)``: joint covariance [[1, .8], [.8, 1]]."""
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 1), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(0.8 * z, 0.6).to_event(1), obs=x)


def gaussian_guide(x):
    """``z | x ~ N(0.5 x, 0.5)``: with data ``x ~ N(0, 1)``, covariance [[1, .5], [.5, .75]]."""
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(0.5 * x, 0.5**0.5).to_event(1))


def test_the_trained_critic_is_the_log_density_ratio_of_the_two_joints():
    """The logistic critic's optimum is log q(x, z) - log p(x, z) (encoder joint over decoder
    joint), both Gaussian here: after 600 critic steps its RMSE on pairs from both joints is
    below a quarter of the ratio's spread (run: ~0.1 against ~0.6) and they correlate > 0.95."""
    torch.manual_seed(0)
    pair = ProgramPair(gaussian_model, gaussian_guide, event_shape=(1,))
    objective = ALI(critic=mlp_critic(2))
    with torch.no_grad():  # 600 batches of 256 pairs of each kind, drawn in one run
        enc, gen = joint_pairs(pair, torch.randn(600 * 256, 1), {})
    opt = torch.optim.Adam(objective.critic.parameters(), lr=3e-3)
    for rows in torch.arange(len(enc)).split(256):
        d_enc, d_gen = objective.critic(enc[rows]), objective.critic(gen[rows])
        loss = critic_losses(objective.loss_kind, d_enc.squeeze(1), d_gen.squeeze(1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    q = dist.MultivariateNormal(torch.zeros(2), torch.tensor([[1.0, 0.5], [0.5, 0.75]]))
    p = dist.MultivariateNormal(torch.zeros(2), torch.tensor([[1.0, 0.8], [0.8, 1.0]]))
    g = torch.Generator().manual_seed(1)
    v = torch.cat([q.mean + torch.randn(2000, 2, generator=g) @ q.scale_tril.T,
                   p.mean + torch.randn(2000, 2, generator=g) @ p.scale_tril.T])
    true = q.log_prob(v) - p.log_prob(v)
    with torch.no_grad():
        logit = objective.critic(v).squeeze(1)
    assert (logit - true).square().mean().sqrt() < true.std() / 4
    assert torch.corrcoef(torch.stack([logit, true]))[0, 1] > 0.95


def test_the_pairs_and_the_losses():
    """Encoder pairs are [x, z ~ q(z|x)], decoder pairs [x ~ p(x|z), z ~ p(z)]; for minimax the
    generator player's loss is the negative of the critic's, for every loss the encoder's side
    mirrors the generator's."""
    torch.manual_seed(0)
    pair = ProgramPair(gaussian_model, gaussian_guide, event_shape=(1,))
    x = torch.randn(4000, 1)
    enc, gen = joint_pairs(pair, x, {}, check=True)
    assert enc.shape == gen.shape == (4000, 2) and torch.equal(enc[:, 0], x[:, 0])
    assert torch.allclose(torch.cov(enc.T), torch.tensor([[1.0, 0.5], [0.5, 0.75]]), atol=0.08)
    assert torch.allclose(torch.cov(gen.T), torch.tensor([[1.0, 0.8], [0.8, 1.0]]), atol=0.08)
    d_enc, d_gen = torch.randn(8), torch.randn(8)
    minimax = AdversarialLoss.MINIMAX
    player = generator_loss(minimax, d_gen) + encoder_loss(minimax, d_enc)
    assert torch.allclose(player, -critic_losses(minimax, d_enc, d_gen))
    ns = AdversarialLoss.NON_SATURATING  # -log σ(d_gen) - log(1 - σ(d_enc))
    expected = -(torch.sigmoid(d_gen).log().mean() + (1 - torch.sigmoid(d_enc)).log().mean())
    assert torch.allclose(generator_loss(ns, d_gen) + encoder_loss(ns, d_enc), expected)
    assert torch.allclose(encoder_loss(AdversarialLoss.WGAN_GP, d_enc), d_enc.mean())
    objective = make_objective("ali", loss="hinge", critic=mlp_critic(2))
    out = objective.losses(pair, x[:16], StepContext(0, 1, ("generator",)))
    assert {"loss", "loss_decoder", "loss_encoder"} <= set(out)
    assert "info_weight" not in objective.get_config()


# ----------------------------------------------------------------------------- learning
def linear_model(x):
    w = pyro.param("w", torch.tensor(0.5))
    b = pyro.param("b", torch.tensor(0.0))
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 1), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(w * z + b, 0.1).to_event(1), obs=x)


def linear_encoder(x):
    a = pyro.param("a", torch.tensor(0.5))
    c = pyro.param("c", torch.tensor(0.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Delta(a * x + c).to_event(1))


def test_the_encoder_inverts_the_generator_on_a_linear_gaussian_problem():
    """x ~ N(0.5, 1.5²); generator x = w z + b (+ 0.1 noise), deterministic encoder z = a x + c,
    trained by ppgen.fit from a user's program pair: E(G(z)) recovers z (mean squared error
    below 0.02; run: < 0.001; untrained: 0.56) and the generator's scale grows towards 1.5."""
    torch.manual_seed(0)
    x = 0.5 + 1.5 * torch.randn(1024, 1, generator=torch.Generator().manual_seed(0))
    pair = ProgramPair(linear_model, linear_encoder, event_shape=(1,))
    adam = {"name": "adam", "betas": [0.5, 0.999]}
    ppgen.fit(pair, x, objective=ALI(critic=mlp_critic(2, (32, 32))), epochs=25,
              batch_size=128, lr=5e-3, optimizer={"generator": adam, "critic": adam},
              device="cpu", seed=0, progress=False)
    p = pair.constrained()
    z = torch.randn(5000)
    recovered = p["guide"]["a"] * (p["model"]["w"] * z + p["model"]["b"]) + p["guide"]["c"]
    assert (recovered - z).square().mean() < 0.02, p
    assert p["model"]["w"].abs() > 0.9, p


def test_clear_errors():
    def noise_only(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("u", dist.Normal(x.new_zeros(x.shape[0], 1), 1.0).to_event(1))

    objective = ALI(critic=mlp_critic(2))
    pair = ProgramPair(gaussian_model, noise_only, event_shape=(1,))
    with pytest.raises(ppgen.ModelError, match="samples none of its model's latent sites"):
        objective.losses(pair, torch.randn(4, 1), StepContext(0, 1, ("critic",)))

    def binary_model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Bernoulli(x.new_full((x.shape[0], 1), 0.5)).to_event(1))
            pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)

    def binary_guide(x):
        p = pyro.param("p", torch.tensor(0.5), constraint=dist.constraints.unit_interval)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Bernoulli(p.expand(x.shape[0], 1)).to_event(1))

    pair = ProgramPair(binary_model, binary_guide, event_shape=(1,))
    with pytest.raises(ppgen.ModelError, match="no rsample"):
        ALI(critic=mlp_critic(2)).losses(pair, torch.randn(4, 1), StepContext(0, 1, ("critic",)))
