"""What a DDPM says about the likelihood of data: the variational bound term by term, its
per-pixel shares and the papers' decomposition, and the exact density of the probability-flow
ODE (Song et al., 2021, "Score-Based Generative Modeling through Stochastic Differential
Equations", arXiv:2011.13456).

The bound ``L_T + sum_t L_{t-1} + L_0`` (Ho et al., 2020, eq. 5) is what ``ppgen.elbo(model,
None, x, analytic_kl=True)`` returns through the Pyro programs; ``model.bound_terms(x)`` writes
the same terms directly (:func:`ppgen.diffusion.bound_terms`). The ODE likelihood is a density
of real data, not a bound.

:class:`DiffusionLikelihood` is that part of :class:`~ppgen.models.DDPM`; it reads the model's
``process``, ``network``, ``num_dims``, ``num_classes``, ``likelihood`` and ``data_scale``,
and its ``scoring_inputs`` and ``to_model_space``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch import nn

from ppgen.diffusion import (
    BoundTerms,
    GaussianDiffusion,
    Prediction,
    bound_per_dim,
    bound_terms,
    ode_log_likelihood,
)
from ppgen.errors import ModelError
from ppgen.models.autoregressive import eval_mode

__all__ = ["DiffusionLikelihood"]


class DiffusionLikelihood:
    """The bound's report and the probability-flow likelihood (a mixin of
    :class:`~ppgen.models.DDPM`)."""

    process: GaussianDiffusion
    network: nn.Module
    num_dims: int
    num_classes: int | None
    likelihood: str
    data_scale: float

    # ----------------------------------------------------------------- the bound
    @torch.no_grad()
    def bound_terms(self, x: Any, y: Any = None) -> BoundTerms:
        """The bound's terms of data ``x: [N, D]`` in nats (no dropout): ``prior`` ``[N]`` and
        ``steps`` ``[N, T]`` (column ``t - 1`` is ``L_{t-1}``; column 0 the decoder's
        ``-log p(x_0 | x_1)``); ``.total`` is the bound. One network pass per step. ``y``:
        the labels ``[N]`` of a class-conditional model."""
        x, conditions = self.scoring_inputs(x, y)
        with eval_mode(self):
            return bound_terms(self, x, **conditions)

    @torch.no_grad()
    def log_prob_per_dim(self, x: Any, y: Any = None) -> torch.Tensor:
        """Minus the bound's share of each dimension ``[N, D]`` (nats; they sum to ``-bound``
        for one draw of the forward process): the per-pixel explanation of an anomaly score
        (:func:`~ppgen.diffusion.bound_per_dim`), where the decoder and every step's Gaussian
        factorise over pixels."""
        x, conditions = self.scoring_inputs(x, y)
        with eval_mode(self):
            return -bound_per_dim(self, x, **conditions)

    def bound_decomposition(self, x: torch.Tensor, y: torch.Tensor | None = None
                            ) -> dict[str, torch.Tensor]:
        """The bound of data ``x: [N, D]`` split as the papers report it: ``{"prior": L_T,
        "steps": sum_{t >= 2} L_{t-1}, "decoder": L_0}``, each ``[N]`` nats (one pass per
        step; read by ``ppgen.evaluate.nll_report`` and ``ppgen evaluate``)."""
        terms = self.bound_terms(x, y)
        return {"prior": terms.prior, "steps": terms.steps[:, 1:].sum(-1),
                "decoder": terms.steps[:, 0]}

    # ----------------------------------------------------------------- the ODE likelihood
    @torch.no_grad()
    def ode_log_likelihood(self, x: Any, y: Any = None, steps: int = 100,
                           batch_size: int | None = None) -> torch.Tensor:
        """``log p(x)`` ``[N]`` (nats, data units) of real data under the model's
        probability-flow ODE (Song et al., 2021; :func:`~ppgen.diffusion.ode_log_likelihood`):
        an exact density of the deterministic flow the network defines (up to the RK4
        integration error), not a bound; ``D`` backward passes per network call, so meant for
        small ``D``.

        Args:
            x: ``[N, D]`` real data.
            y: ``[N]`` labels of a class-conditional model.
            steps: RK4 steps (four network calls each).
            batch_size: rows per chunk (default: all at once).

        Raises:
            ModelError: a model of levels data (its likelihood is the discrete bound,
                ``ppgen.elbo``), or ``steps < 1``.
        """
        if self.likelihood != "continuous":
            raise ModelError("the probability-flow likelihood is a density of real data; this "
                             f"{type(self).__name__} models levels: use the bound "
                             "ppgen.elbo(model, None, x, analytic_kl=True)")
        if steps < 1:
            raise ModelError(f"steps must be >= 1, got {steps}")
        x, conditions = self.scoring_inputs(x, y)
        x0, rows = self.to_model_space(x), batch_size or x.shape[0]
        parts = []
        with eval_mode(self):
            for start in range(0, x0.shape[0], rows):
                y_rows = conditions.get("y")
                y_rows = None if y_rows is None else y_rows[start:start + rows]
                eps = functools.partial(self.continuous_epsilon, y=y_rows)
                parts.append(ode_log_likelihood(eps, x0[start:start + rows], self.process,
                                                steps))
        return torch.cat(parts) - self.num_dims * math.log(self.data_scale)

    def continuous_epsilon(self, x_t: torch.Tensor, time: torch.Tensor, log_snr: torch.Tensor,
                           y: torch.Tensor | None = None) -> torch.Tensor:
        """The noise prediction ``[N, D]`` at a continuous ``time`` with log-SNR ``log_snr``
        (:data:`~ppgen.diffusion.EpsilonFn`): the network's prediction converted with
        ``alpha^2 = sigmoid(log_snr)``, ``sigma^2 = sigmoid(-log_snr)``."""
        args = (x_t, time) if self.num_classes is None else (x_t, time, y)
        out = self.network(*args)[..., : self.num_dims]
        alpha, sigma = torch.sigmoid(log_snr).sqrt(), torch.sigmoid(-log_snr).sqrt()
        if self.process.prediction is Prediction.EPSILON:
            return out
        if self.process.prediction is Prediction.X0:
            return (x_t - alpha * out) / sigma
        return alpha * out + sigma * x_t
