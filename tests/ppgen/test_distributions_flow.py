"""The nflows adapter ``FlowDistribution``: the shared flow contract (``flow_contract``) over
small nflows flows, plus its use in Pyro programs — SVI with a flow guide against a conjugate
posterior, ``ppgen.log_likelihood`` of a flow model, importance-weighted estimates with a
conditional flow guide against an analytic marginal, the fused-pass cache inside the
evaluation layer, and devices.

Statistical tolerances are stated at each test; all seeds are fixed.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from flow_contract import CHECKS, FlowCase, count_module_calls
from nflows.distributions import ConditionalDiagonalNormal, StandardNormal
from nflows.flows import Flow
from nflows.nn.nets import ResidualNet
from nflows.transforms import (
    AffineCouplingTransform,
    CompositeTransform,
    InverseTransform,
    MaskedAffineAutoregressiveTransform,
    MaskedPiecewiseRationalQuadraticAutoregressiveTransform,
    PiecewiseRationalQuadraticCouplingTransform,
    RandomPermutation,
    ReversePermutation,
)
from nflows.transforms.base import Transform

import ppgen
from ppgen.distributions import FlowDistribution


def _net(in_features: int, out_features: int) -> ResidualNet:
    return ResidualNet(in_features, out_features, hidden_features=8, num_blocks=1)


def affine_coupling() -> Flow:
    mask = torch.tensor([1, 0])
    layers = [AffineCouplingTransform(mask, _net), ReversePermutation(2),
              AffineCouplingTransform(mask, _net)]
    return Flow(CompositeTransform(layers), StandardNormal([2]))


def maf(features: int = 3, context: int | None = None) -> Flow:
    layers = [MaskedAffineAutoregressiveTransform(features, 8, context_features=context),
              RandomPermutation(features),
              MaskedAffineAutoregressiveTransform(features, 8, context_features=context)]
    return Flow(CompositeTransform(layers), StandardNormal([features]))


def iaf(features: int = 2, context: int | None = None) -> Flow:
    """Inverse autoregressive flow: the inverse of a MAF, so sampling is one pass per step."""
    layers = [InverseTransform(MaskedAffineAutoregressiveTransform(
                  features, 8, context_features=context)),
              ReversePermutation(features),
              InverseTransform(MaskedAffineAutoregressiveTransform(
                  features, 8, context_features=context))]
    return Flow(CompositeTransform(layers), StandardNormal([features]))


def rq_coupling() -> Flow:
    mask = torch.tensor([1, 0])

    def layer():
        return PiecewiseRationalQuadraticCouplingTransform(
            mask, _net, num_bins=4, tails="linear", tail_bound=3.0)

    return Flow(CompositeTransform([layer(), ReversePermutation(2), layer()]),
                StandardNormal([2]))


def rq_autoregressive() -> Flow:
    transform = MaskedPiecewiseRationalQuadraticAutoregressiveTransform(
        3, 8, num_bins=4, tails="linear", tail_bound=3.0)
    return Flow(transform, StandardNormal([3]))


def conditional_maf() -> Flow:
    """MAF steps and a diagonal-Gaussian base, both conditioned on a 3-d context."""
    base = ConditionalDiagonalNormal([2], context_encoder=torch.nn.Linear(3, 4))
    layers = [MaskedAffineAutoregressiveTransform(2, 8, context_features=3),
              ReversePermutation(2),
              MaskedAffineAutoregressiveTransform(2, 8, context_features=3)]
    return Flow(CompositeTransform(layers), base)


CASES = [
    FlowCase("affine-coupling", affine_coupling),
    FlowCase("maf", maf),
    FlowCase("iaf", iaf),
    FlowCase("rq-coupling", rq_coupling),
    FlowCase("rq-autoregressive", rq_autoregressive),
    FlowCase("conditional-maf", conditional_maf, context_shape=(3,)),
    FlowCase("conditional-iaf-4d", lambda: iaf(4, context=5), context_shape=(5,)),
]


@pytest.mark.parametrize("check", list(CHECKS.values()), ids=list(CHECKS))
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_flow_contract(case: FlowCase, check) -> None:
    check(case)


# ---------------------------------------------------------------------------- construction


def test_event_shape_is_inferred_or_required() -> None:
    flow = maf()
    assert FlowDistribution(flow).event_shape == (3,)
    assert FlowDistribution(flow, event_shape=[3]).event_shape == (3,)
    flow._distribution = torch.nn.Identity()  # a base that does not record its shape
    with pytest.raises(ValueError, match="event_shape=..."):
        FlowDistribution(flow)


def test_context_batch_shape_and_event_dims() -> None:
    flow = iaf(2, context=6)
    ctx = torch.randn(5, 4, 6)
    assert FlowDistribution(flow, ctx).batch_shape == (5, 4)
    # Two feature dims: an embedding net flattens [2, 3] features to the flow's 6.
    flow2 = Flow(flow._transform, flow._distribution, embedding_net=torch.nn.Flatten())
    d = FlowDistribution(flow2, ctx.reshape(5, 4, 2, 3), context_event_dims=2)
    assert d.batch_shape == (5, 4) and d.context_event_shape == (2, 3)
    z = d.rsample((7,))
    assert z.shape == (7, 5, 4, 2) and d.log_prob(z.clone()).shape == (7, 5, 4)
    torch.testing.assert_close(
        d.log_prob(z.clone()), FlowDistribution(flow, ctx).log_prob(z.clone()))


# ---------------------------------------------------------------------------- Pyro programs


def test_svi_with_flow_guide_recovers_conjugate_posterior() -> None:
    """z ~ N(0, I_2), x_i ~ N(z, I_2), i = 1..4: with q(z) an IAF, SVI brings the loss to
    within 0.3 nats of -log p(x) = 12.96 and q's mean to within 0.15 of the posterior mean
    sum(x) / 5 (posterior sd 0.45; the mean of 2,000 draws has MC sd 0.01; seeds 0-2 end
    within 0.07)."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    x = torch.tensor([[2.0, -1.0], [3.0, -2.0], [2.5, -0.5], [2.5, -1.5]])
    post_mean = x.sum(0) / (len(x) + 1)
    flow = iaf(2)

    def model(x):
        z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)

    def guide(x):
        pyro.module("flow", flow)
        pyro.sample("z", FlowDistribution(flow))

    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 0.05}),
                         pyro.infer.Trace_ELBO(num_particles=8, vectorize_particles=True,
                                                   max_plate_nesting=1))
    losses = [svi.step(x) for _ in range(150)]
    # The loss falls to near -log p(x) (its minimum, reached at q = posterior).
    cov = torch.eye(len(x)) + torch.ones(len(x), len(x))
    neg_log_px = -float(dist.MultivariateNormal(torch.zeros(len(x)), cov).log_prob(x.T).sum())
    assert sum(losses[:20]) / 20 > neg_log_px + 1.0
    assert sum(losses[-20:]) / 20 < neg_log_px + 0.3
    with torch.no_grad():
        mean = FlowDistribution(flow).sample((2000,)).mean(0)
    assert float((mean - post_mean).abs().max()) < 0.15, (mean, post_mean)


