"""TaskApp: the registry of tasks and schedules, their settings, and the way out to the broker."""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypedDict, Unpack

import redis

from . import tracing
from .delays import delay_seconds
from .errors import ConfigurationError, PayloadTooLarge
from .keys import RedisKeys
from .loop_thread import LoopThread
from .message import H_IDEMPOTENCY_KEY, TaskMessage, new_task_id
from .options import TaskOptions, check_priority
from .publisher import SyncPublisher
from .redis_clients import sync_client
from .results import ResultStore, TaskStatus
from .schedules import Schedule, make_schedule
from .settings import Settings
from .shared import app_created, make_current
from .signals import TaskHook, check_signals
from .states import State
from .task import Task, TaskHandle
from .topology import Topology, check_queue_name
from .workflows import Signature, link_headers

#: An ``on_worker_start`` / ``on_worker_stop`` hook: gets ``app.resources``.
WorkerHook = Callable[[dict[str, Any]], Awaitable[None] | None]


class SendOptions(TypedDict, total=False):
    """How one call is sent (``apply_async``, ``send_task``); every option may be left out."""

    #: Seconds to wait before the task runs (or ``eta``: a datetime; not both).
    countdown: float | None
    eta: datetime | None
    #: The queue, over the task's own and the routes.
    queue: str | None
    #: The task id (default: a random one).
    task_id: str | None
    #: 0-9, on queues declared with ``max_priority``.
    priority: int | None
    #: A second call with the same key is not queued while the first is pending,
    #: running or succeeded.
    idempotency_key: str | None
    #: A signature sent when this task succeeds, with its result first (Celery's link).
    link: Signature | None
    #: A signature sent if this task ends in a dead-letter queue, with its id first.
    link_error: Signature | None


