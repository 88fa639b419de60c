"""``current_task``: what a running task may know and do about itself.

Works in ``async def`` tasks and in sync tasks running in the worker's
threads (the context travels with the call). Sync code cannot be
interrupted from outside, so a sync task that wants to honour revocation
or its soft time limit calls ``current_task.check()`` now and then.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import SoftTimeLimitExceeded, TaskRevoked

if TYPE_CHECKING:
    from .message import TaskMessage


@dataclass(frozen=True)
class Request:
    """Celery's ``self.request``: the call being run, as a bound task sees it.

    ``delivery_info`` holds ``queue`` and ``routing_key`` (both the work queue),
    ``priority`` and ``redelivered``. Outside a running task every field is empty
    and ``called_directly`` is True.
    """

    id: str | None = None
    task: str | None = None
    retries: int = 0
    hostname: str | None = None
    delivery_info: dict[str, Any] = field(default_factory=dict)
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    called_directly: bool = True


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
    #: The call being run and whether the broker delivered it before (set by the worker).
    call: TaskMessage | None = field(default=None, repr=False)
    redelivered: bool = False

    @property
    def attempt(self) -> int:
        """1 for the first attempt, 2 for the first retry, ..."""
        return self.retries + 1

    @property
    def request(self) -> Request:
        """The call as Celery's ``self.request`` shows it (id, retries, hostname, ...)."""
        call = self.call
        return Request(
            id=self.id,
            task=self.name,
            retries=self.retries,
            hostname=self.worker,
            delivery_info={
                "queue": self.queue,
                "routing_key": self.queue,
                "priority": call.priority if call is not None else None,
                "redelivered": self.redelivered,
            },
            args=list(call.args) if call is not None else [],
            kwargs=dict(call.kwargs) if call is not None else {},
            called_directly=False,
        )

    def progress(
        self,
        current: float | None,
        total: float | None = None,
        message: str = "",
        *,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """Record progress (state PROGRESS); returns at once and writes in the background.

        Reports made faster than Redis takes them are merged (the latest is written), and
        the last one is written before the task's final state, never after it.

        ``meta`` (JSON values, e.g. Celery's ``update_state`` meta) is stored with it.
        """
        progress: dict[str, Any] = {"current": current, "total": total, "message": message}
        if meta is not None:
            progress["meta"] = dict(meta)
        self.report_progress(progress)

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


def running_context() -> TaskContext | None:
    """The running task's TaskContext, or None outside a task."""
    return _current.get()


def set_current(context: TaskContext | None) -> Any:
    """Make ``context`` the current task in this context; returns a token for reset_current."""
    return _current.set(context)


def reset_current(token: Any) -> None:
    """Undo a set_current."""
    _current.reset(token)
