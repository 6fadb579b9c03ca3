"""What a classifier of the data's classes says about samples: the class histogram and the
accuracy of class-conditional samples.

The image analogue of the mode metrics (:mod:`ppgen.metrics.modes`): the feature space's
classifier assigns each generated image a class; a generator that covers the data hits every
class about equally often. A class is *hit* when it receives at least ``min_share`` of its fair
share ``n / C`` of the ``n`` samples (at least one sample; 5 of 447 at the default 0.1), so a
few ambiguous draws of a collapsed generator do not count as modes. ``class_kl`` is the KL
divergence from the predicted-class histogram to the uniform one (0 for a perfectly balanced
generator, ``log C`` for one class only), as PacGAN's ``mode_kl``.

Example:
    >>> from ppgen.data import load_digits
    >>> digits = load_digits("categorical")
    >>> class_histogram(digits.test)["classes_hit"]
    10
    >>> round(class_accuracy(digits.test, digits.labels["test"]), 3)
    0.949
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ppgen.errors import ArgumentError, DataError
from ppgen.metrics.features import FeatureSpace, feature_space

__all__ = ["class_histogram", "class_accuracy", "CLASS_KEYS"]

#: the keys :func:`class_histogram` reports
CLASS_KEYS = ("classes_hit", "class_kl", "class_counts")


def _classifier(features: Any) -> tuple[FeatureSpace, int]:
    space = feature_space(features)
    if space.classify is None or space.num_classes is None:
        raise ArgumentError(f"the {space.name!r} feature space has no classifier: class "
                            "metrics need one (e.g. features='digits')")
    return space, space.num_classes


@torch.no_grad()
def predicted_classes(samples: torch.Tensor, features: Any = "digits") -> torch.Tensor:
    """``[N]`` the space's class of each sample (argmax of its logits)."""
    space, _ = _classifier(features)
    return space.classify(samples).argmax(-1)


def class_histogram(samples: torch.Tensor, features: Any = "digits", min_share: float = 0.1
                    ) -> dict[str, Any]:
    """The classes the space's classifier sees in ``samples``.

    Args:
        samples: generated data ``[N, *shape]`` (any representation the space reads).
        features: a feature space with a classifier (default the digits classifier).
        min_share: the share of the fair count ``N / C`` a class needs to count as hit.

    Returns:
        ``{"classes_hit": int, "class_kl": KL(histogram || uniform) in nats,
        "class_counts": [C] list of ints}``.
    """
    space, c = _classifier(features)
    if not len(samples):
        raise DataError("class_histogram needs at least one sample")
    counts = torch.bincount(predicted_classes(samples, space), minlength=c).cpu()
    share = counts.double() / len(samples)
    kl = float((share * (share * c).log()).nan_to_num(0.0).sum())
    needed = max(1, math.ceil(min_share * len(samples) / c))
    return {"classes_hit": int((counts >= needed).sum()), "class_kl": kl,
            "class_counts": counts.tolist()}


def class_accuracy(samples: torch.Tensor, labels: torch.Tensor, features: Any = "digits"
                   ) -> float:
    """Share of class-conditional ``samples`` the space's classifier assigns to the class they
    were drawn for (AC-GAN's and a conditional model's headline; 1 is best).

    Args:
        samples: ``[N, *shape]`` draws, row ``i`` drawn given class ``labels[i]``.
        labels: ``[N]`` intended classes.
        features: a feature space with a classifier (default the digits classifier).

    Raises:
        DataError: ``labels`` not one per sample.
    """
    labels = torch.as_tensor(labels)
    if labels.shape != (len(samples),):
        raise DataError(f"class_accuracy needs one label per sample: {len(samples)} samples, "
                        f"labels of shape {tuple(labels.shape)}")
    predicted = predicted_classes(samples, features)
    return float((predicted == labels.to(predicted.device)).float().mean())
