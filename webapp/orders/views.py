"""Orders and notifications pages."""

from __future__ import annotations

from . import orders  # noqa: F401
