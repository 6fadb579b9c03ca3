"""Dequantised flows against grid integration on a tiny discrete problem (D = 2, K = 3).

The flow's density of y in (0, 1)^2 (logit pre-transform with alpha = 0, so the support is
exactly the unit square) is integrated over each of the K^D = 9 bins on a midpoint grid:
``P(x) = K^-D ∫ p_y((x + u) / K) du``. The grids' error is far below the tolerances used
(smooth integrands; checked by the total mass). The class-conditional wrapper ``p(x | y)`` is
checked the same way, class by class, with a conditional flow.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from flow_contract import default_dtype
from scipy import stats
from testkit import P_MIN, all_configs

import ppgen
from ppgen.errors import DataError, ModelError
from ppgen.evaluate import dequantization_bound
from ppgen.models import MAF, Dequantized, RealNVP

pytestmark = pytest.mark.usefixtures("one_thread")

D, K, GRID = 2, 3, 200


def _flow(seed: int = 0) -> RealNVP:
    """A fixed, non-trivial density on (0, 1)^2 (random network weights, float64)."""
    torch.manual_seed(seed)
    flow = RealNVP(D, num_layers=3, hidden_features=16, normalization="none",
                   logit_alpha=0.0).double().eval()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return flow


def _grid_log_density(flow: RealNVP, x: torch.Tensor) -> torch.Tensor:
    """``log p_y((x + u) / K)`` on the midpoint grid of u: ``[N, GRID^2]``."""
    axis = (torch.arange(GRID, dtype=torch.float64) + 0.5) / GRID
    u = torch.cartesian_prod(axis, axis)  # [G, 2]
    y = (x[:, None, :].double() + u) / K  # [N, G, 2]
    with torch.no_grad():
        return flow.distribution().log_prob(y)


@pytest.fixture(scope="module")
def problem():
    flow = _flow()
    x = all_configs(D, K)  # [9, 2]
    log_p = _grid_log_density(flow, x)
    exact = torch.logsumexp(log_p, dim=1) - math.log(GRID**2) - D * math.log(K)
    uniform_bound = (-log_p).mean(1) + D * math.log(K)
    return flow, x, log_p, exact, uniform_bound


def test_bin_probabilities_sum_to_one(problem):
    _, _, _, exact, _ = problem
    assert abs(float(exact.exp().sum()) - 1.0) < 2e-3


def test_uniform_elbo_is_the_benchmark_bound(problem):
    """``-ppgen.elbo`` = ``E_u[-log p(y)] + D log K`` (Monte Carlo vs grid, 4.5 standard
    errors: failure rate < 1e-5 per datum)."""
    flow, x, log_p, _, bound = problem
    model = Dequantized(flow, K).double()
    torch.manual_seed(0)
    n = 20_000
    got = -ppgen.elbo(model, None, x, num_particles=n)
    se = log_p.std(1) / math.sqrt(n)
    assert ((got - bound).abs() < 4.5 * se + 1e-6).all(), (got - bound) / se
    # the same number through the evaluation helper of BENCHMARKS.md, from one draw of u
    u = torch.rand(len(x), D, dtype=torch.float64)
    one = -dequantization_bound(flow.distribution().log_prob((x + u) / K), D, K)
    with torch.no_grad():
        from ppgen.models.dequantization import DequantizedLikelihood

        direct = DequantizedLikelihood(flow.distribution(), u, K).log_prob(x)
    torch.testing.assert_close(direct, one.detach())


def test_elbo_below_iwae_below_exact(problem):
    """The importance-weighted estimate with uniform proposals is within 4.5 of its standard
    errors (delta method, from the weights' spread on the grid) of the exact value."""
    flow, x, log_p, exact, bound = problem
    model = Dequantized(flow, K).double()
    torch.manual_seed(1)
    n = 2000
    iwae = ppgen.log_likelihood(model, x, num_particles=n)
    w = (log_p - log_p.max(1, keepdim=True).values).exp()
    se = w.std(1) / w.mean(1) / math.sqrt(n)
    assert (-bound <= exact + 1e-9).all()  # Jensen, on the grid
    assert ((iwae - exact).abs() < 4.5 * se + 1e-4).all(), (iwae - exact) / se
    assert (iwae > -bound).all()  # far above the ELBO where the uniform bound is loose
    assert float((exact + bound).max()) > 0.5  # the uniform bound is visibly loose here


def test_variational_dequantisation_tightens_the_bound(problem):
    """Training only q(u | x) (the flow fixed) raises the ELBO above the uniform one, and it
    stays below the exact log-probability."""
    flow, x, _, exact, bound = problem
    torch.manual_seed(0)
    model = Dequantized(copy.deepcopy(flow), K, dequantization="variational", dequantizer_layers=2,
                        dequantizer_hidden=16).double()
    for p in model.flow_model.parameters():
        p.requires_grad_(False)
    data = x.repeat(30, 1)
    with default_dtype(torch.float64):  # nflows' base draws noise in the default dtype
        ppgen.fit(model, data, epochs=30, batch_size=90, lr=1e-2, progress=False)
        torch.manual_seed(2)
        elbo = ppgen.elbo(model, None, x, num_particles=4000)
    assert all(not p.requires_grad for p in model.flow_model.parameters())
    gain = float((elbo + bound).mean())
    assert gain > 0.02, gain  # tighter than uniform dequantisation
    assert (elbo <= exact + 0.01).all()  # still a lower bound (MC slack 0.01)


def test_samples_follow_the_bin_probabilities(problem):
    """``sample`` quantises draws of the flow: chi-square against the 9 grid probabilities."""
    flow, x, _, exact, _ = problem
    model = Dequantized(flow, K).double()
    torch.manual_seed(3)
    with default_dtype(torch.float64):
        samples = model.sample(6000)
    assert samples.dtype == torch.long and samples.shape == (6000, D)
    index = samples[:, 0] * K + samples[:, 1]  # all_configs order: first variable major
    counts = torch.bincount(index, minlength=K**D).double()
    probs = exact.exp() / exact.exp().sum()
    chi2 = float(((counts - 6000 * probs) ** 2 / (6000 * probs)).sum())
    assert stats.chi2.sf(chi2, K**D - 1) > P_MIN, chi2


def test_program_shapes_and_guide_density():
    model = Dequantized(MAF(4, num_layers=1, hidden_features=8, logit_alpha=0.05), 5,
                        dequantization="variational", dequantizer_layers=1,
                        dequantizer_hidden=8)
    x = torch.randint(0, 5, (7, 4))
    assert model.kind == ppgen.ModelKind.LATENT and model.event_shape == (4,)
    assert ppgen.elbo(model, None, x, num_particles=3).shape == (7,)
    assert ppgen.log_likelihood(model, x, num_particles=3).shape == (7,)
    trace = pyro_trace(model.guide, x)
    u = trace.nodes["u"]["value"]
    assert u.shape == (7, 4) and bool(((u > 0) & (u < 1)).all())
    assert model.fit_defaults == type(model.flow_model).fit_defaults


def pyro_trace(fn, *args):
    from pyro import poutine

    return poutine.trace(fn).get_trace(*args)


def test_save_load_and_config(tmp_path):
    for dq in ("uniform", "variational"):
        model = Dequantized(MAF(3, num_layers=1, hidden_features=8, logit_alpha=0.05), 4,
                            dequantization=dq, dequantizer_layers=1, dequantizer_hidden=8)
        x = torch.randint(0, 4, (20, 3))
        ppgen.fit(model, x, epochs=1, batch_size=10, progress=False)
        model.save(tmp_path / f"{dq}.pt")
        loaded = ppgen.load(tmp_path / f"{dq}.pt")
        assert loaded.get_config() == model.get_config()
        assert loaded.get_config()["flow"]["name"] == "maf"
        torch.manual_seed(0)
        a = ppgen.log_likelihood(loaded, x, num_particles=5)
        torch.manual_seed(0)
        b = ppgen.log_likelihood(model.eval(), x, num_particles=5)
        torch.testing.assert_close(a, b)


def test_bad_arguments_and_data():
    flow = MAF(2, num_layers=1, hidden_features=8, logit_alpha=0.05)
    with pytest.raises(ModelError, match="dequantization"):
        Dequantized(flow, 3, dequantization="gaussian")
    with pytest.raises(ModelError, match="num_levels"):
        Dequantized(flow, 1)
    with pytest.raises(ModelError, match="zoo flow"):
        Dequantized(ppgen.models.IndependentBernoulli(2), 3)
    with pytest.raises(ModelError, match="num_dims >= 2"):
        Dequantized(MAF(1, num_layers=1, hidden_features=8), 3, dequantization="variational")
    model = Dequantized(flow, 3)
    with pytest.raises(DataError, match="levels"):
        ppgen.elbo(model, None, torch.tensor([[0, 3]]))
    with pytest.raises(DataError, match="non-integer"):
        ppgen.log_likelihood(model, torch.tensor([[0.5, 1.0]]))


# ----------------------------------------------------------------------------- p(x | y)

C = 2  # classes of the conditional problem


def _conditional_flow(seed: int = 0) -> RealNVP:
    """A fixed conditional density on (0, 1)^2 whose two classes differ (float64)."""
    torch.manual_seed(seed)
    flow = RealNVP(D, num_layers=3, hidden_features=16, normalization="none", logit_alpha=0.0,
                   num_classes=C).double().eval()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return flow


@pytest.fixture(scope="module")
def conditional_problem():
    """Per-class grid integrals: ``log P(x | c)`` and the uniform bound, ``[C, 9]`` each."""
    flow = _conditional_flow()
    x = all_configs(D, K)
    axis = (torch.arange(GRID, dtype=torch.float64) + 0.5) / GRID
    y = (x[None].double() + torch.cartesian_prod(axis, axis)[:, None]) / K  # [G, 9, 2]
    with torch.no_grad():
        log_p = torch.stack([flow.distribution(torch.full((len(x),), c)).log_prob(y).T
                             for c in range(C)])  # [C, 9, G]
    exact = torch.logsumexp(log_p, dim=2) - math.log(GRID**2) - D * math.log(K)
    return flow, x, log_p, exact, (-log_p).mean(2) + D * math.log(K)


def test_conditional_bin_probabilities_sum_to_one_per_class(conditional_problem):
    _, _, _, exact, _ = conditional_problem
    mass = exact.exp().sum(1)
    assert ((mass - 1).abs() < 2e-3).all(), mass
    assert float((exact[0] - exact[1]).abs().max()) > 0.1  # the label changes the model


def test_conditional_elbo_and_iwae_match_the_grid_per_class(conditional_problem):
    """With labels, ``-ppgen.elbo`` is each class's uniform bound and
    ``ppgen.log_likelihood`` its exact ``log P(x | c)`` (4.5 standard errors, as above)."""
    flow, x, log_p, exact, bound = conditional_problem
    model = Dequantized(flow, K).double()
    xs, ys = x.repeat(C, 1), torch.arange(C).repeat_interleave(len(x))
    log_p, exact, bound = log_p.flatten(0, 1), exact.flatten(), bound.flatten()
    torch.manual_seed(0)
    n = 20_000
    got = -ppgen.elbo(model, None, xs, y=ys, num_particles=n)
    se = log_p.std(1) / math.sqrt(n)
    assert ((got - bound).abs() < 4.5 * se + 1e-6).all(), (got - bound) / se
    n = 2000
    iwae = ppgen.log_likelihood(model, xs, y=ys, num_particles=n)
    w = (log_p - log_p.max(1, keepdim=True).values).exp()
    se = w.std(1) / w.mean(1) / math.sqrt(n)
    assert ((iwae - exact).abs() < 4.5 * se + 1e-4).all(), (iwae - exact) / se


@pytest.mark.parametrize("c", range(C))
def test_conditional_samples_follow_the_class_bin_probabilities(conditional_problem, c):
    """``sample(n, y=c)``: chi-square against class c's 9 grid probabilities."""
    flow, _, _, exact, _ = conditional_problem
    model = Dequantized(flow, K).double()
    torch.manual_seed(3 + c)
    with default_dtype(torch.float64):
        samples = model.sample(6000, y=c)
    assert samples.dtype == torch.long and samples.shape == (6000, D)
    counts = torch.bincount(samples[:, 0] * K + samples[:, 1], minlength=K**D).double()
    probs = exact[c].exp() / exact[c].exp().sum()
    chi2 = float(((counts - 6000 * probs) ** 2 / (6000 * probs)).sum())
    assert stats.chi2.sf(chi2, K**D - 1) > P_MIN, chi2


def _two_class_levels(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Levels 0..4 of 4 pixels: class 0 mostly 0-1, class 1 mostly 3-4; alternating labels."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randint(0, 2, (n, 4), generator=g) + 3 * y[:, None]
    return x, y


def test_conditional_dequantised_flow_learns_the_labels():
    """After a short fit the true label is the more likely one for at least 95% of held-out
    rows (the classes share no level), and samples of class c are nearer class c's mean."""
    torch.manual_seed(0)
    x, y = _two_class_levels(400, seed=0)
    x_val, y_val = _two_class_levels(100, seed=1)
    model = Dequantized(MAF(4, num_layers=2, hidden_features=16, logit_alpha=0.05, num_classes=2,
                            dropout=0.0), 5)
    ppgen.fit(model, x, x_val, labels=y, val_labels=y_val, epochs=10, batch_size=100, lr=1e-2,
              progress=False)
    x_test, y_test = _two_class_levels(200, seed=2)
    own = ppgen.log_likelihood(model, x_test, y=y_test, num_particles=4)
    other = ppgen.log_likelihood(model, x_test, y=1 - y_test, num_particles=4)
    assert float((own > other).float().mean()) >= 0.95
    means = torch.stack([x[y == c].float().mean(0) for c in (0, 1)])
    for c in (0, 1):
        samples = model.sample(200, y=c)
        assert samples.dtype == torch.long and int(samples.max()) <= 4
        dist = (samples.float().mean(0) - means).norm(dim=1)
        assert float(dist[c]) < float(dist[1 - c]), (c, dist)


def test_conditional_save_load_and_for_data(tmp_path):
    """Labels through ``fit`` (uniform and variational noise, the latter ignoring ``y``), a
    checkpoint that keeps ``num_classes``, and ``for_data`` building the conditional wrapper."""
    x, y = torch.randint(0, 4, (20, 3)), torch.arange(20) % 3
    for dq in ("uniform", "variational"):
        model = Dequantized(MAF(3, num_layers=1, hidden_features=8, logit_alpha=0.05,
                                num_classes=3), 4, dequantization=dq, dequantizer_layers=1,
                            dequantizer_hidden=8)
        assert model.num_classes == 3
        ppgen.fit(model, x, x, labels=y, val_labels=y, epochs=1, batch_size=10, progress=False)
        model.save(tmp_path / f"{dq}.pt")
        loaded = ppgen.load(tmp_path / f"{dq}.pt")
        assert loaded.get_config() == model.get_config() and loaded.num_classes == 3
        assert loaded.get_config()["flow"]["config"]["num_classes"] == 3
        torch.manual_seed(0)
        a = ppgen.log_likelihood(loaded, x, y=y, num_particles=5)
        torch.manual_seed(0)
        b = ppgen.log_likelihood(model.eval(), x, y=y, num_particles=5)
        torch.testing.assert_close(a, b)
        trace = pyro_trace(model.guide, x, y)
        assert trace.nodes["u"]["value"].shape == (20, 3)
    info = ppgen.data.DataInfo(event_shape=(3,), likelihood="categorical", num_levels=4)
    built = MAF.for_data(info, num_classes=3, dequantization="variational", num_layers=1)
    assert isinstance(built, Dequantized) and built.num_classes == 3
    assert built.dequantization == "variational" and built.flow_model.logit_alpha == 0.05
    assert built.sample(4, y=torch.tensor([0, 1, 2, 0])).shape == (4, 3)


def test_conditional_label_errors():
    conditional = Dequantized(MAF(2, num_classes=2, num_layers=1, hidden_features=8,
                                  logit_alpha=0.05), 3)
    x = torch.tensor([[0, 1], [2, 2], [1, 0]])
    with pytest.raises(ModelError, match="pass the labels"):
        ppgen.log_likelihood(conditional, x)
    with pytest.raises(ModelError, match="pass the labels"):
        ppgen.elbo(conditional, None, x)
    with pytest.raises(DataError, match="one label per row"):
        ppgen.fit(conditional, x, labels=torch.tensor([0, 1]), epochs=1, progress=False)
    with pytest.raises(DataError, match="levels|range"):
        ppgen.fit(conditional, x, labels=torch.tensor([0, 1, 2]), epochs=1, progress=False)
    with pytest.raises(DataError, match="levels|range"):
        conditional.sample(2, y=-1)
    plain = Dequantized(MAF(2, num_layers=1, hidden_features=8, logit_alpha=0.05), 3)
    assert plain.num_classes is None
    with pytest.raises(DataError, match="unconditional"):  # checked up front, as in fit
        ppgen.log_likelihood(plain, x, y=torch.zeros(3, dtype=torch.long))
    with pytest.raises(DataError, match="unconditional"):
        ppgen.fit(plain, x, labels=torch.zeros(3, dtype=torch.long), epochs=1, progress=False)
    with pytest.raises(ModelError, match="unconditional"):  # y is no declared option
        plain.sample(2, y=0)
