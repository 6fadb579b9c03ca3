"""Conditional GAN, AC-GAN and InfoGAN: labels through the declared condition, the recognition
loss in both players, the mutual-information term in closed form at a uniform Q, the Q network
recovering the categorical code, sweeps, save/load and the command line."""

from __future__ import annotations

import math

import pytest
import torch

import ppgen
from ppgen.inference import make_objective
from ppgen.inference.adversarial import simulate, simulate_sites
from ppgen.models import ACGAN, CGAN, InfoGAN
from ppgen.objective import StepContext

pytestmark = pytest.mark.usefixtures("one_thread", "clean_param_store")

MLP = {"hidden_dims": (32, 32), "critic_dims": (32, 32)}
CRITIC, GENERATOR = StepContext(0, 1, ("critic",)), StepContext(0, 1, ("generator",))


def blobs(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three well-separated 2-D blobs (centres (-3, 0), (0, 3), (3, 0), sd 0.2) and their
    labels."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[-3.0, 0.0], [0.0, 3.0], [3.0, 0.0]])
    y = torch.randint(3, (n,), generator=g)
    return centres[y] + 0.2 * torch.randn(n, 2, generator=g), y


def adam(lr: float = 2e-3) -> dict:
    group = {"name": "adam", "lr": lr, "betas": [0.5, 0.999]}
    return {"generator": dict(group), "critic": dict(group)}


# --------------------------------------------------------------------------- programs
@pytest.mark.parametrize("cls", [CGAN, ACGAN])
def test_labels_are_the_declared_condition(cls):
    torch.manual_seed(0)
    gan = cls((8, 8), num_classes=10, latent_dim=8, network={"channels": 4})
    assert gan.conditions.names == ("y",) and gan.event_shape == (64,)
    assert gan.kind == ppgen.ModelKind.IMPLICIT and gan.weight_average == 0.99
    assert gan.sample(3, y=7).shape == (3, 64)
    torch.manual_seed(1)
    a = gan.eval().sample(4, y=[0, 1, 2, 3])
    torch.manual_seed(1)
    b = gan.sample(4, y=[0, 1, 2, 4])
    assert torch.equal(a[:3], b[:3]) and not torch.equal(a[3], b[3])  # the label is an input
    flat = cls(2, num_classes=3, network=MLP)
    assert flat.output == "identity" and flat.weight_average is None
    assert flat.sample(6).shape == (6, 2)  # the classes in turn


def test_bad_labels_are_data_errors_naming_the_class_range():
    gan = CGAN(2, num_classes=3, network=MLP)
    x, y = blobs(20)
    with pytest.raises(ppgen.DataError, match=r"class range 0\.\.2"):
        ppgen.fit(gan, x, labels=y + 1, epochs=1, progress=False)
    with pytest.raises(ppgen.DataError, match=r"class range 0\.\.2"):
        gan.sample(2, y=3)
    with pytest.raises(ppgen.ModelError, match="pass the labels"):
        ppgen.fit(gan, x, epochs=1, progress=False)
    with pytest.raises(ppgen.ModelError, match="num_classes"):
        ACGAN(2, num_classes=1)
    with pytest.raises(ppgen.ModelError, match="unknown network option"):
        CGAN((8, 8), network={"hidden_dims": (8,)})


def test_the_projection_critic_reads_the_label():
    torch.manual_seed(0)
    gan = CGAN(2, num_classes=3, network=MLP)
    x = torch.randn(5, 2)
    a = gan.critic(x, torch.zeros(5, dtype=torch.long))
    b = gan.critic(x, torch.ones(5, dtype=torch.long))
    assert a.shape == (5, 1) and not torch.allclose(a, b)
    score, recognized = gan.critic_outputs(gan.critic, x, y=torch.zeros(5, dtype=torch.long))
    assert torch.allclose(score, a.reshape(5)) and recognized == {}


# --------------------------------------------------------------------------- the objective
def test_the_class_loss_enters_both_players():
    """AC-GAN: the critic's loss is the adversarial loss plus λ (class loss on data + on
    draws), the generator's plus λ class loss on draws; λ = 0 removes it."""
    torch.manual_seed(0)
    gan = ACGAN(2, num_classes=3, network=MLP, class_weight=0.5)
    x, y = blobs(16)
    objective = make_objective("adversarial", **gan.objective_defaults)
    plain = make_objective("adversarial", **{**gan.objective_defaults, "info_weight": 0.0})
    for context in (CRITIC, GENERATOR):
        torch.manual_seed(3)
        out = objective.losses(gan, x, context, y=y)
        torch.manual_seed(3)
        base = plain.losses(gan, x, context, y=y)
        assert torch.allclose(out["loss"], base["loss"] + 0.5 * out["info"], atol=1e-6)
    # the generator's term is the class loss of its draws under the classifier
    torch.manual_seed(3)
    fake = simulate(gan, x, {"y": y})
    logits = gan.critic.heads(fake)[1]
    expected = torch.nn.functional.cross_entropy(logits, y)
    assert torch.allclose(out["info"], expected, atol=1e-6)
    out["loss"].backward()
    assert gan.generator[0][0].weight.grad is not None


def test_the_mutual_information_term_is_log_k_at_a_uniform_q():
    """With Q's head at zero every category has probability 1/K, so E[-log q(c | x)] = log K
    exactly (and the bound L_I = H(c) - log K = 0)."""
    torch.manual_seed(0)
    gan = InfoGAN(2, categories=5, continuous=0, network=MLP)
    torch.nn.init.zeros_(gan.critic.aux.weight)
    torch.nn.init.zeros_(gan.critic.aux.bias)
    objective = make_objective("adversarial", **gan.objective_defaults)
    x, _ = blobs(32)
    for context in (CRITIC, GENERATOR):
        info = objective.losses(gan, x, context)["info"]
        assert info.item() == pytest.approx(math.log(5), abs=1e-6)
    sites = simulate_sites(gan, x)
    assert sites["code"].shape == (32,) and sites["x"].shape == (32, 2)


# --------------------------------------------------------------------------- training
def test_an_acgan_learns_which_blob_each_label_is():
    """Three labelled blobs, 600 steps: draws of label c lie nearest blob c (≥ 90%), and the
    auxiliary classifier labels the data correctly (≥ 90%)."""
    x, y = blobs(3000)
    torch.manual_seed(0)
    gan = ACGAN(2, num_classes=3, latent_dim=4, network=MLP)
    history = ppgen.fit(gan, x, x[:300], labels=y, val_labels=y[:300], epochs=20,
                        batch_size=100, optimizer=adam(), device="cpu", progress=False)
    assert history.best_val == history.best_val  # the MMD of labelled draws, finite
    torch.manual_seed(1)
    labels = torch.arange(3).repeat_interleave(100)
    draws = gan.sample(300, y=labels)
    centres = torch.tensor([[-3.0, 0.0], [0.0, 3.0], [3.0, 0.0]])
    nearest = torch.cdist(draws, centres).argmin(1)
    assert (nearest == labels).float().mean() >= 0.9
    assert (gan.classify(x[:300]) == y[:300]).float().mean() >= 0.9


@pytest.mark.parametrize("weight, low, high", [(1.0, 0.9, 1.0), (0.0, 0.0, 0.7)])
def test_q_recovers_the_categorical_code_with_the_mi_term(weight, low, high):
    """Three unlabelled blobs, 300 steps: with λ = 1 Q names the code of the generator's draws
    (≥ 90%, chance 1/3); with λ = 0 nothing trains Q and it does not (≤ 70%)."""
    x, _ = blobs(3000)
    torch.manual_seed(0)
    gan = InfoGAN(2, categories=3, continuous=1, latent_dim=4, network=MLP, info_weight=weight)
    ppgen.fit(gan, x, epochs=10, batch_size=100, optimizer=adam(), device="cpu",
              progress=False, patience=False)
    torch.manual_seed(1)
    sites = simulate_sites(gan, torch.zeros(600, 2))
    accuracy = (gan.infer_code(sites["x"]) == sites["code"]).float().mean()
    assert low <= accuracy <= high


# --------------------------------------------------------------------------- sweeps
def test_a_sweep_changes_one_code_and_holds_the_rest():
    torch.manual_seed(0)
    gan = InfoGAN((8, 8), categories=4, continuous=2, latent_dim=4, network={"channels": 4})
    gan.eval()
    rows = gan.sweep("code", [1, 1, 2], n=5, seed=3)
    assert rows.shape == (3, 5, 64)
    assert torch.equal(rows[0], rows[1]) and not torch.equal(rows[0], rows[2])
    assert torch.equal(gan.sweep("code", [1], n=5, seed=3)[0], rows[0])  # reproducible
    style = gan.sweep("style", [-1.0, 0.0, 1.0], n=5, dim=1, seed=3)
    assert style.shape == (3, 5, 64) and not torch.equal(style[0], style[2])
    with pytest.raises(ppgen.ModelError, match="unknown code"):
        gan.sweep("colour", [0])
    with pytest.raises(ppgen.ModelError, match=r"0\.\.3"):
        gan.sweep("code", [4])
    with pytest.raises(ppgen.ModelError, match=r"dim must lie in 0\.\.1"):
        gan.sweep("style", [0.0], dim=2)
    figure = gan.sweep_figure("code", [0, 1, 2, 3], n=3)
    assert len(figure.axes) == 12
    with pytest.raises(ppgen.ModelError, match="flat data"):
        InfoGAN(2, network=MLP).sweep_figure("code", [0])


# --------------------------------------------------------------------------- save / load / CLI
@pytest.mark.parametrize("build", [
    lambda: CGAN((8, 8), num_classes=4, latent_dim=8, network={"channels": 4},
                 num_levels=17, loss="hinge"),
    lambda: ACGAN(2, num_classes=3, network=MLP, class_weight=0.3),
    lambda: InfoGAN((8, 8), categories=3, continuous=1, latent_dim=8,
                    network={"channels": 4}, info_weight=0.5),
])
def test_save_and_load(tmp_path, build):
    gan = build().eval()
    gan.save(tmp_path / "gan.pt")
    loaded = ppgen.load(tmp_path / "gan.pt").eval()
    assert type(loaded) is type(gan) and loaded.get_config() == gan.get_config()
    assert loaded.objective_defaults == gan.objective_defaults
    for name, value in gan.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[name]), name  # critic and heads
    torch.manual_seed(3)
    a = gan.sample(4)
    torch.manual_seed(3)
    assert torch.equal(loaded.sample(4), a)


@pytest.mark.parametrize("name", ["cgan", "acgan", "infogan"])
def test_the_command_line_fits_them_on_the_digits(tmp_path, name):
    from ppgen.cli import main

    out = tmp_path / name
    code = main(["fit", name, "--data", "digits", "--representation", "continuous",
                 "--epochs", "1", "--set", "latent_dim=8", "--set", 'network={"channels": 4}',
                 "--out", str(out), "--no-progress"])
    assert code == 0
    model = ppgen.load(out / "model.pt")
    assert model.name == name and model.image_shape == (1, 8, 8)
    assert model.sample(2).shape == (2, 64)
