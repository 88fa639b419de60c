"""TaskApp: the registry of tasks, their settings, and the way out to the broker."""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, overload

from . import delays
from .errors import ConfigurationError
from .message import Envelope, TaskMessage, new_task_id
from .publisher import SyncPublisher
from .settings import Settings
from .task import RetryPolicy, Task, TaskHandle, _delay_seconds
from .topology import Topology, check_queue_name


class TaskApp:
    """A taskcore application: declare tasks with ``@app.task``, run them with ``taskcore worker``.

    Settings come from ``TASKCORE_*`` environment variables; keyword arguments
    override them (``TaskApp(broker_url="amqp://...")``).
    """

    def __init__(self, name: str = "taskcore", **settings: Any) -> None:
        self.name = name
        self.settings = Settings.from_env(**settings)
        self.topology = Topology(self.settings.namespace)
        self.tasks: dict[str, Task] = {}
        self._publisher = SyncPublisher(self.settings, self.topology)

    def configure(self, **settings: Any) -> None:
        """Change settings after creation (e.g. from a Flask app's config); reconnects lazily."""
        self._publisher.close()
        self.settings = Settings.from_env(**{**_explicit(self.settings), **settings})
        self.topology = Topology(self.settings.namespace)
        self._publisher = SyncPublisher(self.settings, self.topology)

    def __repr__(self) -> str:
        return f"<TaskApp {self.name} {self.settings.safe_broker_url}>"

    @overload
    def task(self, fn: Callable[..., Any], /) -> Task: ...

    @overload
    def task(
        self,
        *,
        name: str | None = None,
        queue: str | None = None,
        max_retries: int = 3,
        retry_backoff: float = 1.0,
        retry_backoff_max: float = 600.0,
        retry_jitter: bool = True,
        autoretry_for: tuple[type[BaseException], ...] = (),
    ) -> Callable[[Callable[..., Any]], Task]: ...

    def task(self, fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
        """Register a function (sync or ``async def``) as a task; usable bare or with options."""
        if fn is not None:
            return self._register(fn, **options)
        return lambda f: self._register(f, **options)

    def _register(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        queue: str | None = None,
        **retry_options: Any,
    ) -> Task:
        if not callable(fn):
            raise ConfigurationError(f"@app.task needs a function, got {fn!r}")
        try:
            retry = RetryPolicy(**retry_options)
        except TypeError as exc:
            raise ConfigurationError(f"@app.task: {exc}") from None
        task_name = name or f"{fn.__module__}.{fn.__qualname__}"
        if task_name in self.tasks and self.tasks[task_name].fn is not fn:
            raise ConfigurationError(f"a different task is already registered as {task_name!r}")
        task = Task(self, fn, name=task_name, queue=queue, retry=retry)
        self.tasks[task_name] = task
        return task

    def queue_for(self, task: Task | str, queue: str | None = None) -> str:
        """The queue a call goes to: the call's choice, the decorator's, a route, the default."""
        if queue is not None:
            return check_queue_name(queue)
        if isinstance(task, Task) and task.queue is not None:
            return task.queue
        name = task.name if isinstance(task, Task) else task
        for pattern, routed in self.settings.routes.items():
            if fnmatch.fnmatchcase(name, pattern):
                return check_queue_name(routed)
        return self.settings.default_queue

    def send_task(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: datetime | None = None,
        queue: str | None = None,
        task_id: str | None = None,
    ) -> TaskHandle:
        """Queue a task by name, for producers that do not import the task's code."""
        task = self.tasks.get(name)
        if task is not None:
            return task.apply_async(
                args, kwargs, countdown=countdown, eta=eta, queue=queue, task_id=task_id
            )
        message = TaskMessage(
            id=task_id or new_task_id(),
            task=name,
            queue=self.queue_for(name, queue),
            args=list(args),
            kwargs=dict(kwargs or {}),
        )
        delay = _delay_seconds(countdown, eta)
        if delay:
            message.eta = time.time() + delay
        self.publish([(message, delay)])
        return TaskHandle(message.id, name, message.queue)

    def envelope(self, message: TaskMessage, delay: float = 0.0) -> Envelope:
        """The publish that delivers ``message`` to its queue after ``delay`` seconds."""
        exchange, routing_key = self.address(message.queue, delay)
        return Envelope(exchange, routing_key, message.body(), message.properties())

    def address(self, queue: str, delay: float = 0.0) -> tuple[str, str]:
        """Exchange and routing key that reach ``queue`` after ``delay`` seconds."""
        units = delays.delay_units(delay)
        if units == 0:
            return self.topology.work_exchange, queue
        return (
            self.topology.delay_exchange(delays.entry_level(units)),
            delays.routing_key(units, queue),
        )

    def publish(self, items: Sequence[tuple[TaskMessage, float]]) -> None:
        """Publish (message, delay) pairs and wait for every confirm; raises PublishError."""
        envelopes = [self.envelope(message, delay) for message, delay in items]
        self._publisher.publish(envelopes, {message.queue for message, _ in items})

    def close(self) -> None:
        """Close this process's broker connection (reopened on the next publish)."""
        self._publisher.close()


def _explicit(settings: Settings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}