class TaskApp:
    """A taskcore application: declare tasks with ``@app.task``, run them with ``taskcore worker``.

    Settings come from ``TASKCORE_*`` environment variables; keyword arguments
    override them (``TaskApp(broker_url="amqp://...")``).
    """

    def __init__(self, name: str = "taskcore", **settings: Any) -> None:
        self.name = name
        self.tasks: dict[str, Task] = {}
        #: Periodic schedules by name, fired by ``taskcore beat``.
        self.schedules: dict[str, Schedule] = {}
        #: This process's background event loop for sync callers (publishing, operations).
        self.loop = LoopThread()
        #: What this worker process's ``on_worker_start`` hooks opened, for its tasks.
        self.resources: dict[str, Any] = {}
        #: ``on_worker_start`` and ``on_worker_stop`` hooks, in the order declared.
        self.start_hooks: list[WorkerHook] = []
        self.stop_hooks: list[WorkerHook] = []
        #: ``on_task`` hooks by signal name.
        self.task_hooks: dict[str, list[TaskHook]] = {}
        #: What the constructor was given; configure() starts again from these.
        self._given = dict(settings)
        self._use(Settings.from_env(**settings))
        app_created(self)  # shared tasks join it; it becomes the current app

    def _use(self, settings: Settings) -> None:
        self.settings = settings
        self.topology = Topology(settings.namespace, settings.queues, settings.queue_type)
        #: Every Redis key name this app uses.
        self.keys = RedisKeys(settings.namespace)
        self._publisher = SyncPublisher(settings, self.topology, self.loop)
        self._redis: redis.Redis | None = None
        self._results: ResultStore | None = None

    def configure(self, **settings: Any) -> None:
        """Settings from the environment, the constructor's arguments and ``settings``.

        Each call starts again from the environment and the constructor, so a
        later ``configure()`` undoes an earlier one (a Flask factory calls it on
        every ``create_app``). Connections are closed and reopened lazily.
        """
        self.close()
        self._use(Settings.from_env(**{**self._given, **settings}))
        make_current(self)

    def set_default(self) -> None:
        """Make this app the current one: ``@shared_task`` objects and ``AsyncResult(id)``
        send and read through it (until another TaskApp is created or configured)."""
        make_current(self)

    def __repr__(self) -> str:
        return f"<TaskApp {self.name} {self.settings.safe_broker_url}>"

    def task(self, fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
        """Register a function (sync or ``async def``) as a task; usable bare or with options.

        ``name=`` chooses the task's name (default ``module.function``); every
        other keyword is a field of ``TaskOptions`` (queue, retries, limits, ``bind``,
        ...). ``TaskApp.__init__`` also registers every ``@shared_task``.
        """
        if fn is not None:
            return self._register(fn, **options)
        return lambda f: self._register(f, **options)

    def _register(self, fn: Callable[..., Any], *, name: str | None = None, **options: Any) -> Task:
        if not callable(fn):
            raise ConfigurationError(f"@app.task needs a function, got {fn!r}")
        task_name = name or f"{fn.__module__}.{fn.__qualname__}"
        if task_name in self.tasks and self.tasks[task_name].fn is not fn:
            raise ConfigurationError(f"a different task is already registered as {task_name!r}")
        task = Task(self, fn, name=task_name, options=TaskOptions.from_kwargs(options))
        self.tasks[task_name] = task
        return task

    def on_worker_start(self, hook: WorkerHook) -> WorkerHook:
        """Run ``hook(app.resources)`` once in each worker process, on its event loop,
        before it consumes (a plain or ``async def`` function). Put what it opens (a
        client with a bounded pool, say) in the dict; tasks read ``app.resources``.
        If it raises, the worker does not start: it exits non-zero with the error."""
        self.start_hooks.append(hook)
        return hook

    def on_worker_stop(self, hook: WorkerHook) -> WorkerHook:
        """Run ``hook(app.resources)`` once in each worker process when it stops, after
        its last task finished and before its connections close. Errors are logged."""
        self.stop_hooks.append(hook)
        return hook

    def on_task(self, *signals: str) -> Callable[[TaskHook], TaskHook]:
        """Call the decorated function with a ``TaskEvent`` whenever a task in a worker of
        this app is ``received``, ``started``, ``succeeded``, ``failed``, ``retried``,
        ``dead_lettered`` or ``revoked`` (the names given). It runs beside the task (async
        on the loop, plain in a thread); what it raises is logged and changes nothing."""
        try:
            check_signals(signals)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None

        def register(hook: TaskHook) -> TaskHook:
            for name in signals:
                self.task_hooks.setdefault(name, []).append(hook)
            return hook

        return register

    def queue_for(self, task: Task | str, queue: str | None = None) -> str:
        """The queue a call goes to: the call's choice, the decorator's, a route, the default."""
        if queue is not None:
            return check_queue_name(queue)
        if isinstance(task, str):
            task = self.tasks.get(task, task)
        if isinstance(task, Task) and task.options.queue is not None:
            return task.options.queue
        name = task.name if isinstance(task, Task) else task
        for pattern, routed in self.settings.routes.items():
            if fnmatch.fnmatchcase(name, pattern):
                return check_queue_name(routed)
        return self.settings.default_queue

    def message(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        task_id: str | None = None,
        priority: int | None = None,
        delay: float = 0.0,
    ) -> TaskMessage:
        """Build the message for one call of task ``name`` without sending it.

        A registered task's arguments are checked against its signature (TypeError)
        and its declared queue and priority apply; any other name is sent as it is.
        """
        kwargs = dict(kwargs or {})
        task = self.tasks.get(name)
        if task is not None:
            task.check_arguments(args, kwargs)
            if priority is None:
                priority = task.options.priority
        return TaskMessage(
            id=task_id or new_task_id(),
            task=name,
            queue=self.queue_for(task or name, queue),
            args=list(args),
            kwargs=kwargs,
            priority=check_priority(priority),
            eta=time.time() + delay if delay else None,
        )

    def send_task(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[SendOptions],
    ) -> TaskHandle:
        """Queue a call of task ``name``; returns once the broker confirmed it.

        Also for producers that do not import the task's code. ``options`` are
        those of ``SendOptions``; a registered task's idempotency key function
        names the call when no ``idempotency_key`` is given.
        """
        unknown = options.keys() - SendOptions.__annotations__.keys()
        if unknown:
            raise TypeError(
                f"{name}: unknown send option(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(SendOptions.__annotations__)}"
            )
        delay = delay_seconds(options.get("countdown"), options.get("eta"))
        message = self.message(
            name,
            args,
            kwargs,
            queue=options.get("queue"),
            task_id=options.get("task_id"),
            priority=options.get("priority"),
            delay=delay,
        )
        message.headers.update(link_headers(self, options.get("link"), options.get("link_error")))
        task = self.tasks.get(name)
        key = options.get("idempotency_key")
        if key is None and task is not None and task.options.idempotency_key:
            key = str(task.options.idempotency_key(*message.args, **message.kwargs))
        if key is not None:
            window = task.options.idempotency_window if task is not None else None
            return self.publish_once(message, delay, key, window)
        self.publish([(message, delay)])
        return TaskHandle(message.id, name, message.queue, self)

    def publish(
        self,
        items: Sequence[tuple[TaskMessage, float]],
        events: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Publish (message, delay) pairs and wait for every confirm; raises PublishError.

        ``events`` go to the history recorder in the same batch (a workflow's shape).
        With OpenTelemetry, the publish is a span and each message carries its context.
        """
        with tracing.publishing([message for message, _ in items]):
            envelopes = [self.topology.envelope(message, delay) for message, delay in items]
            limit = self.settings.max_args_bytes
            for envelope, (message, _) in zip(envelopes, items, strict=True):
                if len(envelope.body) > limit:
                    raise PayloadTooLarge(
                        f"{message.task}: its arguments are {len(envelope.body):,} bytes of "
                        f"JSON, over the {limit:,}-byte limit (TASKCORE_MAX_ARGS_BYTES); store "
                        "the data elsewhere (a file, object storage, a database row) and pass "
                        "its key"
                    )
            envelopes += [self.topology.events_envelope(e["state"], [e]) for e in events]
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
        redis_key = self.keys.idempotency(key)
        ttl = int(window or self.settings.result_expires)
        client = self.redis
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
    def redis(self) -> redis.Redis:
        """This app's blocking Redis client (states, revocations, schedules, rate limits)."""
        if self._redis is None:
            self._redis = sync_client(self.settings)
        return self._redis

    @property
    def results(self) -> ResultStore:
        """Synchronous access to task states and results in Redis."""
        if self._results is None:
            self._results = ResultStore(self.settings, self.redis, self.keys)
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
        tz: str | None = None,
    ) -> Schedule:
        """Declare a periodic task: ``cron="0 2 * * *"`` or ``every=timedelta(minutes=5)``.

        ``tz`` is the IANA time zone the cron expression is read in (``"Europe/Berlin"``;
        default: the ``timezone`` setting, ``TASKCORE_TIMEZONE``, itself UTC by default).
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
            tz=self.settings.timezone if tz is None else tz,
        )
        self.schedules[name] = schedule
        return schedule

    def flush(self) -> None:
        """With confirms off: wait until every message sent so far was written to the broker."""
        self._publisher.flush()

    def close(self) -> None:
        """Close this process's broker and Redis connections (reopened when needed)."""
        self._publisher.close()
        if self._redis is not None:
            self._redis.close()
        self._redis = None
        self._results = None
