"""The MLP energy-based model (``ppgen.models.EBM``) and persistent contrastive divergence.

Behaviour: the program's data site carries ``exp(-E(x))``, the energy is the network's relative
to the fitted base, sampling options are declared, save/load and exact resume (the replay buffer
is checkpointed objective state), training through ``ppgen.fit`` separates data from the base,
and ``Detector("ebm")`` ranks by ``-E(x)``. The density itself is tested against closed forms in
``tests/ppgen/test_energy_ais.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pyro import poutine
from testkit import load_example

import ppgen
from ppgen.anomaly import Detector
from ppgen.data import DataInfo, sample_toy
from ppgen.energy import energies
from ppgen.errors import ModelError
from ppgen.evaluate import nll_report
from ppgen.inference import ContrastiveDivergence, make_objective
from ppgen.models import EBM, MAF

pytestmark = pytest.mark.usefixtures("one_thread")

#: a fast recipe for tests: few chains and steps, a short validation AIS run
TINY_CD = {"buffer_size": 256, "steps": 5, "validation_distributions": 10,
           "validation_chains": 16}
TINY_AIS = {"num_distributions": 20, "num_leapfrog": 2, "pilot_distributions": 20}


@pytest.fixture(scope="module")
def toy() -> torch.Tensor:
    return sample_toy("eight_gaussians", 768, seed=0)


def _ebm(**kwargs) -> EBM:
    torch.manual_seed(0)
    return EBM(2, hidden_dims=(32, 32), ais=TINY_AIS, **kwargs)


def _fit(model: EBM, x: torch.Tensor, **options):
    options = {"epochs": 2, "batch_size": 128, "progress": False, "seed": 0, **options}
    return ppgen.fit(model, x[:512], x[512:], objective_options=TINY_CD, **options)


def test_the_program_carries_the_unnormalised_density():
    model = _ebm()
    x = torch.randn(5, 2)
    site = poutine.trace(model.model).get_trace(x).nodes["x"]
    assert site["fn"].batch_shape == (5,) and site["fn"].event_shape == (2,)
    assert torch.allclose(site["fn"].log_prob(x), -model.energy(x))
    assert torch.allclose(model.energy(x), -model.log_ratio(x) - model.base().log_prob(x))
    assert model.kind == "energy" and model.default_objective == "contrastive-divergence"
    with pytest.raises(ModelError, match="no exact sampler"):
        model.model(None, num_samples=3)


def test_sampling_options_are_declared():
    model = _ebm()
    assert model.sample(6, steps=3).shape == (6, 2)
    chains = model.sample_chains(4, record_every=2, steps=4, transition="langevin")
    assert chains.shape == (3, 4, 2)
    with pytest.raises(ModelError, match="valid options"):
        model.sample(2, sampler="ddim")
    with pytest.raises(ModelError, match="unknown transition"):
        model.sample(2, transition="gibbs")


def test_options_and_data_are_checked():
    with pytest.raises(ModelError, match="activation"):
        EBM(2, activation="relu6")
    with pytest.raises(ModelError, match="AIS option"):
        EBM(2, ais={"chains": 3})
    with pytest.raises(ModelError, match="continuous"):
        EBM.for_data(DataInfo((64,), "categorical", 17))
    assert EBM.for_data(DataInfo((3,), "continuous")).num_dims == 3
    with pytest.raises(ModelError, match="energy models"):
        make_objective("contrastive-divergence")(MAF(2, num_layers=1, hidden_features=4))
    with pytest.raises(ValueError, match="sampler"):
        ContrastiveDivergence(sampler="gibbs")


def test_training_separates_data_from_the_base_and_saves(toy, tmp_path):
    model = _ebm(spectral_norm=True)
    history = _fit(model, toy, out_dir=tmp_path)
    record = history.records[-1]
    assert {"train_energy_gap", "train_acceptance", "val_loss"} <= set(record)
    assert 0.0 < record["train_acceptance"] <= 1.0
    assert torch.allclose(model.base_loc, toy[:128].mean(0), atol=0.3)  # fitted on batch 1
    base_draws = model.base().sample(512, torch.Generator().manual_seed(0))
    assert energies(model, toy).mean() < energies(model, base_draws).mean()
    loaded = ppgen.load(tmp_path / "model.pt")
    assert isinstance(loaded, EBM) and loaded.get_config() == model.get_config()
    assert torch.equal(loaded.base_scale_tril, model.base_scale_tril)
    assert torch.allclose(loaded.energy(toy[:8]), model.energy(toy[:8]))
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    buffer = checkpoint["objective_state"]
    assert buffer["buffer.samples"].shape == (256, 2) and bool(buffer["buffer.filled"].any())


def test_resuming_continues_the_persistent_chains_exactly(toy, tmp_path):
    constant = {"lr_schedule": "constant"}  # the recipe's cosine decay depends on ``epochs``
    straight = _ebm()
    _fit(straight, toy, epochs=2, **constant)
    resumed = _ebm()
    _fit(resumed, toy, epochs=1, out_dir=tmp_path, **constant)
    resumed = _ebm()
    _fit(resumed, toy, epochs=2, out_dir=tmp_path, resume=True, **constant)
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_contrastive_divergence_from_the_data():
    model = _ebm()
    objective = ContrastiveDivergence(persistent=False, steps=3, sampler="langevin")
    bound = objective(model)
    x = torch.randn(16, 2)
    out = bound(x, None, {})
    out["loss"].backward()
    assert out["acceptance"] == 1.0 and not objective.buffer.filled.any()  # no buffer used
    assert all(p.grad is not None for p in model.parameters())


def test_detector_ranks_by_energy(toy):
    inliers = toy[:384].numpy()
    outliers = np.array([[4.0, 4.0], [-3.5, 0.5], [0.5, -4.0]], dtype=np.float32)
    detector = Detector("ebm", model_options={"hidden_dims": [32], "ais": TINY_AIS},
                        epochs=3, batch_size=128, num_particles=16,
                        fit_options={"objective_options": TINY_CD}).fit(inliers)
    scores = detector.score_samples(np.concatenate([inliers[:50], outliers]))
    assert scores[50:].max() < np.median(scores[:50])
    model = detector.model_
    minus_energy = -energies(model, torch.as_tensor(inliers[:50])).double().numpy()
    assert np.allclose(scores[:50] - minus_energy, (scores[:50] - minus_energy).mean(),
                       atol=1e-4)  # -E(x) shifted by one log Z


def test_the_example_brackets_its_quadrature_check(tmp_path):
    """examples/ebm_toys.py on a tiny budget: the AIS interval of a (barely) trained EBM
    contains the model's NLL with ``Z`` by quadrature, and the figures are drawn. Failure
    budget: over AIS seeds 0-19 the interval missed once (seed 5: the forward end 0.005 above
    the truth, its Monte Carlo noise beyond two standard errors)."""
    example = load_example("ebm_toys")
    ebm, data = example.train("eight_gaussians", epochs=1, n_train=512, seed=0)
    ebm.ais = {"num_distributions": 200, "num_leapfrog": 2}
    test = data.test[:500]
    torch.manual_seed(0)
    report = nll_report(ebm, test, num_particles=128)
    quadrature = example.quadrature_nll(ebm, test, n=400)
    assert report["nll_lower"] <= quadrature <= report["nll_upper"]
    figure = example.chains_figure(ebm, test, num_chains=3, steps=10)
    assert len(figure.axes[0].lines) == 3


def test_cli_evaluate_prints_the_ais_interval_with_the_likelihood(toy, tmp_path, capsys):
    """`ppgen evaluate` puts the AIS estimate and its reverse-AIS bracket in the likelihood
    block (lower <= nll <= upper), not among the sample metrics."""
    import json

    from ppgen.cli.app import main

    model = _ebm()
    _fit(model, toy, epochs=1)
    model.save(tmp_path / "model.pt")
    np.save(tmp_path / "rows.npy", toy[:64].numpy())
    code = main(["evaluate", str(tmp_path / "model.pt"), "--data", str(tmp_path / "rows.npy"),
                 "--no-samples", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    likelihood = out.split("likelihood:")[1].split("\n  more")[0]
    assert "nll_lower" in likelihood and "nll_upper" in likelihood
    report = json.loads(next(tmp_path.glob("eval-file-*.json")).read_text())
    assert report["nll_lower"] <= report["nll"] <= report["nll_upper"]
