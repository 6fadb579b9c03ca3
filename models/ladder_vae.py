"""The ladder VAE: a hierarchical VAE with top-down inference (class :class:`LadderVAE`, CLI
``ladder-vae``).

Sønderby, Raiko, Maaløe, Sønderby & Winther, 2016, "Ladder Variational Autoencoders"
(arXiv:1602.02282). The generative program is a chain of Gaussian layers from the top,

    z_L ~ N(0, I),   z_i | z_{i+1} ~ N(mu_p,i(z_{i+1}), sigma_p,i(z_{i+1})^2),   x ~ p(x | z_1),

and the guide runs a deterministic bottom-up pass ``d_1 = f_1(x), d_i = f_i(d_{i-1})`` whose
Gaussians ``N(mu_hat_i, sigma_hat_i^2)`` are merged on the way down with the *generative*
top-down Gaussians by precision weighting (:func:`precision_weighted`):

    q(z_L | x) = N(mu_hat_L, sigma_hat_L^2),
    q(z_i | z_{i+1}, x) = N(mu_q, sigma_q^2),
    sigma_q^-2 = sigma_hat_i^-2 + sigma_p,i^-2,
    mu_q = (mu_hat_i sigma_hat_i^-2 + mu_p,i sigma_p,i^-2) sigma_q^2.

The guide and the model share the top-down networks, as in the paper. Both are ordinary Pyro
programs with one site per layer (``"z1"`` at the bottom ... ``"zL"`` at the top), so the
evaluation layer scores them like any other: ``ppgen.elbo(..., analytic_kl=True)`` uses the
closed-form Gaussian KL of every layer given the draw of the layer above, and
``ppgen.log_likelihood`` is the importance-weighted estimate. The observation model is the
VAE's (:class:`~ppgen.models.vae.ObservationHead`: categorical with a discretised-logistic
head, Bernoulli or Gaussian). The default training objective is the VAE's
importance-weighted bound; the paper's KL warm-up is the objective ``"elbo-warmup"``
(:class:`~ppgen.inference.WarmupELBO`, option ``warmup_epochs``).

Example:
    >>> import torch
    >>> lvae = LadderVAE(64, latent_dims=(8, 4), hidden_dims=(32, 16), num_levels=17)
    >>> lvae.sample(5).shape
    torch.Size([5, 64])
    >>> lvae.encode(torch.randint(0, 17, (3, 64))).shape
    torch.Size([3, 12])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ppgen.errors import ModelError
from ppgen.models.autoregressive import eval_mode
from ppgen.models.vae import VAE_LIKELIHOODS, ObservationHead, _gaussian_params, mlp
from ppgen.protocol import GenerativeModel, ModelKind

if TYPE_CHECKING:
    from ppgen.data import DataInfo

__all__ = ["LadderVAE", "precision_weighted"]

_FOR_DATA = {"categorical": "categorical", "bernoulli": "bernoulli", "continuous": "gaussian"}

Gaussian = tuple[torch.Tensor, torch.Tensor]


def precision_weighted(loc_a: torch.Tensor, scale_a: torch.Tensor, loc_b: torch.Tensor,
                       scale_b: torch.Tensor) -> Gaussian:
    """The normalised product of two diagonal Gaussians ``N(a) N(b)``: precisions add and the
    means are precision-weighted (the ladder VAE's merge, Sønderby et al. 2016, eq. 18-19).

    Args:
        loc_a, scale_a: the first Gaussian's mean and standard deviation ``[..., L]``.
        loc_b, scale_b: the second's (broadcastable).

    Returns:
        ``(loc, scale)`` with ``scale^-2 = scale_a^-2 + scale_b^-2`` and ``loc = (loc_a
        scale_a^-2 + loc_b scale_b^-2) scale^2``.

    Example:
        >>> one = torch.ones(1)
        >>> precision_weighted(0 * one, one, 2 * one, one)
        (tensor([1.]), tensor([0.7071]))
    """
    prec_a, prec_b = scale_a.pow(-2), scale_b.pow(-2)
    var = (prec_a + prec_b).reciprocal()
    return (loc_a * prec_a + loc_b * prec_b) * var, var.sqrt()


class LadderVAE(GenerativeModel):
    """A hierarchical VAE with ``len(latent_dims) >= 2`` Gaussian layers and ladder inference.

    Paper: Sønderby et al., 2016, "Ladder Variational Autoencoders" (arXiv:1602.02282).

    Args:
        num_dims: ``D``, the size of one (flat) datum.
        latent_dims: ``(L_1, ..., L_L)``, bottom (next to x) to top; at least two layers.
        hidden_dims: the width of each layer's deterministic block, bottom to top (one per
            latent layer): the bottom-up block ``i`` is two ReLU layers of that width, the
            top-down network into layer ``i`` one hidden layer, the decoder two (``H_1``).
        likelihood: ``"categorical"``, ``"bernoulli"`` or ``"gaussian"``.
        num_levels: ``K`` of categorical data (17 for the digits).
        dropout: dropout rate after every hidden layer (training mode only).
        categorical_head: ``"logistic"`` or ``"softmax"`` (see :class:`~ppgen.models.VAE`).
        num_components: logistic components per dimension of the ``"logistic"`` head.
        min_scale: floor of the Gaussian decoder's standard deviation.

    Example:
        >>> lvae = LadderVAE(4, latent_dims=(3, 2), hidden_dims=(8, 8), likelihood="bernoulli")
        >>> [site for site in lvae.site_names]
        ['z1', 'z2']
    """

    kind = ModelKind.LATENT
    default_objective = "iwae"
    #: the digits recipe (benchmarks/RESULTS.md, "Hierarchical and conditional VAEs"): the
    #: VAE's (IWAE-5, AdamW, early stopping on the IWAE-20 val NLL) with a stronger weight
    #: decay and a moving average of the weights, the best of the recipes tried on seed 0
    fit_defaults: ClassVar[dict[str, Any]] = {
        "optimizer": "adamw",
        "lr": 3e-3,
        "weight_decay": 0.3,
        "ema": 0.99,
        "batch_size": 100,
        "epochs": 300,
        "patience": 30,
    }
    objective_defaults: ClassVar[dict[str, Any]] = {"num_particles": 5, "validation_particles": 20}

    def __init__(
        self,
        num_dims: int,
        latent_dims: Sequence[int] = (16, 8),
        hidden_dims: Sequence[int] = (256, 128),
        likelihood: str = "categorical",
        num_levels: int | None = None,
        dropout: float = 0.2,
        categorical_head: str = "logistic",
        num_components: int = 3,
        min_scale: float = 1e-3,
    ) -> None:
        super().__init__()
        _check_args(num_dims, latent_dims, hidden_dims, likelihood, num_levels, dropout)
        self.num_dims = num_dims
        self.latent_dims = [int(d) for d in latent_dims]
        self.hidden_dims = [int(h) for h in hidden_dims]
        self.likelihood = likelihood
        self.num_levels = num_levels
        self.dropout = dropout
        self.categorical_head = categorical_head
        self.num_components = num_components
        self.min_scale = min_scale
        self._observation = ObservationHead(
            num_dims, likelihood, num_levels, categorical_head, num_components, min_scale)
        self._build()
        self.register_buffer("_zero", torch.zeros(()), persistent=False)
        self.register_buffer("_one", torch.ones(()), persistent=False)

    def _build(self) -> None:
        L, H, p = self.latent_dims, self.hidden_dims, self.dropout
        inputs = [self.num_dims, *H[:-1]]
        self.up = nn.ModuleList(
            nn.Sequential(mlp([n, h, h], p), nn.ReLU()) for n, h in zip(inputs, H))
        self.up_heads = nn.ModuleList(nn.Linear(h, 2 * l) for h, l in zip(H, L))
        self.down = nn.ModuleList(
            mlp([L[i + 1], H[i], 2 * L[i]], p) for i in range(len(L) - 1))
        self.decoder = mlp([L[0], H[0], H[0], self._observation.num_outputs], p)

    @property
    def site_names(self) -> list[str]:
        """The latent sites, bottom to top: ``["z1", ..., "zL"]``."""
        return [f"z{i + 1}" for i in range(len(self.latent_dims))]

    @property
    def event_shape(self) -> torch.Size:
        """``[D]``: one flat datum."""
        return torch.Size([self.num_dims])

    # ----------------------------------------------------------------- networks
    def bottom_up(self, x: torch.Tensor) -> list[Gaussian]:
        """The deterministic upward pass: ``(mu_hat_i, sigma_hat_i)`` ``[N, L_i]`` per layer,
        bottom to top, for data ``x: [N, D]``."""
        d = self._input(x)
        out = []
        for block, head in zip(self.up, self.up_heads):
            d = block(d)
            out.append(_gaussian_params(head(d), head.out_features // 2))
        return out

    def top_down(self, i: int, z_above: torch.Tensor) -> Gaussian:
        """``(mu_p, sigma_p)`` of the generative ``p(z_i | z_{i+1})`` (``i`` 0-based, bottom
        layer 0) for ``z_above: [..., L_{i+1}]``."""
        return _gaussian_params(self.down[i](z_above), self.latent_dims[i])

    def likelihood_fn(self, z1: torch.Tensor) -> dist.TorchDistribution:
        """``p(x | z_1)`` for ``z1: [..., L_1]``: batch ``[...]``, event ``[D]``."""
        return self._observation(self.decoder(z1))

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        """Categorical levels scaled to ``[0, 1]``; other data as they are."""
        x = x.to(self._one.dtype)
        return x / (self.num_levels - 1) if self.likelihood == "categorical" else x

    # ----------------------------------------------------------------- Pyro programs
    def model(self, x: torch.Tensor | None = None, num_samples: int | None = None) -> torch.Tensor:
        """``z_L ~ N(0, I)``, ``z_i ~ p(z_i | z_{i+1})`` down to ``z_1``, ``x ~ p(x | z_1)``.

        Args:
            x: observed data ``[N, D]``, or ``None`` to generate.
            num_samples: ``N`` when generating (default 1).

        Returns:
            ``x`` (observed or generated) ``[N, D]``.
        """
        n = x.shape[0] if x is not None else (num_samples or 1)
        names = self.site_names
        with pyro.plate("data", n, device=self.device):
            top = dist.Normal(self._zero, self._one).expand([n, self.latent_dims[-1]])
            z = pyro.sample(names[-1], top.to_event(1))
            for i in reversed(range(len(names) - 1)):
                z = pyro.sample(names[i], dist.Normal(*self.top_down(i, z)).to_event(1))
            return pyro.sample("x", self.likelihood_fn(z), obs=x)

    def guide(self, x: torch.Tensor) -> torch.Tensor:
        """Ladder inference: the bottom-up Gaussians merged top-down with the generative ones.

        Args:
            x: data ``[N, D]``.

        Returns:
            the bottom layer's draw ``z_1`` ``[N, L_1]``.
        """
        names, up = self.site_names, self.bottom_up(x)
        with pyro.plate("data", x.shape[0], device=self.device):
            z = pyro.sample(names[-1], dist.Normal(*up[-1]).to_event(1))
            for i in reversed(range(len(names) - 1)):
                q = precision_weighted(*up[i], *self.top_down(i, z))
                z = pyro.sample(names[i], dist.Normal(*q).to_event(1))
        return z

    # ----------------------------------------------------------------- representation
    @torch.no_grad()
    def encode(self, x: Any) -> torch.Tensor:
        """Features ``[N, L_1 + ... + L_L]`` (no gradient, no dropout): the guide's means of
        every layer, bottom to top, run top-down with the noise set to zero (``z_L =
        mu_hat_L``, then each layer's merged mean given the mean of the layer above).

        Args:
            x: data ``[N, D]`` (validated with :meth:`check_data`).
        """
        x = self.check_data(x).to(self.device)
        with eval_mode(self):
            up = self.bottom_up(x)
            means = [up[-1][0]]
            for i in reversed(range(len(up) - 1)):
                means.insert(0, precision_weighted(*up[i], *self.top_down(i, means[0]))[0])
        return torch.cat(means, dim=-1)

    # ----------------------------------------------------------------- data
    def check_data(self, x: Any, name: str = "data") -> torch.Tensor:
        """Validate ``x: [N, D]`` for the likelihood (see :meth:`ppgen.models.VAE.check_data`).

        Raises:
            DataError: wrong shape, NaN/inf, or values outside the likelihood's support.
        """
        return self._observation.check(x, name)

    @classmethod
    def for_data(cls, info: DataInfo, **kwargs: Any) -> LadderVAE:
        """A ladder VAE for flat data described by ``info``; ``kwargs`` override.

        Raises:
            ModelError: data with more than one event dimension.
        """
        if len(info.event_shape) != 1:
            raise ModelError(f"the ladder VAE models flat data but one datum has shape "
                             f"{tuple(info.event_shape)}: flatten the data to [N, D] first")
        likelihood = _FOR_DATA[info.likelihood]
        args: dict[str, Any] = {"num_dims": info.num_dims, "likelihood": likelihood}
        if likelihood == "categorical":
            args["num_levels"] = info.num_levels
        return cls(**{**args, **kwargs})


def _check_args(num_dims: int, latent_dims: Sequence[int], hidden_dims: Sequence[int],
                likelihood: str, num_levels: int | None, dropout: float) -> None:
    """Refuse sizes and options that cannot build a ladder VAE, with the fix."""
    if likelihood not in VAE_LIKELIHOODS:
        raise ModelError(f"unknown likelihood {likelihood!r}: use one of {VAE_LIKELIHOODS}")
    if likelihood == "categorical" and (num_levels is None or num_levels < 2):
        raise ModelError("a categorical ladder VAE needs num_levels >= 2 (17 for the digits)")
    if len(latent_dims) < 2:
        raise ModelError(f"a ladder VAE needs at least two latent layers, got latent_dims="
                         f"{list(latent_dims)}; for one layer use the VAE")
    if len(hidden_dims) != len(latent_dims):
        raise ModelError(f"hidden_dims needs one width per latent layer ({len(latent_dims)}), "
                         f"got {list(hidden_dims)}")
    if num_dims < 1 or min(latent_dims) < 1 or min(hidden_dims) < 1:
        raise ModelError("num_dims, every latent size and every hidden width must be positive")
    if not 0.0 <= dropout < 1.0:
        raise ModelError(f"dropout must lie in [0, 1), not {dropout}")
