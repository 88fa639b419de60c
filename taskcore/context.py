"""``current_task``: what a running task may know and do about itself.

Works in ``async def`` tasks and in sync tasks running in the worker's
threads (the context travels with the call). Sync code cannot be
interrupted from outside, so a sync task that wants to honour revocation
or its soft time limit calls ``current_task.check()`` now and then.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from .errors import SoftTimeLimitExceeded, TaskRevoked


@dataclass
class TaskContext:
    """The running task's id, name, attempt, and its progress and cancellation hooks."""

    id: str
    name: str
    queue: str
    retries: int
    worker: str
    report_progress: Callable[[dict[str, Any]], None] = field(repr=False)
    cancelled: threading.Event = field(default_factory=threading.Event, repr=False)
    #: time.monotonic() after which check() raises SoftTimeLimitExceeded.
    soft_deadline: float | None = None

    @property
    def attempt(self) -> int:
        """1 for the first attempt, 2 for the first retry, ..."""
        return self.retries + 1

    def progress(self, current: float, total: float | None = None, message: str = "") -> None:
        """Record progress (state PROGRESS); returns at once and writes in the background."""
        self.report_progress({"current": current, "total": total, "message": message})

    def is_cancelled(self) -> bool:
        """True once the task was revoked with ``terminate=True`` while running."""
        return self.cancelled.is_set()

    def check(self) -> None:
        """Raise TaskRevoked or SoftTimeLimitExceeded if the task should stop now."""
        if self.cancelled.is_set():
            raise TaskRevoked(f"task {self.id} was revoked")
        if self.soft_deadline is not None and time.monotonic() > self.soft_deadline:
            raise SoftTimeLimitExceeded(f"task {self.id} passed its soft time limit")


_current: ContextVar[TaskContext | None] = ContextVar("taskcore_current_task", default=None)


class _CurrentTask:
    """Proxy to the running task's TaskContext (``from taskcore import current_task``)."""

    def __getattr__(self, name: str) -> Any:
        context = _current.get()
        if context is None:
            raise RuntimeError("current_task is only available inside a running task")
        return getattr(context, name)

    def __bool__(self) -> bool:
        return _current.get() is not None


current_task: Any = _CurrentTask()


def set_current(context: TaskContext | None) -> Any:
    """Make ``context`` the current task in this context; returns a token for reset_current."""
    return _current.set(context)


def reset_current(token: Any) -> None:
    """Undo a set_current."""
    _current.reset(token)
