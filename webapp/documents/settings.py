"""The documents workload's settings, read from ``WEBAPP_*`` environment variables.

Worker processes have no Flask config, so the web side and the tasks read the same
variables through ``DocumentSettings.load``; the web side also lets the Flask config
override them (``create_app({"STORAGE_DIR": ...})``: the name without ``WEBAPP_``, as
``app.config.from_prefixed_env("WEBAPP")`` names them).

| variable | default | meaning |
|---|---|---|
| ``WEBAPP_STORAGE_DIR`` | ``instance/storage`` | uploads and generated PDFs |
| ``WEBAPP_STORAGE_MAX_BYTES`` | 1 GiB | the directory's total size; uploads past it are refused |
| ``WEBAPP_DOCUMENTS_MAX_UPLOAD_BYTES`` | 5 MiB | one upload |
| ``WEBAPP_DOCUMENTS_MAX_AGE_DAYS`` | 7 | the hourly cleanup removes older documents |
| ``WEBAPP_DOCUMENTS_MAX_QUESTIONS`` | 200 | a paper with more fails (at the parse step) |
| ``WEBAPP_DOCUMENTS_ANSWERER`` | ``offline`` | ``offline`` or ``http`` |
| ``WEBAPP_DOCUMENTS_ANSWERER_URL`` | | the ``http`` answerer's endpoint |
| ``WEBAPP_DOCUMENTS_ANSWERER_TIMEOUT`` | 10 | seconds per HTTP call |
| ``WEBAPP_DOCUMENTS_RETRIES`` | 4 | task retries when the answer service is unavailable |
| ``WEBAPP_DOCUMENTS_RETRY_BACKOFF`` | 2 | first retry's wait in seconds (doubles each time) |
| ``WEBAPP_DOCUMENTS_TIME_LIMIT`` | 900 | hard time limit of one processing attempt |
| ``WEBAPP_DOCUMENTS_STEP_DELAY`` | 0 | seconds to pause after each answer (demos, tests) |
| ``WEBAPP_DOCUMENTS_FONT`` | DejaVu Sans if installed | a TrueType font for the PDF |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PREFIX = "WEBAPP_"
ANSWERERS = ("offline", "http")
MiB = 1024 * 1024
DEFAULT_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


class SettingsError(ValueError):
    """A documents setting that cannot work (names the variable)."""


def default_instance_path() -> str:
    """The web app's instance folder (``<project>/instance``), as Flask computes it."""
    from flask import Flask

    return Flask("webapp").instance_path


@dataclass(frozen=True)
class DocumentSettings:
    storage_dir: Path
    storage_max_bytes: int = 1024 * MiB
    max_upload_bytes: int = 5 * MiB
    max_age_days: float = 7.0
    max_questions: int = 200
    answerer: str = "offline"
    answerer_url: str = ""
    answerer_timeout: float = 10.0
    retries: int = 4
    retry_backoff: float = 2.0
    time_limit: float = 900.0
    step_delay: float = 0.0
    font: Path | None = None

    @classmethod
    def load(
        cls, config: Mapping[str, Any] | None = None, instance_path: str | None = None
    ) -> DocumentSettings:
        """From the environment, then ``config`` (keys without ``WEBAPP_``) over it."""
        values: dict[str, Any] = {
            key.removeprefix(PREFIX): value
            for key, value in os.environ.items()
            if key.startswith(PREFIX)
        }
        if config:
            values.update(config)

        def get(name: str, convert: Any, default: Any) -> Any:
            raw = values.get(name)
            if raw is None or raw == "":
                return default
            try:
                value = convert(raw)
            except (TypeError, ValueError):
                raise SettingsError(
                    f"{PREFIX}{name}={raw!r} is not a valid {convert.__name__}"
                ) from None
            if isinstance(value, int | float) and value < 0:
                raise SettingsError(f"{PREFIX}{name} must not be negative, not {raw!r}")
            return value

        storage = get("STORAGE_DIR", str, None)
        if storage is None:
            storage = str(Path(instance_path or default_instance_path()) / "storage")
        answerer = get("DOCUMENTS_ANSWERER", str, "offline").strip().lower()
        if answerer not in ANSWERERS:
            raise SettingsError(
                f"{PREFIX}DOCUMENTS_ANSWERER={answerer!r}: use one of {', '.join(ANSWERERS)}"
            )
        font = get("DOCUMENTS_FONT", str, None)
        font_path = Path(font) if font else (DEFAULT_FONT if DEFAULT_FONT.exists() else None)
        return cls(
            storage_dir=Path(storage),
            storage_max_bytes=get("STORAGE_MAX_BYTES", int, cls.storage_max_bytes),
            max_upload_bytes=get("DOCUMENTS_MAX_UPLOAD_BYTES", int, cls.max_upload_bytes),
            max_age_days=get("DOCUMENTS_MAX_AGE_DAYS", float, cls.max_age_days),
            max_questions=get("DOCUMENTS_MAX_QUESTIONS", int, cls.max_questions),
            answerer=answerer,
            answerer_url=get("DOCUMENTS_ANSWERER_URL", str, ""),
            answerer_timeout=get("DOCUMENTS_ANSWERER_TIMEOUT", float, cls.answerer_timeout),
            retries=get("DOCUMENTS_RETRIES", int, cls.retries),
            retry_backoff=get("DOCUMENTS_RETRY_BACKOFF", float, cls.retry_backoff),
            time_limit=get("DOCUMENTS_TIME_LIMIT", float, cls.time_limit) or cls.time_limit,
            step_delay=get("DOCUMENTS_STEP_DELAY", float, cls.step_delay),
            font=font_path,
        )


def from_env() -> DocumentSettings:
    """The settings of a worker process (environment only)."""
    return DocumentSettings.load()


def for_app() -> DocumentSettings:
    """The settings of the current Flask app (environment, then its config)."""
    from flask import current_app

    return DocumentSettings.load(current_app.config, current_app.instance_path)


def human_size(size: float) -> str:
    """``2.0 MiB``, ``512 KiB``, ``900 bytes``."""
    if size < 1024:
        return f"{int(size)} bytes"
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}".replace(".0 ", " ")
    raise AssertionError("unreachable")
