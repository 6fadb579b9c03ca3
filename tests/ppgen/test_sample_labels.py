"""Class labels are integers: ``model.sample(n, y=3.7)`` of a class-conditional flow is refused
with one line that says what a label is; an integral float (``3.0``) is a label."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ppgen.errors import DataError
from ppgen.models import MAF


@pytest.fixture(scope="module")
def flow():
    torch.manual_seed(0)
    return MAF(2, num_layers=1, hidden_features=8, num_classes=10)


@pytest.mark.parametrize("label, shown", [
    (3.7, "3.7"), (torch.tensor(3.7), "3.7"), ([2.5] * 4, "2.5"), (np.full(4, 1.5), "1.5"),
    (-0.5, "-0.5"),
], ids=repr)
def test_a_fractional_label_is_refused(flow, label, shown):
    with pytest.raises(DataError) as info:
        flow.sample(4, y=label)
    message = str(info.value)
    assert "y=" in message and shown in message
    assert "integer class labels in 0..9" in message
    assert "likelihood" not in message  # labels are not data with a likelihood
    assert "\n" not in message


def test_fractional_labels_when_scoring_say_the_same(flow):
    with pytest.raises(DataError, match=r"integer class labels in 0\.\.9"):
        from ppgen import log_likelihood

        log_likelihood(flow, torch.zeros(3, 2), y=[0.5, 1.0, 2.0])


def test_integral_values_are_labels(flow):
    assert flow.sample(4, y=3.0).shape == (4, 2)
    assert flow.sample(4, y=np.int64(9)).shape == (4, 2)
