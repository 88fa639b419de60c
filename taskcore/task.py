"""A registered task: the function, its options, and how to send it."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Unpack

from .errors import TaskFailed
from .message import TaskMessage
from .options import TaskOptions
from .ratelimit import parse_rate
from .results import TaskStatus
from .states import State

if TYPE_CHECKING:
    from .app import SendOptions, TaskApp


@dataclass(frozen=True, slots=True)
class TaskHandle:
    """What ``delay()`` returns once the broker has confirmed the message.

    Its state, result and progress are read from Redis when asked for.
    """

    id: str
    task: str
    queue: str
    app: TaskApp = field(repr=False, compare=False)

    @property
    def info(self) -> TaskStatus:
        """Everything known about the task: state, result or error, progress, times."""
        return self.app.status(self.id)

    @property
    def state(self) -> State:
        return self.info.state

    @property
    def progress(self) -> dict[str, Any] | None:
        """``{"current", "total", "message"}`` as last reported by the task, or None."""
        return self.info.progress

    def ready(self) -> bool:
        """True once the task succeeded, failed, was dead-lettered or revoked."""
        return self.info.ready

    def get(self, timeout: float | None = None, interval: float = 0.05) -> Any:
        """Wait for the result; raise TaskFailed if the task did not succeed.

        Raises TimeoutError after ``timeout`` seconds (None waits for ever).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.info
            if status.state == State.SUCCESS:
                return status.result
            if status.ready:
                error = status.error or {}
                raise TaskFailed(
                    self.id,
                    str(status.state),
                    error.get("type"),
                    error.get("message"),
                    error.get("traceback"),
                )
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"task {self.id} is still {status.state} after {timeout}s")
            time.sleep(interval)
            interval = min(interval * 1.5, 0.5)

    def revoke(self, terminate: bool = False) -> None:
        """Cancel the task; see ``TaskApp.revoke``."""
        self.app.revoke(self.id, terminate=terminate)


class Task:
    """A function registered with a TaskApp. Call it to run it here; ``delay()`` to queue it."""

    def __init__(
        self, app: TaskApp, fn: Callable[..., Any], *, name: str, options: TaskOptions
    ) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.options = options
        #: The declared global rate limit, parsed; Operations.set_rate_limit overrides it.
        self.rate = parse_rate(options.rate_limit) if options.rate_limit is not None else None
        self.is_async = inspect.iscoroutinefunction(fn)
        self.signature = inspect.signature(fn)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<Task {self.name}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def check_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise TypeError if the arguments do not fit the function's signature."""
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}: {exc}") from None

    def delay(self, *args: Any, **kwargs: Any) -> TaskHandle:
        """Queue a call with these arguments; returns once the broker confirmed it."""
        return self.app.send_task(self.name, args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[SendOptions],
    ) -> TaskHandle:
        """Queue a call with options: a delay (``countdown`` or ``eta``), a queue, an id,
        a priority (0-9), an idempotency key (see ``SendOptions``)."""
        return self.app.send_task(self.name, args, kwargs, **options)

    def map(self, calls: Iterable[Any], *, queue: str | None = None) -> list[TaskHandle]:
        """Queue one call per item, pipelined under a single wait for all confirms.

        A tuple item is the call's positional arguments; any other item is its
        single argument: ``add.map([(1, 2), (3, 4)])``, ``ping_user.map([1, 2, 3])``.
        """
        messages = [
            self.message(item if isinstance(item, tuple) else (item,), None, queue=queue)
            for item in calls
        ]
        self.app.publish([(m, 0.0) for m in messages])
        return [TaskHandle(m.id, self.name, m.queue, self.app) for m in messages]

    def message(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        task_id: str | None = None,
        priority: int | None = None,
    ) -> TaskMessage:
        """Build (and check) the message for one call without sending it."""
        return self.app.message(
            self.name, args, kwargs, queue=queue, task_id=task_id, priority=priority
        )
