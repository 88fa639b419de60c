"""Quizzes pages."""

from __future__ import annotations

from . import quizzes  # noqa: F401
