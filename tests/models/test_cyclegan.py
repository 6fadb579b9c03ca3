"""CycleGAN: the cycle-consistency of an exact inverse pair (zero, and exactly the broken
offset when broken), the losses of both players, the history buffer, translate's shapes and
errors, the implicit-model refusals, save/load and an exact resume."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import ppgen
from ppgen.data.domains import DomainSplits, load_digit_domains
from ppgen.inference import make_objective
from ppgen.inference.translation import HistoryBuffer, Translation, translation_error
from ppgen.models import CycleGAN
from ppgen.objective import StepContext

pytestmark = pytest.mark.usefixtures("one_thread", "clean_param_store")

TINY = {"network": {"channels": 4, "num_blocks": 1}, "critic_channels": 4}
CRITIC, GENERATOR = StepContext(0, 1, ("critic",)), StepContext(0, 1, ("generator",))


class Invert(nn.Module):
    """``x ↦ 1 - x + offset``: the exact inversion map (offset 0) or a broken one."""

    def __init__(self, offset: float = 0.0) -> None:
        super().__init__()
        self.offset = nn.Parameter(torch.tensor(offset))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1 - x + self.offset


def inverse_pair(offset: float = 0.0) -> CycleGAN:
    model = CycleGAN(("original", "inverted"), (8, 8), **TINY)
    model.generators = nn.ModuleList([Invert(), Invert(offset)])
    return model


def rows(n: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return 0.2 + 0.6 * torch.rand(n, 64, generator=g), torch.arange(n) % 2


@pytest.fixture(scope="module")
def small() -> DomainSplits:
    """Original ↔ inverted digits: 96 training rows, 2 x 24 paired validation rows."""
    s = load_digit_domains(["original", "inverted"], seed=0)
    keep = torch.randperm(1000, generator=torch.Generator().manual_seed(0))[:96]
    val = torch.cat([s.block("val", 0)[:24], s.block("val", 1)[:24]])
    return DomainSplits(s.train[keep], val, s.test, s.info, domains=s.domains, paired=True,
                        labels={"train": s.labels["train"][keep],
                                "val": torch.arange(2).repeat_interleave(24)})


# --------------------------------------------------------------------------- the losses
def test_an_exact_inverse_pair_is_cycle_consistent():
    x, d = rows()
    objective = make_objective("translation", identity_weight=1.0)
    out = objective(inverse_pair())(x, GENERATOR, {"domain": d})
    assert float(out["cycle"]) < 1e-7  # zero up to float32 rounding of 1 - (1 - x)
    assert torch.isclose(out["identity"], (1 - 2 * x).abs().mean())  # G_d(x) = 1 - x ≠ x
    assert float(objective.validation_metric(inverse_pair(), x, domain=d)) < 1e-7


@pytest.mark.parametrize("offset", [0.05, -0.1])
def test_a_broken_inverse_pair_has_exactly_its_offset_as_cycle_loss(offset):
    x, d = rows()
    out = make_objective("translation")(inverse_pair(offset))(x, GENERATOR, {"domain": d})
    assert torch.isclose(out["cycle"], torch.tensor(abs(offset)))
    out["loss"].backward()  # the offset parameter gets the cycle loss's gradient


def test_the_translation_error_of_paired_data_is_zero_for_the_true_map():
    x, _ = rows(10)
    paired = torch.cat([x, 1 - x])
    domain = torch.arange(2).repeat_interleave(10)
    assert float(translation_error(inverse_pair(), paired, domain)) < 1e-7
    assert torch.isclose(translation_error(inverse_pair(0.1), paired, domain),
                         torch.tensor(0.05))  # one direction of two is off by 0.1
    with pytest.raises(ppgen.TrainingError, match="paired validation"):
        translation_error(inverse_pair(), paired, domain.flip(0))


def test_both_players_and_their_parameter_groups():
    torch.manual_seed(0)
    model = CycleGAN(("a", "b"), (8, 8), **TINY)
    objective = make_objective(model.default_objective, **model.objective_defaults)
    assert isinstance(objective, Translation) and objective.pool.size == 50
    groups = objective.param_groups(model)
    assert {id(p) for p in groups["critic"]} == {id(p) for p in model.critic.parameters()}
    assert len(groups["generator"]) == len(list(model.generators.parameters()))
    assert objective.updates(0, ("generator", "critic")) == [("critic",), ("generator",)]
    x, d = rows()
    bound = objective(model)
    critic = bound(x, CRITIC, {"domain": d})
    generator = bound(x, GENERATOR, {"domain": d})
    assert set(critic) == {"loss", "gap"} and set(generator) == {"loss", "cycle"}
    assert objective.pool.filled.sum() > 0  # the critic step stored its translations


def test_each_row_is_scored_by_its_domains_critic():
    torch.manual_seed(0)
    model = CycleGAN(("a", "b"), (8, 8), **TINY)
    x, d = rows(6)
    score, seen = model.critic_outputs(model.critic, x, domain=d)
    by_critic = [c(x).reshape(-1) for c in model.critic.critics]
    assert seen == {} and torch.equal(score, torch.where(d == 0, *by_critic))
    translated = model.translate_rows(x, 1 - d)
    assert torch.allclose(translated[0], model.generators[1](x[:1])[0], atol=1e-6)


def test_the_history_buffer_replays_earlier_translations_half_of_the_time():
    torch.manual_seed(0)
    pool = HistoryBuffer(200)
    pool.allocate((3,), torch.zeros(1))
    first = torch.zeros(100, 3)
    out, _ = pool.query(first, torch.zeros(100, dtype=torch.long))
    assert torch.equal(out, first)  # an empty pool hands the new images through
    for _ in range(20):
        pool.query(torch.zeros(100, 3), torch.zeros(100, dtype=torch.long))
    new = torch.ones(1000, 3)
    out, domains = pool.query(new, torch.ones(1000, dtype=torch.long))
    replayed = (out[:, 0] == 0).float().mean()
    assert 0.4 < replayed < 0.6 and torch.equal(domains == 0, out[:, 0] == 0)
    assert {"images", "domains", "filled"} <= set(pool.state_dict())
    assert torch.equal(HistoryBuffer(0).query(new, domains)[0], new)


# --------------------------------------------------------------------------- the model
def test_translate_shapes_and_errors():
    torch.manual_seed(0)
    model = CycleGAN(("original", "bold"), (8, 8), **TINY).eval()
    x = torch.rand(5, 64)
    assert model.translate(x, "bold").shape == (5, 64)
    assert torch.equal(model.translate(x, 1), model.translate(x.reshape(5, 8, 8), "bold"))
    assert not torch.equal(model.translate(x, 0), model.translate(x, 1))
    with pytest.raises(ppgen.ModelError, match="translates between original, bold"):
        model.translate(x, "thin")
    with pytest.raises(ppgen.ModelError, match="index in 0..1"):
        model.translate(x, 2)
    with pytest.raises(ppgen.DataError, match="rows of shape"):
        model.translate(torch.rand(5, 36), "bold")
    with pytest.raises(ppgen.DataError, match="integers"):
        model.translate(torch.zeros(5, 64, dtype=torch.long), "bold")
    with pytest.raises(ppgen.DataError, match=r"\[0, 1\]"):
        model.translate(2 * x, "bold")
    with pytest.raises(ppgen.ModelError, match="StarGAN"):
        CycleGAN(("a", "b", "c"))


def test_it_is_implicit_and_names_translate_when_asked_to_sample():
    model = CycleGAN(("original", "bold"), (8, 8), **TINY)
    with pytest.raises(ppgen.ModelError, match=r"model.translate\(x, target="):
        model.sample(4)
    with pytest.raises(ppgen.ImplicitModelError):
        ppgen.log_likelihood(model, torch.rand(3, 64))
    assert model.conditions.names == ("domain",)


def fit(model, data, **options):
    return ppgen.fit(model, data.train, data.val, labels=data.labels["train"],
                     val_labels=data.labels["val"], progress=False, batch_size=32,
                     **options)


def test_fit_save_load_and_an_exact_resume(small, tmp_path):
    def build():
        torch.manual_seed(0)
        return CycleGAN.for_data(small.info, domains=small.domains, paired=True, pool_size=8,
                                 **TINY)

    whole = build()
    history = fit(whole, small, epochs=2, out_dir=tmp_path / "whole", seed=1)
    assert len(history) == 2 and history.best_val is not None
    halves = build()
    fit(halves, small, epochs=1, out_dir=tmp_path / "halves", seed=1)
    resumed = build()
    fit(resumed, small, epochs=2, out_dir=tmp_path / "halves", seed=1, resume=True)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    loaded = ppgen.load(tmp_path / "whole" / "model.pt")
    assert isinstance(loaded, CycleGAN) and loaded.domains == ("original", "inverted")
    x = small.val[:4]
    assert torch.equal(loaded.translate(x, "inverted"), whole.eval().translate(x, "inverted"))


def test_the_translation_objective_refuses_a_model_without_domains():
    from ppgen.models import GAN

    with pytest.raises(ppgen.ModelError, match="trains translation models"):
        Translation()(GAN(4, latent_dim=2, hidden_dims=(8,), critic_dims=(8,)))
    with pytest.raises(ppgen.ModelError, match="not a translation model"):
        GAN(4, latent_dim=2, hidden_dims=(8,), critic_dims=(8,)).translate_rows(
            torch.zeros(1, 4), torch.zeros(1, dtype=torch.long))
