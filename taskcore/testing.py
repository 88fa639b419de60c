"""Test support: run tasks in this process (unit tests), or run a real worker and wait until
it has drained its queues (integration tests).

* ``run_in_process(app)``: while it is on, ``delay()``, ``apply_async()``, ``send_task()``,
  ``map()`` and workflows send nothing to RabbitMQ. Each message is encoded exactly as for
  the broker (JSON, size limit) and handed, before the call returns, to the worker's own
  message handler, which decodes it, checks its arguments against the signature, runs
  the task and settles it; a retry runs again at once instead of after its wait. States
  and results go to Redis as a worker writes them, so handles work; what the runs wrote
  there is deleted on exit.
* ``start_worker(app, queues)`` starts a real ``taskcore worker`` on the app's broker;
  ``join(app, queues)`` waits until those queues are drained.

The pytest fixtures (``taskcore_in_process``, ``taskcore_worker``) are in
``taskcore.pytest_plugin``. This module does not import pytest.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
from pamqp.commands import Basic

from .app import TaskApp
from .errors import ConfigurationError, DecodeError, TaskcoreError
from .execution import MessageHandler
from .listeners import StateChanges
from .message import H_IDEMPOTENCY_KEY, H_QUEUE, Envelope, decode, due_at
from .outcomes import Outcomes
from .redis_clients import async_client
from .results import AsyncResultStore
from .signals import TaskSignals
from .states import State
from .task import Task
from .task_threads import TaskThreads
from .testing_workers import (  # noqa: F401 - public here
    WorkerProcess,
    app_spec,
    delete_queues,
    join,
    load_app,
    queue_depths,
    start_worker,
)
from .workflows import H_CHORD, chord_keys

log = logging.getLogger("taskcore.testing")

#: Set to ``1`` to allow ``run_in_process`` outside pytest.
ALLOW_ENV = "TASKCORE_ALLOW_IN_PROCESS"
#: The worker name that states recorded in-process carry.
IN_PROCESS_WORKER = "in-process"
#: Seconds the in-process handler waits for what runs beside it before cancelling it.
BACKGROUND_WAIT = 10.0
#: States that end an attempt.
_ATTEMPT_ENDS = {State.RETRY, State.SUCCESS, State.FAILURE, State.DEAD, State.REVOKED}


# -- what the in-process runs did ---------------------------------------------------------


@dataclass
class Attempt:
    """One attempt of a task and how the worker's handler settled it."""

    number: int
    state: State
    #: ``{"type", "message", "traceback"}`` for RETRY, FAILURE and DEAD, as stored in Redis.
    error: dict[str, Any] | None = None
    #: RETRY only: the seconds a real worker would have waited before the next attempt.
    retry_in: float | None = None


@dataclass
class RecordedCall:
    """A task message sent while in-process mode was on, and what became of it."""

    id: str
    task: str | None
    queue: str | None
    #: The arguments as the worker decoded them (None if it could not).
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    #: Seconds the message was to wait (countdown, eta); in-process it does not wait.
    delay: float = 0.0
    state: State = State.PENDING
    #: The return value after its JSON round trip, as ``handle.get()`` gives it.
    result: Any = None
    #: The last attempt's error, and the dead-letter reason (``failed``,
    #: ``max-retries-exceeded``, ``rejected``, ``invalid-arguments``, ...).
    error: dict[str, Any] | None = None
    reason: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    #: Every progress report the handler wrote (``{"current", "total", "message"}``).
    progress: list[dict[str, Any]] = field(default_factory=list)


class RecordedCalls(Sequence[RecordedCall]):
    """Every task message sent while in-process mode was on, in the order sent: calls, the
    next steps of chains, callbacks. A retry is an attempt of its call, not a new call."""

    def __init__(self) -> None:
        self._calls: list[RecordedCall] = []
        self._by_id: dict[str, RecordedCall] = {}

    def __getitem__(self, index: Any) -> Any:
        return self._calls[index]

    def __len__(self) -> int:
        return len(self._calls)

    def __repr__(self) -> str:
        return f"RecordedCalls({self._calls!r})"

    def named(self, task: Task | str) -> list[RecordedCall]:
        """The calls of one task (a Task or its name)."""
        name = task.name if isinstance(task, Task) else task
        return [call for call in self._calls if call.task == name]

    def _record(self, task_id: str, task: str | None, queue: str | None) -> RecordedCall:
        call = self._by_id.get(task_id)
        if call is None:
            call = self._by_id[task_id] = RecordedCall(task_id, task, queue)
            self._calls.append(call)
        return call

    def _sent(self, message: _Delivery, queue: str) -> None:
        if message.message_id in self._by_id:
            return  # a retry's copy: another attempt of a call already recorded
        call = self._record(message.message_id or "", message.type, queue)
        try:
            decoded = decode(message, queue)
        except DecodeError:
            return
        call.args, call.kwargs = decoded.args, decoded.kwargs
        due = due_at(message.headers)
        call.delay = round(max(0.0, due - time.time()), 3) if due is not None else 0.0

    def on_state(self, task_id: str, state: State, fields: dict[str, Any]) -> None:
        """The handler's state listener: note each change of the call it concerns."""
        call = self._record(task_id, fields.get("task"), fields.get("queue"))
        if state == State.PROGRESS:
            call.progress.append(fields.get("progress") or {})
        call.state = state
        if state in _ATTEMPT_ENDS:
            error = fields.get("error")
            number = len(call.attempts) + 1
            call.attempts.append(Attempt(number, state, error, fields.get("retry_in")))
            call.error = error
            call.reason = fields.get("reason")
        if state == State.SUCCESS and "result" in fields:
            call.result = json.loads(json.dumps(fields["result"], default=str))


