"""The adversarial autoencoder: an autoencoder whose codes a latent critic matches to any prior.

Makhzani, Shlens, Jaitly, Goodfellow & Frey, 2016, "Adversarial Autoencoders"
(arXiv:1511.05644). An encoder ``q(z | x)`` (deterministic, or a diagonal Gaussian) and a decoder
``p(x | z)`` over the data's likelihood (the VAE family's observation heads,
:class:`~ppgen.models.vae.ObservationHead`: categorical levels, Bernoulli, Gaussian) are trained
in two phases per batch by the objective ``"aae"``
(:class:`ppgen.inference.aae.AdversarialAutoencoding`):
*reconstruction* (encoder and decoder minimise ``-log p(x | z = enc(x))``) and *regularisation*
(a critic ``D(z)`` tells prior draws from codes; the encoder, as its generator, fools it), so the
aggregate posterior ``q(z) = E_x q(z | x)`` matches the prior ``p(z)``. The prior is anything a
user can sample (:mod:`ppgen.models.aae_priors`): a named one (``"gaussian"``, ``"mixture10"``,
``"swiss-roll"``, ``"uniform"``), a Pyro distribution, or a program ``fn(n) -> [n, L]``.

Variants (``variant=``):

* ``"unsupervised"``: code ``z`` ``[L]``, decoder ``p(x | z)``.
* ``"supervised"``: the label is a declared conditioning input ``y`` and enters the decoder,
  ``p(x | z, y)``, so ``z`` keeps the style (Sec. 4); ``sample(n, y=3)``.
* ``"semi-supervised"``: the encoder also outputs ``q(y | x)`` (a softmax over ``C`` classes);
  the code ``[q(y | x), z]`` is matched to ``Cat(C) x p(z)`` (:class:`~ppgen.models.aae_priors.
  CategoricalProduct`) and the rows with a label (``y >= 0``; ``-1`` marks an unlabelled row,
  passed through the conditioning declaration: ``ppgen.fit(model, x, x_val, labels=y,
  val_labels=y_val)``) add the classification loss (Sec. 5). :meth:`AAE.classify`.
* ``"clustering"``: the same code without labels; ``argmax q(y | x)`` is the cluster (Sec. 6).

Density: a Gaussian-encoder AAE of the first two variants whose prior has a density is a latent
model (``kind == "latent"``: ``model`` + ``guide`` Pyro programs), so ``ppgen.log_likelihood``
gives the importance-weighted estimate. Every other AAE (a deterministic encoder, a prior that
only draws, a categorical code) is ``implicit``: it has no bound, and the evaluation layer
routes it to sample-based metrics.

Example:
    >>> aae = AAE(64, latent_dim=2, prior="mixture10", num_levels=17,
    ...           network={"hidden_dims": (32,), "critic_dims": (16,)})
    >>> aae.sample(3).shape, aae.kind.value
    (torch.Size([3, 64]), 'latent')
    >>> aae.encode(torch.zeros(5, 64, dtype=torch.long)).shape
    torch.Size([5, 2])
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from ppgen.conditions import Condition, Conditions
from ppgen.data.validate import as_tensor, value_range
from ppgen.errors import DataError, ModelError
from ppgen.models.aae_priors import (
    CategoricalProduct,
    LatentPrior,
    PriorDistribution,
    make_prior,
)
from ppgen.models.autoregressive import eval_mode
from ppgen.models.vae import VAE_LIKELIHOODS, ObservationHead, _gaussian_params, mlp
from ppgen.protocol import GenerativeModel, ModelKind

if TYPE_CHECKING:
    from ppgen.data import DataInfo

__all__ = ["AAE", "AAE_VARIANTS", "AAE_ENCODERS", "PartialLabels"]

#: what the labels do: none, into the decoder, a few of them, none but a categorical code
AAE_VARIANTS = ("unsupervised", "supervised", "semi-supervised", "clustering")

#: the encoder ``q(z | x)``: a point, or a diagonal Gaussian (reparameterised)
AAE_ENCODERS = ("deterministic", "gaussian")

#: the networks' options and their defaults (``network=`` overrides some)
NETWORK_DEFAULTS: dict[str, Any] = {
    "hidden_dims": [256, 256], "critic_dims": [256, 256], "dropout": 0.0,
    "categorical_head": "logistic",
}

#: DataInfo likelihood -> decoder likelihood (as the VAE's ``for_data``)
_FOR_DATA = {"categorical": "categorical", "bernoulli": "bernoulli", "continuous": "gaussian"}


@dataclass(frozen=True)
class PartialLabels(Condition):
    """Class labels ``0..C-1`` where ``-1`` marks an unlabelled row (semi-supervised data)."""

    def describe(self) -> str:
        return (f"{self.name} (class label in 0..{self.num_classes - 1}, or -1 for an "
                "unlabelled row)")

    def check(self, value: Any, n: int, what: str | None = None) -> torch.Tensor:
        """``[n]`` integers in ``-1..C-1`` as ``long``.

        Raises:
            DataError: a wrong length, non-integer values or values outside ``-1..C-1``.
        """
        what = what or "labels"
        t = as_tensor(value, what)
        self._check_integers(t, what)
        if t.shape != (n,):
            raise DataError(f"{what} have shape {tuple(t.shape)} but the data have {n} rows: "
                            f"pass one label per row (-1 where unknown), shape [{n}]")
        if t.numel():
            lo, hi = value_range(t)
            if lo < -1 or hi >= self.num_classes:
                raise DataError(f"{what} have values in [{lo:g}, {hi:g}]: {self.describe()}")
        return t.long()


class _KindOfEncoder:
    """``kind`` of an AAE: ``latent`` where it has a bound (:attr:`AAE.has_bound`), else
    ``implicit``; on the class, ``latent`` (what the family can be)."""

    def __get__(self, obj: AAE | None, owner: type) -> ModelKind:
        if obj is None:
            return ModelKind.LATENT
        return ModelKind.LATENT if obj.has_bound else ModelKind.IMPLICIT


class AAE(GenerativeModel):
    """Adversarial autoencoder: an autoencoder with a latent critic matching q(z) to a prior.

    Paper: Makhzani et al., 2016, "Adversarial Autoencoders" (arXiv:1511.05644).

    Args:
        num_dims: ``D``, the size of one (flat) datum.
        latent_dim: ``L``, the size of the continuous code (the style of the labelled variants).
        prior: ``p(z)`` over ``[L]``: a name (:data:`~ppgen.models.aae_priors.NAMED_PRIORS`), a
            Pyro/torch distribution with event shape ``[L]``, a
            :class:`~ppgen.models.aae_priors.LatentPrior` or a program ``fn(n) -> [n, L]``. A
            user's prior is not saved in a checkpoint (its config says ``"custom"``).
        encoder: ``"deterministic"`` or ``"gaussian"``.
        variant: ``"unsupervised"``, ``"supervised"``, ``"semi-supervised"`` or
            ``"clustering"`` (see the module docstring).
        num_classes: ``C`` of the labelled and clustering variants.
        likelihood: ``"categorical"``, ``"bernoulli"`` or ``"gaussian"`` (the VAE's heads).
        num_levels: ``K`` of categorical data.
        network: ``hidden_dims`` (encoder; the decoder mirrors them), ``critic_dims``,
            ``dropout``, ``categorical_head`` (:data:`NETWORK_DEFAULTS`).

    Attributes:
        encoder_net: ``x -> [N, C + L]`` code means (and as many raw scales, Gaussian encoder).
        decoder_net: ``[z, onehot(y)] ->`` the observation head's parameters.
        critic: the latent critics ``D(code) -> [N, 1]`` (``nn.ModuleList``: one for the
            code, or one for its class part and one for its style).
        latent_prior: the prior of the whole code (:class:`~ppgen.models.aae_priors.
            LatentPrior`).

    Example:
        >>> aae = AAE(6, latent_dim=2, variant="semi-supervised", num_classes=3, num_levels=3,
        ...           network={"hidden_dims": (8,), "critic_dims": (8,)})
        >>> aae.encode(torch.zeros(4, 6, dtype=torch.long)).shape  # [q(y | x), z]
        torch.Size([4, 5])
        >>> aae.sample(2, y=1).shape
        torch.Size([2, 6])
    """

    kind = _KindOfEncoder()
    default_objective = "aae"
    objective_defaults: ClassVar[dict[str, Any]] = {
        "loss": "non-saturating", "regularization": 1.0, "supervision": 1.0}
    @property
    def fit_defaults(self) -> dict[str, Any]:  # type: ignore[override]
        """Adam for every phase with GAN betas (lr 1e-3; the encoder's regularisation phase
        1e-4 for a categorical code: at an equal rate the softmax codes collapse onto one class
        on the digits), batches of 100 and fixed epochs (no early stopping: the validation
        loss, the reconstruction NLL, does not see the prior matching)."""
        groups = ("autoencoder", "critic", "encoder", "classifier")
        optimizer = {g: {"name": "adam", "lr": 1e-3, "betas": [0.5, 0.999]} for g in groups}
        if self.categorical:
            optimizer["encoder"]["lr"] = 1e-4
        return {"optimizer": optimizer, "batch_size": 100, "epochs": 150}

    def __init__(
        self,
        num_dims: int,
        latent_dim: int = 8,
        prior: Any = "gaussian",
        encoder: str = "gaussian",
        variant: str = "unsupervised",
        num_classes: int = 10,
        likelihood: str = "categorical",
        num_levels: int | None = None,
        network: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        _check_options(encoder, variant, num_classes, prior)
        _check_data_options(num_dims, latent_dim, likelihood, num_levels)
        self.num_dims, self.latent_dim = num_dims, latent_dim
        self.encoder, self.variant, self.num_classes = encoder, variant, num_classes
        self.likelihood, self.num_levels = likelihood, num_levels
        self.network = _network(network)
        self.prior = prior if isinstance(prior, str) else "custom"
        style = make_prior(prior, latent_dim)
        self.latent_prior: LatentPrior = (
            CategoricalProduct(num_classes, style) if self.categorical else style)
        net = self.network
        self._observation = ObservationHead(num_dims, likelihood, num_levels,
                                            net["categorical_head"])
        code_dim = self.latent_prior.dim
        out = code_dim if encoder == "deterministic" else 2 * code_dim
        hidden = net["hidden_dims"]
        self.encoder_net = mlp([num_dims, *hidden, out], net["dropout"])
        self.decoder_net = mlp([self._decoder_dim(), *hidden[::-1],
                                self._observation.num_outputs], net["dropout"])
        self.critic = nn.ModuleList(mlp([stop - start, *net["critic_dims"], 1])
                                    for start, stop in self._critic_parts())
        self.register_buffer("_one", torch.ones(()), persistent=False)

    # ----------------------------------------------------------------- declarations
    @property
    def categorical(self) -> bool:
        """Whether the code has a categorical part ``q(y | x)`` (semi-supervised, clustering)."""
        return self.variant in ("semi-supervised", "clustering")

    @property
    def has_bound(self) -> bool:
        """A Gaussian encoder, a continuous code and a prior with a density: then the model is
        a latent-variable program pair and has an importance-weighted likelihood."""
        return (self.encoder == "gaussian" and not self.categorical
                and self.latent_prior.has_density)

    @property
    def conditions(self) -> Conditions:
        """``y``: class labels (supervised), labels or ``-1`` (semi-supervised); else none."""
        owner = type(self).__name__
        if self.variant == "supervised":
            return Conditions([Condition.classes("y", self.num_classes)], owner)
        if self.variant == "semi-supervised":
            return Conditions([PartialLabels.classes("y", self.num_classes)], owner)
        return Conditions((), owner)

    @property
    def event_shape(self) -> torch.Size:
        """``[D]``: one flat datum."""
        return torch.Size([self.num_dims])

    def _decoder_dim(self) -> int:
        labels = self.num_classes if self.variant != "unsupervised" else 0
        return self.latent_dim + labels

    # ----------------------------------------------------------------- networks
    def encoder_parameters(self) -> Iterable[torch.nn.Parameter]:
        """The encoder's parameters (the regularisation phase's generator)."""
        return self.encoder_net.parameters()

    def decoder_parameters(self) -> Iterable[torch.nn.Parameter]:
        """The decoder's parameters."""
        return self.decoder_net.parameters()

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The encoder's code means ``[N, C + L]`` (or ``[N, L]``) of checked data ``x: [N,
        D]``, and the scales of a Gaussian encoder (``None`` when deterministic)."""
        h = self.encoder_net(self._encoder_input(x))
        if self.encoder == "deterministic":
            return h, None
        return _gaussian_params(h, self.latent_prior.dim)

    def _encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """Levels scaled to ``[0, 1]`` (``x / (K - 1)``); other data as they are."""
        x = x.to(self._one.dtype)
        return x / (self.num_levels - 1) if self.likelihood == "categorical" else x

    def likelihood_fn(self, code: torch.Tensor) -> dist.TorchDistribution:
        """``p(x | decoder input)`` for ``[..., N, C + L]`` inputs: batch ``[..., N]``, event
        ``[D]``."""
        return self._observation(self.decoder_net(code))

    def codes(self, x: torch.Tensor, sample: bool = True
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The code ``[N, C + L]`` or ``[N, L]`` of checked data ``x: [N, D]`` and the class
        logits ``[N, C]`` (``None`` without a categorical part).

        The style is the encoder's mean, or (Gaussian encoder, ``sample``) a reparameterised
        draw ``mu + sigma * eps``; a categorical part is ``softmax(logits)``.
        """
        loc, scale = self.posterior(x)
        logits = None
        if self.categorical:
            c = self.num_classes
            logits, loc = loc[:, :c], loc[:, c:]
            scale = None if scale is None else scale[:, c:]
        style = loc + scale * torch.randn_like(loc) if sample and scale is not None else loc
        code = style if logits is None else torch.cat([logits.softmax(-1), style], dim=-1)
        return code, logits

    def _decoder_input(self, code: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """``code [..., N, *]`` with ``onehot(y) [N, C]`` beside it (supervised variant)."""
        if self.variant != "supervised":
            return code
        onehot = F.one_hot(y.long(), self.num_classes).to(code.dtype)
        return torch.cat([code, onehot.expand(*code.shape[:-1], self.num_classes)], dim=-1)

    def reconstruction_nll(self, x: torch.Tensor, y: torch.Tensor | None = None,
                           sample: bool = True) -> torch.Tensor:
        """``-log p(x | dec(enc(x)))`` ``[N]`` nats per datum of checked ``x: [N, D]`` (labels
        ``y`` of the supervised variant)."""
        code, _ = self.codes(x, sample)
        return -self.likelihood_fn(self._decoder_input(code, y)).log_prob(x)

    def class_nll(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mean of ``-log q(y | x)`` over the rows with a label (``y >= 0``; 0 when none
        has one): the semi-supervised phase. Weighted, not indexed, so no host sync."""
        _, logits = self.codes(x, sample=False)
        labelled = (y >= 0).to(logits.dtype)
        nll = F.cross_entropy(logits, y.clamp_min(0), reduction="none")
        return (labelled * nll).sum() / labelled.sum().clamp_min(1.0)

    def _critic_parts(self) -> list[tuple[int, int]]:
        """The code's columns each critic reads: the class part and the style apart (one
        critic each, as Makhzani et al., Sec. 5), or the whole code."""
        c, L = self.num_classes, self.latent_dim
        return [(0, c), (c, c + L)] if self.categorical else [(0, L)]

    def critic_scores(self, code: torch.Tensor) -> list[torch.Tensor]:
        """The latent critics' scores, ``[N]`` each, of codes ``[N, C + L]`` or ``[N, L]``
        (one critic of the whole code; the class part and the style apart with a categorical
        part)."""
        return [net(code[:, start:stop]).reshape(len(code))
                for net, (start, stop) in zip(self.critic, self._critic_parts())]

    def prior_codes(self, n: int) -> torch.Tensor:
        """``n`` draws of the whole code's prior ``[n, C + L]`` or ``[n, L]``."""
        return self.latent_prior.sample(n)

    # ----------------------------------------------------------------- Pyro programs
    def model(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None,
              num_samples: int | None = None) -> torch.Tensor:
        """``z ~ p(z)`` (the code's prior), ``x ~ p(x | z[, y])`` in the ``"data"`` plate.

        Args:
            x: observed data ``[N, D]``, or ``None`` to generate.
            y: labels ``[N]`` of the supervised and semi-supervised variants (generation:
                the classes in turn without them; ``-1`` draws the class from the prior).
            num_samples: ``N`` when generating without labels (default 1).

        Returns:
            ``x`` (observed or generated), ``[N, D]``.
        """
        y = self.conditions.in_program({"y": y}, x, num_samples, self.device).get("y")
        n = x.shape[0] if x is not None else (len(y) if y is not None else (num_samples or 1))
        with pyro.plate("data", n, device=self.device):
            code = pyro.sample("z", PriorDistribution(self.latent_prior, [n]))
            if self.variant == "semi-supervised":
                code = self._with_classes(code, y)
            likelihood = self.likelihood_fn(self._decoder_input(code, y))
            return pyro.sample(self.data_site, likelihood, obs=x)

    def _with_classes(self, code: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The categorical part of prior codes set to ``onehot(y)`` where ``y >= 0``."""
        c = self.num_classes
        onehot = F.one_hot(y.clamp_min(0), c).to(code.dtype)
        part = torch.where((y >= 0).unsqueeze(-1), onehot, code[..., :c])
        return torch.cat([part, code[..., c:]], dim=-1)

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The Gaussian encoder ``q(z | x) = N(mu(x), diag sigma(x)^2)`` (labels ignored).

        Raises:
            ModelError: an AAE without a bound (:attr:`has_bound`): no guide density.
        """
        if not self.has_bound:
            raise ModelError(self.no_bound_message())
        loc, scale = self.posterior(x)
        with pyro.plate("data", x.shape[0], device=self.device):
            return pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    def no_bound_message(self) -> str:
        """Why this AAE has no likelihood bound, and what evaluates it instead."""
        if self.encoder == "deterministic":
            why = "its encoder is deterministic (q(z | x) is a point, with no density)"
        elif self.categorical:
            why = f"its code has a categorical part ({self.variant} variant)"
        else:
            why = f"its prior ({self.prior}) only draws codes (no density)"
        return (f"this AAE has no likelihood bound: {why}; it is evaluated by sample-based "
                "metrics (ppgen evaluate; ppgen.metrics: FID/KID, precision-recall, MMD). Build "
                "it with encoder='gaussian' and a prior with a density for an "
                "importance-weighted estimate")

    # ----------------------------------------------------------------- representation
    @torch.no_grad()
    def encode(self, x: Any) -> torch.Tensor:
        """Codes ``[N, L]`` (``[N, C + L]``: ``[q(y | x), z]`` with a categorical part): the
        encoder's mean, no dropout, no gradient.

        Args:
            x: data ``[N, D]`` (validated with :meth:`check_data`).
        """
        x = self.check_data(x).to(self.device)
        with eval_mode(self):
            return self.codes(x, sample=False)[0]

    @torch.no_grad()
    def classify(self, x: Any) -> torch.Tensor:
        """``argmax q(y | x)`` ``[N]``: the class (semi-supervised) or cluster (clustering).

        Raises:
            ModelError: a variant without a categorical code.
        """
        if not self.categorical:
            raise ModelError(f"a {self.variant} AAE has no categorical code to classify with: "
                             "use variant='semi-supervised' or 'clustering'")
        x = self.check_data(x).to(self.device)
        with eval_mode(self):
            return self.codes(x, sample=False)[1].argmax(-1)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The mean image ``E[x | z]`` ``[N, D]`` of codes ``z`` (labels of the supervised
        variant)."""
        with eval_mode(self):
            fn = self.likelihood_fn(self._decoder_input(z.to(self.device), y))
        return self._observation.mean(fn)

    # ----------------------------------------------------------------- data
    def check_data(self, x: Any, name: str = "data") -> torch.Tensor:
        """Validate ``x: [N, D]`` for the likelihood: integer levels ``0..K-1``, 0/1, or reals.

        Raises:
            DataError: wrong shape, NaN/inf, or values outside the likelihood's support.
        """
        return self._observation.check(x, name)

    @classmethod
    def for_data(cls, info: DataInfo, **kwargs: Any) -> AAE:
        """An AAE for data described by ``info`` (categorical, Bernoulli or Gaussian decoder);
        ``kwargs`` override the constructor arguments.

        Raises:
            ModelError: data with more than one event dimension (flatten them first).
        """
        if len(info.event_shape) != 1:
            raise ModelError(f"the AAE models flat data but one datum has shape "
                             f"{tuple(info.event_shape)}: flatten the data to [N, D] first")
        likelihood = _FOR_DATA[info.likelihood]
        args: dict[str, Any] = {"num_dims": info.num_dims, "likelihood": likelihood}
        if likelihood == "categorical":
            args["num_levels"] = info.num_levels
        return cls(**{**args, **kwargs})


def _check_options(encoder: str, variant: str, num_classes: int, prior: Any) -> None:
    """Refuse unknown choices, with the fix in the message."""
    if encoder not in AAE_ENCODERS:
        raise ModelError(f"unknown encoder {encoder!r}: use one of {AAE_ENCODERS}")
    if variant not in AAE_VARIANTS:
        raise ModelError(f"unknown variant {variant!r}: use one of {AAE_VARIANTS}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ModelError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if prior == "custom":
        raise ModelError(
            "prior='custom' names a user's prior, which a checkpoint does not hold: rebuild the "
            "model with AAE(**config, prior=<your distribution or program>) and load the saved "
            "weights into it (model.load_state_dict)")


def _check_data_options(num_dims: int, latent_dim: int, likelihood: str,
                        num_levels: int | None) -> None:
    """Refuse sizes and likelihoods that cannot build an AAE."""
    if likelihood not in VAE_LIKELIHOODS:
        raise ModelError(f"unknown likelihood {likelihood!r}: use one of {VAE_LIKELIHOODS}")
    if likelihood == "categorical" and (num_levels is None or num_levels < 2):
        raise ModelError("a categorical AAE needs num_levels >= 2 (17 for the digits)")
    if not (isinstance(num_dims, int) and num_dims >= 1 and isinstance(latent_dim, int)
            and latent_dim >= 1):
        raise ModelError("num_dims and latent_dim must be positive integers")


def _network(network: dict[str, Any] | None) -> dict[str, Any]:
    """The network options with their defaults, JSON-able (lists, not tuples)."""
    unknown = sorted(set(network or {}) - set(NETWORK_DEFAULTS))
    if unknown:
        raise ModelError(f"unknown network option(s) {unknown}: use {sorted(NETWORK_DEFAULTS)}")
    net = {**NETWORK_DEFAULTS, **(network or {})}
    for key in ("hidden_dims", "critic_dims"):
        net[key] = [int(h) for h in net[key]]
        if any(h < 1 for h in net[key]):
            raise ModelError(f"every width of network['{key}'] must be positive")
    return net
