"""A service module whose own code fails on import."""

from __future__ import annotations

raise RuntimeError("this module is broken on purpose")
