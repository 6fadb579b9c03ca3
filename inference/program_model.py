"""A user's Pyro program as a ppgen model: its ``pyro.param``\\ s become module parameters.

:class:`ProgramModel` wraps a plain program ``program(x, **kwargs)`` — a statistician's
simulator with a few ``pyro.param``\\ s, or a ``PyroModule`` — so that ``ppgen.fit`` and the
training engine can train it like a zoo model: adversarially from data alone when it has no
tractable density (``kind="implicit"``, the default), or by maximum likelihood when it has one
(``kind="exact"``). Its parameters live in the module, never in Pyro's global parameter store:
each ``pyro.param(name, init, constraint=c)`` statement of the program is found once, when the
wrapper is built, and from then on answered with ``biject_to(c)(u)`` of an unconstrained
``nn.Parameter`` ``u`` (Pyro's own parameterisation of constrained parameters).

The wrapper is not registered in the model zoo: a program is code, which ppgen checkpoints never
hold. A run's ``model.pt`` records the parameters and the program's qualified name; rebuild the
wrapper around the same program and ``load_state_dict`` to reuse them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.poutine.messenger import Messenger
from torch import nn
from torch.distributions import biject_to, constraints

from ppgen.errors import ModelError
from ppgen.protocol import GenerativeModel, ModelKind

__all__ = ["ProgramModel"]


def _module_local() -> Any:
    """A ``PyroModule`` program keeps its own parameters in the module (none reach
    ``pyro.param``, so none is captured twice)."""
    return pyro.settings.context(module_local_params=True)


class _LocalParams(Messenger):
    """Answers the program's ``pyro.param`` statements from a :class:`ProgramModel`."""

    def __init__(self, owner: ProgramModel, create: bool) -> None:
        super().__init__()
        self.owner, self.create = owner, create

    def _pyro_param(self, msg: Any) -> None:
        msg["value"] = self.owner.param_value(msg, self.create)
        msg["done"] = True


class ProgramModel(GenerativeModel, register=False):
    """A Pyro program ``program(x, **kwargs)`` with its data in the ``"data"`` plate, as a model.

    Args:
        program: the program; it takes observed data ``x: [N, *event_shape]`` (and per-datum
            keyword arguments, e.g. ``y``) and observes them at ``data_site``. Its
            ``pyro.param`` statements (and, for a ``PyroModule``, its own parameters) are what
            training fits.
        event_shape: the shape of one datum.
        data_site: the name of the observed sample site.
        kind: ``"implicit"`` (no tractable density: fit adversarially, compare by samples) or
            ``"exact"`` (every site has a density: maximum likelihood and the evaluation layer
            apply).

    Example:
        >>> import pyro, pyro.distributions as dist
        >>> def simulator(x):
        ...     scale = pyro.param("scale", torch.tensor(2.0), constraint=dist.constraints.positive)
        ...     with pyro.plate("data", x.shape[0]):
        ...         noise = dist.Normal(torch.zeros(x.shape[0], 1), 1.0).to_event(1)
        ...         return pyro.sample("x", dist.TransformedDistribution(
        ...             noise, [dist.transforms.AffineTransform(0.0, scale)]), obs=x)
        >>> model = ProgramModel(simulator, event_shape=(1,))
        >>> [name for name, _ in model.named_parameters()]
        ['unconstrained.scale']
        >>> float(model.constrained()["scale"])
        2.0
        >>> model.sample(5).shape
        torch.Size([5, 1])
    """

    name = "program-model"

    def __init__(
        self,
        program: Callable[..., Any],
        event_shape: Sequence[int],
        data_site: str = "x",
        kind: str | ModelKind = ModelKind.IMPLICIT,
    ) -> None:
        super().__init__()
        self.kind = ModelKind(kind)
        if self.kind not in (ModelKind.IMPLICIT, ModelKind.EXACT):
            raise ModelError(f"a ProgramModel is 'implicit' or 'exact', not {self.kind.value!r} "
                             "(score a program with latent sites with ppgen.log_likelihood)")
        self.program = program
        self.shape = torch.Size(event_shape)
        self.data_site = data_site
        self.unconstrained = nn.ParameterDict()
        self._constraints: dict[str, constraints.Constraint] = {}
        self._keys: dict[str, str] = {}
        with _LocalParams(self, create=True), torch.no_grad(), _module_local():
            poutine.trace(program).get_trace(torch.zeros(1, *self.shape))

    # ----------------------------------------------------------------- parameters
    def param_value(self, msg: Any, create: bool) -> torch.Tensor:
        """The constrained value of the ``pyro.param`` statement ``msg``; the first time (when
        the wrapper is built) its unconstrained parameter is made from the initial value."""
        name = msg["name"]
        if name not in self._keys:
            if not create:
                raise ModelError(f"pyro.param {name!r} appeared after the program was wrapped: "
                                 "every parameter must be created on its first run")
            self._add(name, msg)
        key = self._keys[name]
        return biject_to(self._constraints[key])(self.unconstrained[key])

    def _add(self, name: str, msg: Any) -> None:
        args = msg["args"]
        if len(args) < 2 or args[1] is None:
            raise ModelError(f"pyro.param {name!r} has no initial value: give one, "
                             f"pyro.param({name!r}, torch.tensor(...))")
        init = args[1]() if callable(args[1]) else args[1]
        constraint = msg["kwargs"].get("constraint", constraints.real)
        key = name.replace(".", "_")
        init = torch.as_tensor(init, dtype=torch.get_default_dtype()).detach()
        self.unconstrained[key] = nn.Parameter(biject_to(constraint).inv(init).clone())
        self._constraints[key], self._keys[name] = constraint, key

    def constrained(self) -> dict[str, torch.Tensor]:
        """The current values of the program's ``pyro.param``\\ s by name (detached)."""
        return {name: biject_to(self._constraints[key])(self.unconstrained[key]).detach()
                for name, key in self._keys.items()}

    # ----------------------------------------------------------------- the program
    def model(self, x: torch.Tensor | None = None, num_samples: int | None = None,
              **kwargs: Any) -> Any:
        """Run the program with this module's parameters: on data ``x: [N, *event_shape]``, or
        generatively (its data site unconditioned) for ``num_samples`` draws when ``x`` is
        ``None``."""
        program = self.program
        if x is None:
            x = torch.zeros(num_samples or 1, *self.shape, device=self.device)
            program = poutine.uncondition(program)
        with _LocalParams(self, create=False), _module_local():
            return program(x, **kwargs)

    @property
    def event_shape(self) -> torch.Size:
        return self.shape

    # ----------------------------------------------------------------- configuration
    def get_config(self) -> dict[str, Any]:
        """What was wrapped (recorded, not rebuildable: a program is code)."""
        program = getattr(self.program, "__qualname__", type(self.program).__qualname__)
        module = getattr(self.program, "__module__", None) or type(self.program).__module__
        return {"program": f"{module}:{program}", "event_shape": list(self.shape),
                "data_site": self.data_site, "kind": self.kind.value}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> GenerativeModel:
        raise ModelError(
            f"a ProgramModel wraps code ({config.get('program')}), which ppgen files never "
            "hold: build ProgramModel(program, ...) again and load_state_dict the saved weights"
        )
