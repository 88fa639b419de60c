"""Documents pages."""

from __future__ import annotations

from . import documents  # noqa: F401
