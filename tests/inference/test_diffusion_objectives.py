"""The denoising objectives: L_simple, L_hybrid (stop-gradient on the mean, importance-sampled
steps), the strided validation bound, registration, and training through the one engine
(with a resumed run equal to an uninterrupted one).
"""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from torch import nn

import ppgen
from ppgen.diffusion import hybrid_terms, make_betas
from ppgen.errors import ModelError
from ppgen.inference import OBJECTIVES, DiffusionHybrid, DiffusionSimple, make_objective
from ppgen.models import DDPM, ImprovedDDPM, IndependentCategorical
from ppgen.objective import StepContext

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL_MLP = {"width": 16, "blocks": 1}
DIRECT = {"head": "direct", **SMALL_MLP}  # the network's output is the prediction itself


def _levels(n=8, D=4, K=5, seed=0) -> torch.Tensor:
    return torch.randint(0, K, (n, D), generator=torch.Generator().manual_seed(seed))


def test_registered_by_name_and_model_defaults():
    assert OBJECTIVES["diffusion-simple"] is DiffusionSimple
    assert OBJECTIVES["diffusion-hybrid"] is DiffusionHybrid
    assert DDPM.default_objective == "diffusion-simple"
    assert ImprovedDDPM.default_objective == "diffusion-hybrid"
    made = make_objective("diffusion-hybrid", timesteps="importance", vlb_weight=0.01)
    assert made.get_config() == {"name": "diffusion-hybrid", "validation_steps": 10,
                                 "validation_seed": 0, "validation_strata": "geometric",
                                 "vlb_weight": 0.01,
                                 "timesteps": "importance", "warmup_count": 10}
    with pytest.raises(ValueError, match="uniform"):
        DiffusionHybrid(timesteps="stratified")
    with pytest.raises(ValueError, match="geometric"):
        DiffusionSimple(validation_strata="log")


def test_simple_loss_is_the_noise_regression_error():
    model = DDPM(4, num_steps=20, num_levels=5, denoiser=DIRECT)
    with torch.no_grad():  # a network that always predicts 0.5
        model.network.output.bias.fill_(0.5)
    x = _levels()
    torch.manual_seed(0)
    loss = DiffusionSimple().loss(model, x)
    torch.manual_seed(0)
    torch.randint(0, 20, (8,))  # the steps the objective drew first
    noise = torch.randn(8, 4)
    assert loss.item() == pytest.approx((noise - 0.5).pow(2).mean().item(), rel=1e-5)


def test_hybrid_with_a_fixed_variance_has_the_gradient_of_simple():
    """The stop-gradient on the mean leaves L_vlb nothing to train when the variance is fixed."""
    x = _levels()
    grads = []
    for objective in (DiffusionSimple(), DiffusionHybrid(vlb_weight=1.0)):
        model = DDPM(4, num_steps=20, num_levels=5, denoiser=SMALL_MLP)
        torch.manual_seed(0)
        objective.loss(model, x).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-7)


class _Constant(nn.Module):
    """Outputs learnable constants: the mean's part ``eps`` and the variance's part ``v``."""

    def __init__(self, D: int) -> None:
        super().__init__()
        self.eps = nn.Parameter(torch.full((D,), 0.1))
        self.v = nn.Parameter(torch.zeros(D))

    def forward(self, x, time):
        return torch.cat([self.eps.expand_as(x), self.v.expand_as(x)], dim=-1)


def test_vlb_term_trains_only_the_learned_variance():
    model = ImprovedDDPM(4, num_steps=20, num_levels=5, denoiser=DIRECT)
    model.network = _Constant(4)
    s = torch.tensor([0, 1, 5, 10, 19, 3, 7, 12])
    _, term = hybrid_terms(model, _levels(), s)
    term.sum().backward()
    assert model.network.eps.grad.abs().sum() == 0 and model.network.v.grad.abs().sum() > 0