# -- the in-process mode --------------------------------------------------------------------


class InProcessRefused(TaskcoreError, RuntimeError):
    """``run_in_process`` was asked for outside tests."""


def in_process_allowed() -> bool:
    """True under pytest, or with ``TASKCORE_ALLOW_IN_PROCESS=1``."""
    return (
        "PYTEST_CURRENT_TEST" in os.environ
        or "pytest" in sys.modules
        or os.environ.get(ALLOW_ENV) == "1"
    )


@contextmanager
def run_in_process(app: TaskApp) -> Iterator[RecordedCalls]:
    """Run ``app``'s tasks in this process, at once, instead of sending them to RabbitMQ.

    Yields the ``RecordedCalls``. Everything is restored on exit (a ``configure()``
    inside the block keeps the mode on), and the Redis keys the runs wrote (states,
    idempotency and chord keys) are deleted: read handles inside the block.
    Refuses (InProcessRefused) outside pytest unless ``TASKCORE_ALLOW_IN_PROCESS=1``.
    """
    if not in_process_allowed():
        raise InProcessRefused(
            "taskcore.testing.run_in_process() runs tasks in this process instead of sending "
            "them to RabbitMQ, so it only switches on under pytest. Use it in tests (or the "
            f"taskcore_in_process fixture); to allow it elsewhere set {ALLOW_ENV}=1 "
            "(never in production)"
        )
    if isinstance(app._publisher, _InProcessPublisher):
        raise ConfigurationError(f"{app!r} already runs its tasks in-process")
    publisher = _InProcessPublisher(app, RecordedCalls(), app._publisher)

    def use(settings: Any) -> None:  # app.configure() builds a new publisher: ours stays
        TaskApp._use(app, settings)
        publisher.real = app._publisher
        app._publisher = publisher  # type: ignore[assignment]

    app._publisher = publisher  # type: ignore[assignment]
    vars(app)["_use"] = use
    log.warning(
        "tasks run in-process: nothing is sent to RabbitMQ (%r, taskcore.testing.run_in_process)",
        app,
    )
    try:
        yield publisher.calls
    finally:
        del vars(app)["_use"]
        app._publisher = publisher.real
        publisher.forget()


@dataclass
class _Delivery:
    """A published envelope as the worker's handler reads a delivered message."""

    body: bytes
    headers: dict[str, Any]
    message_id: str | None
    type: str | None
    content_type: str | None = None
    content_encoding: str | None = None
    priority: int | None = None
    correlation_id: str | None = None
    timestamp: datetime | None = None
    app_id: str | None = None
    redelivered: bool = False
    settled: str | None = None

    @classmethod
    def of(cls, envelope: Envelope) -> _Delivery:
        p: Basic.Properties = envelope.properties
        return cls(
            envelope.body,
            dict(p.headers or {}),
            p.message_id,
            p.message_type,
            p.content_type,
            p.content_encoding,
            p.priority,
            p.correlation_id,
            p.timestamp,
            p.app_id,
        )

    async def ack(self) -> None:
        self.settled = "ack"

    async def nack(self, requeue: bool = True) -> None:
        self.settled = "requeue" if requeue else "reject"


#: The messages still to run in this context, and whose publisher sent each. Set while
#: they run, so that what a running task sends waits for it to end (as on a busy worker).
_pending: contextvars.ContextVar[deque[tuple[_InProcessPublisher, _Delivery]] | None] = (
    contextvars.ContextVar("taskcore_in_process_pending", default=None)
)


