"""Processing one delivered message, from decoding to a settled outcome.

Every path ends in exactly one of: ack after success (state SUCCESS); ack
after a confirmed retry publish (RETRY); ack after a confirmed dead-letter
publish (FAILURE or DEAD); ack of a revoked or already-succeeded message
(REVOKED, or a logged skip); or no ack at all when the connection died, in
which case the broker delivers the message again. A task still running at half
the broker's consumer_timeout has its delivery acked early and a lease in its
place (leases.py): the same paths then end by settling the lease.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import time
from collections.abc import Callable, Container
from typing import TYPE_CHECKING, Any

import redis

from . import tracing
from .context import TaskContext, reset_current, set_current
from .deadlines import Deadline, FixedDelayTimers
from .delivery import Delivery
from .errors import (
    DecodeError,
    EncodeError,
    PayloadTooLarge,
    Reject,
    Retry,
    SoftTimeLimitExceeded,
    TaskRevoked,
    TimeLimitExceeded,
)
from .leases import H_LEASE, Lease, Leases
from .message import H_RESENT, TaskMessage, decode, due_at
from .outcomes import settle
from .states import State
from .task_threads import TaskThreads
from .workflows import CLAIM_CHORD, H_CHAIN, H_CHORD, chord_body, chord_keys, next_step

if TYPE_CHECKING:
    from .app import TaskApp
    from .listeners import StateChanges
    from .message import ReceivedMessage
    from .outcomes import Outcomes
    from .results import AsyncResultStore
    from .task import Task

log = logging.getLogger("taskcore.worker")

#: A task still running after this many seconds has STARTED recorded.
STARTED_AFTER = 0.05


class UnknownTask(LookupError):
    """A message names a task this worker does not have."""


class ActiveTask:
    """A task being run: its context and, for async tasks, the asyncio task running its body."""

    def __init__(self, context: TaskContext, task: Task, message: ReceivedMessage) -> None:
        self.context = context
        self.task = task
        self.message = message
        self.body: asyncio.Future[Any] | None = None
        self.stop_reason: BaseException | None = None
        #: Set when the handler settled the message for the task (hard limit, terminate):
        #: whatever the task's body returns or raises afterwards is ignored.
        self.taken_over = False
        #: Set (by ``_end_reports``) before the final state is written: a STARTED or
        #: PROGRESS report not yet made is skipped, so none lands after the final state.
        self.finished = False
        #: The last progress the task reported and its number (set in the task's thread,
        #: progress first); ``progress_written`` is the number last written to Redis.
        self.progress: dict[str, Any] | None = None
        self.progress_reported = 0
        self.progress_written = 0
        #: STARTED was reported (by its timer or before the first progress report).
        self.started_reported = False
        #: Orders this task's STARTED and PROGRESS reports.
        self.reporting = asyncio.Lock()
        #: What the STARTED report carries (attempts, arguments, queue wait).
        self.details: dict[str, Any] = {}
        #: Set when the handler is done with the task (its outcome recorded, or not).
        self.done = asyncio.Event()
        #: Hands the delivery over to a lease if the task outlives half the consumer timeout.
        self.lease: Lease | None = None

    def stop(self, reason: BaseException) -> None:
        """Stop an async body now; a sync one is asked to stop (it sees is_cancelled/check)."""
        self.stop_reason = reason
        if isinstance(reason, TaskRevoked):
            self.context.cancelled.set()
        if self.body is not None:
            self.body.cancel()


class MessageHandler:
    """Runs tasks for a worker; their outcomes are settled through ``Outcomes``."""

    def __init__(
        self,
        app: TaskApp,
        outcomes: Outcomes,
        results: AsyncResultStore,
        threads: TaskThreads,
        replace_process: Callable[[str], None] | None = None,
        revoked: Container[str] = (),
    ) -> None:
        self.app = app
        self.outcomes = outcomes
        #: Every state change goes here; its listeners store, publish and count it.
        self.states: StateChanges = outcomes.states
        self.results = results
        #: Where plain-function tasks run.
        self.threads = threads
        #: Ends this worker process so its supervisor starts a fresh one (None: not supervised).
        self.replace_process = replace_process
        #: Task ids revoked before they ran (skipped when delivered).
        self.revoked = revoked
        #: Tasks running now, by task id.
        self.active: dict[str, ActiveTask] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self.leases = Leases(
            app.settings,
            results.redis,
            results.keys,
            outcomes.client,
            outcomes.topology,
            self.states.worker,
        )
        self.leases.announce(app.tasks.values())
        self._started_timers = FixedDelayTimers(STARTED_AFTER)

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
            await self.outcomes.dead(message, queue, "undecodable", exc)
            return
        task = self.app.tasks.get(call.task)
        if task is None:
            error = UnknownTask(f"no task named {call.task!r} is registered in this worker")
            await self.outcomes.dead(message, queue, "unknown-task", error)
            return
        try:
            task.check_arguments(call.args, call.kwargs)
        except TypeError as exc:
            await self.outcomes.dead(message, queue, "invalid-arguments", exc)
            return
        if H_LEASE in call.headers and isinstance(message, Delivery):
            if await self.leases.check(message, call.queue):
                return  # a lease's check copy: its task ended, or still runs elsewhere
            call.headers = dict(message.headers)  # unmarked: from here on a redelivery
        if await self._skip(message, call):
            return
        await self._run(message, call, task)

    async def _skip(self, message: ReceivedMessage, call: TaskMessage) -> bool:
        """Ack without running: revoked before it ran, or already succeeded (a redelivered
        message, or a copy its sender published again after losing the confirm)."""
        if call.id in self.revoked:
            await self.states.report_call(call, State.REVOKED)
            log.info("task %s[%s] revoked: skipped", call.task, call.id)
        elif (message.redelivered or H_RESENT in call.headers) and await self._succeeded_before(
            call
        ):
            log.info("task %s[%s] already succeeded: second copy skipped", call.task, call.id)
            if H_CHORD in call.headers:  # the callback may still be owed
                await self._settle_success(message, call, None)
                return True
            if H_CHAIN in call.headers:  # the hand-over to the next step may be owed
                await self._settle_success(message, call, await self.results.result_of(call.id))
                return True
        else:
            return False
        await settle(message, "ack")
        return True

    async def _settle_success(
        self, message: ReceivedMessage, call: TaskMessage, result: Any
    ) -> None:
        """Ack a task that succeeded. A chain step first hands over to the next step; the
        chord member that completes its chord first publishes the callback."""
        if H_CHORD in call.headers:
            chord = json.loads(call.headers[H_CHORD])
            keys = chord_keys(self.results.keys.namespace, chord["id"])
            callback = await self._chord_callback(call, chord, keys)
            if callback is None:
                await settle(message, "ack")
            elif await self.outcomes.hand_over(message, callback):
                await self._chord_published(chord["id"], keys)
            return
        following = next_step(call, result)
        if following is None:
            await settle(message, "ack")
        else:
            await self.outcomes.hand_over(message, following)

    async def _chord_callback(
        self, call: TaskMessage, chord: dict[str, Any], keys: list[str]
    ) -> TaskMessage | None:
        """The chord's callback message if this member completes the chord and holds its
        claim (None otherwise: other members are still to finish, or another published)."""
        members = chord["members"]
        claimed = await self.results.redis.eval(
            CLAIM_CHORD, len(keys), *keys, call.id, len(members), self.results.expires
        )
        if not claimed:
            return None
        results = await asyncio.gather(*(self.results.result_of(m) for m in members))
        return chord_body(chord, list(results))

    async def _chord_published(self, chord_id: str, keys: list[str]) -> None:
        try:
            await self.results.redis.set(keys[2], 1, ex=self.results.expires)
        except redis.RedisError as exc:  # the claim stays ours: a redelivery publishes again
            log.warning("could not mark chord %s published: %s", chord_id, exc)

    async def _succeeded_before(self, call: TaskMessage) -> bool:
        # Only a redelivered or resent message can have run before: its worker may
        # have died, or lost its connection, between recording SUCCESS and acking.
        earlier = self.active.get(call.id)
        if earlier is not None:
            # The first copy still runs here: the connection it came on is gone,
            # so the broker handed the message out again. Wait for its outcome.
            await earlier.done.wait()
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
            worker=self.states.worker,
            report_progress=functools.partial(self._progress_from_any_thread, loop, call),
        )
        options = task.options
        if options.soft_time_limit is not None:
            context.soft_deadline = time.monotonic() + options.soft_time_limit
        running = ActiveTask(context, task, message)
        self.active[call.id] = running
        details = running.details
        details.update(attempts=call.retries + 1, args=_summary(call))
        due = due_at(call.headers)
        if due is not None:  # publish (or end of delay) to start, for the performance view
            details["queue_wait"] = round(max(0.0, time.time() - due), 6)
        started = time.monotonic()
        limits = self._arm_time_limits(loop, running, message, call)
        # Fast tasks go straight to their final state: STARTED is written only
        # for a task still running after STARTED_AFTER (one Redis write and one
        # event fewer per short task; measured in scripts/bench.py).
        limits.append(self._started_timers.call_later(self._spawn_started, running, call))
        try:
            try:
                with tracing.running(call.task, call.id, call.headers):
                    try:
                        result = await self._call(running, call)
                    finally:
                        await self._end_reports(running, call)
                if not options.ignore_result:
                    _check_result(call.task, result, self.app.settings.max_result_bytes)
            except Exception as exc:
                if not running.taken_over:
                    await self._settle_error(message, call, task, exc)
                    await self._end_lease(running)
            else:
                if not running.taken_over:
                    runtime = time.monotonic() - started
                    fields: dict[str, Any] = {"runtime": round(runtime, 6), **details}
                    if not options.ignore_result:
                        fields["result"] = result
                    await self.states.report_call(call, State.SUCCESS, **fields)
                    await self._settle_success(message, call, result)
                    await self._end_lease(running)
                    log.debug("task %s[%s] succeeded in %.3fs", call.task, call.id, runtime)
        finally:
            for handle in limits:
                handle.cancel()
            if running.lease is not None:
                running.lease.stop()  # no outcome (cancelled at shutdown): the lease lapses
            self.active.pop(call.id, None)
            running.done.set()

    def _spawn_started(self, running: ActiveTask, call: TaskMessage) -> None:
        self._spawn(self._report_started(running, call))

    async def _report_started(self, running: ActiveTask, call: TaskMessage) -> None:
        # Runs a loop iteration after the timer fired: by then the body may have ended and
        # its final state be on its way to Redis; a STARTED written after it would stick.
        async with running.reporting:
            if not running.finished and not running.started_reported:
                running.started_reported = True
                await self.states.report_call(call, State.STARTED, **running.details)

    async def _report_progress(self, running: ActiveTask, call: TaskMessage) -> None:
        async with running.reporting:
            if not running.finished:  # else _end_reports wrote it, before the final state
                await self._write_progress(running, call)

    async def _write_progress(self, running: ActiveTask, call: TaskMessage) -> None:
        # Under running.reporting. Writes the latest progress once, however many reports
        # were made since the last write.
        number = running.progress_reported
        if number == running.progress_written:
            return
        if not running.started_reported:  # STARTED first, so that its time is kept
            running.started_reported = True
            await self.states.report_call(call, State.STARTED, **running.details)
        await self.states.report_call(call, State.PROGRESS, progress=running.progress)
        running.progress_written = number

    async def _end_reports(self, running: ActiveTask, call: TaskMessage) -> None:
        """Before the final state: finish a STARTED or PROGRESS write under way, write
        the progress reported last if it was not, and make later reports no-ops (Redis
        keeps the last write, so a late PROGRESS would hide the final state)."""
        async with running.reporting:
            if not running.finished:
                running.finished = True
                await self._write_progress(running, call)

    async def _settle_error(
        self, message: ReceivedMessage, call: TaskMessage, task: Task, exc: Exception
    ) -> None:
        outcomes = self.outcomes
        if isinstance(exc, Retry):
            await outcomes.retry(
                message, call, task.options, exc.countdown, exc.exc or exc, exc.max_retries
            )
        elif isinstance(exc, Reject):
            await outcomes.dead(message, call.queue, "rejected", exc)
        elif isinstance(exc, TaskRevoked):
            await self.states.report_call(call, State.REVOKED)
            await settle(message, "ack")
        else:
            if not isinstance(exc, task.options.autoretry_for):
                log.error("task %s[%s] failed: %r", call.task, call.id, exc)
            await outcomes.retry_or_fail(message, call, task.options, exc)

    async def _call(self, running: ActiveTask, call: TaskMessage) -> Any:
        task = running.task
        running.context.call = call  # for self.request (bound tasks)
        running.context.redelivered = bool(running.message.redelivered)
        token = set_current(running.context)
        try:
            if task.is_async:
                running.body = asyncio.ensure_future(task.run(*call.args, **call.kwargs))
                try:
                    return await running.body
                except asyncio.CancelledError:
                    if running.stop_reason is None:
                        raise  # the worker itself is being cancelled (shutdown)
                    raise running.stop_reason from None
            context = contextvars.copy_context()
            function = functools.partial(context.run, task.run, *call.args, **call.kwargs)
            current = asyncio.current_task()
            current.taskcore_in_thread = True  # type: ignore[union-attr]
            return await self.threads.run(function)
        finally:
            reset_current(token)

    def _arm_time_limits(
        self,
        loop: asyncio.AbstractEventLoop,
        running: ActiveTask,
        message: ReceivedMessage,
        call: TaskMessage,
    ) -> list[asyncio.TimerHandle | Deadline]:
        """Schedule the soft and hard limits of a task, and the hand-over of its delivery
        to a lease; returns the timers to cancel."""
        task, handles = running.task, []
        soft, hard = task.options.soft_time_limit, task.options.time_limit
        if soft is not None and task.is_async:
            error = SoftTimeLimitExceeded(f"soft time limit ({soft}s) exceeded")
            handles.append(loop.call_later(soft, running.stop, error))
        if hard is not None:
            handles.append(loop.call_later(hard, self._hard_limit, running, message))
        if self.leases.enabled and isinstance(message, Delivery):
            running.lease = self.leases.lease_for(message, call)  # watched until it ends
        return handles

    async def _end_lease(self, running: ActiveTask) -> None:
        """After the outcome is recorded: a handed-over task's check copy is to be dropped."""
        if running.lease is not None:
            await running.lease.end()

    def _hard_limit(self, running: ActiveTask, message: ReceivedMessage) -> None:
        limit = running.task.options.time_limit
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
        self, running: ActiveTask, message: ReceivedMessage, error: Exception
    ) -> None:
        running.taken_over = True
        call = decode(message, running.context.queue)
        await self._end_reports(running, call)
        if isinstance(error, TaskRevoked):
            await self.states.report_call(call, State.REVOKED)
            await settle(message, "ack")
        else:
            await self.outcomes.retry_or_fail(message, call, running.task.options, error)
        await self._end_lease(running)
        if self.replace_process is None:
            log.error("not running under a supervisor: the task's thread keeps running")
            return
        self.replace_process(f"{type(error).__name__} in task {running.context.id}")

    def terminate(self, task_id: str) -> bool:
        """Stop a running task at once (revoke with terminate); False if it is not running here."""
        running = self.active.get(task_id)
        if running is None:
            return False
        error = TaskRevoked(f"task {task_id} was revoked with terminate=True")
        running.stop(error)
        if not running.task.is_async:
            asyncio.get_running_loop().call_later(1.0, self._terminate_thread, running, task_id)
        return True

    def _terminate_thread(self, running: ActiveTask, task_id: str) -> None:
        if self.active.get(task_id) is running and not running.taken_over:  # still going after 1 s
            error = TaskRevoked(f"task {task_id} was revoked with terminate=True")
            self._spawn(self._end_process_for(running, running.message, error))

    def _progress_from_any_thread(
        self, loop: asyncio.AbstractEventLoop, call: TaskMessage, progress: dict[str, Any]
    ) -> None:
        # Runs in the task's thread (or, for an async task, in the loop).
        running = self.active.get(call.id)
        if running is None:
            return
        running.progress = progress
        running.progress_reported += 1  # after the value: a reader seeing it sees the value

        def schedule() -> None:
            self._spawn(self._report_progress(running, call))

        loop.call_soon_threadsafe(schedule)


def _summary(call: TaskMessage, limit: int = 500) -> str:
    text = json.dumps({"args": call.args, "kwargs": call.kwargs}, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


def _check_result(task: str, result: Any, limit: int) -> None:
    """EncodeError unless ``result`` is JSON; PayloadTooLarge if its JSON is over ``limit``."""
    try:
        size = len(json.dumps(result, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise EncodeError(f"the result of {task} is not JSON: {exc}") from None
    if size > limit:
        raise PayloadTooLarge(
            f"the result of {task} is {size:,} bytes of JSON, over the {limit:,}-byte "
            "limit (TASKCORE_MAX_RESULT_BYTES): store it elsewhere and return its key"
        )
