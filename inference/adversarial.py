"""Adversarial inference: fit a Pyro program by training it against a critic.

The program is run *generatively* — its observed data site unconditioned (as by
:class:`pyro.poutine.uncondition`, for that site alone), so the site samples instead of
scoring — and its draws must be reparameterised (``rsample``) so that gradients reach the
program's parameters through them.
A critic network ``D`` compares the draws with data; the program (the *generator*) and the
critic are two players of the training engine, with their own optimisers and a schedule of
``n_critic`` critic updates per generator update (keyed on the checkpointed global step, so a
resumed run continues a cycle where it stopped).

The critic is the adversarial counterpart of a guide: a zoo GAN carries its own (``model.critic``,
saved with the model, as a VAE carries its encoder); for a user's program pass one,
``Adversarial(critic=net)``, and it is this objective's state (checkpointed with the run).

Losses (``d_r = D(x)`` on data, ``d_f = D(x̃)`` on draws; ``σ`` the logistic function):

========================  =========================================  ==========================
loss                      critic minimises                           generator minimises
========================  =========================================  ==========================
``minimax``               ``-log σ(d_r) - log(1 - σ(d_f))``          ``log(1 - σ(d_f))``
``non-saturating``        same                                       ``-log σ(d_f)``
``least-squares``         ``½(d_r - 1)² + ½ d_f²``                   ``½(d_f - 1)²``
``wgan-gp``               ``d_f - d_r + λ (|∇D(x̂)| - 1)²``           ``-d_f``
                          (``+ ε d_r²`` with ``drift=ε``)
``hinge``                 ``max(0, 1 - d_r) + max(0, 1 + d_f)``      ``-d_f``
========================  =========================================  ==========================

References: Goodfellow et al., 2014, "Generative Adversarial Nets" (arXiv:1406.2661: minimax,
and the non-saturating generator loss); Mao et al., 2017, "Least Squares Generative Adversarial
Networks" (arXiv:1611.04076); Gulrajani et al., 2017, "Improved Training of Wasserstein GANs"
(arXiv:1704.00028: the gradient penalty on interpolates ``x̂``); Lim & Ye, 2017, "Geometric GAN"
and Miyato et al., 2018 (arXiv:1802.05957: hinge); Mescheder, Geiger & Nowozin, 2018, "Which
Training Methods for GANs do actually Converge?" (arXiv:1801.04406: the R1 penalty
``γ/2 E|∇D(x)|²`` on data); Karras et al., 2018, "Progressive Growing of GANs" (arXiv:1710.10196,
appendix A.1: the drift penalty ``ε E D(x)²`` on data, which keeps a Wasserstein critic's scores
near zero).

Example:
    >>> import torch, pyro, pyro.distributions as dist
    >>> from ppgen.inference import ProgramModel
    >>> def simulator(x):
    ...     loc = pyro.param("loc", torch.tensor(0.0))
    ...     with pyro.plate("data", x.shape[0]):
    ...         pyro.sample("x", dist.Normal(loc, 1.0).expand([x.shape[0], 1]).to_event(1),
    ...                     obs=x)
    >>> model = ProgramModel(simulator, event_shape=(1,))
    >>> objective = Adversarial("wgan-gp", critic=mlp_critic(1))
    >>> history = ppgen.fit(model, data, objective=objective)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import Enum
from typing import Any, ClassVar

import torch
from pyro import poutine
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample
from torch import nn
from torch.nn import functional as F

from ppgen.conditions import take_rows
from ppgen.errors import ModelError, TrainingError
from ppgen.metrics import feature_space, frechet_distance_of, mmd2
from ppgen.metrics.features import feature_space_names
from ppgen.objective import Objective, StepContext

__all__ = [
    "AdversarialLoss",
    "Adversarial",
    "ADVERSARIAL_OBJECTIVES",
    "simulate",
    "simulate_sites",
    "recognition_loss",
    "critic_losses",
    "generator_loss",
    "gradient_penalty",
    "r1_penalty",
    "drift_penalty",
    "mlp_critic",
]


class AdversarialLoss(str, Enum):
    """The adversarial losses (see the module docstring for the formulas)."""

    MINIMAX = "minimax"
    NON_SATURATING = "non-saturating"
    LEAST_SQUARES = "least-squares"
    WGAN_GP = "wgan-gp"
    HINGE = "hinge"


# ----------------------------------------------------------------------------- the losses
def critic_losses(loss: AdversarialLoss, d_real: torch.Tensor, d_fake: torch.Tensor
                  ) -> torch.Tensor:
    """The critic's loss (a scalar) from its outputs ``d_real: [B]`` and ``d_fake: [B]``."""
    if loss in (AdversarialLoss.MINIMAX, AdversarialLoss.NON_SATURATING):
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
    if loss == AdversarialLoss.LEAST_SQUARES:
        return 0.5 * ((d_real - 1).square().mean() + d_fake.square().mean())
    if loss == AdversarialLoss.WGAN_GP:
        return d_fake.mean() - d_real.mean()
    return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()


