"""Task fields on every log record made inside a task, whatever the logger.

``add_task_fields()`` (a worker process calls it once) wraps the log record
factory so that a record created while a task runs carries ``task_id``,
``task_name`` and ``task_attempt``; elsewhere they are absent. It reads one
context variable per record, and nothing else.
"""

from __future__ import annotations

import logging
from typing import Any

from .context import running_context


def add_task_fields() -> None:
    """Make every log record made inside a task carry the task's id, name and attempt."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "taskcore_fields", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        context = running_context()
        if context is not None:
            record.task_id = context.id
            record.task_name = context.name
            record.task_attempt = context.attempt
        return record

    factory.taskcore_fields = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
