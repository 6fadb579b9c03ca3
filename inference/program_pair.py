"""A user's Pyro model/guide pair as a ppgen model, and the per-datum views of its traces.

:class:`ProgramPair` wraps a latent-variable program ``model(x)`` and its guide ``guide(x)`` —
plain functions with ``pyro.param`` statements, or ``nn.Module``\\ s that run Pyro code — so
that ``ppgen.fit`` and the training engine train both, as they train a zoo VAE: the parameters
of the two programs become module parameters (each program's ``pyro.param`` statements are
captured as :class:`~ppgen.inference.ProgramModel` captures them, never in Pyro's global store).

The guide may be *implicit*: noise pushed through a network with no density. Write it as a
noise site and a deterministic one (``eps = pyro.sample("eps", Normal(0, 1))``,
``pyro.sample("z", Delta(f(x, eps)))``), as a site whose distribution is a
:class:`~ppgen.distributions.ImplicitDistribution`, or flag any guide ``implicit_guide=True``:
its latent sites then keep their draws and refuse their densities (so the evaluation layer
refuses the ELBO with a clear error, and adversarial variational Bayes, :class:`~ppgen.
inference.AVB`, is the objective that trains it).

The helpers :func:`latent_names` and :func:`flat_values` give the adversarial objectives of this
package (ALI, AVB) the pairs ``(x, z)`` their critics read: ``z`` the sites that the model and
the guide both sample, each flattened per datum of the ``"data"`` plate.

Example:
    >>> import pyro, pyro.distributions as dist
    >>> def model(x):
    ...     with pyro.plate("data", x.shape[0]):
    ...         z = pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], 1), 1.0).to_event(1))
    ...         pyro.sample("x", dist.Normal(z, 0.5).to_event(1), obs=x)
    >>> def guide(x):
    ...     w = pyro.param("w", torch.tensor(0.5))
    ...     with pyro.plate("data", x.shape[0]):
    ...         eps = pyro.sample("eps", dist.Normal(torch.zeros_like(x), 1.0).to_event(1))
    ...         pyro.sample("z", dist.Delta(w * x + 0.5 * eps).to_event(1))
    >>> pair = ProgramPair(model, guide, event_shape=(1,))
    >>> [name for name, _ in pair.named_parameters()]
    ['guide_program.unconstrained.w']
    >>> pair.sample(4).shape
    torch.Size([4, 1])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from pyro import poutine
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample

from ppgen.distributions import ImplicitDistribution
from ppgen.errors import ModelError
from ppgen.evaluate import DATA_PLATE
from ppgen.inference.program_model import ProgramModel
from ppgen.protocol import GenerativeModel, ModelKind

__all__ = ["ProgramPair", "latent_names", "flat_values", "per_datum_log_prob", "guide_trace"]


class _NoDensity(Messenger):
    """Keeps the draws of the listed sites and hides their densities (an implicit guide)."""

    def __init__(self, names: Sequence[str] | None) -> None:
        super().__init__()
        self.names = names

    def _pyro_sample(self, msg: Any) -> None:
        if msg["is_observed"] or (self.names is not None and msg["name"] not in self.names):
            return
        fn = msg["fn"]
        if not isinstance(fn, ImplicitDistribution) and fn.has_rsample:
            msg["fn"] = ImplicitDistribution(_identity, fn, fn.event_shape)


def _identity(value: torch.Tensor) -> torch.Tensor:
    return value


class ProgramPair(GenerativeModel, register=False):
    """A model program and its guide, trained together by ``ppgen.fit``.

    Args:
        model: the generative program ``model(x, **kwargs)``: latent sites and the observed
            ``data_site``, its data in the ``"data"`` plate.
        guide: the guide ``guide(x, **kwargs)``; it samples the model's latent sites (and may
            sample noise sites of its own).
        event_shape: the shape of one datum.
        data_site: the name of the observed site.
        implicit_guide: treat the guide as an implicit distribution: its sampled sites keep
            their reparameterised draws and refuse their densities.
        kind: ``"latent"`` (the model's sites have densities: the evaluation layer's bounds
            apply) or ``"implicit"`` (the model's data site has none, e.g. a deterministic
            decoder: compare by samples).

    A pair is code, so it is not in the zoo's registry: rebuild it around the same programs
    and ``load_state_dict`` the saved weights.
    """

    name = "program-pair"

    def __init__(
        self,
        model: Callable[..., Any],
        guide: Callable[..., Any],
        event_shape: Sequence[int],
        data_site: str = "x",
        implicit_guide: bool = False,
        kind: str | ModelKind = ModelKind.LATENT,
    ) -> None:
        super().__init__()
        self.kind = ModelKind(kind)
        if self.kind not in (ModelKind.LATENT, ModelKind.IMPLICIT):
            raise ModelError(f"a ProgramPair is 'latent' or 'implicit', not {self.kind.value!r}")
        self.data_site, self.implicit_guide = data_site, bool(implicit_guide)
        # the captures of the two programs' parameters (their own "exact" kind is never read)
        self.model_program = ProgramModel(model, event_shape, data_site, kind="exact")
        self.guide_program = ProgramModel(guide, event_shape, data_site, kind="exact")

    def model(self, x: torch.Tensor | None = None, num_samples: int | None = None,
              **kwargs: Any) -> Any:
        """The model program on data ``x: [N, *event_shape]``, or generating ``num_samples``."""
        return self.model_program.model(x, num_samples, **kwargs)

    def guide(self, x: torch.Tensor, **kwargs: Any) -> Any:
        """The guide program on ``x`` (its densities hidden when ``implicit_guide``)."""
        if self.implicit_guide:
            with _NoDensity(None):
                return self.guide_program.model(x, **kwargs)
        return self.guide_program.model(x, **kwargs)

    def constrained(self) -> dict[str, dict[str, torch.Tensor]]:
        """``{"model": {...}, "guide": {...}}``: the programs' ``pyro.param`` values."""
        return {"model": self.model_program.constrained(),
                "guide": self.guide_program.constrained()}

    @property
    def event_shape(self) -> torch.Size:
        return self.model_program.event_shape

    def get_config(self) -> dict[str, Any]:
        """What was wrapped (recorded, not rebuildable: programs are code)."""
        return {"model": self.model_program.get_config()["program"],
                "guide": self.guide_program.get_config()["program"],
                "event_shape": list(self.event_shape), "data_site": self.data_site,
                "implicit_guide": self.implicit_guide, "kind": self.kind.value}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> GenerativeModel:
        raise ModelError(
            f"a ProgramPair wraps code ({config.get('model')}, {config.get('guide')}), which "
            "ppgen files never hold: build ProgramPair(model, guide, ...) again and "
            "load_state_dict the saved weights"
        )