def generator_loss(loss: AdversarialLoss, d_fake: torch.Tensor) -> torch.Tensor:
    """The generator's loss (a scalar) from the critic's outputs on its draws ``[B]``."""
    if loss == AdversarialLoss.MINIMAX:
        return -F.softplus(d_fake).mean()  # log(1 - σ(d)) = -softplus(d)
    if loss == AdversarialLoss.NON_SATURATING:
        return F.softplus(-d_fake).mean()  # -log σ(d)
    if loss == AdversarialLoss.LEAST_SQUARES:
        return 0.5 * (d_fake - 1).square().mean()
    return -d_fake.mean()


def recognition_loss(recognized: dict[str, Any], known: dict[str, torch.Tensor]
                     ) -> torch.Tensor | None:
    """``-Σ_s E log q(v_s | x)`` over the recognised sites ``s`` whose values ``v_s`` are known.

    With ``q`` the critic's recognition head (:meth:`~ppgen.GenerativeModel.critic_outputs`),
    this is AC-GAN's class loss (Odena et al., 2017) and, on draws whose codes the program
    sampled, the negative of InfoGAN's mutual-information lower bound less the codes' entropy
    (Chen et al., 2016: ``L_I = H(c) + E log q(c | x)``).

    Args:
        recognized: ``{site: distribution}`` with batch shape ``[B]``.
        known: ``{site: values [B, ...]}`` (sites without a value are skipped).

    Returns:
        A scalar (the batch mean), or ``None`` when no recognised site has a value.
    """
    terms = [-fn.log_prob(known[name]).mean() for name, fn in recognized.items()
             if name in known]
    return torch.stack(terms).sum() if terms else None


def _score(critic: nn.Module, x: torch.Tensor, kwargs: dict[str, torch.Tensor]
           ) -> torch.Tensor:
    """The critic's ``[B]`` outputs on ``x: [B, ...]`` (conditioning values as keywords)."""
    return critic(x, **kwargs).reshape(len(x))


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     kwargs: dict[str, torch.Tensor], one_sided: bool = False) -> torch.Tensor:
    """``E (|∇D(x̂)| - 1)²`` at random interpolates ``x̂ = u x + (1 - u) x̃`` (Gulrajani et al.).

    The one-sided form ``E max(0, |∇D(x̂)| - 1)²`` (Petzka et al., 2018, "On the regularization
    of Wasserstein GANs", arXiv:1709.08894) only penalises slopes above 1. On one-dimensional
    data it matters: the two-sided penalty is a barrier at slope 0, so a critic that starts
    sloping the wrong way cannot turn (it is stuck at ``D' = +1`` where ``-1`` is optimal).

    Args:
        critic: the critic ``D``.
        real: data ``[B, ...]``; fake: detached draws ``[B, ...]``.
        kwargs: conditioning values of the rows.
        one_sided: penalise only gradient norms above 1.
    """
    mix = torch.rand([len(real)] + [1] * (real.dim() - 1), device=real.device, dtype=real.dtype)
    points = (mix * real + (1 - mix) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(_score(critic, points, kwargs).sum(), points, create_graph=True)
    excess = grad.flatten(1).norm(dim=1) - 1
    return (excess.clamp_min(0) if one_sided else excess).square().mean()


def r1_penalty(d_real: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """``E |∇D(x)|²`` on data (Mescheder et al.); ``real`` must require gradients and
    ``d_real: [B]`` be computed from it."""
    grad, = torch.autograd.grad(d_real.sum(), real, create_graph=True)
    return grad.flatten(1).square().sum(1).mean()


def drift_penalty(d_real: torch.Tensor) -> torch.Tensor:
    """``E D(x)²`` of the critic's scores on data ``d_real: [B]`` (Karras et al., 2018)."""
    return d_real.square().mean()


def mlp_critic(num_dims: int, hidden: Sequence[int] = (64, 64), slope: float = 0.2
               ) -> nn.Sequential:
    """A critic for flat data ``[B, num_dims]``: a LeakyReLU MLP with one output (no
    normalisation layers, so every gradient penalty applies)."""
    sizes = [num_dims, *hidden]
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), nn.LeakyReLU(slope)]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], 1))


