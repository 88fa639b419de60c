"""The reports workload's settings, read from the environment by the web app and the worker alike.

Worker processes never see the Flask config, so both sides call ``settings()``
(read when called, not at import, so tests can point them at a directory of their own).

| variable | default | meaning |
|---|---|---|
| ``WEBAPP_EXPORT_DIR`` | ``<instance folder>/exports`` | where export files are written and read |
| ``WEBAPP_EXPORT_MAX_AGE_DAYS`` | ``7`` | the daily clean-up deletes exports older than this |
| ``WEBAPP_REPORTS_CACHE_TTL`` | ``3600`` | seconds an aggregates result stays in Redis |
| ``WEBAPP_REPORTS_SEARCH_TTL`` | ``3600`` | seconds a search's stored results stay in Redis |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ReportSettings:
    export_dir: Path
    export_max_age_days: float
    cache_ttl: int
    search_ttl: int


def _instance_path() -> Path:
    from flask import Flask

    return Path(Flask("webapp").instance_path)


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be greater than 0")
    return value


def settings() -> ReportSettings:
    """The current settings (environment variables, sane defaults for a laptop)."""
    raw_dir = os.environ.get("WEBAPP_EXPORT_DIR", "").strip()
    export_dir = Path(raw_dir) if raw_dir else _instance_path() / "exports"
    return ReportSettings(
        export_dir=export_dir,
        export_max_age_days=_number("WEBAPP_EXPORT_MAX_AGE_DAYS", 7),
        cache_ttl=int(_number("WEBAPP_REPORTS_CACHE_TTL", 3600)),
        search_ttl=int(_number("WEBAPP_REPORTS_SEARCH_TTL", 3600)),
    )
