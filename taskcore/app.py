"""TaskApp: the registry of tasks, their settings, and the way out to the broker."""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, overload

from . import delays
from .errors import ConfigurationError
from .message import H_IDEMPOTENCY_KEY, Envelope, TaskMessage, new_task_id
from .publisher import SyncPublisher
from .ratelimit import decode_override, encode_override, overrides_key, parse_rate
from .results import ResultStore, TaskStatus
from .schedules import Schedule, ScheduleKeys, make_schedule
from .settings import Settings
from .states import State
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
        self.topology = Topology(self.settings.namespace, self.settings.queues)
        self.tasks: dict[str, Task] = {}
        self._publisher = SyncPublisher(self.settings, self.topology)
        self._results: ResultStore | None = None
        #: Periodic schedules by name, fired by ``taskcore beat``.
        self.schedules: dict[str, Schedule] = {}

    def configure(self, **settings: Any) -> None:
        """Change settings after creation (e.g. from a Flask app's config); reconnects lazily."""
        self.close()
        self.settings = Settings.from_env(**{**_explicit(self.settings), **settings})
        self.topology = Topology(self.settings.namespace, self.settings.queues)
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
        priority: int | None = None,
        ignore_result: bool = False,
        soft_time_limit: float | None = None,
        time_limit: float | None = None,
        idempotency_key: Callable[..., str] | None = None,
        idempotency_window: float | None = None,
        rate_limit: str | None = None,
    ) -> Callable[[Callable[..., Any]], Task]: ...

    def task(self, fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
        """Register a function (sync or ``async def``) as a task; usable bare or with options."""
        if fn is not None:
            return self._register(fn, **options)
        return lambda f: self._register(f, **options)

    def _register(self, fn: Callable[..., Any], *, name: str | None = None, **options: Any) -> Task:
        if not callable(fn):
            raise ConfigurationError(f"@app.task needs a function, got {fn!r}")
        retry_fields = RetryPolicy.__dataclass_fields__
        try:
            retry = RetryPolicy(**{k: v for k, v in options.items() if k in retry_fields})
            task_name = name or f"{fn.__module__}.{fn.__qualname__}"
            if task_name in self.tasks and self.tasks[task_name].fn is not fn:
                raise ConfigurationError(f"a different task is already registered as {task_name!r}")
            task = Task(
                self,
                fn,
                name=task_name,
                retry=retry,
                **{k: v for k, v in options.items() if k not in retry_fields},
            )
        except TypeError as exc:  # an option that does not exist
            raise ConfigurationError(f"@app.task: {exc}") from None
        self.tasks[task_name] = task
        return task

    def queue_for(self, task: Task | str, queue: str | None = None) -> str:
        """The queue a call goes to: the call's choice, the decorator's, a route, the default."""
        if queue is not None:
            return check_queue_name(queue)
        if isinstance(task, str):
            task = self.tasks.get(task, task)
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
        return TaskHandle(message.id, name, message.queue, self)

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

    def publish_once(
        self, message: TaskMessage, delay: float, key: str, window: float | None = None
    ) -> TaskHandle:
        """Publish unless a task with the same idempotency key is pending, running or succeeded.

        The key is claimed in Redis for ``window`` seconds (default: result_expires).
        If it is held by a task that failed, was dead-lettered or revoked, the new
        call takes it over. Returns the handle of whichever task holds the key.
        """
        self.results.require_enabled()  # the key's holder is judged by its stored state
        redis_key = self.results.keys.idempotency(key)
        ttl = int(window or self.settings.result_expires)
        client = self.results.redis
        message.headers[H_IDEMPOTENCY_KEY] = key
        while not client.set(redis_key, message.id, nx=True, ex=ttl):
            holder = client.get(redis_key)
            if holder is None:
                continue  # expired between SET and GET: try again
            holder_id = holder.decode()
            status = self.results.status(holder_id)
            if status.state in {State.FAILURE, State.DEAD, State.REVOKED}:
                client.delete(redis_key)
                continue
            return TaskHandle(holder_id, status.task or message.task, message.queue, self)
        try:
            self.publish([(message, delay)])
        except BaseException:
            client.delete(redis_key)  # not sent: let the next call try
            raise
        return TaskHandle(message.id, message.task, message.queue, self)

    @property
    def results(self) -> ResultStore:
        """Synchronous access to task states and results in Redis."""
        if self._results is None:
            self._results = ResultStore(self.settings)
        return self._results

    def status(self, task_id: str) -> TaskStatus:
        """What Redis knows of a task (state PENDING if nothing)."""
        return self.results.status(task_id)

    def result(self, task_id: str) -> TaskHandle:
        """A handle for any task id, e.g. one stored in your database."""
        status = self.status(task_id)
        return TaskHandle(task_id, status.task or "", status.queue or "", self)

    def revoke(self, task_id: str, terminate: bool = False) -> None:
        """Cancel a task.

        Not yet started: the worker that receives it skips it (state REVOKED).
        Running, with ``terminate=True``: an async task is cancelled; a sync task
        sees ``current_task.is_cancelled()`` and, under ``--processes``, its
        worker process is ended and replaced.
        """
        not_started = {State.PENDING, State.RECEIVED, State.RETRY}
        if self.results.enabled and self.status(task_id).state in not_started:
            self.results.set_state(task_id, State.REVOKED)
        self.results.revoke(task_id, "terminate" if terminate else "revoke")

    def set_rate_limit(self, name: str, rate: str | None) -> None:
        """Change a global rate limit at run time, for every worker within seconds.

        ``name`` is a task name or ``queue:<queue>``; ``rate`` like ``"20/m"``, or None
        to go back to the limit declared in code.
        """
        key = overrides_key(self.settings.namespace)
        if rate is None:
            self.results.redis.hdel(key, name)
        else:
            self.results.redis.hset(key, name, encode_override(parse_rate(rate)))

    def rate_limits(self) -> dict[str, str]:
        """Every limit in force: declared in code, with run-time overrides applied."""
        limits = {name: t.rate_limit.text for name, t in self.tasks.items() if t.rate_limit}
        for queue, options in self.topology.queue_options.items():
            if "rate_limit" in options:
                limits[f"queue:{queue}"] = options["rate_limit"]
        raw = self.results.redis.hgetall(overrides_key(self.settings.namespace))
        for name, value in raw.items():
            limits[name.decode()] = decode_override(value).text
        return limits

    def schedule(
        self,
        name: str,
        task: Task | str,
        *,
        cron: str | None = None,
        every: timedelta | float | None = None,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        queue: str | None = None,
        missed: str = "run_once",
    ) -> Schedule:
        """Declare a periodic task: ``cron="0 2 * * *"`` (UTC) or ``every=timedelta(minutes=5)``.

        ``missed`` says what a beat does with fire times it missed while down:
        ``"run_once"`` (the latest of them, once), ``"run_all"`` or ``"skip"``.
        """
        task_name = task.name if isinstance(task, Task) else task
        if isinstance(task, Task):
            task.check_arguments(args, kwargs or {})
        schedule = make_schedule(
            name,
            task_name,
            cron=cron,
            every=every,
            args=tuple(args),
            kwargs=kwargs,
            queue=queue,
            missed=missed,
        )
        self.schedules[name] = schedule
        return schedule

    def schedule_info(self) -> list[dict[str, Any]]:
        """Every schedule with its timing, paused flag, last and next fire time (Unix)."""
        keys = ScheduleKeys(self.settings.namespace)
        client = self.results.redis
        paused = {p.decode() for p in client.smembers(keys.paused)}
        last = {k.decode(): float(v) for k, v in client.hgetall(keys.last).items()}
        now = time.time()
        return [
            {
                "name": s.name,
                "task": s.task,
                "when": s.when,
                "queue": self.queue_for(s.task, s.queue),
                "paused": s.name in paused,
                "last_fire": last.get(s.name),
                "next_fire": s.next_after(now),
                "missed": s.missed,
            }
            for s in self.schedules.values()
        ]

    def pause_schedule(self, name: str) -> None:
        """Stop firing ``name`` (every beat, at once) until resumed."""
        self._known_schedule(name)
        self.results.redis.sadd(ScheduleKeys(self.settings.namespace).paused, name)

    def resume_schedule(self, name: str) -> None:
        """Fire ``name`` again; fire times missed while paused are skipped."""
        self._known_schedule(name)
        keys = ScheduleKeys(self.settings.namespace)
        with self.results.redis.pipeline() as pipe:
            pipe.srem(keys.paused, name)
            pipe.hset(keys.last, name, repr(time.time()))
            pipe.execute()

    def run_schedule_now(self, name: str) -> TaskHandle:
        """Enqueue one run of ``name`` now, outside its timing."""
        schedule = self._known_schedule(name)
        return self.send_task(
            schedule.task,
            schedule.args,
            schedule.kwargs,
            queue=schedule.queue,
            task_id=f"{name}@manual-{new_task_id()}",
        )

    def _known_schedule(self, name: str) -> Schedule:
        try:
            return self.schedules[name]
        except KeyError:
            known = ", ".join(sorted(self.schedules)) or "none"
            raise ConfigurationError(f"no schedule named {name!r} (known: {known})") from None

    def flush(self) -> None:
        """With confirms off: wait until every message sent so far was written to the broker."""
        self._publisher.flush()

    def close(self) -> None:
        """Close this process's broker and Redis connections (reopened when needed)."""
        self._publisher.close()
        if self._results is not None:
            self._results.close()
            self._results = None


def _explicit(settings: Settings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}
