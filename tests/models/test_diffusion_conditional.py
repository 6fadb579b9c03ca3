"""Class-conditional diffusion models and classifier-free guidance.

* labels matter: a conditional DDPM trained briefly on two well-separated 1-D classes samples
  each class on its own side and scores data better under the true labels than swapped ones;
* guidance: the guided network output is ``(1 + w) out(y) - w out(null)`` computed by hand,
  ``w = 0`` is the conditional sampler (pathwise under one seed), ``w = -1`` the unconditional
  one (the null label);
* label dropout replaces labels by the null label at rate ``p_uncond`` in training only;
* the labels go through the declared condition: wrong labels are a clear ``DataError`` in
  ``ppgen.elbo``, ``ppgen.fit`` and ``sample``; save/load keeps the conditional model.
"""

from __future__ import annotations

import pyro
import pytest
import torch
from torch import nn

import ppgen
from ppgen.errors import DataError, ModelError
from ppgen.models import DDPM, ImprovedDDPM

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL_MLP = {"width": 16, "blocks": 1}


def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights for the zero-initialised layers and the label table."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(k in name for k in ("output", "fc2", "conv2", "label")):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return model


def _conditional(**kwargs) -> ImprovedDDPM:
    return _randomize(ImprovedDDPM(3, num_steps=20, likelihood="continuous",
                                   denoiser=SMALL_MLP, num_classes=3, **kwargs)).eval()


def test_guided_output_mixes_conditional_and_null_predictions():
    model = _conditional()
    x_t = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 0, 1])
    s = torch.tensor([0, 3, 7, 12, 19])
    cond, null = model.denoise(x_t, s, y=y), model.denoise(x_t, s, y=torch.full_like(y, 3))
    assert not torch.allclose(cond, null, atol=1e-3)  # the labels reach the network
    w = 2.5
    guided = model.denoise(x_t, s, y=y, guidance=w)
    assert torch.allclose(guided[:, :3], (1 + w) * cond[:, :3] - w * null[:, :3], atol=1e-5)
    assert torch.allclose(guided[:, 3:], cond[:, 3:])  # the learned variance: conditional
    assert torch.allclose(model.denoise(x_t, s, y=y, guidance=-1.0)[:, :3], null[:, :3],
                          atol=1e-5)
    assert torch.allclose(model.denoise(x_t, s), null)  # no labels: the null label


@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
def test_guidance_zero_is_the_conditional_sampler(sampler):
    model = _conditional()
    y = torch.tensor([2, 0, 1, 1])
    pyro.set_rng_seed(0)
    plain = model.sample(4, y=y, sampler=sampler, eta=1.0, steps=10)
    pyro.set_rng_seed(0)
    zero = model.sample(4, y=y, sampler=sampler, eta=1.0, steps=10, guidance=0.0)
    pyro.set_rng_seed(0)
    guided = model.sample(4, y=y, sampler=sampler, eta=1.0, steps=10, guidance=3.0)
    assert torch.equal(plain, zero) and not torch.allclose(plain, guided, atol=1e-3)
    pyro.set_rng_seed(0)
    other = model.sample(4, y=torch.tensor([0, 1, 2, 2]), sampler=sampler, eta=1.0, steps=10)
    assert not torch.allclose(plain, other, atol=1e-3)


def test_label_dropout_in_training_only():
    model = _conditional(p_uncond=0.3)
    x_t = torch.zeros(4000, 3)
    y = torch.zeros(4000, dtype=torch.long)
    cond, null = model.denoise(x_t[:1], 5, y=y[:1]), model.denoise(x_t[:1], 5)
    model.train()
    torch.manual_seed(0)
    out = model.denoise(x_t, 5, y=y)
    dropped = (out - null).abs().sum(-1) < (out - cond).abs().sum(-1)
    assert abs(dropped.float().mean().item() - 0.3) < 4 * (0.3 * 0.7 / 4000) ** 0.5
    model.eval()
    assert torch.allclose(model.denoise(x_t[:10], 5, y=y[:10]), cond.expand(10, -1))


