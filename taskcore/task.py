"""A registered task: the function, its options, and how to send it."""

from __future__ import annotations

import inspect
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, TaskFailed
from .message import TaskMessage, new_task_id
from .ratelimit import parse_rate
from .results import TaskStatus
from .states import State
from .topology import check_queue_name

if TYPE_CHECKING:
    from .app import TaskApp


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


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a task is retried: ``retry_backoff * 2**retries`` seconds, capped, jittered."""

    max_retries: int = 3
    retry_backoff: float = 1.0
    retry_backoff_max: float = 600.0
    retry_jitter: bool = True
    autoretry_for: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ConfigurationError(
                f"max_retries must be an integer >= 0, not {self.max_retries!r}"
            )
        if self.retry_backoff < 0 or self.retry_backoff_max < 0:
            raise ConfigurationError("retry_backoff and retry_backoff_max must be >= 0 seconds")
        if not all(
            isinstance(e, type) and issubclass(e, BaseException) for e in self.autoretry_for
        ):
            raise ConfigurationError(
                f"autoretry_for must be a tuple of exception classes, not {self.autoretry_for!r}"
            )

    def delay(self, retries: int) -> float:
        """Seconds to wait before retry number ``retries + 1``.

        Jitter is "equal jitter": a random point in the upper half of the
        backoff, so delays still grow while retries of many tasks spread out.
        """
        delay = min(self.retry_backoff * 2**retries, self.retry_backoff_max)
        if self.retry_jitter:
            delay = random.uniform(delay / 2, delay)
        return delay


class Task:
    """A function registered with a TaskApp. Call it to run it here; ``delay()`` to queue it."""

    def __init__(
        self,
        app: TaskApp,
        fn: Callable[..., Any],
        *,
        name: str,
        queue: str | None = None,
        retry: RetryPolicy | None = None,
        priority: int | None = None,
        ignore_result: bool = False,
        soft_time_limit: float | None = None,
        time_limit: float | None = None,
        idempotency_key: Callable[..., str] | None = None,
        idempotency_window: float | None = None,
        rate_limit: str | None = None,
    ) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.queue = check_queue_name(queue) if queue is not None else None
        self.retry = retry or RetryPolicy()
        self.priority = check_priority(priority)
        self.ignore_result = ignore_result
        self.soft_time_limit = _positive_or_none("soft_time_limit", soft_time_limit)
        self.time_limit = _positive_or_none("time_limit", time_limit)
        self.idempotency_key = idempotency_key
        self.idempotency_window = idempotency_window
        #: Default global rate limit; TaskApp.set_rate_limit overrides it at run time.
        self.rate_limit = parse_rate(rate_limit) if rate_limit is not None else None
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
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: datetime | None = None,
        queue: str | None = None,
        task_id: str | None = None,
        priority: int | None = None,
        idempotency_key: str | None = None,
    ) -> TaskHandle:
        """Queue a call with options: a delay (``countdown`` or ``eta``), a queue, an id,
        a priority (0-9), an idempotency key."""
        message = self.message(args, kwargs, queue=queue, task_id=task_id, priority=priority)
        if idempotency_key is None and self.idempotency_key is not None:
            idempotency_key = str(self.idempotency_key(*message.args, **message.kwargs))
        delay = _delay_seconds(countdown, eta)
        if delay:
            message.eta = time.time() + delay
        if idempotency_key is not None:
            return self.app.publish_once(message, delay, idempotency_key, self.idempotency_window)
        self.app.publish([(message, delay)])
        return TaskHandle(message.id, self.name, message.queue, self.app)

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
        kwargs = dict(kwargs or {})
        self.check_arguments(args, kwargs)
        return TaskMessage(
            id=task_id or new_task_id(),
            task=self.name,
            queue=self.app.queue_for(self, queue),
            args=list(args),
            kwargs=kwargs,
            priority=check_priority(priority) if priority is not None else self.priority,
        )


def _delay_seconds(countdown: float | None, eta: datetime | None) -> float:
    if countdown is not None and eta is not None:
        raise ConfigurationError("give countdown or eta, not both")
    if eta is not None:
        return max(0.0, eta.timestamp() - time.time())
    if countdown is not None:
        if countdown < 0:
            raise ConfigurationError(f"countdown must be >= 0 seconds, not {countdown}")
        return float(countdown)
    return 0.0


def check_priority(priority: int | None) -> int | None:
    """Return ``priority`` if it is None or 0-9; raise ConfigurationError otherwise."""
    if priority is not None and (not isinstance(priority, int) or not 0 <= priority <= 9):
        raise ConfigurationError(f"priority must be an integer from 0 to 9, not {priority!r}")
    return priority


def _positive_or_none(name: str, value: float | None) -> float | None:
    if value is not None and value <= 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds, not {value!r}")
    return value
