"""Every zoo model trains, scores, samples, saves and loads on the chosen device.

Run with ``pytest --device cuda`` on a GPU machine; on the default ``cpu`` these are the same
end-to-end checks on the CPU.
"""

from __future__ import annotations

import pytest
import torch

import ppgen
from ppgen.data import load_digits
from ppgen.models import VAE, FullJoint, IndependentBernoulli, IndependentCategorical, MarkovChain

SMALL = {"epochs": 2, "batch_size": 100, "progress": False}


@pytest.fixture(scope="module")
def digits():
    return load_digits("categorical")


def _subset(d, n=200):
    return d.train[:n], d.val[:100]


@pytest.mark.parametrize("cls", [IndependentCategorical, MarkovChain, VAE])
def test_zoo_model_end_to_end_on_device(cls, digits, device, tmp_path):
    model = cls.for_data(digits.info, **({"hidden_dims": [64]} if cls is VAE else {}))
    train, val = _subset(digits)
    ppgen.fit(model, train, val, device=device, out_dir=tmp_path, **SMALL)
    assert model.device.type == device.type
    x = digits.test[:50].to(device)
    ll = ppgen.log_likelihood(model, x, num_particles=10)
    assert ll.device.type == device.type and ll.shape == (50,) and torch.isfinite(ll).all()
    samples = model.sample(5)
    assert samples.device.type == device.type and samples.shape == (5, 64)
    loaded = ppgen.load(tmp_path / "model.pt", map_location=device)
    torch.manual_seed(0)
    a = ppgen.log_likelihood(loaded, x, num_particles=10)
    torch.manual_seed(0)
    b = ppgen.log_likelihood(model, x, num_particles=10)
    assert torch.allclose(a, b, atol=1e-4)


def test_gradient_training_of_a_tabular_model_on_device(device):
    bits = (torch.rand(300, 6, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    for model in (FullJoint(6), IndependentBernoulli(6)):
        history = ppgen.fit(model, bits, bits[:50], objective="mle", lr=0.1, device=device,
                            **SMALL)
        assert history.records[-1]["train_loss"] < history.records[0]["train_loss"] + 1e-6
        assert ppgen.log_likelihood(model, bits.to(device)).device.type == device.type
