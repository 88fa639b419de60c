"""A registered task: the function, its options, and how to send it."""

from __future__ import annotations

import functools
import inspect
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, Unpack

from .context import Request, running_context
from .errors import ConfigurationError, EncodeError, Retry, TaskFailed, UnsupportedFeature
from .message import TaskMessage
from .options import TaskOptions
from .ratelimit import parse_rate
from .results import TaskStatus
from .states import State
from .workflows import Signature

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
    #: The chain, group or chord this task belongs to (its page in the console), if any.
    workflow_id: str | None = field(default=None, compare=False)

    def _status(self) -> TaskStatus:
        return self.app.status(self.id)

    @property
    def info(self) -> TaskStatus:
        """Everything known about the task: state, result or error, progress, times."""
        return self._status()

    @property
    def state(self) -> State:
        """The task's state (a ``str``), PENDING while nothing is known."""
        return self._status().state

    @property
    def progress(self) -> dict[str, Any] | None:
        """``{"current", "total", "message"}`` as last reported by the task, or None."""
        return self._status().progress

    def ready(self) -> bool:
        """True once the task succeeded, failed, was dead-lettered or revoked."""
        return self._status().ready

    def get(self, timeout: float | None = None, interval: float = 0.05) -> Any:
        """Wait for the result; raise TaskFailed if the task did not succeed.

        Raises TimeoutError after ``timeout`` seconds (None waits for ever).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self._status()
            if status.state == State.SUCCESS:
                return status.result
            if status.ready:
                raise failure_of(self.id, status)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"task {self.id} is still {status.state} after {timeout}s")
            time.sleep(interval)
            interval = min(interval * 1.5, 0.5)

    def revoke(self, terminate: bool = False) -> None:
        """Cancel the task; see ``TaskApp.revoke``."""
        self.app.revoke(self.id, terminate=terminate)


def failure_of(task_id: str, status: TaskStatus) -> TaskFailed:
    """The TaskFailed that describes a task that failed, was dead-lettered or revoked."""
    error = status.error or {}
    return TaskFailed(
        task_id,
        str(status.state),
        error.get("type"),
        error.get("message"),
        error.get("traceback"),
    )


class Task:
    """A function registered with a TaskApp. Call it to run it here; ``delay()`` to queue it.

    With ``bind=True`` the function's first argument is this Task (Celery's ``self``):
    ``self.request``, ``self.retry(...)``, ``self.update_state(...)``, ``self.name``,
    ``self.app``. The signature that calls are checked against leaves it out.
    """

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
        signature = inspect.signature(fn)
        #: What the worker calls with the message's arguments: the function, given this
        #: Task first when bound.
        self.run: Callable[..., Any] = fn
        if options.bind:
            parameters = list(signature.parameters.values())
            if not parameters or parameters[0].kind not in (
                inspect.Parameter.POSITIONAL_ONLY,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
            ):
                raise ConfigurationError(
                    f"{name}: bind=True needs a first positional parameter (self) for the task"
                )
            signature = signature.replace(parameters=parameters[1:])
            self.run = functools.partial(fn, self)
        self.signature = signature
        #: How many positional arguments a call may pass when every parameter is a plain
        #: positional-or-keyword one (None otherwise): such calls skip ``bind``.
        self._positional = _plain_positional_range(signature)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<Task {self.name}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.run(*args, **kwargs)

    @property
    def request(self) -> Request:
        """The call this task is running (Celery's ``self.request``); empty outside it."""
        context = running_context()
        if context is None or context.name != self.name:
            return Request()
        return context.request

    def retry(
        self,
        *,
        exc: BaseException | None = None,
        countdown: float | None = None,
        eta: datetime | None = None,
        max_retries: int | None = None,
    ) -> NoReturn:
        """Ask for another attempt: raises Retry (``raise self.retry(...)`` reads as Celery).

        ``countdown`` seconds or an ``eta`` replace the backoff (without either:
        ``default_retry_delay`` if the task has one); ``max_retries`` replaces the
        task's limit for this decision. When the retries are used up the message is
        dead-lettered with ``exc`` recorded as the error.
        """
        if countdown is None and eta is None:
            countdown = self.options.default_retry_delay
        raise Retry(countdown, exc, eta=eta, max_retries=max_retries)

    def update_state(
        self,
        task_id: str | None = None,
        state: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """Report progress from inside the task: only ``state="PROGRESS"`` is accepted.

        ``meta``'s ``current``, ``total`` and ``message`` (or ``status``) keys become
        the progress; the whole ``meta`` is kept with it (``AsyncResult(id).info``).
        """
        if state != State.PROGRESS:
            raise UnsupportedFeature(
                f"update_state(state={state!r}) is not supported: taskcore has no custom "
                'states. Report progress with update_state(state="PROGRESS", meta={...}) '
                "or current_task.progress(current, total, message); return a value to "
                "succeed, raise to fail"
            )
        meta = dict(meta or {})
        try:
            json.dumps(meta, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise EncodeError(f"{self.name}: update_state meta is not JSON: {error}") from None
        context = running_context()
        if context is None or context.name != self.name:
            raise RuntimeError(f"{self.name}.update_state() works only inside the running task")
        if task_id is not None and task_id != context.id:
            raise UnsupportedFeature(
                "update_state(task_id=...) of another task is not supported: a task "
                "reports only its own progress"
            )
        message = meta.get("message", meta.get("status", ""))
        context.progress(
            meta.get("current"),
            meta.get("total"),
            message if isinstance(message, str) else str(message),
            meta=meta,
        )

    def check_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise TypeError if the arguments do not fit the function's signature."""
        plain = self._positional
        if plain is not None and not kwargs and plain[0] <= len(args) <= plain[1]:
            return  # the common call, checked without bind (a few us on every task)
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

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A signature of this call, for a chain or group (in a chain it gets the previous
        step's result as its first argument)."""
        return Signature(self.name, args, kwargs, app=self.app)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """An immutable signature: in a chain it ignores the previous step's result."""
        return Signature(self.name, args, kwargs, immutable=True, app=self.app)

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


def _plain_positional_range(signature: inspect.Signature) -> tuple[int, int] | None:
    """(required, total) positional arguments if every parameter is positional-or-keyword,
    else None."""
    parameters = signature.parameters.values()
    if any(p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters):
        return None
    required = sum(1 for p in parameters if p.default is inspect.Parameter.empty)
    return required, len(parameters)
