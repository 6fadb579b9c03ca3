"""No host synchronisation inside a training step of any zoo model, proven on the ``meta`` device.

A meta tensor has a shape, a dtype and a device but no values, so what would make the host wait
for a GPU raises on it: ``.item()``, ``bool(tensor)`` (an ``if`` on a tensor), ``float(tensor)``,
data-dependent shapes (``nonzero``, boolean-mask indexing) and a CPU tensor meeting the model's
tensors in an operation. Host data copied to the device (``torch.tensor(1.0, device=...)``, a
distribution's scalar argument, a CPU tensor moved with ``.to``, a NumPy or list index) and the
linear-algebra routines that check their result on the host (``torch.linalg.cholesky``) do not
raise on meta but wait for the device on CUDA; :class:`HostData` makes them raise during the
step as well.

Each case builds a small zoo model, moves it to ``meta``, sets it up (data-dependent
initialisation and a first step), then runs one step of the training engine on a meta batch
under :class:`HostData`: ``zero_grad``, the bound loss module's forward, ``backward``, gradient
clipping, the Adam step and the weight average (:class:`ppgen.engine.step.Stepper`). The set-up
runs with Pyro's validation off: in training the engine validates the data once up front, the
evaluation layer's structure probe (one trace of one row, remembered on the model) and
``model.initialize`` run once per run, and those one-time host reads are not the step's. The
step itself runs as training runs it, with Pyro's default validation: the objectives pass
``check=False`` and the evaluation layer switches argument validation off for the step
(:func:`ppgen.evaluate.program.validation_context`).

Every registered zoo model has a case (:func:`test_every_registered_model_is_covered`); each
kind of offender (:func:`test_an_offender_raises`), nflows' spline and the nflows layers the zoo
replaced (:func:`test_a_replaced_nflows_layer_raises`) raise here, so the test can fail.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from nflows import transforms
from torch import nn
from torch.overrides import TorchFunctionMode

import ppgen.models as zoo
from ppgen.engine.distributed import Cluster
from ppgen.engine.ema import EMA
from ppgen.engine.optim import Optimizers, group_specs
from ppgen.engine.precision import Precision
from ppgen.engine.step import Stepper
from ppgen.inference import make_objective
from ppgen.protocol import registered_models

META = torch.device("meta")
BATCH = 5


def _engine_step(
    model: nn.Module, objective: str | None = None
) -> Callable[..., dict[str, torch.Tensor]]:
    """One step of the training engine for ``model`` (:class:`ppgen.engine.step.Stepper`:
    zero_grad, the bound loss module's forward, backward, clipping, the Adam step and the
    weight average) with its default objective, or ``objective`` for a model fitted in closed
    form. Returns ``step(batch, **kwargs) -> metrics``. The one place that knows the engine API.
    """
    if objective is None:
        made = make_objective(model.default_objective, **model.objective_defaults)
    else:
        made = make_objective(objective)
    groups = made.param_groups(model)
    optimizers = Optimizers(group_specs(groups, "adam", 1e-3, 0.0, None, 0, 1.0))
    optimizers.build(groups)
    ema = EMA(0.99, made.ema_parameters(model))
    stepper = Stepper(made(model), optimizers, Cluster(), Precision("fp32", META), ema)

    def step(batch: torch.Tensor, **kwargs: torch.Tensor) -> dict[str, torch.Tensor]:
        return stepper.step(batch, kwargs, step=0, epoch=1, share=1.0)

    return step


# =========================================================================== host data
class HostSync(RuntimeError):
    """Host data reached the device, or a result was checked on the host, inside the step."""


_FACTORIES = {torch.tensor, torch.as_tensor, torch.asarray, torch.scalar_tensor}
_INDEXING = {torch.Tensor.__getitem__, torch.Tensor.__setitem__}
#: routines that check their result on the host (``*_ex`` variants and ``solve_triangular``
#: do not)
_CHECKED_LINALG = {
    torch.linalg.cholesky, torch.cholesky, torch.linalg.inv, torch.inverse, torch.linalg.solve,
}


class HostData(TorchFunctionMode):
    """Raise :class:`HostSync` where the step moves host data to the meta device or checks a
    linear-algebra result on the host (each waits for the device on CUDA)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _FACTORIES and _is_meta(kwargs.get("device")):
            _require_meta(args[0] if args else kwargs.get("data"), func.__name__)
        elif func is torch.Tensor.to and _is_meta(torch._C._nn._parse_to(*args[1:], **kwargs)[0]):
            _require_meta(args[0], "Tensor.to")
        elif func is torch.Tensor.copy_ and _is_meta(args[0].device):
            _require_meta(args[1], "Tensor.copy_")
        elif func in _INDEXING and _is_meta(args[0].device):
            _require_device_index(args[1])
        elif func in _CHECKED_LINALG:
            raise HostSync(f"{func.__name__} checks its result on the host: use the *_ex form")
        return func(*args, **kwargs)


