"""StarGAN: one generator conditioned on the target, the reconstruction loss of an exact
inverse (zero, and its offset when broken), the domain classifier in both players, WGAN-GP's
schedule, translation into every domain, save/load."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import ppgen
from ppgen.inference import make_objective
from ppgen.inference.translation import Translation, other_domains
from ppgen.models import StarGAN
from ppgen.objective import StepContext

pytestmark = pytest.mark.usefixtures("one_thread", "clean_param_store")

TINY = {"network": {"channels": 4, "num_blocks": 1}, "critic_channels": 4}
CRITIC, GENERATOR = StepContext(0, 1, ("critic",)), StepContext(4, 1, ("generator",))


class Invert(nn.Module):
    """``G(x, c) = 1 - x + offset · c_1``: the exact inversion between two domains (offset 0)
    or one broken into domain 1."""

    def __init__(self, offset: float = 0.0) -> None:
        super().__init__()
        self.offset = nn.Parameter(torch.tensor(offset))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return 1 - x + self.offset * c[:, 1:2]


def inverse(offset: float = 0.0) -> StarGAN:
    model = StarGAN(("original", "inverted"), (8, 8), **TINY)
    model.generator = Invert(offset)
    return model


def rows(n: int = 12, k: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return 0.2 + 0.6 * torch.rand(n, 64, generator=g), torch.arange(n) % k


def objective_of(model: StarGAN) -> Translation:
    return make_objective(model.default_objective, **model.objective_defaults)


@pytest.mark.parametrize("offset", [0.0, 0.1])
def test_the_reconstruction_loss_of_an_exact_inverse(offset):
    x, d = rows()
    model = inverse(offset)
    out = objective_of(model)(model)(x, GENERATOR, {"domain": d})
    assert abs(float(out["cycle"]) - offset) < 1e-6  # 0 for the exact inverse
    paired = torch.cat([x, 1 - x])
    domain = torch.arange(2).repeat_interleave(12)
    error = Translation(paired=True).validation_metric(model, paired, domain=domain)
    assert abs(float(error) - offset / 2) < 1e-6


def test_the_recipe_wgan_gp_with_a_domain_classifier_in_both_players():
    torch.manual_seed(0)
    model = StarGAN(("a", "b", "c"), (8, 8), **TINY)
    objective = objective_of(model)
    assert (objective.loss_kind.value, objective.n_critic, objective.gp_weight) == (
        "wgan-gp", 5, 10.0)
    assert objective.pool.size == 0 and objective.identity_weight == 0
    groups = ("generator", "critic")
    assert [objective.updates(s, groups) for s in (0, 4)] == [
        [("critic",)], [("critic",), ("generator",)]]
    x, d = rows(9, 3)
    bound = objective(model)
    critic = bound(x, CRITIC, {"domain": d})
    assert {"loss", "gap", "class", "penalty"} == set(critic)
    score, seen = model.critic_outputs(model.critic, x)
    expected = -seen["domain"].log_prob(d).mean()
    assert torch.isclose(critic["class"], expected)  # the critic learns the real domains
    generator = bound(x, GENERATOR, {"domain": d})
    assert {"loss", "cycle", "class"} == set(generator)
    generator["loss"].backward()
    assert all(p.grad is not None for p in model.generator.parameters())


def test_targets_are_other_domains():
    torch.manual_seed(0)
    d = torch.arange(3000) % 3
    t = other_domains(d, 3)
    assert not (t == d).any()
    assert torch.equal(other_domains(d % 2, 2), 1 - d % 2)
    counts = torch.bincount(t[d == 0], minlength=3)
    assert counts[0] == 0 and abs(int(counts[1]) - int(counts[2])) < 150


def test_one_generator_translates_into_every_domain():
    torch.manual_seed(0)
    model = StarGAN(("original", "bold", "thin", "rotated"), (8, 8), **TINY).eval()
    x = torch.rand(3, 64)
    outs = [model.translate(x, name) for name in model.domains]
    assert all(o.shape == (3, 64) for o in outs)
    assert not torch.allclose(outs[0], outs[1])  # the target is an input
    assert model.conditions[0].num_classes == 4
    with pytest.raises(ppgen.ModelError, match="translates between original, bold, thin"):
        model.translate(x, "mirrored")
    with pytest.raises(ppgen.ModelError, match="translate"):
        model.sample(2)
    with pytest.raises(ppgen.ImplicitModelError):
        ppgen.log_likelihood(model, x)


def test_save_and_load(tmp_path):
    torch.manual_seed(0)
    model = StarGAN(("original", "bold", "thin"), (8, 8), paired=True, **TINY).eval()
    model.save(tmp_path / "star.pt")
    loaded = ppgen.load(tmp_path / "star.pt").eval()
    assert isinstance(loaded, StarGAN) and loaded.get_config() == model.get_config()
    x = torch.rand(4, 64)
    assert torch.equal(loaded.translate(x, "thin"), model.translate(x, "thin"))


def test_a_few_steps_train_through_ppgen_fit():
    torch.manual_seed(0)
    model = StarGAN(("a", "b", "c"), (8, 8), **TINY)
    x, d = rows(48, 3)
    history = ppgen.fit(model, x, x[:12], labels=d, val_labels=d[:12], epochs=2,
                        batch_size=16, progress=False)
    assert len(history) == 2 and history.records[-1]["val_loss"] > 0  # the cycle error
    with pytest.raises(ppgen.ModelError, match="domain"):
        ppgen.fit(StarGAN(("a", "b"), (8, 8), **TINY), x, epochs=1, progress=False)
