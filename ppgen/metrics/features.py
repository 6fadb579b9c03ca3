"""Feature spaces of the sample metrics: the digits classifier's, or the raw data.

A :class:`FeatureSpace` says where samples are compared: a map of data to feature vectors (for
the Fréchet distance, KID, precision/recall, density/coverage), the canonical form of the data
(for MMD), and optionally a classifier (for the class histogram and the accuracy of
class-conditional samples) and a real-vs-real pair (for the Fréchet floor).

Two are built in, named by a string wherever a ``features`` argument is taken:

* ``"digits"`` — the shipped :class:`~ppgen.metrics.digits_classifier.DigitsClassifier`
  (32 penultimate features; weights in the package, loaded and checked against their digest by
  :func:`load_digits_classifier`); its floor is the bundled val split against the test split;
* ``"raw"`` — the flattened data themselves (no classifier, no floor);
* a mode set (:class:`~ppgen.metrics.modes.ModeSet`, or the name of a toy that is one:
  ``"eight_gaussians"``, ``"ring8"``, ``"grid25"``) — raw, plus the mode metrics.

The data a run was trained on declare the space: :func:`features_for` maps a
:class:`~ppgen.data.DataInfo` to its name (``"digits"`` for the bundled digits in any
representation, the toy's name for a mode toy, ``"raw"`` otherwise), which is what
``ppgen evaluate`` passes on.

Example:
    >>> from ppgen.data import load_digits
    >>> digits = load_digits("continuous")
    >>> features_for(digits.info)
    'digits'
    >>> feature_space("digits").embed(digits.test).shape
    torch.Size([447, 32])
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from ppgen.errors import ArgumentError, CheckpointError
from ppgen.metrics.digits_classifier import NUM_CLASSES, DigitsClassifier, digits_intensity
from ppgen.metrics.digits_training import state_digest
from ppgen.metrics.modes import ModeSet

__all__ = [
    "FeatureSpace",
    "feature_space",
    "features_for",
    "feature_space_names",
    "MODE_SETS",
    "load_digits_classifier",
    "WEIGHTS_FILE",
    "WEIGHTS_DIGEST",
    "TEST_ACCURACY",
]

#: the shipped weights of the digits classifier (package data of ``ppgen.metrics``)
WEIGHTS_FILE = "digits_classifier.pt"
#: :func:`~ppgen.metrics.digits_training.state_digest` of the shipped weights (a rebuild by
#: ``benchmarks/feature_classifier.py`` must match it)
WEIGHTS_DIGEST = "8aeda5f73ba8a9e330849fe6ba865513f182f1b6fa202cbe7c774345bba75fd8"
#: the shipped classifier's accuracy on the digits test split (424 of 447)
TEST_ACCURACY = 424 / 447

FeatureMap = Callable[[torch.Tensor], torch.Tensor]


def _flatten(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(len(x), -1).to(torch.float64 if x.dtype == torch.float64 else torch.float32)


@dataclass(frozen=True)
class FeatureSpace:
    """Where sample metrics compare real and generated data.

    Attributes:
        name: ``"digits"``, ``"raw"`` or a user's name; reports carry it as ``features``.
        embed: data ``[N, *shape]`` → features ``[N, D]``.
        canonical: data → the comparable flat form ``[N, d]`` MMD is computed on (the digits'
            intensities, so integer levels and dequantised floats compare alike).
        classify: data → class logits ``[N, C]``, or ``None`` (no class histogram).
        num_classes: ``C`` of ``classify``.
        floor: ``() -> (real, other)``, two real samples whose Fréchet distance is the floor
            (``other`` scored against ``real`` as if it were generated), or ``None``.
        modes: the mixture of a 2-D mode-coverage toy (adds ``modes``, ``high_quality``).
    """

    name: str
    embed: FeatureMap
    canonical: FeatureMap = _flatten
    classify: FeatureMap | None = None
    num_classes: int | None = None
    floor: Callable[[], tuple[torch.Tensor, torch.Tensor]] | None = None
    modes: ModeSet | None = None


RAW = FeatureSpace("raw", _flatten)


#: mode sets by name: the bundled ``eight_gaussians`` toy and the PacGAN mixtures
MODE_SETS: dict[str, Callable[[], ModeSet]] = {
    "eight_gaussians": lambda: ModeSet.ring(8, radius=2.0, sigma=0.2),
    "ring8": ModeSet.ring,
    "grid25": ModeSet.grid,
}


def feature_space_names() -> tuple[str, ...]:
    """The names :func:`feature_space` accepts (what a JSON config may store)."""
    return ("digits", "raw", *MODE_SETS)


def features_for(info: Any) -> str:
    """The feature space a data set's description (:class:`~ppgen.data.DataInfo`) declares:
    ``"digits"`` for the bundled 8x8 digits (any representation), the toy's name for a toy
    that is a mixture of modes (:data:`MODE_SETS`), ``"raw"`` otherwise (or for ``None``)."""
    if info is None:
        return "raw"
    if info.name == "digits" and info.num_dims == 64:
        return "digits"
    return info.name if info.name in MODE_SETS else "raw"


def feature_space(features: str | FeatureSpace | ModeSet | FeatureMap | None = None
                  ) -> FeatureSpace:
    """Resolve a ``features`` argument: a name (``"digits"``, ``"raw"``, a :data:`MODE_SETS`
    name; ``None`` is raw), a :class:`FeatureSpace`, a :class:`~ppgen.metrics.modes.ModeSet`
    (raw, with its mode metrics), or a bare map to ``[N, D]`` features of the flattened
    float data (a space named ``"custom"``).

    Raises:
        ArgumentError: an unknown name.
    """
    if isinstance(features, FeatureSpace):
        return features
    if isinstance(features, ModeSet):
        return FeatureSpace("raw", _flatten, modes=features)
    if features is None or features == "raw":
        return RAW
    if features == "digits":
        return _digits_space()
    if isinstance(features, str) and features in MODE_SETS:
        return FeatureSpace("raw", _flatten, modes=MODE_SETS[features]())
    if callable(features):
        custom = features
        return FeatureSpace("custom", lambda x: custom(_flatten(x)))
    raise ArgumentError(f"unknown feature space {features!r}: use 'digits', 'raw', one of "
                        f"{sorted(MODE_SETS)}, a FeatureSpace, a ModeSet or a map of data to "
                        "[N, D] features")


@functools.lru_cache(maxsize=1)
def _digits_space() -> FeatureSpace:
    net = load_digits_classifier()
    return FeatureSpace("digits", _on_device(net, "features"), digits_intensity,
                        _on_device(net, "forward"), NUM_CLASSES, _digits_floor)


def _on_device(net: DigitsClassifier, method: str) -> FeatureMap:
    """``net.<method>`` run without gradients on the device of its input."""
    copies: dict[torch.device, DigitsClassifier] = {}

    @torch.no_grad()
    def apply(x: torch.Tensor) -> torch.Tensor:
        if x.device not in copies:
            copies[x.device] = copy.deepcopy(net).to(x.device)
        return getattr(copies[x.device], method)(x)

    return apply


def _digits_floor() -> tuple[torch.Tensor, torch.Tensor]:
    """The bundled digits' test (447) and val (350) splits: the real-vs-real floor."""
    from ppgen.data import load_digits

    digits = load_digits("categorical")
    return digits.test, digits.val


