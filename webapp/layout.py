"""What every page's layout needs: the navigation, the current identity, time formatting."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Flask, request

from .auth.access import current_identity

PRODUCT_NAME = "taskcore console"  # page titles
BRAND = "taskcore"  # the top bar's name: short, so one row holds every section
# (path, label): the console's top navigation, in order: operations, then the apps.
NAV: tuple[tuple[str, str], ...] = (
    ("/", "Overview"),
    ("/tasks", "Tasks"),
    ("/workflows", "Workflows"),
    ("/queues", "Queues"),
    ("/workers", "Workers"),
    ("/schedules", "Schedules"),
    ("/rate-limits", "Rate limits"),
    ("/performance", "Performance"),
    ("/audit", "Audit"),
)
# The product's own workloads, after a divider.
APPS: tuple[tuple[str, str], ...] = (
    ("/quizzes", "Quizzes"),
    ("/documents", "Documents"),
    ("/orders", "Orders"),
    ("/reports", "Reports"),
)


def is_current(path: str) -> bool:
    """Whether the navigation link to ``path`` is the section being shown."""
    if path == "/":
        return request.path == "/"
    return request.path == path or request.path.startswith(path + "/")


def format_utc(moment: datetime | None) -> str:
    """``2025-01-31 14:05:09 UTC``; an empty string for None."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _layout_context() -> dict[str, Any]:
    return {
        "identity": current_identity(),
        "nav": NAV,
        "apps": APPS,
        "is_current": is_current,
        "product_name": PRODUCT_NAME,
        "brand": BRAND,
    }


def init_layout(app: Flask) -> None:
    """Give every template ``identity``, ``nav``, ``apps``, ``brand``, ``is_current``, ``utc``."""
    app.context_processor(_layout_context)
    app.add_template_filter(format_utc, "utc")
