"""Logging for taskcore's processes: plain lines or JSON lines, with the task's fields.

Standard library only: the supervisor imports it (it holds neither click nor the
app). Records logged inside a task carry ``task_id``, ``task_name`` and
``task_attempt`` (added by ``taskcore.logs.add_task_fields`` in worker processes);
both formats show them, and a ``dictConfig`` file may use them in its own format.
"""

from __future__ import annotations

import json
import logging
import logging.config
import traceback
from datetime import UTC, datetime
from pathlib import Path

PLAIN_FORMAT = "%(asctime)s %(levelname)-7s [%(process)d] %(name)s: %(message)s"
FORMATS = ("plain", "json")


class PlainFormatter(logging.Formatter):
    """The readable format, with ``(task NAME[ID] attempt N)`` after a task's messages."""

    def __init__(self) -> None:
        super().__init__(PLAIN_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        task_id = getattr(record, "task_id", None)
        if task_id is None:
            return text
        head, newline, rest = text.partition("\n")  # after the message, before a traceback
        suffix = f" (task {record.task_name}[{task_id}] attempt {record.task_attempt})"  # type: ignore[attr-defined]
        return head + suffix + newline + rest


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (ISO 8601, UTC), level, logger, message, process,
    the task's fields inside a task, and the exception's traceback if there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for name in ("task_id", "task_name", "task_attempt"):
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(entry, default=str)


def configure(level: str, fmt: str = "plain", config_file: str | None = None) -> None:
    """Log to stderr at ``level`` in ``fmt`` (plain or json), or as ``config_file`` (a JSON
    ``logging.config.dictConfig`` document) says."""
    if config_file:
        logging.config.dictConfig(json.loads(Path(config_file).read_text()))
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else PlainFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