# ----------------------------------------------------------------------------- the draws
class _Generative(Messenger):
    """Samples the data site instead of observing it, and keeps the draws of every sample site
    (the data site only is unconditioned: anything else the program conditions on stays
    conditioned)."""

    def __init__(self, site: str) -> None:
        super().__init__()
        self.site, self.values = site, {}

    def _pyro_sample(self, msg: Any) -> None:
        if msg["name"] == self.site and msg["is_observed"]:
            msg["is_observed"], msg["value"], msg["done"] = False, None, False

    def _pyro_post_sample(self, msg: Any) -> None:
        self.values[msg["name"]] = msg["value"]


def simulate(model: nn.Module, like: torch.Tensor, kwargs: dict[str, torch.Tensor] | None = None,
             check: bool = False) -> torch.Tensor:
    """The draws of the data site alone (see :func:`simulate_sites`)."""
    return simulate_sites(model, like, kwargs, check)[model.data_site]


def simulate_sites(model: nn.Module, like: torch.Tensor,
                   kwargs: dict[str, torch.Tensor] | None = None, check: bool = False
                   ) -> dict[str, torch.Tensor]:
    """Run ``model.model`` generatively: its data site unconditioned, one draw per row.

    Args:
        model: a :class:`~ppgen.GenerativeModel` (``model.model`` and ``model.data_site``).
        like: data ``[B, *event_shape]``: the program gets them as its observations (for their
            shape and device), and the data site samples instead of observing them (as under
            ``poutine.uncondition``, for that one site).
        kwargs: per-row conditioning values (``y: [B]``): each draw is conditioned on its row's.
        check: trace the program and refuse one whose sample sites cannot carry gradients (no
            ``rsample``); without it only the data site's value is kept (cheaper: no trace).

    Returns:
        ``{site: value}`` of every sample site: the data site's draws ``[B, *event_shape]``,
        differentiable with respect to the program's parameters, and the other sites' values
        (e.g. an InfoGAN's codes).

    Raises:
        ModelError: no sample site named ``model.data_site``; with ``check``, a sample site
            that is not reparameterised.
    """
    generative = _Generative(model.data_site)
    with generative:
        if check:
            trace = poutine.trace(model.model).get_trace(like, **(kwargs or {}))
            _check_reparameterized(trace, type(model).__name__)
        else:
            model.model(like, **(kwargs or {}))
    if model.data_site not in generative.values:
        raise ModelError(f"{type(model).__name__}'s program has no sample site "
                         f"{model.data_site!r} (its data site): name the observed site with "
                         "data_site=")
    return generative.values


def _check_reparameterized(trace: Any, owner: str) -> None:
    for name, node in trace.nodes.items():
        if node["type"] != "sample" or site_is_subsample(node):
            continue
        if not getattr(node["fn"], "has_rsample", False) and _has_parameters(node["fn"]):
            raise ModelError(
                f"site {name!r} of {owner}'s program ({type(node['fn']).__name__}) has no "
                "rsample, so no gradient reaches the parameters through its draws: adversarial "
                "training needs reparameterised sites (write the noise as a continuous base "
                "draw pushed through a differentiable function)"
            )


def _has_parameters(fn: Any) -> bool:
    """Whether a distribution's arguments carry gradients (trainable parameters): a site
    without ``rsample`` is refused only then (a code drawn from a fixed prior needs none)."""
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return any(isinstance(v, torch.Tensor) and v.requires_grad for v in vars(fn).values())


