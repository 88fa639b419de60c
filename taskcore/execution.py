"""Processing one delivered message, from decoding to a settled outcome.

Every path ends in exactly one of: ack after success (state SUCCESS); ack
after a confirmed retry publish (RETRY); ack after a confirmed dead-letter
publish (FAILURE or DEAD); ack of a revoked or already-succeeded message
(REVOKED, or a logged skip); or no ack at all when the connection died, in
which case the broker delivers the message again.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Container
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import redis

from .broker import BrokerClient
from .context import TaskContext, reset_current, set_current
from .dead_letters import dead_letter_headers, short_traceback
from .errors import (
    DecodeError,
    EncodeError,
    PublishError,
    Reject,
    Retry,
    SoftTimeLimitExceeded,
    TaskRevoked,
)
from .events import EventPublisher
from .message import (
    H_ETA,
    H_RETRIES,
    Envelope,
    TaskMessage,
    decode,
    republish_headers,
    retries_of,
    to_ms,
)
from .message import republish_properties as properties_for
from .results import AsyncResultStore
from .states import State
from .topology import dead_queue

if TYPE_CHECKING:
    from .app import TaskApp
    from .message import ReceivedMessage
    from .task import Task

log = logging.getLogger("taskcore.worker")

#: A task still running after this many seconds has STARTED recorded.
STARTED_AFTER = 0.05
#: Dead-letter reasons that mean the task ran and failed (FAILURE); the rest are DEAD.
_FAILURE_REASONS = {"failed", "max-retries-exceeded"}


class UnknownTask(LookupError):
    """A message names a task this worker does not have."""


class TimeLimitExceeded(Exception):
    """A task ran past its hard ``time_limit`` and was stopped."""


class Running:
    """A task being run: its context and, for async tasks, the asyncio task running its body."""

    def __init__(self, context: TaskContext, task: Task, message: ReceivedMessage) -> None:
        self.context = context
        self.task = task
        self.message = message
        self.body: asyncio.Future[Any] | None = None
        self.stop_reason: BaseException | None = None
        #: Set when the message was settled on the task's behalf (hard limit, terminate).
        self.settled = False

    def stop(self, reason: BaseException) -> None:
        """Stop an async body now; a sync one is asked to stop (it sees is_cancelled/check)."""
        self.stop_reason = reason
        if isinstance(reason, TaskRevoked):
            self.context.cancelled.set()
        if self.body is not None:
            self.body.cancel()


class MessageHandler:
    """Runs tasks for a worker and settles their messages."""

    def __init__(
        self,
        app: TaskApp,
        client: BrokerClient,
        results: AsyncResultStore,
        executor: ThreadPoolExecutor,
        hostname: str,
        replace_process: Callable[[str], None] | None = None,
        events: EventPublisher | None = None,
        revoked: Container[str] = (),
    ) -> None:
        self.app = app
        self.client = client
        self.results = results
        self.executor = executor
        self.hostname = hostname
        #: Ends this worker process so its supervisor starts a fresh one (None: not supervised).
        self.replace_process = replace_process
        #: Where lifecycle events go (None: not published).
        self.events = events
        #: Task ids revoked before they ran (skipped when delivered).
        self.revoked = revoked
        #: Tasks running now, by task id.
        self.running: dict[str, Running] = {}
        self._background: set[asyncio.Task[Any]] = set()
        #: State changes recorded by this process, by (queue, state): for heartbeats.
        self.counts: Counter[tuple[str, str]] = Counter()

    def _spawn(self, coro: Any) -> None:
        """Run a coroutine in the background, keeping a reference until it is done."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def handle(self, message: ReceivedMessage, queue: str) -> None:
        """Process one message to a settled outcome."""
        try:
            call = decode(message, queue)
        except DecodeError as exc:
            await self.dead(message, queue, "undecodable", exc)
            return
        task = self.app.tasks.get(call.task)
        if task is None:
            error = UnknownTask(f"no task named {call.task!r} is registered in this worker")
            await self.dead(message, queue, "unknown-task", error)
            return
        try:
            task.check_arguments(call.args, call.kwargs)
        except TypeError as exc:
            await self.dead(message, queue, "invalid-arguments", exc)
            return
        if await self._skip(message, call):
            return
        await self._run(message, call, task)

    async def _skip(self, message: ReceivedMessage, call: TaskMessage) -> bool:
        """Ack without running: revoked before it ran, or already succeeded (a redelivery)."""
        if call.id in self.revoked:
            await self.record(call, State.REVOKED)
            log.info("task %s[%s] revoked: skipped", call.task, call.id)
        elif message.redelivered and await self._succeeded_before(call):
            log.info("task %s[%s] already succeeded: redelivery skipped", call.task, call.id)
        else:
            return False
        await self.settle(message, "ack")
        return True

    async def _succeeded_before(self, call: TaskMessage) -> bool:
        # Only a redelivered message can have run before: its worker may have
        # died between recording SUCCESS and acknowledging.
        try:
            return await self.results.state_of(call.id) == State.SUCCESS
        except redis.RedisError as exc:
            log.warning("cannot read state of %s from Redis (%s); running it", call.id, exc)
            return False

    async def _run(self, message: ReceivedMessage, call: TaskMessage, task: Task) -> None:
        loop = asyncio.get_running_loop()
        context = TaskContext(
            id=call.id,
            name=call.task,
            queue=call.queue,
            retries=call.retries,
            worker=self.hostname,
            report_progress=functools.partial(self._progress_from_any_thread, loop, call),
        )
        if task.soft_time_limit is not None:
            context.soft_deadline = time.monotonic() + task.soft_time_limit
        running = Running(context, task, message)
        self.running[call.id] = running
        details = {"attempts": call.retries + 1, "args": _summary(call)}
        started = time.monotonic()
        limits = self._arm_time_limits(loop, running, message)
        # Fast tasks go straight to their final state: STARTED is written only
        # for a task still running after STARTED_AFTER (one Redis write and one
        # event fewer per short task; measured in scripts/bench.py).
        limits.append(
            loop.call_later(
                STARTED_AFTER, lambda: self._spawn(self.record(call, State.STARTED, **details))
            )
        )
        try:
            try:
                result = await self._call(running, call)
                if not task.ignore_result:
                    _check_json(call.task, result)
            except Exception as exc:
                if not running.settled:
                    await self._settle_error(message, call, task, exc)
            else:
                if not running.settled:
                    runtime = time.monotonic() - started
                    fields: dict[str, Any] = {"runtime": round(runtime, 6), **details}
                    if not task.ignore_result:
                        fields["result"] = result
                    await self.record(call, State.SUCCESS, **fields)
                    await self.settle(message, "ack")
                    log.info("task %s[%s] succeeded in %.3fs", call.task, call.id, runtime)
        finally:
            for handle in limits:
                handle.cancel()
            self.running.pop(call.id, None)

    async def _settle_error(
        self, message: ReceivedMessage, call: TaskMessage, task: Task, exc: Exception
    ) -> None:
        if isinstance(exc, Retry):
            await self.retry(message, call, task, exc.countdown, exc.exc or exc)
        elif isinstance(exc, Reject):
            await self.dead(message, call.queue, "rejected", exc)
        elif isinstance(exc, TaskRevoked):
            await self.record(call, State.REVOKED)
            await self.settle(message, "ack")
        else:
            if not isinstance(exc, task.retry.autoretry_for):
                log.error("task %s[%s] failed: %r", call.task, call.id, exc)
            await self.retry_or_fail(message, call, task, exc)

    async def _call(self, running: Running, call: TaskMessage) -> Any:
        task = running.task
        token = set_current(running.context)
        try:
            if task.is_async:
                running.body = asyncio.ensure_future(task.fn(*call.args, **call.kwargs))
                try:
                    return await running.body
                except asyncio.CancelledError:
                    if running.stop_reason is None:
                        raise  # the worker itself is being cancelled (shutdown)
                    raise running.stop_reason from None
            context = contextvars.copy_context()
            function = functools.partial(context.run, task.fn, *call.args, **call.kwargs)
            current = asyncio.current_task()
            current.taskcore_in_thread = True  # type: ignore[union-attr]
            return await asyncio.get_running_loop().run_in_executor(self.executor, function)
        finally:
            reset_current(token)

    def _arm_time_limits(
        self,
        loop: asyncio.AbstractEventLoop,
        running: Running,
        message: ReceivedMessage,
    ) -> list[asyncio.TimerHandle]:
        """Schedule the soft and hard limits of a task; returns the timers to cancel."""
        task, handles = running.task, []
        if task.soft_time_limit is not None and task.is_async:
            error = SoftTimeLimitExceeded(f"soft time limit ({task.soft_time_limit}s) exceeded")
            handles.append(loop.call_later(task.soft_time_limit, running.stop, error))
        if task.time_limit is not None:
            handles.append(loop.call_later(task.time_limit, self._hard_limit, running, message))
        return handles

    def _hard_limit(self, running: Running, message: ReceivedMessage) -> None:
        limit = running.task.time_limit
        error = TimeLimitExceeded(f"time limit ({limit}s) exceeded")
        if running.task.is_async:
            running.stop(error)
            return
        # A thread cannot be stopped: end the process. The broker redelivers the
        # message, and the next worker counts the attempt as failed (see below).
        log.error(
            "task %s[%s] exceeded its time limit of %ss",
            running.context.name,
            running.context.id,
            limit,
        )
        self._spawn(self._end_process_for(running, message, error))

    async def _end_process_for(
        self, running: Running, message: ReceivedMessage, error: Exception
    ) -> None:
        running.settled = True
        call = decode(message, running.context.queue)
        if isinstance(error, TaskRevoked):
            await self.record(call, State.REVOKED)
            await self.settle(message, "ack")
        else:
            await self.retry_or_fail(message, call, running.task, error)
        if self.replace_process is None:
            log.error("not running under a supervisor: the task's thread keeps running")
            return
        self.replace_process(f"{type(error).__name__} in task {running.context.id}")

    async def retry_or_fail(
        self, message: ReceivedMessage, call: TaskMessage, task: Task, error: Exception
    ) -> None:
        """Apply the task's retry policy to an error."""
        if isinstance(error, task.retry.autoretry_for):
            await self.retry(message, call, task, None, error)
        else:
            await self.dead(message, call.queue, "failed", error)

    def terminate(self, task_id: str) -> bool:
        """Stop a running task at once (revoke with terminate); False if it is not running here."""
        running = self.running.get(task_id)
        if running is None:
            return False
        error = TaskRevoked(f"task {task_id} was revoked with terminate=True")
        running.stop(error)
        if not running.task.is_async:
            asyncio.get_running_loop().call_later(1.0, self._terminate_thread, running, task_id)
        return True

    def _terminate_thread(self, running: Running, task_id: str) -> None:
        if self.running.get(task_id) is running and not running.settled:  # still going after 1 s
            error = TaskRevoked(f"task {task_id} was revoked with terminate=True")
            self._spawn(self._end_process_for(running, running.message, error))

    # -- outcomes -----------------------------------------------------------

    async def retry(
        self,
        message: ReceivedMessage,
        call: TaskMessage,
        task: Task,
        countdown: float | None,
        error: BaseException,
    ) -> None:
        """Send the message round again through the delay cascade, or dead-letter it."""
        if call.retries >= task.retry.max_retries:
            await self.dead(message, call.queue, "max-retries-exceeded", error)
            return
        delay = countdown if countdown is not None else task.retry.delay(call.retries)
        headers = republish_headers(
            message, **{H_RETRIES: call.retries + 1, H_ETA: to_ms(time.time() + delay)}
        )
        exchange, routing_key = self.app.address(call.queue, delay)
        envelope = Envelope(exchange, routing_key, message.body, properties_for(message, headers))
        if await self.publish_or_requeue(envelope, message):
            log.warning(
                "task %s[%s] retry %d/%d in %.2fs: %r",
                call.task,
                call.id,
                call.retries + 1,
                task.retry.max_retries,
                delay,
                error,
            )
            await self.record(call, State.RETRY, error=_error(error), retry_in=round(delay, 3))
            await self.settle(message, "ack")

    async def dead(
        self, message: ReceivedMessage, queue: str, reason: str, error: BaseException
    ) -> None:
        """Publish the message to ``<queue>.dead`` with the reason headers, then ack it."""
        headers = dead_letter_headers(
            message, reason=reason, error=error, queue=queue, worker=self.hostname
        )
        envelope = Envelope(
            self.app.topology.dead_exchange,
            dead_queue(queue),
            message.body,
            properties_for(message, headers),
        )
        if await self.publish_or_requeue(envelope, message):
            log.warning(
                "message %s (%s) dead-lettered to %s: %s: %s",
                message.message_id,
                message.type,
                dead_queue(queue),
                reason,
                error,
            )
            if message.message_id:
                state = State.FAILURE if reason in _FAILURE_REASONS else State.DEAD
                await self._record_id(
                    message.message_id,
                    state,
                    task=message.type,
                    queue=queue,
                    worker=self.hostname,
                    error=_error(error),
                    reason=reason,
                    attempts=retries_of(message) + 1,
                )
            await self.settle(message, "ack")

    async def publish_or_requeue(self, envelope: Envelope, message: ReceivedMessage) -> bool:
        """Publish a retry or dead letter; on failure give the message back to the broker."""
        try:
            await self.client.publish([envelope])
            return True
        except PublishError as exc:
            log.error("could not settle message %s: %s; requeueing it", message.message_id, exc)
            await asyncio.sleep(1.0)  # do not spin on a broker that keeps refusing
            await self.settle(message, "requeue")
            return False

    async def settle(self, message: ReceivedMessage, how: str) -> None:
        """Ack or requeue; if the channel is gone, say so (the broker redelivers)."""
        try:
            if how == "ack":
                await message.ack()
            else:
                await message.nack(requeue=True)
        except Exception as exc:
            log.warning(
                "could not %s message %s (%s); the broker will deliver it again",
                how,
                message.message_id,
                exc,
            )

    # -- state --------------------------------------------------------------

    async def record(self, call: TaskMessage, state: State, **fields: Any) -> None:
        """Write a state change for a call (never fails the task: Redis trouble is logged)."""
        await self._record_id(
            call.id, state, task=call.task, queue=call.queue, worker=self.hostname, **fields
        )

    async def _record_id(self, task_id: str, state: State, **fields: Any) -> None:
        self.counts[(str(fields.get("queue")), str(state))] += 1
        if self.events is not None:
            self.events.emit(task_id, state, fields)
        try:
            await self.results.set_state(task_id, state, **fields)
        except redis.RedisError as exc:
            log.error("could not record %s for task %s in Redis: %s", state, task_id, exc)

    async def record_waiting(
        self, message: ReceivedMessage, queue: str, reason: str, until: float
    ) -> None:
        """State RECEIVED with what the message waits for and until when."""
        if message.message_id:
            await self._record_id(
                message.message_id,
                State.RECEIVED,
                task=message.type,
                queue=queue,
                worker=self.hostname,
                waiting=reason,
                run_at=until,
            )

    def _progress_from_any_thread(
        self, loop: asyncio.AbstractEventLoop, call: TaskMessage, progress: dict[str, Any]
    ) -> None:
        def schedule() -> None:
            self._spawn(self.record(call, State.PROGRESS, progress=progress))

        loop.call_soon_threadsafe(schedule)


def _error(error: BaseException) -> dict[str, Any]:
    return {
        "type": f"{type(error).__module__}.{type(error).__qualname__}",
        "message": str(error),
        "traceback": short_traceback(error),
    }


def _summary(call: TaskMessage, limit: int = 500) -> str:
    text = json.dumps({"args": call.args, "kwargs": call.kwargs}, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


def _check_json(task: str, result: Any) -> None:
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise EncodeError(f"the result of {task} is not JSON: {exc}") from None
