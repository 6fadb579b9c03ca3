"""The model zoo (installed as ``ppgen.models``): one family per module."""

from __future__ import annotations

__all__: list[str] = []
