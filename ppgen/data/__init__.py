"""Data: the bundled digits and 2-D toy sets, user-data loaders and the boundary validators."""

from __future__ import annotations

from ppgen.data.digits import DIGITS_LEVELS, DIGITS_SPLITS, load_digits
from ppgen.data.info import LIKELIHOODS, DataInfo, DataSplits
from ppgen.data.loaders import SUFFIXES, load_array, load_data
from ppgen.data.records import data_record, file_record, load_record
from ppgen.data.toys import load_toy, sample_toy, toy_log_density, toy_names
from ppgen.data.transforms import REPRESENTATIONS, dequantize, likelihood_of, quantize
from ppgen.data.validate import as_tensor, validate, validate_for

__all__ = [
    "LIKELIHOODS",
    "DataInfo",
    "DataSplits",
    "as_tensor",
    "validate",
    "validate_for",
    "REPRESENTATIONS",
    "likelihood_of",
    "dequantize",
    "quantize",
    "DIGITS_LEVELS",
    "DIGITS_SPLITS",
    "load_digits",
    "toy_names",
    "sample_toy",
    "toy_log_density",
    "load_toy",
    "SUFFIXES",
    "load_array",
    "load_data",
    "data_record",
    "file_record",
    "load_record",
]
