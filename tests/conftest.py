"""Shared test options: ``pytest --device cuda`` runs the device-aware tests on a GPU."""

from __future__ import annotations

import pytest
import torch


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device",
        default="cpu",
        help="device for the device-aware tests: cpu (default), cuda, cuda:1, ...",
    )


@pytest.fixture
def device(request: pytest.FixtureRequest) -> torch.device:
    """The device chosen with ``--device`` (tests skip when it is not available)."""
    dev = torch.device(request.config.getoption("--device"))
    if dev.type == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA is not available on this machine")
    return dev
