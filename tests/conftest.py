"""Shared test options: ``pytest --device cuda`` runs the device-aware tests on a GPU."""

from __future__ import annotations

import pyro
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


@pytest.fixture
def fresh_pyro():
    """Seed Pyro and empty its parameter store before and after the test, for tests whose
    programs call ``pyro.param`` themselves. Opt in per module with ``usefixtures``."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()


@pytest.fixture
def clean_param_store():
    """Seed Pyro, start from an empty parameter store, and fail if the test leaks into it
    (zoo models keep their parameters in modules, never in Pyro's global store).

    Opt in per module: ``pytestmark = pytest.mark.usefixtures("clean_param_store")``.
    """
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    yield
    assert not list(pyro.get_param_store().keys()), "parameters leaked into Pyro's store"


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of tiny-tensor tests: several threads spin-wait on a
    busy machine (about 5x slower here). Opt in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
