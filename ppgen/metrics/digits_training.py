"""The deterministic recipe of the digits feature classifier, and the digest of its weights.

:func:`train_digits_classifier` rebuilds :class:`~ppgen.metrics.digits_classifier.
DigitsClassifier` from the bundled training split alone (1,000 images): fixed seeds, one
thread, deterministic algorithms, every random draw from a local generator (no global RNG is
touched). Adam (rate 3e-3), 100 epochs of minibatches of 50, each image shifted by up to one
pixel (a random translation in ``{-1, 0, 1}²`` with zero padding), cross-entropy; then the
feature scale is set to the root mean square of the hidden units on the (unshifted) training
images. The widths
(12/24 channels, 32 features) were chosen on the validation split among four small convnets.

The same torch build on the same CPU instruction set gives the same bits; :func:`state_digest`
is the SHA-256 of a state dict's names, shapes, dtypes and bytes, and the shipped weights carry
theirs (``benchmarks/feature_classifier.py`` rebuilds and compares).

Example:
    >>> net = train_digits_classifier(epochs=1)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Mapping

import torch
from torch.nn import functional as F

from ppgen.metrics.digits_classifier import DigitsClassifier, digits_intensity

__all__ = ["RECIPE", "train_digits_classifier", "state_digest", "accuracy"]

#: the training recipe (what :func:`train_digits_classifier` does by default)
RECIPE = {"seed": 0, "epochs": 100, "batch_size": 50, "lr": 3e-3, "max_shift": 1}


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    """One thread and deterministic algorithms inside the block; the global RNG restored."""
    threads, strict = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(strict)


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Each image of ``x: [N, 64]`` translated by a random offset in ``[-s, s]²`` (zero fill)."""
    n, s = len(x), max_shift
    padded = F.pad(x.reshape(n, 8, 8), (s, s, s, s))
    dy, dx = torch.randint(0, 2 * s + 1, (2, n), generator=generator)
    grid = torch.arange(8)
    rows = (dy[:, None] + grid)[:, :, None].expand(n, 8, 8)
    cols = (dx[:, None] + grid)[:, None, :].expand(n, 8, 8)
    return padded[torch.arange(n)[:, None, None], rows, cols].reshape(n, 64)


def train_digits_classifier(
    seed: int = RECIPE["seed"], epochs: int = RECIPE["epochs"]
) -> DigitsClassifier:
    """Train the digits feature classifier on the bundled training split, deterministically.

    Args:
        seed: seed of the initial weights, the shuffles and the shifts.
        epochs: passes over the 1,000 training images.

    Returns:
        The trained :class:`DigitsClassifier` in eval mode, on the CPU.
    """
    from ppgen.data import load_digits

    digits = load_digits("categorical")
    x, labels = digits_intensity(digits.train), digits.labels["train"]
    with _deterministic():
        torch.manual_seed(seed)
        net = DigitsClassifier()
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(net.parameters(), lr=RECIPE["lr"])
        for _ in range(epochs):
            for rows in torch.randperm(len(x), generator=generator).split(RECIPE["batch_size"]):
                batch = random_shift(x[rows], RECIPE["max_shift"], generator)
                loss = F.cross_entropy(net.out(net.hidden_of_intensity(batch)), labels[rows])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        with torch.no_grad():
            net.feature_scale.copy_(net.hidden_of_intensity(x).square().mean().sqrt())
    return net.eval()


def state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 hex digest of a state dict: its names, shapes, dtypes and raw bytes, in order."""
    digest = hashlib.sha256()
    for name, tensor in state.items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


@torch.no_grad()
def accuracy(net: DigitsClassifier, x: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of the digits ``x: [N, 64]`` (any representation) classified as ``labels: [N]``."""
    predicted = net(x).argmax(-1)
    return float((predicted == labels.to(predicted.device)).float().mean())