def test_labels_matter_after_training():
    """Two classes at -1.5 and +1.5 (std 0.1): each label samples its own side."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(400) % 2
    x = (3.0 * y - 1.5).unsqueeze(-1) + 0.1 * torch.randn(400, 1, generator=g)
    model = DDPM(1, num_steps=20, likelihood="continuous", variance="fixed-small",
                 denoiser={"width": 32, "blocks": 1}, num_classes=2, p_uncond=0.2)
    pyro.set_rng_seed(0)
    ppgen.fit(model, x, x[:100], labels=y, val_labels=y[:100], epochs=150, batch_size=100,
              lr=3e-3, ema=None, warmup_steps=0, lr_schedule=None, progress=False, seed=0)
    pyro.set_rng_seed(1)
    for label, sign in ((0, -1), (1, 1)):
        draws = model.sample(200, y=label)  # a label-blind model: half on each side
        assert (torch.sign(draws) == sign).float().mean() > 0.9, (label, draws.median())
    pyro.set_rng_seed(2)
    right = -ppgen.elbo(model, None, x[:200], y=y[:200], analytic_kl=True).mean()
    pyro.set_rng_seed(2)
    swapped = -ppgen.elbo(model, None, x[:200], y=1 - y[:200], analytic_kl=True).mean()
    assert swapped > right + 2.0, (right, swapped)


def test_wrong_labels_are_clear_errors():
    model = ImprovedDDPM(4, num_steps=10, num_levels=5, denoiser=SMALL_MLP, num_classes=3)
    x = torch.randint(0, 5, (6, 4), generator=torch.Generator().manual_seed(0))
    with pytest.raises(DataError, match="outside the class range 0..2"):
        ppgen.elbo(model, None, x, y=torch.tensor([0, 1, 2, 3, 0, 1]))
    with pytest.raises(DataError, match="one label per row"):
        ppgen.elbo(model, None, x, y=torch.tensor([0, 1]))
    with pytest.raises(ModelError, match="pass the labels"):
        ppgen.elbo(model, None, x)
    with pytest.raises(DataError, match="class range"):
        ppgen.fit(model, x, x, labels=torch.full((6,), 5), val_labels=torch.zeros(6),
                  epochs=1, progress=False)
    with pytest.raises(DataError, match="class range"):
        model.sample(2, y=3)
    with pytest.raises(DataError, match="unconditional"):
        ppgen.elbo(DDPM(4, num_steps=10, num_levels=5, denoiser=SMALL_MLP), None, x,
                   y=torch.zeros(6, dtype=torch.long))
    with pytest.raises(ModelError, match="class-conditional"):
        DDPM(4, num_steps=10, num_levels=5, denoiser=SMALL_MLP).sample(2, guidance=1.0)
    for kwargs, match in [({"num_classes": 1}, "num_classes"), ({"p_uncond": 1.0}, "p_uncond")]:
        with pytest.raises(ModelError, match=match):
            DDPM(4, num_steps=10, num_levels=5, **kwargs)


def test_conditional_save_and_load(tmp_path):
    model = _randomize(DDPM(16, num_steps=10, num_levels=3, image_shape=(4, 4),
                            denoiser={"channels": 8, "blocks": 1}, num_classes=4)).eval()
    model.save(tmp_path / "m.pt")
    loaded = ppgen.load(tmp_path / "m.pt")
    assert loaded.get_config() == model.get_config() and loaded.num_classes == 4
    x = torch.randint(0, 3, (5, 16), generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3, 0])
    pyro.set_rng_seed(0)
    a = loaded.bound_terms(x, y).total
    pyro.set_rng_seed(0)
    assert torch.allclose(a, model.bound_terms(x, y).total)
    pyro.set_rng_seed(0)
    b = -ppgen.elbo(model, None, x, y=y, analytic_kl=True)
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-4)
