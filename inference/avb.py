"""Adversarial variational Bayes: the ELBO of a guide without a density.

A guide that pushes noise through a network (``eps ~ N(0, I)``, ``z = f_φ(x, eps)``) can
represent far richer posteriors than a Gaussian, but ``log q_φ(z | x)`` — which the ELBO needs —
is unknown. Adversarial variational Bayes (Mescheder, Nowozin & Geiger, 2017, "Adversarial
Variational Bayes: Unifying Variational Autoencoders and Generative Adversarial Networks",
arXiv:1701.04722) estimates the log density ratio with a critic ``T(x, z)`` trained by logistic
regression between pairs ``(x, z ~ q(z | x))`` and ``(x, z ~ p(z))``:

    max_T  E_x [ E_q log σ(T(x, z)) + E_p log(1 - σ(T(x, z))) ]

whose optimum is ``T*(x, z) = log q(z | x) - log p(z)`` (their Proposition 1). The ELBO is then

    ELBO(x) = E_q [ log p(x | z) - T*(x, z) ],

and the model and the guide (one player, ``"model"``) maximise it through the reparameterised
draws ``z = f_φ(x, eps)``, the critic held fixed (``E_q ∇_φ T*(x, z) = 0``, their Proposition 2,
so the path through ``z`` is the whole gradient). The critic is the second player
(``"critic"``); both update every step (``n_critic`` critic updates per model update).

The prior ``p(z)`` is the model's latent sites, drawn by running the model on the data; its
parameters, if any, get no gradient (``T`` absorbs ``log p(z)``): keep the prior fixed.
Adaptive contrast (the paper's section 3.3) is not implemented.

The latent sites are those the model and the guide both sample, one code per datum of the
``"data"`` plate; the critic reads ``[x, z]`` concatenated, ``[B, D + L]``.

Example:
    >>> import pyro, pyro.distributions as dist, ppgen
    >>> from ppgen.inference import AVB, ProgramPair, avb_critic
    >>> def model(x):
    ...     with pyro.plate("data", x.shape[0]):
    ...         z = pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], 1), 1.0).to_event(1))
    ...         pyro.sample("x", dist.Normal(z, 0.5).to_event(1), obs=x)
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    >>> class Guide(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.net = net
    ...     def forward(self, x):
    ...         with pyro.plate("data", x.shape[0]):
    ...             eps = pyro.sample("eps", dist.Normal(torch.zeros_like(x), 1.0).to_event(1))
    ...             pyro.sample("z", dist.Delta(self.net(torch.cat([x, eps], -1))).to_event(1))
    >>> pair = ProgramPair(model, Guide(), event_shape=(1,))
    >>> objective = AVB(critic=avb_critic(1, 1))
    >>> history = ppgen.fit(pair, x_train, objective=objective, epochs=50)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from pyro import poutine
from torch import nn

from ppgen.errors import TrainingError
from ppgen.evaluate.program import validation_context
from ppgen.inference.adversarial import AdversarialLoss, critic_losses, mlp_critic
from ppgen.inference.program_pair import (
    flat_values,
    guide_trace,
    latent_names,
    per_datum_log_prob,
)
from ppgen.objective import Objective, StepContext

__all__ = ["AVB", "avb_critic"]


def avb_critic(x_dims: int, z_dims: int, hidden: Sequence[int] = (64, 64)) -> nn.Sequential:
    """A critic ``T([x, z]): [B, D + L] -> [B, 1]`` for flat data and codes (a LeakyReLU MLP)."""
    return mlp_critic(x_dims + z_dims, hidden)


class AVB(Objective):
    """Adversarial variational Bayes (two players: ``"model"`` and ``"critic"``).

    Args:
        critic: ``T([x, z]) -> [B]`` or ``[B, 1]`` on data and codes concatenated (e.g.
            :func:`avb_critic`); this objective's state, checkpointed with the run.
        n_critic: critic updates per model update (one batch each).

    The validation loss is the per-datum ``-(log p(x | z) - T(x, z))`` at one draw of the
    guide: the negative ELBO as far as the critic is right.
    """

    name = "avb"

    def __init__(self, critic: nn.Module | None = None, n_critic: int = 1) -> None:
        super().__init__()
        if critic is None:
            raise TrainingError("AVB needs a critic T([x, z]) on data and codes: "
                                "AVB(critic=avb_critic(x_dims, z_dims)) from ppgen.inference")
        self.critic, self.n_critic = critic, int(n_critic)
        if self.n_critic < 1:
            raise TrainingError(f"n_critic must be >= 1, got {n_critic!r}")
        self._checked = False

    # ----------------------------------------------------------------- players
    def param_groups(self, model: nn.Module) -> dict[str, Iterable[nn.Parameter]]:
        """``{"model": the model's and guide's parameters, "critic": the critic's}``."""
        return {"model": list(model.parameters()), "critic": list(self.critic.parameters())}

    def updates(self, step: int, groups: tuple[str, ...]) -> list[tuple[str, ...]]:
        """A critic update every step, a model update every ``n_critic``-th step."""
        last = step % self.n_critic == self.n_critic - 1
        return [("critic",)] + ([("model",)] if last else [])

    # ----------------------------------------------------------------- the pieces
    def log_ratio(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``T(x, z)``: the critic's estimate of ``log q(z | x) - log p(z)``, ``[B]`` (fp32)."""
        return self.critic(torch.cat([x.flatten(1), z], dim=1)).reshape(len(x)).float()

    def posterior_codes(self, model: nn.Module, x: torch.Tensor, kwargs: dict[str, Any]
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """One draw per row ``z ~ q(z | x)``, ``[B, L]`` (differentiable), and ``log p(x | z)``
        ``[B]`` at those codes."""
        owner, n = type(model).__name__, len(x)
        q_tr = guide_trace(model, x, kwargs)
        replayed = poutine.trace(poutine.replay(model.model, trace=q_tr)).get_trace(x, **kwargs)
        names = latent_names(replayed.nodes, q_tr, model.data_site, owner)
        observed = [k for k, s in replayed.nodes.items() if s["type"] == "sample"
                    and s["is_observed"] and k not in names]
        return (flat_values(q_tr, names, n, owner),
                per_datum_log_prob(replayed, observed, n, owner))

    @staticmethod
    def prior_trace(model: nn.Module, x: torch.Tensor, kwargs: dict[str, Any]
                    ) -> poutine.Trace:
        """The model run on ``x``: its latent sites drawn from the prior (no gradient)."""
        with torch.no_grad():
            return poutine.trace(model.model).get_trace(x, **kwargs)

    # ----------------------------------------------------------------- losses
    def losses(self, model: nn.Module, batch: torch.Tensor, context: StepContext,
               **kwargs: Any) -> dict[str, torch.Tensor]:
        """The critic's logistic loss (``("critic",)``) or the model's ``-ELBO``."""
        with validation_context(self._checked):  # Pyro checks the programs' first step only
            if context.update == ("critic",):
                out = self.critic_step(model, batch, kwargs)
            else:
                z_q, log_lik = self.posterior_codes(model, batch, kwargs)
                elbo = log_lik - self.log_ratio(batch, z_q)
                out = {"loss": -elbo.mean(), "log_lik": log_lik.mean().detach()}
        self._checked = True
        return out

    def critic_step(self, model: nn.Module, batch: torch.Tensor, kwargs: dict[str, Any]
                    ) -> dict[str, torch.Tensor]:
        """``{"loss": -E_q log σ(T) - E_p log(1 - σ(T)), "gap": E_q T - E_p T}``."""
        owner, n = type(model).__name__, len(batch)
        with torch.no_grad():
            q_tr = guide_trace(model, batch, kwargs)
            prior = self.prior_trace(model, batch, kwargs)
            names = latent_names(prior.nodes, q_tr, model.data_site, owner)
            z_q, z_p = flat_values(q_tr, names, n, owner), flat_values(prior, names, n, owner)
        t_q, t_p = self.log_ratio(batch, z_q), self.log_ratio(batch, z_p)
        loss = critic_losses(AdversarialLoss.MINIMAX, t_q, t_p)
        return {"loss": loss, "gap": (t_q.mean() - t_p.mean()).detach()}

    def validation_loss(self, model: nn.Module, batch: torch.Tensor, **kwargs: Any
                        ) -> torch.Tensor:
        """``-(log p(x | z) - T(x, z))`` per datum ``[B]`` at one guide draw."""
        z_q, log_lik = self.posterior_codes(model, batch, kwargs)
        return -(log_lik - self.log_ratio(batch, z_q))

    def get_config(self) -> dict:
        return {"name": self.name, "n_critic": self.n_critic}