def _is_meta(device: Any) -> bool:
    return device is not None and torch.device(device).type == "meta"


def _require_meta(data: Any, what: str) -> None:
    if not (isinstance(data, torch.Tensor) and data.device == META):
        raise HostSync(f"{what} copies host data ({type(data).__name__}) to the device")


def _require_device_index(index: Any) -> None:
    for part in index if isinstance(index, tuple) else (index,):
        host = isinstance(part, (np.ndarray, list)) or (
            isinstance(part, torch.Tensor) and part.device != META and part.dim() > 0
        )
        if host:
            raise HostSync(f"a {type(part).__name__} index is copied to the device")


# =========================================================================== the zoo
@dataclass(frozen=True)
class Case:
    """A small zoo model and its data: ``"float"`` (reals or 0/1) or ``"levels"`` (``long``);
    ``objective`` for a model fitted in closed form; ``conditional`` for labels ``y``."""

    build: Callable[[], nn.Module]
    data: str
    objective: str | None = None
    conditional: bool = False
    label: str = "y"


def _dequantized(flow: nn.Module, **options: Any) -> nn.Module:
    return zoo.Dequantized(flow, 3, dequantizer_layers=1, dequantizer_hidden=8, **options)


def _flow(cls: type, dims: Any, **kwargs: Any) -> nn.Module:
    kwargs.setdefault("hidden_features", 8)
    kwargs.setdefault("num_layers", 2)
    return cls(dims, **kwargs)


def _glow(**kwargs: Any) -> nn.Module:
    return zoo.Glow((1, 4, 4), num_scales=2, steps_per_scale=2, hidden_channels=8, **kwargs)


def _vae(**kwargs: Any) -> nn.Module:
    kwargs.setdefault("num_levels", 3)
    return zoo.VAE(6, latent_dim=2, hidden_dims=(8,), flow_hidden=8, **kwargs)


def _aae(**kwargs: Any) -> nn.Module:
    kwargs.setdefault("num_levels", 3)
    return zoo.AAE(6, latent_dim=2, num_classes=3,
                   network={"hidden_dims": (8,), "critic_dims": (8,)}, **kwargs)


def _pixelcnn(**kwargs: Any) -> nn.Module:
    return zoo.PixelCNN((4, 4), hidden_channels=8, num_layers=2, **kwargs)


def _pixelrnn(**kwargs: Any) -> nn.Module:
    return zoo.PixelRNN((4, 4), hidden_channels=8, num_layers=1, **kwargs)


def _progressive(step: int) -> nn.Module:
    """A Progressive GAN grown to ``step``: 2x2 up to step 1, 4x4 fading in over steps 2-3."""
    model = zoo.ProgressiveGAN((1, 4, 4), latent_dim=2, channels=2, stage_steps=2, fade_steps=2)
    model.grow_to(step)
    return model


#: small bodies of the conditional and information-maximising GANs
_MLP_BODIES = {"hidden_dims": (8,), "critic_dims": (8,)}
_CONV_BODIES = {"channels": 2, "num_stages": 1}


