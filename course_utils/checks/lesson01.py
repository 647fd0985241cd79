"""Checks for lesson 01's exercises."""
from __future__ import annotations

from ._common import fail, passed

__all__: list[str] = []