def test_log_likelihood_of_a_flow_model_program() -> None:
    flow = maf(3)

    def model(x):
        with pyro.plate("data", len(x)):
            pyro.sample("x", FlowDistribution(flow).expand([len(x)]), obs=x)

    x = torch.randn(20, 3)
    got = ppgen.log_likelihood(model, x)
    torch.testing.assert_close(got, flow.log_prob(x).detach())


class ConditionalShift(Transform):
    """``z = a * context + s * u``: an nflows conditional transform (data -> noise forward)."""

    def __init__(self, a: float, s: float) -> None:
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(a))
        self.log_s = torch.nn.Parameter(torch.tensor(s).log())

    def forward(self, inputs, context=None):
        noise = (inputs - self.a * context) * torch.exp(-self.log_s)
        return noise, -self.log_s * inputs.shape[1] * torch.ones(len(inputs))

    def inverse(self, inputs, context=None):
        value = self.a * context + inputs * torch.exp(self.log_s)
        return value, self.log_s * inputs.shape[1] * torch.ones(len(inputs))


@pytest.mark.parametrize("exact_posterior", [True, False])
def test_conditional_flow_guide_under_particle_plate(exact_posterior: bool) -> None:
    """z ~ N(0, I_2), x ~ N(z, I_2) per datum, q(z | x) a conditional flow with context x
    [N, 2], lined up with the data plate under the K-particle plate. With q the exact
    posterior N(x / 2, I / 2) every importance weight is p(x): IWAE = ELBO = log N(x; 0, 2 I)
    to float precision (a misaligned context breaks this). With q's mean off by d = 0.15 x,
    ELBO < IWAE < log p(x) + 0.05: the weights' relative sd is sqrt(exp(|d|^2 / 0.5) - 1)
    <= 0.75 for these x, so IWAE-4000's MC sd is <= 0.012 and the margin is 4 sd."""
    pyro.set_rng_seed(0)
    flow = Flow(ConditionalShift(0.5 if exact_posterior else 0.35, math.sqrt(0.5)),
                StandardNormal([2]))

    def model(x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)

    def guide(x):
        with pyro.plate("data", len(x)):
            pyro.sample("z", FlowDistribution(flow, context=x))

    x = torch.randn(6, 2) * 1.4
    exact = dist.Normal(0.0, math.sqrt(2.0)).log_prob(x).sum(-1)
    iw = ppgen.log_likelihood(model, x, guide=guide, num_particles=4000)
    elbo = ppgen.elbo(model, guide, x, num_particles=4000)
    assert iw.shape == elbo.shape == (6,)
    if exact_posterior:
        torch.testing.assert_close(iw, exact, atol=1e-5, rtol=0)
        torch.testing.assert_close(elbo, exact, atol=1e-5, rtol=0)
    else:
        assert bool((elbo < iw).all()) and bool((iw < exact + 0.05).all()), (elbo, iw, exact)
        assert bool((iw > exact - 0.1).all()), (iw, exact)