class _InProcessPublisher:
    """Stands in for the app's SyncPublisher (``TaskApp.publish`` ends in it): runs each
    task message with the worker's handler instead of sending it."""

    def __init__(self, app: TaskApp, calls: RecordedCalls, real: Any) -> None:
        self.app = app
        self.calls = calls
        #: The app's own publisher, put back on exit (flush and close go to it).
        self.real = real
        self.idempotency_keys: set[str] = set()
        self.chords: set[str] = set()

    def publish(self, envelopes: Sequence[Envelope], queues: Iterable[str] = ()) -> None:
        runs = [(self, message) for message in self.take(envelopes)]
        pending = _pending.get()
        if pending is not None:  # sent by a running task: runs once that task is done
            pending.extend(runs)
        else:
            _run_all(deque(runs))

    def take(self, envelopes: Sequence[Envelope]) -> Iterator[_Delivery]:
        """The task messages among ``envelopes``, recorded; dead letters and history
        events are left out (a dead letter's state is recorded by the handler)."""
        topology = self.app.topology
        for envelope in envelopes:
            if envelope.exchange in (topology.dead_exchange, topology.events_exchange):
                continue
            message = _Delivery.of(envelope)
            headers = message.headers
            if H_IDEMPOTENCY_KEY in headers:
                self.idempotency_keys.add(headers[H_IDEMPOTENCY_KEY])
            if H_CHORD in headers:
                self.chords.add(json.loads(headers[H_CHORD])["id"])
            self.calls._sent(message, self.queue_of(message))
            yield message

    def queue_of(self, message: _Delivery) -> str:
        return str(message.headers.get(H_QUEUE) or self.app.settings.default_queue)

    def flush(self) -> None:
        self.real.flush()

    def close(self) -> None:
        self.real.close()

    def forget(self) -> None:
        """Delete what the runs wrote to Redis: states, idempotency keys, chord keys."""
        keys = self.app.keys
        names = [keys.task(call.id) for call in self.calls]
        names += [keys.idempotency(key) for key in self.idempotency_keys]
        names += [name for chord in self.chords for name in chord_keys(keys.namespace, chord)]
        if not names:
            return
        try:
            self.app.redis.delete(*names)
        except redis.RedisError as exc:
            log.warning("could not delete the in-process runs' Redis keys: %s", exc)


class _LoopBack:
    """Stands in for the worker's BrokerClient: what the handler publishes (a retry's
    copy, the next step of a chain, a chord's callback, a link_error) is run next."""

    def __init__(self, publisher: _InProcessPublisher) -> None:
        self.publisher = publisher

    async def publish(self, envelopes: Sequence[Envelope], queues: Iterable[str] = ()) -> None:
        pending = _pending.get()
        assert pending is not None, "the handler publishes only while messages run"
        pending.extend((self.publisher, message) for message in self.publisher.take(envelopes))


class _Handler:
    """The worker's MessageHandler for one app, on this run's event loop."""

    def __init__(self, publisher: _InProcessPublisher) -> None:
        app = self.app = publisher.app
        self.redis = async_client(app.settings)
        self.results = AsyncResultStore(app.settings, self.redis, app.keys)
        states = StateChanges(IN_PROCESS_WORKER)
        states.listen(self.results.on_state)
        states.listen(publisher.calls.on_state)
        self.signals = TaskSignals(app.task_hooks) if app.task_hooks else None
        if self.signals is not None:
            states.listen(self.signals)
        # Plain tasks run in a thread of their own, as in a worker: they do not see the
        # caller's thread-bound state (a request's database session, say).
        self.threads = TaskThreads(1, "taskcore-in-process")
        outcomes = Outcomes(_LoopBack(publisher), app.topology, states)  # type: ignore[arg-type]
        self.handler = MessageHandler(app, outcomes, self.results, self.threads)

    async def close(self) -> None:
        if self.signals is not None:
            await self.signals.drain()
        await self.results.close()
        await self.redis.aclose()
        self.threads.shutdown(wait=True)


def _run_all(pending: deque[tuple[_InProcessPublisher, _Delivery]]) -> None:
    """Run ``pending`` and whatever it sends, each to its outcome, on an event loop of
    its own; returns when nothing is left."""
    # A fresh context: tasks see none of the caller's context variables (Flask's app and
    # request, the current task), as in a worker.
    context = contextvars.Context()
    context.run(_pending.set, pending)

    def run() -> None:
        with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
            runner.run(_handle_all(pending), context=context)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        run()
    else:  # called from a coroutine: its loop cannot run another one in this thread
        with ThreadPoolExecutor(1, thread_name_prefix="taskcore-in-process-loop") as pool:
            pool.submit(run).result()


async def _handle_all(pending: deque[tuple[_InProcessPublisher, _Delivery]]) -> None:
    handlers: dict[_InProcessPublisher, _Handler] = {}
    try:
        while pending:
            publisher, message = pending.popleft()
            if publisher not in handlers:
                handlers[publisher] = _Handler(publisher)
            await handlers[publisher].handler.handle(message, publisher.queue_of(message))
            await _others_done()  # the handler's background reports
    finally:
        await _others_done()
        for handler in handlers.values():
            await handler.close()


async def _others_done() -> None:
    """Wait for what runs beside the handler (its state reports, hooks); cancel whatever
    is still running after BACKGROUND_WAIT seconds (an endless task a task started)."""
    current = asyncio.current_task()
    deadline = time.monotonic() + BACKGROUND_WAIT
    while others := {task for task in asyncio.all_tasks() if task is not current}:
        _, running = await asyncio.wait(others, timeout=max(0.0, deadline - time.monotonic()))
        if running:
            log.warning("cancelling %d task(s) still running in-process: %s", len(running), running)
            for task in running:
                task.cancel()
            await asyncio.wait(running)
            return