def test_hybrid_loss_is_simple_plus_the_weighted_bound_term():
    model = ImprovedDDPM(4, num_steps=20, num_levels=5, denoiser=SMALL_MLP)
    x = _levels()
    torch.manual_seed(1)
    loss = DiffusionHybrid().loss(model, x)
    torch.manual_seed(1)
    s = torch.randint(0, 20, (8,))
    mse, term = hybrid_terms(model, x, s)
    expected = (mse + 0.001 * term * 20 / (4 * math.log(2))).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_importance_sampler_state_and_weights():
    model = ImprovedDDPM(4, num_steps=6, num_levels=5, denoiser=SMALL_MLP)
    objective = DiffusionHybrid(timesteps="importance", warmup_count=2)
    objective(model)  # binding sizes the statistics to T
    assert objective.second_moment.shape == (6,) and objective.counts.shape == (6,)
    s, w = objective._draw(6, 1000, torch.device("cpu"))  # not warm yet: uniform
    assert bool((w == 1).all())
    for _ in range(2):
        objective._update(torch.arange(6), torch.tensor([1.0, 2.0, 2.0, 4.0, 4.0, 8.0]))
    assert torch.allclose(objective.second_moment, torch.tensor([1.0, 4, 4, 16, 16, 64]))
    torch.manual_seed(0)
    s, w = objective._draw(6, 200000, torch.device("cpu"))
    probs = torch.tensor([1.0, 2, 2, 4, 4, 8]) / 21 * 0.999 + 0.001 / 6
    freq = torch.bincount(s, minlength=6) / 200000
    assert torch.allclose(freq, probs, atol=0.005)  # > 8 standard errors
    assert torch.allclose(w, 1 / (6 * probs[s]))
    # the weights make the estimate unbiased: E_p[w L_s] = mean_s L_s
    values = torch.arange(6.0)
    assert (w * values[s]).mean().item() == pytest.approx(values.mean().item(), rel=0.02)
    state = objective.state_dict()
    restored = DiffusionHybrid(timesteps="importance", warmup_count=2)
    restored(model).objective.load_state_dict(state)
    assert torch.equal(restored.second_moment, objective.second_moment)


def test_validation_is_a_seeded_per_datum_bound_estimate():
    model = DDPM(4, num_steps=20, num_levels=5, denoiser=SMALL_MLP).eval()
    x = _levels(30)
    objective = DiffusionSimple(validation_steps=5)
    a, b = objective.validation_loss(model, x), objective.validation_loss(model, x)
    assert a.shape == (30,) and torch.equal(a, b) and bool((a > 0).all())
    pyro.set_rng_seed(0)
    full = model.bound_terms(x).total
    # same expectation; a loose check here (the closed-form test checks unbiasedness)
    assert abs(a.mean() - full.mean()) < 0.25 * full.mean()


def test_refuses_models_without_a_diffusion():
    with pytest.raises(ModelError, match="diffusion models"):
        DiffusionSimple().loss(IndependentCategorical(4, 5), _levels())


def test_losses_through_the_bound_module():
    model = ImprovedDDPM(4, num_steps=10, num_levels=5, denoiser=SMALL_MLP)
    bound = DiffusionHybrid(timesteps="importance")(model)
    out = bound(_levels(), StepContext(step=0, epoch=1, update=("model",)), {})
    out["loss"].backward()
    assert all(p.grad is not None for p in model.parameters())


def _fit(tmp_path, epochs, resume=False):
    torch.manual_seed(0)
    model = ImprovedDDPM(2, num_steps=10, likelihood="continuous", denoiser=SMALL_MLP)
    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    history = ppgen.fit(model, data[:48], data[48:], objective="diffusion-hybrid",
                        objective_options={"timesteps": "importance", "warmup_count": 1},
                        epochs=epochs, batch_size=16, lr=1e-3, ema=0.9, warmup_steps=2,
                        lr_schedule="constant",  # a cosine schedule's length is the epochs'
                        out_dir=tmp_path, resume=resume, progress=False, seed=3)
    return model, history


def test_training_and_an_exact_resume(tmp_path):
    straight, history = _fit(tmp_path / "a", 3)
    assert len(history.records) == 3 and all(math.isfinite(r["val_loss"])
                                              for r in history.records)
    _fit(tmp_path / "b", 2)
    resumed, _ = _fit(tmp_path / "b", 3, resume=True)
    for p, q in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(p, q)


def test_betas_of_the_models_follow_their_papers():
    assert torch.allclose(DDPM(2, likelihood="continuous").process.betas,
                          make_betas("linear", 1000).float())
    assert torch.allclose(ImprovedDDPM(2, likelihood="continuous").process.betas,
                          make_betas("cosine", 1000).float())
