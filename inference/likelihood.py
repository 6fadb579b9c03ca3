"""Exact maximum likelihood: the objective of every model with a tractable density."""

from __future__ import annotations

from typing import Any

import torch

from ppgen.evaluate import Structure, log_likelihood, structure_of
from ppgen.objective import Objective

__all__ = ["MaximumLikelihood", "StructureCache"]


class StructureCache:
    """Reads a program's structure once and hands it to every later evaluation call."""

    def __init__(self) -> None:
        self._structure: Structure | None = None

    def structure(
        self, model: torch.nn.Module, x: torch.Tensor, kwargs: dict[str, Any] | None = None
    ) -> Structure:
        """The structure of ``model``'s programs run on ``x`` (and its keyword arguments)."""
        if self._structure is None:
            self._structure = structure_of(model, x, kwargs)
        return self._structure


class MaximumLikelihood(Objective, StructureCache):
    """Minimise the exact negative log-likelihood ``-mean_n log p(x_n)``.

    Works for every model whose ``model(x)`` program has no latent sites (autoregressive,
    flows, tabular models); the log-likelihood comes from :func:`ppgen.log_likelihood`.

    Example:
        >>> objective = MaximumLikelihood()  # doctest: +SKIP
        >>> ppgen.fit(model, train, val, objective=objective)  # doctest: +SKIP
    """

    name = "mle"

    def __init__(self) -> None:
        StructureCache.__init__(self)

    def log_likelihood(
        self, model, x: torch.Tensor, differentiable: bool, **kwargs: Any
    ) -> torch.Tensor:
        """``[B]`` exact log-likelihoods through the shared evaluation layer.

        ``kwargs``: per-datum keyword arguments of the program (e.g. labels ``y: [B]``).
        """
        return log_likelihood(
            model,
            x,
            structure=self.structure(model, x, kwargs),
            differentiable=differentiable,
            check=False,
            **kwargs,
        )

    def loss(self, model, batch: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return -self.log_likelihood(model, batch, differentiable=True, **kwargs).mean()

    def validation_loss(self, model, batch: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return -self.log_likelihood(model, batch, differentiable=False, **kwargs)