def load_digits_classifier(path: Any = None) -> DigitsClassifier:
    """The shipped digits feature classifier (eval mode, CPU, no gradients), checked.

    Args:
        path: a weights file to load instead of the shipped one (checked the same way: it
            must hold the same weights, e.g. a copy written by
            ``benchmarks/feature_classifier.py --write``).

    Raises:
        CheckpointError: the file is missing, unreadable, has the wrong tensors or shapes, or
            its digest differs from :data:`WEIGHTS_DIGEST` (corrupt or foreign weights; rebuild
            them with ``python benchmarks/feature_classifier.py --write``).
    """
    source = path or resources.files("ppgen.metrics").joinpath(WEIGHTS_FILE)
    state = _read_state(source)
    with torch.random.fork_rng(devices=[]):  # the weights are loaded: leave the seed alone
        net = DigitsClassifier()
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if found != expected:
        raise CheckpointError(f"the digits classifier weights {str(source)!r} have tensors "
                              f"{found}, expected {expected}: {_FIX}")
    if state_digest(state) != WEIGHTS_DIGEST:
        raise CheckpointError(f"the digits classifier weights {str(source)!r} do not match "
                              f"their recorded digest {WEIGHTS_DIGEST[:12]}...: {_FIX}")
    net.load_state_dict(state)
    return net.eval().requires_grad_(False)


_FIX = "the file is corrupt or foreign; rebuild it with python benchmarks/feature_classifier.py"


def _read_state(source: Any) -> dict[str, torch.Tensor]:
    """The tensors of a weights file (a path or a package resource), read safely."""
    try:
        with resources.as_file(Path(source) if isinstance(source, str | Path) else source
                               ) as file:
            state = torch.load(file, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as err:
        raise CheckpointError(f"cannot read the digits classifier weights {str(source)!r} "
                              f"({err}): {_FIX}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise CheckpointError(f"{str(source)!r} is not a state dict of tensors: {_FIX}")
    return state