# ----------------------------------------------------------------------------- the objective
class Adversarial(Objective):
    """Train a program against a critic (two players: ``"generator"`` and ``"critic"``).

    Args:
        loss: an :class:`AdversarialLoss` name: ``"minimax"``, ``"non-saturating"`` (the
            default), ``"least-squares"``, ``"wgan-gp"`` or ``"hinge"``.
        critic: the critic network ``D(x, **conditions) -> [B]`` or ``[B, 1]`` for a program
            that carries none (a user's program); ``None`` uses ``model.critic``.
        n_critic: critic updates per generator update (one batch each); default 5 for
            ``wgan-gp``, 1 otherwise.
        gradient_penalty: ``λ`` of the gradient penalty on interpolates; default 10 for
            ``wgan-gp``, 0 otherwise.
        one_sided: penalise only gradient norms above 1 (see :func:`gradient_penalty`; use it
            for one-dimensional data).
        r1: ``γ`` of the R1 penalty ``γ/2 E|∇D(x)|²`` on data (0: none).
        drift: ``ε`` of the drift penalty ``ε E D(x)²`` on data (:func:`drift_penalty`; 0:
            none; the Progressive GAN's 0.001).
        pack: PacGAN's packing (Lin et al., 2018, arXiv:1712.04086): the critic scores ``pack``
            rows at once, ``[B, D] -> [B / pack, pack * D]`` (data with data, draws with
            draws; a last incomplete pack is dropped), so its input has ``pack * D`` features;
            only for flat data without conditioning inputs.
        info_weight: ``λ`` of the recognition loss (:func:`recognition_loss`) for the models
            whose critic recognises sites (:meth:`~ppgen.GenerativeModel.critic_outputs`:
            AC-GAN's class loss, InfoGAN's mutual-information term); both players minimise
            it, the critic on data as well where the values are known (the labels).
        validation_rows: validation rows the metric compares with as many draws.
        validation_seed: seed of the validation draws (the same noise every epoch; the
            training random streams are left untouched).
        features: the feature space of the validation metric, by name
            (:func:`ppgen.metrics.feature_space`): what :func:`ppgen.metrics.features_for`
            of the data's ``DataInfo`` declares, ``"digits"`` for the bundled digits;
            ``None`` (the default), ``"raw"`` or a mode toy's name: the data themselves.

    The validation metric (lower is better; early stopping and the best state use it) compares
    ``validation_rows`` validation rows with as many draws: in a space with a learned embedding
    (``features="digits"``: the digits classifier's) the Fréchet distance of their features,
    the number the sample-metrics report and the digits benchmarks rank GANs by; on the data
    themselves the unbiased squared MMD with the median-heuristic Gaussian kernel
    (:func:`ppgen.metrics.mmd2`), which, unlike a Fréchet distance, sees a missing mode of a
    multi-modal toy. With ``ema`` the engine averages the generator's weights only
    (:meth:`ema_parameters`).
    """

    name = "adversarial"
    #: the loss of this registered name, or ``None`` when the ``loss`` argument chooses it
    fixed_loss: ClassVar[str | None] = None

    def __init__(
        self,
        loss: str | None = None,
        critic: nn.Module | None = None,
        n_critic: int | None = None,
        gradient_penalty: float | None = None,
        one_sided: bool = False,
        r1: float = 0.0,
        info_weight: float = 1.0,
        pack: int = 1,
        validation_rows: int = 2048,
        validation_seed: int = 0,
        features: str | None = None,
        drift: float = 0.0,
    ) -> None:
        super().__init__()
        self.loss_kind = self._loss_of(loss)
        wgan = self.loss_kind == AdversarialLoss.WGAN_GP
        self.critic = critic
        self.n_critic = (5 if wgan else 1) if n_critic is None else int(n_critic)
        self.gp_weight = (10.0 if wgan else 0.0) if gradient_penalty is None else float(
            gradient_penalty)
        self.one_sided, self.r1 = bool(one_sided), float(r1)
        self.info_weight, self.pack = float(info_weight), int(pack)
        self.validation_rows, self.validation_seed = int(validation_rows), int(validation_seed)
        self.features, self.drift = _feature_space_name(features), float(drift)
        if (self.n_critic < 1 or self.gp_weight < 0 or self.r1 < 0 or self.info_weight < 0
                or self.pack < 1 or self.validation_rows < 2 or self.drift < 0):
            raise TrainingError("n_critic >= 1, gradient_penalty >= 0, r1 >= 0, "
                                "info_weight >= 0, pack >= 1, validation_rows >= 2 and "
                                "drift >= 0 are required")
        self._checked = False

    def _loss_of(self, loss: str | None) -> AdversarialLoss:
        if self.fixed_loss is not None and loss not in (None, self.fixed_loss):
            raise TrainingError(f"objective {self.name!r} is the {self.fixed_loss} loss; use "
                             f"'adversarial' to choose another (loss={loss!r})")
        loss = self.fixed_loss or loss or AdversarialLoss.NON_SATURATING.value
        try:
            return AdversarialLoss(loss)
        except ValueError:
            known = ", ".join(v.value for v in AdversarialLoss)
            raise TrainingError(f"unknown adversarial loss {loss!r}; use one of {known}") from None

    # ----------------------------------------------------------------- players
    def critic_of(self, model: nn.Module) -> nn.Module:
        """The critic: this objective's, else the one the model carries (``model.critic``)."""
        if self.critic is not None:
            return self.critic
        critic = model.critic_network()
        if critic is None:
            raise ModelError(
                f"{type(model).__name__} carries no critic: pass one to the objective, e.g. "
                "Adversarial('wgan-gp', critic=mlp_critic(num_dims)) from ppgen.inference"
            )
        return critic

    def param_groups(self, model: nn.Module) -> dict[str, Iterable[nn.Parameter]]:
        """``{"generator": the model's parameters but the critic's, "critic": the critic's}``."""
        critic = list(self.critic_of(model).parameters())
        ids = {id(p) for p in critic}
        return {"generator": [p for p in model.parameters() if id(p) not in ids],
                "critic": critic}

    def updates(self, step: int, groups: tuple[str, ...]) -> list[tuple[str, ...]]:
        """A critic update every step, a generator update every ``n_critic``-th step."""
        last = step % self.n_critic == self.n_critic - 1
        return [("critic",)] + ([("generator",)] if last else [])

    def ema_parameters(self, model: nn.Module) -> Iterable[tuple[str, nn.Parameter]]:
        """The generator's parameters (the critic is never averaged)."""
        ids = {id(p) for p in self.critic_of(model).parameters()}
        return [(n, p) for n, p in model.named_parameters() if id(p) not in ids]

    # ----------------------------------------------------------------- losses
    def losses(self, model: nn.Module, batch: torch.Tensor, context: StepContext,
               **kwargs: Any) -> dict[str, torch.Tensor]:
        """The critic's loss (``context.update == ("critic",)``) or the generator's."""
        if context.update == ("generator",):
            return self.generator_step(model, batch, kwargs)
        return self.critic_step(model, batch, kwargs)

    def generator_step(self, model: nn.Module, batch: torch.Tensor,
                       kwargs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"loss": generator loss (+ λ recognition loss), ...}`` on fresh differentiable
        draws, one per row of ``batch``."""
        sites = simulate_sites(model, batch, kwargs, check=not self._checked)
        self._checked = True
        fake = self._packed(sites[model.data_site], kwargs)
        d_fake, recognized = model.critic_outputs(self.critic_of(model), fake, **kwargs)
        loss = generator_loss(self.loss_kind, d_fake)
        info = recognition_loss(recognized, {**kwargs, **sites}) if recognized else None
        if info is None:
            return {"loss": loss}
        return {"loss": loss + self.info_weight * info, "info": info.detach()}

    def critic_step(self, model: nn.Module, batch: torch.Tensor,
                    kwargs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"loss": critic loss + penalties, "gap": E d_r - E d_f, "penalty": ...}``."""
        critic = self.critic_of(model)
        with torch.no_grad():
            sites = simulate_sites(model, batch, kwargs)
        fake = self._packed(sites[model.data_site], kwargs)
        real = self._packed(model.data_for_critic(batch.detach()), kwargs)
        real = real.requires_grad_(self.r1 > 0)
        d_real, seen_real = model.critic_outputs(critic, real, **kwargs)
        d_fake, seen_fake = model.critic_outputs(critic, fake, **kwargs)
        loss = critic_losses(self.loss_kind, d_real, d_fake)
        out = {"gap": (d_real.mean() - d_fake.mean()).detach()}
        if seen_fake:
            loss, out = self._add_recognition(loss, out, (seen_real, kwargs),
                                              (seen_fake, {**kwargs, **sites}))
        if self.gp_weight > 0:
            penalty = gradient_penalty(critic, real.detach(), fake, kwargs, self.one_sided)
            loss = loss + self.gp_weight * penalty
            out["penalty"] = penalty.detach()
        if self.r1 > 0:
            r1 = r1_penalty(d_real, real)
            loss = loss + 0.5 * self.r1 * r1
            out["r1"] = r1.detach()
        if self.drift > 0:
            drift = drift_penalty(d_real)
            loss = loss + self.drift * drift
            out["drift"] = drift.detach()
        return {"loss": loss, **out}

    def _packed(self, x: torch.Tensor, kwargs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``x: [B, D]`` as ``[B // pack, pack * D]`` (PacGAN); unchanged without packing."""
        if self.pack == 1:
            return x
        if kwargs or x.dim() != 2:
            raise TrainingError("pack > 1 needs flat data [B, D] and no conditioning inputs")
        rows = x.shape[0] - x.shape[0] % self.pack
        return x[:rows].reshape(rows // self.pack, self.pack * x.shape[1])

    def _add_recognition(self, loss: torch.Tensor, out: dict[str, torch.Tensor],
                         *pairs: tuple[dict[str, Any], dict[str, torch.Tensor]]
                         ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``loss + λ Σ recognition losses`` of ``(recognised, known)`` pairs (data, draws)."""
        terms = [t for t in (recognition_loss(*pair) for pair in pairs) if t is not None]
        if not terms:
            return loss, out
        info = torch.stack(terms).sum()
        return loss + self.info_weight * info, {**out, "info": info.detach()}

    def validation_metric(self, model: nn.Module, data: torch.Tensor, **kwargs: Any
                          ) -> torch.Tensor:
        """The Fréchet distance in :attr:`features` (a space with an embedding), else the
        unbiased squared MMD, between validation rows and as many draws (lower is better)."""
        rows = data[: self.validation_rows]
        kwargs = take_rows(kwargs, slice(0, self.validation_rows))
        devices = [data.device.index or 0] if data.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # building the space draws weights too
            space = feature_space(self.features)
            torch.manual_seed(self.validation_seed)
            fake = simulate(model, rows, kwargs)
        if space.name == "raw":
            return mmd2(rows, fake)
        return frechet_distance_of(rows, fake, space.embed).to(data.device)

    def get_config(self) -> dict:
        config = {"name": self.name, "loss": self.loss_kind.value, "n_critic": self.n_critic,
                  "gradient_penalty": self.gp_weight, "one_sided": self.one_sided, "r1": self.r1,
                  "info_weight": self.info_weight, "pack": self.pack,
                  "validation_rows": self.validation_rows,
                  "validation_seed": self.validation_seed}
        # only when set: the checkpoints of runs validated on the data (or without a drift
        # penalty) still resume
        if self.drift > 0:
            config["drift"] = self.drift
        return config if self.features is None else {**config, "features": self.features}


def _feature_space_name(features: str | None) -> str | None:
    """``features`` checked without building the space: a name :func:`ppgen.metrics.
    feature_space` knows (a name, so the objective's config stays JSON-able)."""
    known = feature_space_names()
    if features is not None and features not in known:
        raise TrainingError(f"unknown feature space {features!r} for the validation metric: "
                            f"use one of {known}")
    return features


def _named(loss: AdversarialLoss) -> type[Adversarial]:
    """The objective registered under the loss's own name (``objective="wgan-gp"``)."""
    doc = f"The adversarial objective with the {loss.value} loss (see :class:`Adversarial`)."
    return type(f"Adversarial_{loss.name}", (Adversarial,),
                {"name": loss.value, "fixed_loss": loss.value, "__doc__": doc,
                 "__module__": __name__})


#: the adversarial objectives by registered name: ``"adversarial"`` (any loss) and each loss
ADVERSARIAL_OBJECTIVES: dict[str, type[Adversarial]] = {
    Adversarial.name: Adversarial, **{loss.value: _named(loss) for loss in AdversarialLoss}}