CASES: dict[str, Case] = {
    # discrete baselines: fitted in closed form; their gradient objective is maximum likelihood
    "independent-bernoulli": Case(lambda: zoo.IndependentBernoulli(6), "float", "mle"),
    "independent-categorical": Case(lambda: zoo.IndependentCategorical(6, 3), "levels", "mle"),
    "full-joint": Case(lambda: zoo.FullJoint(4, 3), "levels", "mle"),
    "markov-chain": Case(lambda: zoo.MarkovChain(6, 3), "levels", "mle"),
    # autoregressive models
    "fvsbn": Case(lambda: zoo.FVSBN(6), "float"),
    "fvsbn-categorical": Case(lambda: zoo.FVSBN(6, "categorical", 3), "levels"),
    "nade": Case(lambda: zoo.NADE(6, hidden_dim=8), "float"),
    "nade-logistic": Case(
        lambda: zoo.NADE(6, "logistic-mixture", 3, hidden_dim=8, num_components=2), "levels"
    ),
    "rnade": Case(lambda: zoo.RNADE(4, hidden_dim=8, num_components=2), "float"),
    "made": Case(lambda: zoo.MADE(6, hidden_dims=(16,), num_masks=2), "float"),
    "made-categorical": Case(
        lambda: zoo.MADE(6, "categorical", 3, hidden_dims=(16,), num_masks=2), "levels"
    ),
    "pixelcnn-gated": Case(lambda: _pixelcnn(gated=True), "float"),
    "pixelcnn-plain-logistic": Case(
        lambda: _pixelcnn(gated=False, likelihood="logistic-mixture", num_levels=3,
                          num_components=2),
        "levels",
    ),
    "pixelcnn-categorical": Case(
        lambda: _pixelcnn(likelihood="categorical", num_levels=3), "levels"
    ),
    "pixelrnn-row": Case(lambda: _pixelrnn(layer="row-lstm"), "float"),
    "pixelrnn-diagonal": Case(lambda: _pixelrnn(layer="diagonal-bilstm"), "float"),
    # latent-variable models
    "vae": Case(lambda: _vae(), "levels"),
    "vae-softmax": Case(lambda: _vae(categorical_head="softmax"), "levels"),
    "vae-bernoulli": Case(lambda: _vae(likelihood="bernoulli", num_levels=None), "float"),
    "vae-gaussian": Case(lambda: _vae(likelihood="gaussian", num_levels=None), "float"),
    "vae-iaf": Case(lambda: _vae(posterior_flow="iaf"), "levels"),
    "vae-maf-prior": Case(lambda: _vae(posterior_flow="maf", prior_flow="maf"), "levels"),
    "vae-iaf-maf-prior": Case(lambda: _vae(posterior_flow="iaf", prior_flow="maf"), "levels"),
    # hierarchical and conditional VAEs
    "ladder-vae": Case(lambda: zoo.LadderVAE(6, (3, 2), (8, 8), num_levels=3), "levels"),
    "cvae": Case(lambda: zoo.CVAE(6, 3, 2, (8,), num_levels=3), "levels", conditional=True),
    "structured-cvae": Case(lambda: zoo.StructuredCVAE(6, 2, 2, (8,), "bernoulli"), "float"),
    # adversarial autoencoders: reconstruction, latent critic, encoder-as-generator updates
    "aae": Case(lambda: _aae(), "levels"),
    "aae-deterministic-mixture": Case(lambda: _aae(encoder="deterministic", prior="mixture10"),
                                      "levels"),
    "aae-supervised-gaussian": Case(
        lambda: _aae(variant="supervised", likelihood="gaussian", num_levels=None), "float",
        conditional=True),
    "aae-semi-supervised": Case(lambda: _aae(variant="semi-supervised"), "levels",
                                conditional=True),
    "aae-clustering-swiss-roll": Case(lambda: _aae(variant="clustering", prior="swiss-roll"),
                                      "levels"),
    # PPCA is fitted in closed form; its gradient objective is the (exact) importance bound
    "ppca": Case(lambda: zoo.PPCA(5, latent_dim=2), "float", "iwae"),
    "ppca-elbo": Case(lambda: zoo.PPCA(5, latent_dim=2), "float", "elbo"),
    # flows
    "realnvp": Case(lambda: _flow(zoo.RealNVP, 4), "float"),
    "realnvp-batchnorm-logit": Case(
        lambda: _flow(zoo.RealNVP, 4, normalization="batchnorm", logit_alpha=0.05), "float"
    ),
    "maf": Case(lambda: _flow(zoo.MAF, 3, permutation="random", normalization="actnorm"), "float"),
    "nsf-coupling": Case(
        lambda: _flow(zoo.NSF, 4, transform="coupling", normalization="actnorm"), "float"
    ),
    "nsf-autoregressive": Case(lambda: _flow(zoo.NSF, 3, transform="autoregressive"), "float"),
    "glow": Case(lambda: _glow(), "float"),
    "glow-logit": Case(lambda: _glow(logit_alpha=0.05), "float"),
    "dequantized": Case(lambda: _dequantized(_flow(zoo.RealNVP, 4, logit_alpha=0.05)), "levels"),
    "dequantized-variational": Case(
        lambda: _dequantized(_flow(zoo.NSF, 4, logit_alpha=0.05), dequantization="variational"),
        "levels",
    ),
    # class-conditional flows
    "maf-conditional": Case(lambda: _flow(zoo.MAF, 3, num_classes=3), "float", conditional=True),
    "realnvp-conditional": Case(
        lambda: _flow(zoo.RealNVP, 4, num_classes=3), "float", conditional=True
    ),
    "nsf-coupling-conditional": Case(
        lambda: _flow(zoo.NSF, 4, transform="coupling", num_classes=3), "float", conditional=True
    ),
    "nsf-autoregressive-conditional": Case(
        lambda: _flow(zoo.NSF, 3, num_classes=3), "float", conditional=True
    ),
    "glow-conditional": Case(lambda: _glow(num_classes=3), "float", conditional=True),
    # adversarial: two players, a critic update then a generator update in the step
    "gan": Case(lambda: zoo.GAN(3, latent_dim=2, hidden_dims=(8,), critic_dims=(8,)), "float"),
    "gan-r1": Case(lambda: zoo.GAN(3, latent_dim=2, hidden_dims=(8,), critic_dims=(8,),
                                   loss="hinge", r1=1.0), "float"),
    "dcgan": Case(lambda: zoo.DCGAN((1, 4, 4), latent_dim=2, channels=2, num_stages=1),
                  "float"),
    "progressive-gan": Case(lambda: _progressive(0), "float"),
    "progressive-gan-fading": Case(lambda: _progressive(3), "float"),
    "cgan": Case(lambda: zoo.CGAN(3, num_classes=3, latent_dim=2, network=_MLP_BODIES),
                 "float", conditional=True),
    "cgan-conv": Case(lambda: zoo.CGAN((1, 4, 4), num_classes=3, latent_dim=2,
                                       network=_CONV_BODIES), "float", conditional=True),
    "acgan": Case(lambda: zoo.ACGAN(3, num_classes=3, latent_dim=2, network=_MLP_BODIES),
                  "float", conditional=True),
    "acgan-conv-hinge": Case(lambda: zoo.ACGAN((1, 4, 4), num_classes=3, latent_dim=2,
                                               network=_CONV_BODIES, loss="hinge"),
                             "float", conditional=True),
    # BiGAN / ALI: a joint critic of (x, z) pairs, the encoder in the generator's update
    "bigan": Case(lambda: zoo.BiGAN(3, latent_dim=2, network=_MLP_BODIES), "float"),
    "bigan-conv-stochastic-hinge": Case(
        lambda: zoo.BiGAN((1, 4, 4), latent_dim=2, network={"channels": 2, "num_stages": 1},
                          encoder="stochastic", loss="hinge"), "float"),
    "infogan": Case(lambda: zoo.InfoGAN(3, categories=3, continuous=2, latent_dim=2,
                                        network=_MLP_BODIES), "float"),
    "infogan-conv-r1": Case(lambda: zoo.InfoGAN((1, 4, 4), categories=3, continuous=1,
                                                latent_dim=2, network=_CONV_BODIES, r1=1.0),
                            "float"),
    # translation: the domain of each row is the label; every row to another domain
    "cyclegan": Case(lambda: zoo.CycleGAN(("a", "b"), (4, 4), network={"channels": 2,
                                                                   "num_blocks": 1},
                                          critic_channels=2, pool_size=3),
                     "float", conditional=True, label="domain"),
    "stargan-dense": Case(lambda: zoo.StarGAN(("a", "b", "c"), (4, 4), critic_channels=2,
                                              n_critic=1, network={"channels": 2,
                                                                   "num_blocks": 1,
                                                                   "dense": True}),
                          "float", conditional=True, label="domain"),
    # diffusion: the denoising loss at a random step per datum
    "ddpm": Case(lambda: zoo.DDPM(4, num_steps=10, num_levels=3), "levels"),
    "improved-ddpm": Case(lambda: zoo.ImprovedDDPM(4, num_steps=10, num_levels=3), "levels"),
    "ddpm-conditional": Case(lambda: zoo.DDPM(4, num_steps=10, num_levels=3, num_classes=3),
                             "levels", conditional=True),
    "vdm": Case(lambda: zoo.VDM(4, num_steps=10, num_levels=3, denoiser={"width": 8}), "levels"),
    # energy: persistent contrastive divergence (MALA chains from the replay buffer)
    "ebm": Case(lambda: zoo.EBM(3, hidden_dims=(8,)), "float"),
    "dequantized-conditional": Case(
        lambda: _dequantized(_flow(zoo.MAF, 4, logit_alpha=0.05, num_classes=3),
                             dequantization="variational"),
        "levels",
        conditional=True,
    ),
}


