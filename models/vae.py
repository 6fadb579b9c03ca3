"""The variational autoencoder: an MLP encoder q(z | x) and an MLP decoder p(x | z).

Kingma & Welling, 2014, "Auto-Encoding Variational Bayes"; trained with the ELBO, or with the
importance-weighted bound of Burda et al., 2016, "Importance Weighted Autoencoders". The
generative program is ``z ~ p(z)``, ``x ~ p(x | decoder(z))`` in the ``"data"`` plate; the
guide is a diagonal Gaussian ``q(z | x) = N(mu(x), diag sigma(x)^2)``. Both networks are plain
``torch.nn`` modules, so nothing enters Pyro's global parameter store.

Flows (nflows, wrapped with :class:`~ppgen.distributions.FlowDistribution`) can replace either
end. ``posterior_flow="iaf"`` pushes the encoder's Gaussian through inverse autoregressive
steps conditioned on an encoder context ``h`` (Kingma et al., 2016, "Improved Variational
Inference with Inverse Autoregressive Flow", arXiv:1606.04934); ``"maf"`` uses masked
autoregressive steps instead (Papamakarios et al., 2017, arXiv:1705.07057).
``prior_flow="maf"`` learns ``p(z)`` as an unconditional MAF (Chen et al., 2017, "Variational
Lossy Autoencoder", arXiv:1611.02731, use an autoregressive-flow prior). The trade-off between
the two posterior flows: an IAF step samples in one network pass and a MAF step needs ``L``
(one per latent dimension), while the density of an *arbitrary* z costs ``L`` passes under an
IAF and one under a MAF. The VAE only ever scores q at its own draws, which the fused
sample-and-log-prob pass (and ``FlowDistribution``'s cache) gives for free, so IAF is the fast
choice for training and evaluation; MAF costs ``L`` times more per step for the same family.
A flow prior is scored at the guide's draws (one pass per MAF step) and sampled only when
generating. Without closed-form KL terms, ``analytic_kl=True`` falls back to the Monte Carlo
KL automatically (``ppgen.elbo`` and ``nll_report``).

Example:
    >>> import torch
    >>> vae = VAE(64, latent_dim=4, hidden_dims=(32,), num_levels=17)
    >>> vae.sample(5).shape
    torch.Size([5, 64])
    >>> x = torch.randint(0, 17, (3, 64))
    >>> vae.encode(x).shape
    torch.Size([3, 4])
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import pyro
import pyro.distributions as dist
import torch
from nflows.distributions import ConditionalDiagonalNormal, StandardNormal
from nflows.flows import Flow
from nflows.transforms import (
    CompositeTransform,
    InverseTransform,
    MaskedAffineAutoregressiveTransform,
    ReversePermutation,
)
from torch import nn
from torch.nn import functional as F

from ppgen.data.validate import validate
from ppgen.distributions import (
    DiscretizedLogisticMixtureHead,
    FactorizedDistribution,
    FlowDistribution,
)
from ppgen.errors import ModelError
from ppgen.models.autoregressive import eval_mode
from ppgen.protocol import GenerativeModel, ModelKind

if TYPE_CHECKING:
    from ppgen.data import DataInfo

__all__ = [
    "VAE",
    "VAE_LIKELIHOODS",
    "INPUT_ENCODINGS",
    "CATEGORICAL_HEADS",
    "POSTERIOR_FLOWS",
    "PRIOR_FLOWS",
    "ObservationHead",
    "mlp",
]

#: Observation models of the decoder.
VAE_LIKELIHOODS = ("categorical", "bernoulli", "gaussian")

#: How categorical data enter the encoder: one-hot levels, or ``x / (K - 1)`` in ``[0, 1]``.
INPUT_ENCODINGS = ("onehot", "scaled")

#: How categorical logits are made: free per level, or a discretised logistic mixture.
CATEGORICAL_HEADS = ("logistic", "softmax")

#: Flows on top of the encoder's Gaussian: none, inverse autoregressive, masked autoregressive.
POSTERIOR_FLOWS = ("none", "iaf", "maf")

#: Priors over z: the standard normal (``"none"``) or a learned masked autoregressive flow.
PRIOR_FLOWS = ("none", "maf")

#: DataInfo likelihood -> decoder likelihood.
_FOR_DATA = {"categorical": "categorical", "bernoulli": "bernoulli", "continuous": "gaussian"}

#: Floor of the guide's standard deviation (keeps log q finite).
_MIN_GUIDE_SCALE = 1e-4


def mlp(sizes: Sequence[int], dropout: float = 0.0) -> nn.Sequential:
    """A ReLU multilayer perceptron ``sizes[0] -> ... -> sizes[-1]`` (no output activation).

    Dropout (rate ``dropout``) follows every hidden activation.
    """
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class VAE(GenerativeModel):
    """Variational autoencoder with a diagonal-Gaussian encoder and an MLP decoder.

    Model: ``z ~ N(0, I_L)`` (or a learned flow prior); ``x | z ~ Categorical(logits [D,
    K])`` (integer levels), ``Bernoulli(logits [D])`` (0/1 data) or ``Normal(loc [D], scale
    [D])`` (real data; the decoder outputs the scale, floored at ``min_scale``). Guide:
    ``q(z | x) = N(mu(x), diag sigma(x)^2)``, or that Gaussian ``z_0`` pushed through
    ``flow_layers`` autoregressive steps conditioned on ``h(x)`` (IAF or MAF, see the module
    docstring for the trade-off).

    The categorical logits come either straight from the decoder (``"softmax"``: ``K`` free
    logits per dimension) or from a discretised mixture of ``M`` logistics per dimension
    (``"logistic"``: ``3 M`` outputs per dimension, the autoregressive models' head
    :class:`~ppgen.distributions.DiscretizedLogisticMixtureHead`). The
    second is still a categorical distribution over ``0..K-1`` but shares strength between
    neighbouring levels, which generalises far better on ordinal data such as pixel
    intensities (compare the two with ``--set categorical_head=softmax``).

    Paper: Kingma & Welling, 2014, "Auto-Encoding Variational Bayes" (arXiv:1312.6114); the
    importance-weighted bound: Burda, Grosse & Salakhutdinov, 2016 (arXiv:1509.00519); flow
    posteriors: Kingma et al., 2016 (arXiv:1606.04934).

    Args:
        num_dims: ``D``, the size of one (flat) datum.
        latent_dim: ``L``, the size of the latent code.
        hidden_dims: hidden layer widths of the encoder; the decoder mirrors them.
        likelihood: ``"categorical"``, ``"bernoulli"`` or ``"gaussian"``.
        num_levels: ``K``, the number of levels of categorical data (required for it).
        input_encoding: how categorical data enter the encoder: ``"onehot"`` (``D * K``
            inputs) or ``"scaled"`` (``x / (K - 1)``, ``D`` inputs). Other likelihoods feed
            ``x`` as it is.
        dropout: dropout rate after every hidden layer of both networks (training mode only).
        min_scale: floor of the Gaussian decoder's standard deviation.
        categorical_head: ``"logistic"`` (ordinal levels) or ``"softmax"`` (unordered).
        num_components: ``M``, logistic components per dimension of the ``"logistic"`` head.
        posterior_flow: ``"none"`` (diagonal Gaussian), ``"iaf"`` or ``"maf"``: steps on top
            of the encoder's Gaussian, conditioned on an extra ``flow_hidden``-d encoder
            output ``h`` (and on the Gaussian's parameters).
        prior_flow: ``"none"`` (``N(0, I)``) or ``"maf"`` (a learned unconditional MAF).
        flow_layers: autoregressive steps of each flow (reversed orderings in between).
        flow_hidden: hidden width of each step's MADE, and the size of ``h``.

    Every flow step starts as the identity, so a new flow VAE starts from the Gaussian one.

    Example:
        >>> vae = VAE(64, num_levels=17)
        >>> vae.sample(2).dtype
        torch.int64
        >>> iaf = VAE(64, latent_dim=4, num_levels=17, posterior_flow="iaf", prior_flow="maf")
        >>> iaf.posterior_distribution(torch.zeros(3, 64, dtype=torch.long)).rsample().shape
        torch.Size([3, 4])
    """

    kind = ModelKind.LATENT
    default_objective = "iwae"
    #: the recipe that reaches the digits benchmark (IWAE-1000 test NLL <= 91 nats/image):
    #: IWAE with 5 particles, AdamW with strong weight decay, early stopping on the
    #: importance-weighted validation NLL (K = 20)
    fit_defaults: ClassVar[dict[str, Any]] = {
        "optimizer": "adamw",
        "lr": 3e-3,
        "weight_decay": 0.1,
        "batch_size": 100,
        "epochs": 300,
        "patience": 30,
    }
    objective_defaults: ClassVar[dict[str, Any]] = {"num_particles": 5, "validation_particles": 20}

    def __init__(
        self,
        num_dims: int,
        latent_dim: int = 16,
        hidden_dims: Sequence[int] = (256, 256),
        likelihood: str = "categorical",
        num_levels: int | None = None,
        input_encoding: str = "scaled",
        dropout: float = 0.2,
        min_scale: float = 1e-3,
        categorical_head: str = "logistic",
        num_components: int = 3,
        posterior_flow: str = "none",
        prior_flow: str = "none",
        flow_layers: int = 2,
        flow_hidden: int = 64,
    ) -> None:
        super().__init__()
        _check_args(num_dims, latent_dim, hidden_dims, likelihood, num_levels)
        _check_choices(input_encoding, categorical_head, num_components, dropout)
        _check_flows(posterior_flow, prior_flow, flow_layers, flow_hidden)
        self.num_dims = num_dims
        self.latent_dim = latent_dim
        self.hidden_dims = list(hidden_dims)
        self.likelihood = likelihood
        self.num_levels = num_levels
        self.input_encoding = input_encoding
        self.dropout = dropout
        self.min_scale = min_scale
        self.categorical_head = categorical_head
        self.num_components = num_components
        self.posterior_flow = posterior_flow
        self.prior_flow = prior_flow
        self.flow_layers = flow_layers
        self.flow_hidden = flow_hidden
        self._observation = ObservationHead(
            num_dims, likelihood, num_levels, categorical_head, num_components, min_scale)
        hidden = self.hidden_dims
        self.encoder = mlp([self._input_size(), *hidden, self._encoder_size()], dropout)
        self.decoder = mlp([latent_dim, *hidden[::-1], self._output_size()], dropout)
        self.q_flow = None if posterior_flow == "none" else _posterior_flow_net(
            latent_dim, self._encoder_size(), flow_layers, flow_hidden,
            inverse=posterior_flow == "iaf")
        self.p_flow = None if prior_flow == "none" else _prior_flow_net(
            latent_dim, flow_layers, flow_hidden)
        self.register_buffer("_zero", torch.zeros(()), persistent=False)
        self.register_buffer("_one", torch.ones(()), persistent=False)

    # ----------------------------------------------------------------- sizes
    def _input_size(self) -> int:
        if self.likelihood == "categorical" and self.input_encoding == "onehot":
            return self.num_dims * self.num_levels
        return self.num_dims

    def _encoder_size(self) -> int:
        """``2 L`` Gaussian parameters, plus the ``flow_hidden``-d context of a flow guide."""
        extra = 0 if self.posterior_flow == "none" else self.flow_hidden
        return 2 * self.latent_dim + extra

    def _output_size(self) -> int:
        return self._observation.num_outputs

    @property
    def event_shape(self) -> torch.Size:
        """``[D]``: one flat datum."""
        return torch.Size([self.num_dims])

    # ----------------------------------------------------------------- networks
    def _encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [N, D]`` -> encoder input ``[N, D * K]`` (one-hot) or ``[N, D]``."""
        dtype = self._one.dtype
        if self.likelihood != "categorical":
            return x.to(dtype)
        if self.input_encoding == "onehot":
            onehot = F.one_hot(x.long(), self.num_levels).to(dtype)
            return onehot.reshape(x.shape[0], -1)
        return x.to(dtype) / (self.num_levels - 1)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Parameters of the encoder's Gaussian: ``loc [N, L]`` and ``scale [N, L]``.

        This is ``q(z | x)`` itself for ``posterior_flow="none"`` and the flow's base ``z_0``
        otherwise (see :meth:`posterior_distribution`).
        """
        return _gaussian_params(self.encoder(self._encoder_input(x)), self.latent_dim)

    def posterior_distribution(self, x: torch.Tensor) -> dist.TorchDistribution:
        """``q(z | x)`` for ``x: [N, D]``: batch ``[N]``, event ``[L]``.

        A diagonal Gaussian, or a :class:`~ppgen.distributions.FlowDistribution` whose
        context is the encoder's whole output ``[N, 2 L + flow_hidden]`` (Gaussian parameters
        and ``h``).
        """
        h = self.encoder(self._encoder_input(x))
        if self.q_flow is None:
            return dist.Normal(*_gaussian_params(h, self.latent_dim)).to_event(1)
        return FlowDistribution(self.q_flow, context=h)

    def prior_distribution(self, n: int) -> dist.TorchDistribution:
        """``p(z)`` for ``n`` data: batch ``[n]``, event ``[L]`` (standard normal or flow)."""
        if self.p_flow is None:
            return dist.Normal(self._zero, self._one).expand([n, self.latent_dim]).to_event(1)
        return FlowDistribution(self.p_flow).expand([n])

    def likelihood_fn(self, z: torch.Tensor) -> dist.TorchDistribution:
        """``p(x | z)`` for ``z: [..., L]``: a distribution with batch ``[...]``, event ``[D]``.

        Leading dimensions of ``z`` (particles, data) pass through to the batch shape.
        """
        return self._observation(self.decoder(z))

    # ----------------------------------------------------------------- Pyro programs
    def model(self, x: torch.Tensor | None = None, num_samples: int | None = None) -> torch.Tensor:
        """The generative program ``z ~ N(0, I)``, ``x ~ p(x | z)``.

        Args:
            x: observed data ``[N, D]``, or ``None`` to generate.
            num_samples: ``N`` when generating (default 1).

        Returns:
            ``x`` (observed or generated), ``[N, D]`` (with leading particle dimensions when
            run under the evaluation layer's particle plate).
        """
        n = x.shape[0] if x is not None else (num_samples or 1)
        with pyro.plate("data", n, device=self.device):
            z = pyro.sample("z", self.prior_distribution(n))
            return pyro.sample("x", self.likelihood_fn(z), obs=x)

    def guide(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder ``q(z | x)`` (:meth:`posterior_distribution`); ``x: [N, D]``, ``z: [N,
        L]``. A flow guide's draws carry their log-density (one fused pass)."""
        with pyro.plate("data", x.shape[0], device=self.device):
            return pyro.sample("z", self.posterior_distribution(x))

    # ----------------------------------------------------------------- representation
    @torch.no_grad()
    def encode(self, x: Any) -> torch.Tensor:
        """Latent codes ``[N, L]`` (no gradient, no dropout): the posterior means ``E_q[z |
        x]`` of the Gaussian guide; with a flow guide, the flow's image of the base mean
        (``z_0 = mu(x)``, i.e. the noise set to zero), a deterministic code.

        Args:
            x: data ``[N, D]`` (validated with :meth:`check_data`).
        """
        x = self.check_data(x).to(self.device)
        with eval_mode(self):
            h = self.encoder(self._encoder_input(x))
            loc = h[:, : self.latent_dim]
            if self.q_flow is None:
                return loc
            return self.q_flow._transform.inverse(loc, context=h)[0]

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The mean image ``E[x | z]``: ``[..., D]`` float for ``z: [..., L]`` (no dropout).

        Categorical: the expected level ``sum_k k p_k`` (in ``[0, K - 1]``); Bernoulli: the
        probabilities; Gaussian: the location.
        """
        with eval_mode(self):
            return self._observation.mean(self.likelihood_fn(z.to(self.device)))

    def decoder_log_prob(self, z: torch.Tensor, x: torch.Tensor,
                         noise_scale: float | None = None) -> torch.Tensor:
        """``log p(x | z)`` ``[M]`` of the decoder for ``z: [M, L]``, ``x: [M, D]`` (the prior
        must be ``N(0, I)``): what AIS anneals to score the decoder without the encoder
        (:func:`ppgen.energy.decoder_log_likelihood`)."""
        if noise_scale is not None:
            raise ModelError("a VAE's decoder has its own observation model: noise_scale is "
                             "for generators without one (GANs)")
        if self.p_flow is not None:
            raise ModelError("decoder AIS starts from a N(0, I) prior; this VAE has a prior "
                             "flow: score it with ppgen.log_likelihood (importance sampling)")
        return self.likelihood_fn(z).log_prob(x)

    # ----------------------------------------------------------------- data
    def check_data(self, x: Any, name: str = "data") -> torch.Tensor:
        """Validate ``x: [N, D]`` for the likelihood: integer levels ``0..K-1``, 0/1, or reals.

        Raises:
            DataError: wrong shape, NaN/inf, or values outside the likelihood's support.
        """
        return self._observation.check(x, name)

    @classmethod
    def for_data(cls, info: DataInfo, **kwargs: Any) -> VAE:
        """A VAE for data described by ``info``; ``kwargs`` override the constructor arguments.

        ``"categorical"`` data get a categorical decoder with ``info.num_levels`` levels,
        ``"bernoulli"`` a Bernoulli one and ``"continuous"`` a Gaussian one.

        Raises:
            ModelError: data with more than one event dimension (flatten them first).
        """
        if len(info.event_shape) != 1:
            raise ModelError(
                f"the VAE models flat data but one datum has shape {tuple(info.event_shape)}: "
                "flatten the data to [N, D] first"
            )
        likelihood = _FOR_DATA[info.likelihood]
        args: dict[str, Any] = {"num_dims": info.num_dims, "likelihood": likelihood}
        if likelihood == "categorical":
            args["num_levels"] = info.num_levels
        return cls(**{**args, **kwargs})




class ObservationHead:
    """The decoder's observation model ``p(x | h)`` of flat data ``[D]``, shared by the VAE
    family (:class:`VAE`, the hierarchical and conditional VAEs): a decoder network ends in
    :attr:`num_outputs` units and this turns them into a distribution.

    Args:
        num_dims: ``D``, the size of one (flat) datum.
        likelihood: ``"categorical"``, ``"bernoulli"`` or ``"gaussian"``.
        num_levels: ``K`` of categorical data.
        categorical_head: ``"logistic"`` (a discretised logistic mixture per dimension) or
            ``"softmax"`` (``K`` free logits per dimension).
        num_components: ``M``, logistic components per dimension of the ``"logistic"`` head.
        min_scale: floor of the Gaussian's standard deviation.

    Example:
        >>> head = ObservationHead(4, "bernoulli")
        >>> head(torch.zeros(3, head.num_outputs)).event_shape
        torch.Size([4])
    """

    def __init__(self, num_dims: int, likelihood: str, num_levels: int | None = None,
                 categorical_head: str = "logistic", num_components: int = 3,
                 min_scale: float = 1e-3) -> None:
        self.num_dims = num_dims
        self.likelihood = likelihood
        self.num_levels = num_levels
        self.min_scale = min_scale
        self.head = (
            DiscretizedLogisticMixtureHead(num_levels, num_components)
            if likelihood == "categorical" and categorical_head == "logistic"
            else None
        )

    @property
    def num_outputs(self) -> int:
        """Units the decoder's last layer needs."""
        if self.head is not None:
            return self.num_dims * self.head.num_params
        if self.likelihood == "categorical":
            return self.num_dims * self.num_levels
        if self.likelihood == "gaussian":
            return 2 * self.num_dims
        return self.num_dims

    def __call__(self, h: torch.Tensor) -> dist.TorchDistribution:
        """``p(x | h)`` for decoder outputs ``h: [..., num_outputs]``: batch ``[...]``, event
        ``[D]``."""
        batch = h.shape[:-1]
        if self.head is not None:
            params = h.reshape(*batch, self.num_dims, self.head.num_params)
            return FactorizedDistribution(self.head, params)
        if self.likelihood == "categorical":
            logits = h.reshape(*batch, self.num_dims, self.num_levels)
            return dist.Categorical(logits=logits).to_event(1)
        if self.likelihood == "bernoulli":
            return dist.Bernoulli(logits=h).to_event(1)
        loc, raw_scale = h.chunk(2, dim=-1)
        return dist.Normal(loc, F.softplus(raw_scale) + self.min_scale).to_event(1)

    def check(self, x: Any, name: str = "data") -> torch.Tensor:
        """Validate data ``x: [N, D]`` for this observation model: integer levels ``0..K-1``,
        0/1, or reals (the models of the VAE family's ``check_data``).

        Raises:
            DataError: wrong shape, NaN/inf, or values outside the likelihood's support.
        """
        kind = "continuous" if self.likelihood == "gaussian" else self.likelihood
        return validate(x, kind, num_levels=self.num_levels, event_shape=(self.num_dims,),
                        name=name)

    def mean(self, fn: dist.TorchDistribution) -> torch.Tensor:
        """``E[x | h]`` ``[..., D]`` of a distribution made by this head: the expected level
        ``sum_k k p_k`` (categorical), the probabilities (Bernoulli) or the location."""
        if isinstance(fn, FactorizedDistribution):
            return fn.mean
        fn = fn.base_dist
        if self.likelihood == "categorical":
            probs = fn.probs
            levels = torch.arange(self.num_levels, device=probs.device, dtype=probs.dtype)
            return probs @ levels
        return fn.mean


def _check_args(
    num_dims: int,
    latent_dim: int,
    hidden_dims: Sequence[int],
    likelihood: str,
    num_levels: int | None,
) -> None:
    """Refuse sizes and likelihoods that cannot build a VAE, with the fix in the message."""
    if likelihood not in VAE_LIKELIHOODS:
        raise ModelError(f"unknown likelihood {likelihood!r}: use one of {VAE_LIKELIHOODS}")
    if likelihood == "categorical" and (num_levels is None or num_levels < 2):
        raise ModelError("a categorical VAE needs num_levels >= 2 (17 for the digits)")
    if num_dims < 1 or latent_dim < 1 or any(h < 1 for h in hidden_dims):
        raise ModelError("num_dims, latent_dim and every hidden width must be positive")


def _check_flows(posterior_flow: str, prior_flow: str, flow_layers: int, flow_hidden: int) -> None:
    """Refuse unknown flow options and sizes that cannot build a flow."""
    if posterior_flow not in POSTERIOR_FLOWS:
        raise ModelError(
            f"unknown posterior_flow {posterior_flow!r}: use one of {POSTERIOR_FLOWS}"
        )
    if prior_flow not in PRIOR_FLOWS:
        raise ModelError(f"unknown prior_flow {prior_flow!r}: use one of {PRIOR_FLOWS}")
    if not (isinstance(flow_layers, int) and flow_layers >= 1):
        raise ModelError(f"flow_layers must be an integer >= 1, not {flow_layers!r}")
    if not (isinstance(flow_hidden, int) and flow_hidden >= 1):
        raise ModelError(f"flow_hidden must be an integer >= 1, not {flow_hidden!r}")


def _check_choices(
    input_encoding: str, categorical_head: str, num_components: int, dropout: float
) -> None:
    """Refuse unknown encodings and heads, and impossible component counts or dropout rates."""
    if input_encoding not in INPUT_ENCODINGS:
        raise ModelError(f"unknown input_encoding {input_encoding!r}: use {INPUT_ENCODINGS}")
    if categorical_head not in CATEGORICAL_HEADS:
        raise ModelError(
            f"unknown categorical_head {categorical_head!r}: use one of {CATEGORICAL_HEADS}"
        )
    if num_components < 1:
        raise ModelError("num_components must be >= 1")
    if not 0.0 <= dropout < 1.0:
        raise ModelError(f"dropout must lie in [0, 1), not {dropout}")


# ---------------------------------------------------------------------------- flows


def _gaussian_params(h: torch.Tensor, latent_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``loc [..., L]`` and positive ``scale [..., L]`` from the encoder output ``h``."""
    loc, raw_scale = h[..., :latent_dim], h[..., latent_dim : 2 * latent_dim]
    return loc, F.softplus(raw_scale) + _MIN_GUIDE_SCALE


def _base_params(context: torch.Tensor, latent_dim: int) -> torch.Tensor:
    """nflows' ``ConditionalDiagonalNormal`` layout: ``[n, 2 L]`` = means, log-stds."""
    loc, scale = _gaussian_params(context, latent_dim)
    return torch.cat([loc, scale.log()], dim=-1)


def _made_step(latent_dim: int, hidden: int, context: int | None) -> nn.Module:
    """A MAF step (data -> noise one pass) that starts as the identity: its MADE's output
    layer is zeroed and the scale's bias set so that ``softplus(b) + 1e-3 = 1``."""
    step = MaskedAffineAutoregressiveTransform(
        latent_dim, hidden, context_features=context, num_blocks=1)
    final = step.autoregressive_net.final_layer
    with torch.no_grad():
        final.weight.zero_()
        final.bias.zero_()
        final.bias[0::2] = math.log(math.expm1(1.0 - step._epsilon))  # (scale, shift) pairs
    return step


def _posterior_flow_net(
    latent_dim: int, context: int, layers: int, hidden: int, inverse: bool
) -> Flow:
    """The flow guide ``q(z | e)`` given the encoder output ``e = [mu, sigma, h]: [n, context]``.

    Base: ``N(mu, diag sigma^2)`` (nflows' ``ConditionalDiagonalNormal`` reading ``e``);
    steps: ``layers`` affine autoregressive steps conditioned on ``e``, with reversed orderings
    in between. ``inverse=True`` makes each step an IAF (``InverseTransform`` of a MAF step:
    the sampling direction is the MADE's one-pass direction); ``False`` keeps MAF steps (one
    pass to score a given z, ``L`` passes to sample).
    """
    def step() -> nn.Module:
        made = _made_step(latent_dim, hidden, context)
        return InverseTransform(made) if inverse else made

    base = ConditionalDiagonalNormal(
        [latent_dim], context_encoder=functools.partial(_base_params, latent_dim=latent_dim))
    return Flow(_alternating(step, layers, latent_dim), base)


def _prior_flow_net(latent_dim: int, layers: int, hidden: int) -> Flow:
    """The learned prior ``p(z)``: ``layers`` MAF steps on ``N(0, I_L)``, reversed orderings in
    between (scoring a z is one pass per step; sampling ``L``)."""
    step = functools.partial(_made_step, latent_dim, hidden, None)
    return Flow(_alternating(step, layers, latent_dim), StandardNormal([latent_dim]))


def _alternating(step, layers: int, latent_dim: int) -> CompositeTransform:
    """``layers`` steps with reversed orderings in between, plus a final reversal when their
    number is odd, so that identity steps make the identity map (z keeps the order of z_0)."""
    steps: list[nn.Module] = []
    for i in range(layers):
        steps.append(step())
        if i < layers - 1 or layers % 2 == 0:
            steps.append(ReversePermutation(latent_dim))
    return CompositeTransform(steps)
