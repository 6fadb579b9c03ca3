"""Conditional VAEs: ``p(x | y)`` given class labels, and the structured-output CVAE that
completes an image from a part of it.

* :class:`CVAE` (CLI ``cvae``) — ``z ~ N(0, I)``, ``x ~ p(x | z, y)``, guide ``q(z | x, y)``,
  the labels ``y`` a declared conditioning input (:class:`~ppgen.conditions.Condition`): train
  with ``ppgen.fit(model, x, x_val, labels=y, val_labels=y_val)`` (``ppgen fit cvae --data
  digits`` takes the digits' classes), score with ``ppgen.log_likelihood(model, x, y=labels)``,
  draw a class with ``model.sample(n, y=3)``. Kingma, Rezende, Mohamed & Welling, 2014,
  "Semi-supervised Learning with Deep Generative Models" (arXiv:1406.5298), the conditional
  generative model M2 with the label observed; Sohn, Lee & Yan, 2015.
* :class:`StructuredCVAE` (CLI ``structured-cvae``) — Sohn, Lee & Yan, 2015, "Learning
  Structured Output Representation using Deep Conditional Generative Models" (NeurIPS). A datum
  ``x: [D]`` is split into its first ``num_observed`` entries ``x_o`` (in raster order, the top
  rows of an image) and the rest ``x_m``; the program is the conditional model of the missing
  part given the observed one, with Sohn's conditional prior network:
  ``z ~ p(z | x_o)``, ``x_m ~ p(x_m | z, x_o)``; guide (recognition network) ``q(z | x_o,
  x_m)``. Data are whole images: ``ppgen.log_likelihood(model, x)`` is the importance-weighted
  ``log p(x_m | x_o)``, and :meth:`StructuredCVAE.complete` draws completions of given parts.

Both reuse the VAE's networks (:func:`~ppgen.models.vae.mlp`) and observation model
(:class:`~ppgen.models.vae.ObservationHead`) and are scored by the evaluation layer like any
latent model (closed-form Gaussian KL in ``ppgen.elbo(..., analytic_kl=True)``, the
conditional prior included).

Example:
    >>> import torch
    >>> cvae = CVAE(64, num_classes=10, latent_dim=4, hidden_dims=(32,), num_levels=17)
    >>> cvae.sample(3, y=7).shape
    torch.Size([3, 64])
    >>> scvae = StructuredCVAE(64, num_observed=32, latent_dim=4, hidden_dims=(32,),
    ...                        num_levels=17)
    >>> scvae.complete(torch.randint(0, 17, (2, 32)), 5).shape
    torch.Size([5, 2, 64])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import pyro
import pyro.distributions as dist
import torch

from ppgen.conditions import Condition, Conditions
from ppgen.data.validate import validate
from ppgen.errors import DataError, ModelError
from ppgen.models.autoregressive import eval_mode
from ppgen.models.vae import VAE_LIKELIHOODS, ObservationHead, _gaussian_params, mlp
from ppgen.protocol import GenerativeModel, ModelKind

if TYPE_CHECKING:
    from ppgen.data import DataInfo

__all__ = ["CVAE", "StructuredCVAE"]

_FOR_DATA = {"categorical": "categorical", "bernoulli": "bernoulli", "continuous": "gaussian"}


class _ConditionalVAE(GenerativeModel, register=False):
    """The shared machinery: a Gaussian latent ``z``, a context vector ``c`` (a one-hot label
    or an observed part), the encoder ``q(z | target, c)``, an optional prior network ``p(z |
    c)`` and the decoder ``p(target | z, c)`` over ``target_dims`` entries."""

    kind = ModelKind.LATENT
    default_objective = "iwae"
    #: the VAE's digits recipe (IWAE-5, AdamW with strong weight decay, early stopping)
    fit_defaults: ClassVar[dict[str, Any]] = {
        "optimizer": "adamw",
        "lr": 3e-3,
        "weight_decay": 0.1,
        "batch_size": 100,
        "epochs": 300,
        "patience": 30,
    }
    objective_defaults: ClassVar[dict[str, Any]] = {"num_particles": 5, "validation_particles": 20}

    def _store(self, num_dims: int, latent_dim: int, hidden_dims: Sequence[int],
               likelihood: str, num_levels: int | None, dropout: float,
               categorical_head: str, num_components: int, min_scale: float) -> None:
        _check_args(num_dims, latent_dim, hidden_dims, likelihood, num_levels, dropout)
        self.num_dims = num_dims
        self.latent_dim = latent_dim
        self.hidden_dims = [int(h) for h in hidden_dims]
        self.likelihood = likelihood
        self.num_levels = num_levels
        self.dropout = dropout
        self.categorical_head = categorical_head
        self.num_components = num_components
        self.min_scale = min_scale
        self.register_buffer("_zero", torch.zeros(()), persistent=False)
        self.register_buffer("_one", torch.ones(()), persistent=False)

    def _build(self, target_dims: int, context_dims: int, conditional_prior: bool) -> None:
        L, H, p = self.latent_dim, self.hidden_dims, self.dropout
        self._observation = ObservationHead(
            target_dims, self.likelihood, self.num_levels, self.categorical_head,
            self.num_components, self.min_scale)
        self.encoder = mlp([target_dims + context_dims, *H, 2 * L], p)
        self.prior_net = mlp([context_dims, *H, 2 * L], p) if conditional_prior else None
        self.decoder = mlp([L + context_dims, *H[::-1], self._observation.num_outputs], p)

    @property
    def event_shape(self) -> torch.Size:
        """``[D]``: one flat datum."""
        return torch.Size([self.num_dims])

    # ----------------------------------------------------------------- distributions
    def _scaled(self, x: torch.Tensor) -> torch.Tensor:
        """Network input of data: categorical levels scaled to ``[0, 1]``."""
        x = x.to(self._one.dtype)
        return x / (self.num_levels - 1) if self.likelihood == "categorical" else x

    def prior_distribution(self, c: torch.Tensor) -> dist.TorchDistribution:
        """``p(z | c)`` for contexts ``c: [N, C]`` (``N(0, I)`` without a prior network):
        batch ``[N]``, event ``[L]``."""
        if self.prior_net is None:
            return dist.Normal(self._zero, self._one).expand([len(c), self.latent_dim]).to_event(1)
        return dist.Normal(*_gaussian_params(self.prior_net(c), self.latent_dim)).to_event(1)

    def posterior_distribution(self, target: torch.Tensor, c: torch.Tensor
                               ) -> dist.TorchDistribution:
        """``q(z | target, c)``: batch ``[N]``, event ``[L]``."""
        h = self.encoder(torch.cat([self._scaled(target), c], dim=-1))
        return dist.Normal(*_gaussian_params(h, self.latent_dim)).to_event(1)

    def likelihood_fn(self, z: torch.Tensor, c: torch.Tensor) -> dist.TorchDistribution:
        """``p(target | z, c)`` for ``z: [..., N, L]`` and ``c: [N, C]``: batch ``[..., N]``."""
        c = c.expand(*z.shape[:-1], c.shape[-1])
        return self._observation(self.decoder(torch.cat([z, c], dim=-1)))

    # ----------------------------------------------------------------- programs
    def _program(self, c: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        with pyro.plate("data", len(c), device=self.device):
            z = pyro.sample("z", self.prior_distribution(c))
            return pyro.sample("x", self.likelihood_fn(z, c), obs=target)

    def _guide(self, c: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with pyro.plate("data", len(c), device=self.device):
            return pyro.sample("z", self.posterior_distribution(target, c))

    # ----------------------------------------------------------------- data
    def check_data(self, x: Any, name: str = "data") -> torch.Tensor:
        """Validate ``x: [N, D]`` for the likelihood (as :meth:`ppgen.models.VAE.check_data`).

        Raises:
            DataError: wrong shape, NaN/inf, or values outside the likelihood's support.
        """
        kind = "continuous" if self.likelihood == "gaussian" else self.likelihood
        return validate(x, kind, num_levels=self.num_levels, event_shape=(self.num_dims,),
                        name=name)

    @classmethod
    def _data_args(cls, info: DataInfo) -> dict[str, Any]:
        if len(info.event_shape) != 1:
            raise ModelError(f"{cls.__name__} models flat data but one datum has shape "
                             f"{tuple(info.event_shape)}: flatten the data to [N, D] first")
        likelihood = _FOR_DATA[info.likelihood]
        args: dict[str, Any] = {"num_dims": info.num_dims, "likelihood": likelihood}
        if likelihood == "categorical":
            args["num_levels"] = info.num_levels
        return args


class CVAE(_ConditionalVAE):
    """A class-conditional VAE ``p(x | y) = ∫ p(z) p(x | z, y) dz``.

    Paper: Kingma et al., 2014 (arXiv:1406.5298), model M2 with observed labels; Sohn, Lee &
    Yan, 2015 ("Learning Structured Output Representation using Deep Conditional Generative
    Models").

    Args:
        num_dims: ``D``, the size of one (flat) datum.
        num_classes: ``C``: labels ``0..C-1`` (the declared condition ``y``).
        latent_dim: ``L``.
        hidden_dims: hidden widths of the encoder; the decoder mirrors them.
        likelihood: ``"categorical"``, ``"bernoulli"`` or ``"gaussian"``.
        num_levels: ``K`` of categorical data.
        dropout: dropout rate after every hidden layer (training mode only).
        categorical_head: ``"logistic"`` or ``"softmax"`` (see :class:`~ppgen.models.VAE`).
        num_components: logistic components per dimension.
        min_scale: floor of the Gaussian decoder's standard deviation.

    Example:
        >>> cvae = CVAE(4, num_classes=3, latent_dim=2, hidden_dims=(8,), likelihood="bernoulli")
        >>> cvae.sample(6).shape  # the classes in turn
        torch.Size([6, 4])
    """

    def __init__(
        self,
        num_dims: int,
        num_classes: int = 10,
        latent_dim: int = 16,
        hidden_dims: Sequence[int] = (256, 256),
        likelihood: str = "categorical",
        num_levels: int | None = None,
        dropout: float = 0.2,
        categorical_head: str = "logistic",
        num_components: int = 3,
        min_scale: float = 1e-3,
    ) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ModelError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        self._store(num_dims, latent_dim, hidden_dims, likelihood, num_levels, dropout,
                    categorical_head, num_components, min_scale)
        self.num_classes = num_classes
        self._build(num_dims, num_classes, conditional_prior=False)
        self.register_buffer("_one_hot", torch.eye(num_classes), persistent=False)

    @property
    def conditions(self) -> Conditions:
        """``y``, class labels ``0..num_classes-1``."""
        return Conditions([Condition.classes("y", self.num_classes)], type(self).__name__)

    def model(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None,
              num_samples: int | None = None) -> torch.Tensor:
        """``z ~ N(0, I)``, ``x ~ p(x | z, y)`` in the ``"data"`` plate.

        Args:
            x: observed data ``[N, D]``, or ``None`` to generate.
            y: ``long`` labels ``[N]`` (when generating without them: the classes in turn).
            num_samples: ``N`` when generating without labels (default 1).

        Returns:
            ``x`` (observed or generated) ``[N, D]``.
        """
        y = self.conditions.in_program({"y": y}, x, num_samples, self.device)["y"]
        return self._program(self._one_hot[y], x)

    def guide(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``q(z | x, y)``; ``x: [N, D]``, ``y: [N]``, returns ``z: [N, L]``."""
        return self._guide(self._one_hot[y], x)

    @classmethod
    def for_data(cls, info: DataInfo, **kwargs: Any) -> CVAE:
        """A CVAE for flat data described by ``info`` (10 classes unless ``num_classes``)."""
        return cls(**{**cls._data_args(info), **kwargs})


class StructuredCVAE(_ConditionalVAE):
    """Sohn et al.'s conditional VAE of the missing part of a datum given its observed part.

    A datum ``x: [D]`` is ``(x_o, x_m)``: the first ``num_observed`` entries (raster order: the
    top rows of an image; 32 of the 64 digit pixels is the top half) and the rest. Model:
    ``z ~ N(mu(x_o), sigma(x_o)^2)`` (the prior network), ``x_m ~ p(x_m | z, x_o)``; guide: the
    recognition network ``q(z | x_o, x_m)``. The observed site ``"x"`` holds ``x_m`` only, so
    the evaluation layer's numbers are of the missing part: ``ppgen.log_likelihood(model, x)``
    is ``log p(x_m | x_o)`` (importance-weighted) and ``ppgen.elbo`` its bound.

    Paper: Sohn, Lee & Yan, 2015, "Learning Structured Output Representation using Deep
    Conditional Generative Models" (NeurIPS; trained here on the CVAE bound, or its
    importance-weighted version, without the paper's hybrid GSNN term).

    Args:
        num_dims: ``D``, the size of one (flat) datum.
        num_observed: ``M``, the given entries (``0 < M < D``); default ``D // 2``.
        latent_dim, hidden_dims, likelihood, num_levels, dropout, categorical_head,
            num_components, min_scale: as :class:`CVAE`.

    Example:
        >>> model = StructuredCVAE(6, num_observed=2, latent_dim=2, hidden_dims=(8,),
        ...                        likelihood="bernoulli")
        >>> model.sample(4, observed=torch.ones(2)).shape
        torch.Size([4, 6])
    """

    #: ``sample(n, observed=x_o)``: the given part ``[M]`` (one for all draws) or ``[n, M]``
    sample_options: ClassVar[dict[str, Any]] = {"observed": None}

    def __init__(
        self,
        num_dims: int,
        num_observed: int | None = None,
        latent_dim: int = 16,
        hidden_dims: Sequence[int] = (256, 256),
        likelihood: str = "categorical",
        num_levels: int | None = None,
        dropout: float = 0.2,
        categorical_head: str = "logistic",
        num_components: int = 3,
        min_scale: float = 1e-3,
    ) -> None:
        super().__init__()
        num_observed = num_dims // 2 if num_observed is None else num_observed
        if not (isinstance(num_observed, int) and 0 < num_observed < num_dims):
            raise ModelError(f"num_observed must be an integer in 1..{num_dims - 1} (the given "
                             f"entries of a {num_dims}-d datum), got {num_observed!r}")
        self._store(num_dims, latent_dim, hidden_dims, likelihood, num_levels, dropout,
                    categorical_head, num_components, min_scale)
        self.num_observed = num_observed
        self._build(num_dims - num_observed, num_observed, conditional_prior=True)

    def model(self, x: torch.Tensor | None = None, num_samples: int | None = None,
              observed: torch.Tensor | None = None) -> torch.Tensor:
        """``z ~ p(z | x_o)``, ``x_m ~ p(x_m | z, x_o)`` in the ``"data"`` plate.

        Args:
            x: whole data ``[N, D]`` (``x_o`` is read from them, ``x_m`` observed), or
                ``None`` to generate.
            num_samples: unused (the number of rows of ``observed`` sets ``N``).
            observed: the given parts ``[N, M]`` when generating.

        Returns:
            the missing part ``x_m`` (observed or drawn) ``[N, D - M]``.
        """
        if x is None:
            if observed is None:
                raise ModelError(self._needs_parts())
            return self._program(self._scaled(observed), None)
        M = self.num_observed
        return self._program(self._scaled(x[:, :M]), x[:, M:])

    def guide(self, x: torch.Tensor) -> torch.Tensor:
        """The recognition network ``q(z | x_o, x_m)``; ``x: [N, D]``, returns ``z: [N, L]``."""
        M = self.num_observed
        return self._guide(self._scaled(x[:, :M]), x[:, M:])

    def generate(self, n: int, observed: Any = None) -> torch.Tensor:
        """``n`` whole data ``[n, D]``: the given part(s) ``observed`` (``[M]`` or ``[n, M]``)
        followed by a drawn completion.

        Raises:
            ModelError: no ``observed`` part.
            DataError: a part of the wrong shape or outside the data's support.
        """
        if observed is None:
            raise ModelError(self._needs_parts())
        part = self.check_part(observed)
        if len(part) == 1:
            part = part.expand(n, -1)
        if len(part) != n:
            raise DataError(f"observed has {len(part)} rows for {n} draws: pass one part [M] "
                            f"or one per draw [{n}, {self.num_observed}]")
        return self.complete(part, 1)[0]

    @torch.no_grad()
    def complete(self, x_part: Any, n: int = 1) -> torch.Tensor:
        """``n`` completions of each given part: ``[n, N, D]`` whose first ``M`` entries are
        ``x_part`` exactly and the rest drawn from ``p(x_m | x_o)``.

        Args:
            x_part: the observed parts ``[N, M]``, or whole data ``[N, D]`` whose entries past
                ``M`` are ignored.
            n: completions per part.
        """
        part = self.check_part(x_part)
        rows = part.repeat(n, 1)
        with eval_mode(self):
            missing = super().generate(len(rows), observed=rows)
        whole = torch.cat([rows, missing.to(rows.dtype)], dim=-1)
        return whole.reshape(n, len(part), self.num_dims)

    def check_part(self, x_part: Any) -> torch.Tensor:
        """Observed parts ``[N, M]`` (or ``[M]``; whole data ``[N, D]`` are cut), validated for
        the likelihood and moved to the model's device.

        Raises:
            DataError: a part of another width or outside the data's support.
        """
        t = torch.as_tensor(x_part) if not isinstance(x_part, torch.Tensor) else x_part
        t = t.reshape(1, -1) if t.dim() == 1 else t
        if t.dim() == 2 and t.shape[1] == self.num_dims:
            t = t[:, : self.num_observed]
        kind = "continuous" if self.likelihood == "gaussian" else self.likelihood
        M = self.num_observed
        return validate(t, kind, num_levels=self.num_levels, event_shape=(M,),
                        name="observed part").to(self.device)

    def _needs_parts(self) -> str:
        return (f"{type(self).__name__} draws completions of given parts: pass them, "
                f"model.sample(n, observed=x_o) with x_o [{self.num_observed}] or "
                f"[n, {self.num_observed}], or model.complete(x_o, n)")

    @classmethod
    def for_data(cls, info: DataInfo, **kwargs: Any) -> StructuredCVAE:
        """A structured CVAE for flat data described by ``info`` (the first half observed
        unless ``num_observed``: the top half of the digits)."""
        return cls(**{**cls._data_args(info), **kwargs})


def _check_args(num_dims: int, latent_dim: int, hidden_dims: Sequence[int], likelihood: str,
                num_levels: int | None, dropout: float) -> None:
    """Refuse sizes and options that cannot build a conditional VAE, with the fix."""
    if likelihood not in VAE_LIKELIHOODS:
        raise ModelError(f"unknown likelihood {likelihood!r}: use one of {VAE_LIKELIHOODS}")
    if likelihood == "categorical" and (num_levels is None or num_levels < 2):
        raise ModelError("a categorical conditional VAE needs num_levels >= 2 (17 for digits)")
    if num_dims < 1 or latent_dim < 1 or any(h < 1 for h in hidden_dims):
        raise ModelError("num_dims, latent_dim and every hidden width must be positive")
    if not 0.0 <= dropout < 1.0:
        raise ModelError(f"dropout must lie in [0, 1), not {dropout}")