def _meta_step_inputs(case: Case) -> tuple[nn.Module, Callable, torch.Tensor, dict]:
    """The model on meta, set up as training sets it up (its initialisation, a first step),
    its engine step, and a meta batch (and labels)."""
    torch.manual_seed(0)
    model = case.build().to(META).train()
    dtype = torch.long if case.data == "levels" else torch.float32
    x = torch.empty(BATCH, *model.event_shape, dtype=dtype, device=META)
    kwargs = ({case.label: torch.empty(BATCH, dtype=torch.long, device=META)}
              if case.conditional else {})
    step = _engine_step(model, case.objective)
    with pyro.validation_enabled(False):  # the one-time set-up (see the module docstring)
        model.initialize(x, **kwargs)
        step(x, **kwargs)
    return model, step, x, kwargs


@pytest.mark.parametrize("name", sorted(CASES))
def test_training_step_runs_on_meta(name: str) -> None:
    model, step, x, kwargs = _meta_step_inputs(CASES[name])
    with HostData(), pyro.validation_enabled(True):  # Pyro's default: the step turns it off
        metrics = step(x, **kwargs)
    losses = [v for k, v in metrics.items() if k == "loss" or k.startswith("loss_")]
    assert losses  # one loss, or one per player ("loss_critic", "loss_generator")
    for loss in losses:
        assert loss.device == META and loss.shape == ()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_every_registered_model_is_covered() -> None:
    covered = {type(case.build()) for case in CASES.values()}
    zoo_models = {
        name: cls for name, cls in registered_models().items()
        if cls.__module__.startswith("ppgen.models.")  # not the test suites' own models
    }
    missing = sorted(name for name, cls in zoo_models.items() if cls not in covered)
    assert len(zoo_models) >= 17 and not missing, f"zoo models without a meta case: {missing}"


