"""Checks for lesson 02's exercises."""
from __future__ import annotations

from ._common import fail, passed

__all__: list[str] = []
