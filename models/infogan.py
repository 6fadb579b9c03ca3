"""InfoGAN: a GAN whose generator reads interpretable codes that its critic learns to recognise.

The program draws, in the ``"data"`` plate, a categorical code ``code ~ Cat(1/K)`` (site
``"code"``), continuous codes ``style ~ U(-1, 1)^S`` (site ``"style"``) and the noise
``z ~ N(0, I_L)``, and generates ``x = G([z, onehot(code), style])``. The critic's ``Q`` head
(on the critic's body) is a recognition distribution of the codes, ``q(code | x)`` a softmax and
``q(style | x)`` a unit-variance Gaussian; the mutual-information lower bound
``L_I = H(c) + E log q(c | x̃) <= I(c; x̃)`` enters both players' losses as
``λ E[-log q(c | x̃)]`` (the adversarial objective's recognition loss, ``info_weight = λ``): the
generator learns to make the codes readable from its draws, so they come to control factors of
the data — on the digits, the categorical code the digit class (unsupervised).

Because the codes are sample sites of the program, fixing one is Pyro's ``poutine.condition``:
:meth:`InfoGAN.sweep` draws the same noise and other codes for each value of one code, which
shows what that code controls (:meth:`InfoGAN.sweep_figure` for images).

Paper: Chen, Duan, Houthooft, Schulman, Sutskever & Abbeel, 2016, "InfoGAN: Interpretable
Representation Learning by Information Maximizing Generative Adversarial Nets"
(arXiv:1606.03657).

Example:
    >>> gan = InfoGAN(2, categories=3, continuous=1,
    ...               network={"hidden_dims": (16,), "critic_dims": (16,)})
    >>> gan.sweep("code", [0, 1, 2], n=4).shape
    torch.Size([3, 4, 2])
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine

from ppgen.distributions import ImplicitDistribution
from ppgen.errors import ModelError
from ppgen.models.headed_gan import HeadedGAN

__all__ = ["InfoGAN", "CODE_SITES"]

#: the program's code sites: the categorical code and the continuous ones
CODE_SITES = ("code", "style")


class InfoGAN(HeadedGAN):
    """A GAN with a categorical and continuous codes and the mutual-information term.

    Paper: Chen et al., 2016 (arXiv:1606.03657).

    Args:
        shape: ``D`` for flat data (MLP bodies) or ``(H, W)`` / ``(C, H, W)`` for flat images
            (convolutional bodies).
        categories: ``K`` of the categorical code (0: none).
        continuous: ``S``, the number of continuous codes, each ``U(-1, 1)`` (0: none).
        latent_dim: ``L``, the size of the unstructured noise ``z``.
        network: body options (see :class:`~ppgen.models.CGAN`).
        output: the generator's output activation (default: ``"identity"`` for flat data,
            ``"sigmoid"`` for images).
        num_levels: ``K`` when the data are integer levels dequantised to ``[0, 1)``.
        loss: the adversarial loss (``ppgen.models.gan.GAN_LOSSES``).
        n_critic: critic steps per generator step (default: 5 for WGAN-GP, 1 otherwise).
        r1: weight ``γ`` of the R1 penalty on the critic.
        features: the feature space of the validation metric: ``"digits"`` (the Fréchet
            distance in the digits classifier's space; set by ``for_data`` for the
            digits) or ``None`` (the MMD on the data).
        info_weight: ``λ`` of the mutual-information term.

    Example:
        >>> gan = InfoGAN((8, 8), categories=10, continuous=2, network={"channels": 4})
        >>> score, q = gan.critic_outputs(gan.critic, gan.sample(5))
        >>> q["code"].probs.shape, q["style"].mean.shape
        (torch.Size([5, 10]), torch.Size([5, 2]))
    """

    name = "infogan"

    def __init__(
        self,
        shape: int | Sequence[int],
        categories: int = 10,
        continuous: int = 2,
        latent_dim: int = 32,
        network: dict[str, Any] | None = None,
        output: str | None = None,
        num_levels: int | None = None,
        loss: str = "non-saturating",
        n_critic: int | None = None,
        r1: float = 0.0,
        info_weight: float = 1.0,
        features: str | None = None,
    ) -> None:
        super().__init__()
        _check_codes(categories, continuous, info_weight)
        self.categories, self.continuous = categories, continuous
        self.info_weight = float(info_weight)
        self._setup(latent_dim, self._default_output(shape, output), num_levels, loss,
                    n_critic, r1, features)
        codes = categories + continuous
        self._build(shape, network, codes, None, codes)
        self.register_buffer("_one_hot", torch.eye(max(categories, 1)), persistent=False)
        self.register_buffer("_code_logits", torch.zeros(max(categories, 1)), persistent=False)
        self.register_buffer("_style_low", -torch.ones(continuous), persistent=False)
        self.register_buffer("_style_high", torch.ones(continuous), persistent=False)

    @property
    def objective_defaults(self) -> dict[str, Any]:  # type: ignore[override]
        """The GAN recipe and ``λ`` of the mutual-information term."""
        return {**super().objective_defaults, "info_weight": self.info_weight}

    # ----------------------------------------------------------------- the program
    def code_priors(self, n: int) -> dict[str, dist.Distribution]:
        """The codes' priors for ``n`` draws: ``{"code": Cat(1/K)`` (batch ``[n]``),
        ``"style": U(-1, 1)^S`` (batch ``[n]``, event ``[S]``)``}`` (the ones the model has)."""
        priors: dict[str, dist.Distribution] = {}
        if self.categories:
            logits = self._code_logits.expand(n, self.categories)
            priors["code"] = dist.Categorical(logits=logits, validate_args=False)
        if self.continuous:
            shape = (n, self.continuous)
            priors["style"] = dist.Uniform(self._style_low.expand(shape),
                                           self._style_high.expand(shape),
                                           validate_args=False).to_event(1)
        return priors

    def model(self, x: torch.Tensor | None = None, num_samples: int | None = None
              ) -> torch.Tensor:
        """``code``, ``style`` and ``z`` from their priors, ``x = G([z, onehot(code), style])``,
        in the ``"data"`` plate.

        Args:
            x: observed data ``[N, *event_shape]`` (no density: scoring them is an error), or
                ``None`` to generate.
            num_samples: ``N`` when generating (default 1).

        Returns:
            ``x`` (observed or generated).
        """
        n = x.shape[0] if x is not None else (num_samples or 1)
        with pyro.plate("data", n, device=self.noise_loc.device):
            codes = {name: pyro.sample(name, prior)
                     for name, prior in self.code_priors(n).items()}
            generate = partial(self._generate, codes=codes)
            implicit = ImplicitDistribution(generate, self.noise(n), self.event_shape)
            return pyro.sample(self.data_site, implicit, obs=x)

    def _generate(self, z: torch.Tensor, codes: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [z]
        if "code" in codes:
            parts.append(self._one_hot[codes["code"]].to(z.dtype))
        if "style" in codes:
            parts.append(codes["style"].to(z.dtype))
        return self.generator(torch.cat(parts, dim=-1))

    # ----------------------------------------------------------------- recognition
    def recognize(self, aux: torch.Tensor) -> dict[str, Any]:
        """``Q``'s distributions of the codes from the critic's auxiliary outputs ``[N, K+S]``:
        ``{"code": softmax over K, "style": N(μ, 1)^S}`` (batch ``[N]``)."""
        recognized: dict[str, Any] = {}
        k = self.categories
        if k:
            recognized["code"] = dist.Categorical(logits=aux[:, :k], validate_args=False)
        if self.continuous:
            loc = aux[:, k:]
            scale = self._style_high.expand_as(loc)  # unit variance
            recognized["style"] = dist.Normal(loc, scale, validate_args=False).to_event(1)
        return recognized

    @torch.no_grad()
    def infer_code(self, x: torch.Tensor) -> torch.Tensor:
        """``Q``'s most likely categorical code ``[N]`` of ``x: [N, *event_shape]``."""
        if not self.categories:
            raise ModelError("this InfoGAN has no categorical code (categories=0)")
        return self.recognize(self.critic.heads(x)[1])["code"].logits.argmax(-1)

    # ----------------------------------------------------------------- sweeps
    @torch.no_grad()
    def sweep(self, code: str, values: Sequence[float] | torch.Tensor, n: int = 8,
              dim: int = 0, seed: int = 0) -> torch.Tensor:
        """Draws for each value of one code, everything else held fixed.

        The same ``n`` noise vectors and other codes (drawn under ``seed``) are used for every
        value; only ``code`` (``"code"``, or dimension ``dim`` of ``"style"``) changes, by
        conditioning its site (``poutine.condition``).

        Args:
            code: ``"code"`` (values: categories ``0..K-1``) or ``"style"`` (values: reals,
                ``U(-1, 1)`` in training).
            values: ``V`` values of the code.
            n: draws per value.
            dim: the continuous code swept (``"style"`` only).
            seed: seed of the shared noise and codes (the global random state is restored).

        Returns:
            ``[V, n, *event_shape]`` draws, row ``v`` with the code at ``values[v]``.

        Raises:
            ModelError: an unknown code, a category outside ``0..K-1`` or ``dim`` outside
                ``0..S-1``.
        """
        values = torch.as_tensor(values, device=self.noise_loc.device)
        base = self._base_codes(code, values, n, dim, seed)
        rows = []
        for value in values:
            fixed = {k: v.clone() for k, v in base.items()}
            if code == "code":
                fixed["code"].fill_(int(value))
            else:
                fixed["style"][:, dim] = value
            rows.append(self._draw_with(fixed, n, seed))
        return torch.stack(rows)

    def _base_codes(self, code: str, values: torch.Tensor, n: int, dim: int, seed: int
                    ) -> dict[str, torch.Tensor]:
        """The shared codes of a sweep, after checking what is swept."""
        if code not in self.code_priors(1):
            raise ModelError(f"unknown code {code!r}: this InfoGAN has the codes "
                             f"{sorted(self.code_priors(1))}")
        if code == "code" and (values.min() < 0 or values.max() >= self.categories):
            raise ModelError(f"categorical code values must lie in 0..{self.categories - 1}")
        if code == "style" and not 0 <= dim < self.continuous:
            raise ModelError(f"dim must lie in 0..{self.continuous - 1}, got {dim}")
        with torch.random.fork_rng(devices=_cuda_devices(values.device)):
            torch.manual_seed(seed)
            return {k: prior.sample() for k, prior in self.code_priors(n).items()}

    def _draw_with(self, codes: dict[str, torch.Tensor], n: int, seed: int) -> torch.Tensor:
        with torch.random.fork_rng(devices=_cuda_devices(self.noise_loc.device)):
            torch.manual_seed(seed + 1)
            conditioned = poutine.condition(self.model, data=codes)
            trace = poutine.trace(conditioned).get_trace(None, num_samples=n)
        return trace.nodes[self.data_site]["value"]

    def sweep_figure(self, code: str, values: Sequence[float], n: int = 8, dim: int = 0,
                     seed: int = 0) -> Any:
        """The sweep of an image model as a figure: one row per value, ``n`` images a row.

        Raises:
            ModelError: a model of flat data (not images).
        """
        if self.image_shape is None:
            raise ModelError("sweep_figure draws images: this InfoGAN models flat data "
                             "(use sweep and plot the points)")
        from ppgen import plots

        images = self.sweep(code, values, n, dim, seed)
        labels = [f"{code}={float(v):g}" if code == "style" else f"code={int(v)}"
                  for v in values]
        return plots.image_grid(images.reshape(-1, images.shape[-1]), self.image_shape,
                                ncols=n, row_labels=labels, title=f"InfoGAN: sweeping {code}")


def _check_codes(categories: int, continuous: int, info_weight: float) -> None:
    if not isinstance(categories, int) or categories < 0 or categories == 1:
        raise ModelError(f"categories must be 0 (no categorical code) or >= 2, got "
                         f"{categories!r}")
    if not isinstance(continuous, int) or continuous < 0:
        raise ModelError(f"continuous must be an integer >= 0, got {continuous!r}")
    if categories + continuous == 0:
        raise ModelError("an InfoGAN needs a code: categories >= 2 or continuous >= 1")
    if info_weight < 0:
        raise ModelError(f"info_weight must be >= 0, got {info_weight}")


def _cuda_devices(device: torch.device) -> list[int]:
    return [device.index or 0] if device.type == "cuda" else []
