"""Inference routines (installed as ``ppgen.inference``): objectives and drivers."""

from __future__ import annotations

__all__: list[str] = []