# ----------------------------------------------------------------------------- trace views
def guide_trace(model: GenerativeModel, x: torch.Tensor, kwargs: dict[str, Any]
                ) -> poutine.Trace:
    """The trace of ``model.guide(x, **kwargs)``."""
    return poutine.trace(model.guide).get_trace(x, **kwargs)


def latent_names(model_values: dict[str, Any], guide_tr: poutine.Trace, data_site: str,
                 owner: str) -> list[str]:
    """The latent sites of a pair, in the guide's order: the sites the guide samples that the
    model samples too (a guide's own noise sites are not among them).

    Raises:
        ModelError: no shared site, or one the guide cannot differentiate (no ``rsample``).
    """
    names = [name for name, site in guide_tr.nodes.items()
             if site["type"] == "sample" and not site["is_observed"]
             and not site_is_subsample(site) and name in model_values and name != data_site]
    if not names:
        raise ModelError(f"{owner}'s guide samples none of its model's latent sites: the guide "
                         "must sample the sites the model samples (by the same names)")
    for name in names:
        if not getattr(guide_tr.nodes[name]["fn"], "has_rsample", False):
            raise ModelError(f"site {name!r} of {owner}'s guide has no rsample: adversarial "
                             "inference needs reparameterised guide draws (write the noise as "
                             "a continuous draw pushed through a differentiable function)")
    return names


def _data_dim(site: dict[str, Any], owner: str) -> int:
    for frame in site["cond_indep_stack"]:
        if frame.name == DATA_PLATE:
            return frame.dim
    raise ModelError(f"site {site['name']!r} of {owner} is outside the {DATA_PLATE!r} plate: "
                     "adversarial inference reads one latent code per datum (global latents are "
                     "not supported)")


def flat_values(trace: poutine.Trace, names: Sequence[str], n: int, owner: str
                ) -> torch.Tensor:
    """The values of the sites ``names`` as one ``[n, L]`` tensor: each flattened per datum of
    the ``"data"`` plate, concatenated in order."""
    parts = []
    for name in names:
        site = trace.nodes[name]
        value, event = site["value"], len(site["fn"].event_shape)
        dim = _data_dim(site, owner) - event
        parts.append(value.movedim(dim, 0).reshape(n, -1))
    return torch.cat(parts, dim=1)


def per_datum_log_prob(trace: poutine.Trace, names: Sequence[str], n: int, owner: str
                       ) -> torch.Tensor:
    """``Σ_s log p(v_s)`` over the sites ``names``, per datum of the ``"data"`` plate: ``[n]``
    (fp32, every other dimension summed)."""
    total = torch.zeros((), device=trace.nodes[names[0]]["value"].device)
    for name in names:
        site = trace.nodes[name]
        lp = site["fn"].log_prob(site["value"]).float()
        dim = _data_dim(site, owner)
        lp = lp.expand(site["fn"].batch_shape) if lp.dim() < -dim else lp
        total = total + lp.movedim(dim, 0).reshape(n, -1).sum(1)
    return total