def test_ppca_likelihood_and_posterior_on_meta() -> None:
    """PPCA's closed-form fit is a one-off on the host (an eigendecomposition, a model
    selection); what it computes with afterwards, the marginal and the posterior, is not."""
    model = zoo.PPCA(5, latent_dim=2).to(META)
    x = torch.empty(BATCH, 5, device=META)
    with HostData(), pyro.validation_enabled(False):
        assert model.marginal().log_prob(x).shape == (BATCH,)
        assert model.posterior(x).rsample().shape == (BATCH, 2)


# =========================================================================== can fail
class _Branching(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if x.sum() > 0 else -x  # bool(tensor)


def _spline_of_nflows(x: torch.Tensor) -> torch.Tensor:
    from nflows.transforms.splines import unconstrained_rational_quadratic_spline

    w = torch.empty(*x.shape, 4, device=META)
    return unconstrained_rational_quadratic_spline(x, w, w, w[..., 1:], tail_bound=3.0)[0]


OFFENDERS: dict[str, Callable[[torch.Tensor], Any]] = {
    "bool": lambda x: _Branching()(x),
    "item": lambda x: x.sum().item(),
    "boolean mask": lambda x: x[x > 0],
    "nonzero": lambda x: x.nonzero(),
    "cpu tensor": lambda x: x + torch.ones(2),
    "host scalar": lambda x: torch.tensor(1.0, device=x.device),
    "distribution scalar": lambda x: dist.Normal(x, 1.0),
    "moved cpu tensor": lambda x: x * torch.ones(2).to(x.device),
    "numpy index": lambda x: x[np.arange(2)],
    "checked cholesky": lambda x: torch.linalg.cholesky(x.T @ x),
    "nflows spline": _spline_of_nflows,
}

#: the nflows layers replaced in the zoo (ActNorm's flag, the 1x1 convolution's NumPy indices)
NFLOWS_LAYERS: dict[str, Callable[[], nn.Module]] = {
    "actnorm": lambda: transforms.ActNorm(2),
    "1x1 convolution": lambda: transforms.OneByOneConvolution(2),
}


@pytest.mark.parametrize("name", sorted(OFFENDERS))
def test_an_offender_raises(name: str) -> None:
    x = torch.empty(3, 2, device=META)
    with pytest.raises((RuntimeError, NotImplementedError)), HostData():
        OFFENDERS[name](x)


@pytest.mark.parametrize("name", sorted(NFLOWS_LAYERS))
def test_a_replaced_nflows_layer_raises(name: str) -> None:
    layer, x = NFLOWS_LAYERS[name]().to(META).train(), torch.empty(3, 2, 1, 1, device=META)
    with pytest.raises((RuntimeError, NotImplementedError)), HostData():
        layer(x)


def test_host_data_allows_device_tensors() -> None:
    x = torch.empty(3, 2, device=META)
    with HostData():
        torch.as_tensor(x, device=META)
        x[torch.arange(2, device=META)] = x[:2] + torch.tensor(1.0) * math.pi  # 0-d: a scalar
        torch.linalg.cholesky_ex(x.T @ x)