def test_evaluation_layer_scores_an_iaf_guide_from_the_cache() -> None:
    """Structural cost check: scoring a D-dim IAF guide in ``ppgen.log_likelihood`` runs each
    step's network once per trace (the sampling pass), never the D-pass inverse."""
    D = 4
    flow = iaf(D, context=D)
    model, guide = _conditional_guide_program_nd(flow, D)
    made = [m for m in flow.modules() if type(m).__name__ == "MADE"]
    counts = []
    hooks = [m.register_forward_pre_hook(lambda *_: counts.append(1)) for m in made]
    try:
        ppgen.log_likelihood(model, torch.randn(5, D), guide=guide, num_particles=10)
    finally:
        for h in hooks:
            h.remove()
    # Two traces (the structure probe and the one chunk), one pass per step each.
    assert len(counts) == 2 * len(made), len(counts)


def _conditional_guide_program_nd(flow, D: int):
    def model(x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(D), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)

    def guide(x):
        with pyro.plate("data", len(x)):
            pyro.sample("z", FlowDistribution(flow, context=x))

    return model, guide


def test_cache_with_to_event_and_mask_wrappers() -> None:
    flow = iaf(2)
    d = FlowDistribution(flow).expand([3])
    wrapped = d.mask(torch.tensor([True, False, True]))
    with count_module_calls(flow) as calls:
        z = wrapped.rsample()
        calls[0] = 0
        wrapped.log_prob(z)
        assert calls[0] == 0


# ---------------------------------------------------------------------------- devices


def test_device(device: torch.device) -> None:
    flow = iaf(2, context=3).to(device)
    ctx = torch.randn(4, 3, device=device)
    d = FlowDistribution(flow, ctx)
    z, lp = d.rsample_and_log_prob((2,))
    assert z.device == ctx.device and lp.device == ctx.device
    assert d.log_prob(z.clone()).device == ctx.device
    assert d.expand([5, 4]).sample().device == ctx.device
    u = FlowDistribution(maf(3).to(device))
    assert u.expand([4]).rsample((2,)).device.type == device.type

    def model(x):
        with pyro.plate("data", len(x), device=x.device):
            pyro.sample("x", u.expand([len(x)]), obs=x)

    x = torch.randn(7, 3, device=device)
    assert ppgen.log_likelihood(model, x).device == x.device
