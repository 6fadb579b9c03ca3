"""Data: the bundled digits and 2-D toy sets, user-data loaders and the boundary validators."""

from __future__ import annotations

from ppgen.data.info import LIKELIHOODS, DataInfo, DataSplits
from ppgen.data.validate import as_tensor, validate, validate_for

__all__ = ["LIKELIHOODS", "DataInfo", "DataSplits", "as_tensor", "validate", "validate_for"]
