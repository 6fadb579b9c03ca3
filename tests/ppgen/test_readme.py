"""README's promises, read from README.md itself: the quickstart runs as printed, in Pyro's
argument order; the two commands for a fresh machine are the ones CI runs; and the install
section says which torch build a plain machine gets and how to choose one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[2] / "README.md"

pytestmark = pytest.mark.usefixtures("one_thread", "fresh_pyro")


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(title)
    ends = [i for i in (text.find(h, start + len(title)) for h in ("\n## ", "\n### ")) if i >= 0]
    return text[start:min(ends, default=len(text))]


def test_quickstart_a_runs_as_printed_in_pyros_order():
    code = re.search(r"```python\n(.*?)```", section("### (a)"), re.S).group(1)
    assert "ppgen.log_likelihood(model, guide, x" in code
    assert "ppgen.elbo(model, guide, x" in code
    scope: dict = {}
    exec(compile(code, str(README), "exec"), scope)
    assert scope["log_px"].shape == (100,) and scope["elbo"].shape == (100,)
    assert bool((scope["elbo"] <= scope["log_px"] + 1.0).all())
    assert bool(torch.isfinite(scope["log_px"]).all())


def test_the_two_commands_are_the_ones_ci_runs():
    text = section("## Two commands for a fresh machine")
    assert 'pip install "torch==2.13.0" -e . && ppgen demo' in text
    assert 'pip install "torch==2.13.0" -e ".[test]" && pytest' in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert 'pip install -q "torch==2.13.0" -e ".[test]" && pytest' in ci


def test_install_says_which_torch_build_a_plain_machine_gets():
    text = " ".join(section("## Two commands for a fresh machine").split())
    assert "https://download.pytorch.org/whl/cpu" in text
    assert "https://download.pytorch.org/whl/cu12" in text
    assert "plain machine" in text and "CUDA" in text
    assert "torch.cuda.is_available()" in text
