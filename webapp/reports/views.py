"""Contract reports pages."""

from __future__ import annotations

from . import reports  # noqa: F401
