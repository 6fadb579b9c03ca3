"""The registry of model classes by command-line name (how checkpoints and the CLI rebuild them).

:class:`~ppgen.GenerativeModel` subclasses register themselves here when they are defined; this
module knows nothing else about models, so the checkpoint code can look classes up without
importing the model protocol (and the protocol can save models without an import cycle).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ppgen.errors import ModelError

if TYPE_CHECKING:
    from ppgen.protocol import GenerativeModel

__all__ = ["register", "registered_models", "model_class", "kebab_case"]

_REGISTRY: dict[str, type[GenerativeModel]] = {}


def kebab_case(name: str) -> str:
    """``"IndependentCategorical"`` -> ``"independent-categorical"``, ``"VAE"`` -> ``"vae"``."""
    words = re.findall(r"[A-Z]+(?=[A-Z][a-z]|\d|\b)|[A-Z]?[a-z]+|[A-Z]+|\d+", name)
    return "-".join(w.lower() for w in words)


def register(cls: type[GenerativeModel]) -> None:
    """Register ``cls`` under ``cls.name`` (a later class of the same name replaces it)."""
    _REGISTRY[cls.name] = cls


def registered_models() -> dict[str, type[GenerativeModel]]:
    """All registered model classes by CLI name (import ``ppgen.models`` to fill the zoo)."""
    return dict(sorted(_REGISTRY.items()))


def model_class(name: str) -> type[GenerativeModel]:
    """Look a model class up by its CLI name; a clear error lists the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "(none registered)"
        raise ModelError(f"unknown model {name!r}; known models: {known}") from None
