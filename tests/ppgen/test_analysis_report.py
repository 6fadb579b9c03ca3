"""The diagnostics report names every parameter that needs attention, worst first.

Synthetic chains make the ranking known in advance: parameter ``p<i>`` has its second chain
shifted by ``shift[i]``, so its R-hat grows with the shift; the names are chosen so that the
alphabetical order is not the order of severity (the report once listed five names
alphabetically and hid the worst).
"""

from __future__ import annotations

import importlib
import re

import arviz as az
import numpy as np
import pytest

from ppgen import analysis

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

#: name -> shift of the second chain (in posterior sds); 0 means well mixed.
SHIFTS = {"alpha": 0.3, "beta": 0.0, "delta": 0.5, "gamma": 0.0, "kappa": 0.8, "mu": 0.4,
          "omega": 0.6, "sigma": 0.2, "tau": 0.0, "theta": 0.7, "zeta": 2.0}


def shifted_idata(seed: int = 0):
    rng = np.random.default_rng(seed)
    post = {}
    for name, shift in SHIFTS.items():
        draws = rng.normal(size=(2, 1000))
        draws[1] += shift
        post[name] = draws
    return az.from_dict(posterior=post)


def _rhat_line(text: str) -> str:
    (line,) = [ln for ln in text.splitlines() if "R-hat >" in ln]
    return line


def test_every_parameter_with_bad_rhat_is_listed_worst_first():
    idata = shifted_idata()
    text = analysis.report(idata)
    rhat = az.rhat(idata)
    bad = sorted((n for n in SHIFTS if float(rhat[n]) > 1.01), key=lambda n: -float(rhat[n]))
    assert len(bad) >= 6 and bad[0] == "zeta"
    line = _rhat_line(text)
    listed = re.findall(r"([a-z]+) \(([\d.]+)\)", line)
    assert [name for name, _ in listed] == bad
    values = [float(v) for _, v in listed]
    assert values == sorted(values, reverse=True)
    assert f"{len(bad)} parameter" in line


def test_a_long_list_says_how_many_more(monkeypatch):
    report_module = importlib.import_module("ppgen.analysis.report")
    monkeypatch.setattr(report_module, "MAX_LISTED", 3)
    idata = shifted_idata()
    line = _rhat_line(analysis.report(idata))
    rhat = az.rhat(idata)
    n_bad = sum(float(rhat[n]) > 1.01 for n in SHIFTS)
    assert len(re.findall(r"[a-z]+ \([\d.]+\)", line)) == 3  # three named, with values
    assert f"and {n_bad - 3} more" in line
    assert re.search(r"zeta \(", line)


def test_pareto_k_points_are_listed_worst_first():
    """``[C, D, N]`` log-likelihoods whose importance ratios ``1 / p = U^-xi`` are Pareto
    with shape ``xi`` = 0.9 (point 1) and 1.4 (point 4): k above 0.7 for both, point 4's
    higher."""
    rng = np.random.default_rng(1)
    ll = rng.normal(-1.0, 0.1, size=(2, 500, 6))
    ll[..., 1] = 0.9 * np.log(rng.uniform(size=(2, 500)))
    ll[..., 4] = 1.4 * np.log(rng.uniform(size=(2, 500)))
    idata = az.from_dict(posterior={"a": rng.normal(size=(2, 500))},
                         log_likelihood={"y": ll})
    d = analysis.diagnostics(idata)
    bad = [int(i) for i in np.argsort(-d.pareto_k) if d.pareto_k[i] > 0.7]
    assert bad == [4, 1]
    (line,) = [ln for ln in analysis.report(idata).splitlines() if "Pareto k >" in ln]
    listed = [int(i) for i in re.findall(r"(\d+) \(k = ", line)]
    assert listed == bad
