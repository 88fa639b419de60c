"""The worker: consume task messages, run them, and settle each message once its outcome is safe.

A message is acknowledged only after its outcome is durable: the task
returned, or its retry (through the delay cascade) or its dead letter was
confirmed by the broker. A crash at any point before that leaves the message
unacknowledged, and the broker delivers it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from aio_pika.abc import AbstractChannel, AbstractConnection
from aiormq.abc import AbstractChannel as RawChannel
from aiormq.abc import DeliveredMessage

from . import delays
from .aio import wait_any
from .broker import CONNECTION_ERRORS, BrokerClient, connect, connected_to
from .control import OutcomeCounts, WorkerControl, WorkerSnapshot
from .delivery import Acker, Delivery
from .errors import ConfigurationError, PublishError, WorkerStartFailed
from .events import EventPublisher
from .execution import MessageHandler
from .hooks import run_start_hooks, run_stop_hooks
from .leases import H_LEASE
from .listeners import StateChanges
from .logs import add_task_fields
from .outcomes import Outcomes, settle
from .rate_gate import RateGate
from .ratelimit import RateLimiter
from .redis_clients import async_client
from .results import AsyncResultStore
from .revocations import RevocationList
from .signals import TaskSignals
from .task_threads import TaskThreads
from .topology import check_queue_name

if TYPE_CHECKING:
    from .app import TaskApp
    from .metrics import WorkerMetrics

log = logging.getLogger(__name__)


#: Messages prefetched per task slot: one running, one ready to start when it ends.
PREFETCH_PER_SLOT = 2
#: Above this --concurrency, plain-function tasks on the consumed queues get a warning:
#: each may hold a thread (about 16 KiB resident and 0.8 ms to start here; the GIL runs
#: one at a time), and waiting tasks want ``async def``.
SYNC_THREADS_WARN = 256
#: Above this, a worker with plain-function tasks on its queues refuses to start.
SYNC_THREADS_MAX = 2048
#: Seconds between a ``--burst`` worker's looks at its queues; two empty looks in a row end it.
BURST_CHECK = 0.5
#: Seconds a starting worker waits for the revocation list before consuming without it.
REVOCATIONS_WAIT = 5.0


def default_hostname() -> str:
    """``taskcore-<pid>@<host>``: unique per process, readable in logs and the console."""
    return f"taskcore-{os.getpid()}@{socket.gethostname()}"


class Worker:
    """Consumes ``queues`` and runs up to ``concurrency`` tasks at a time.

    ``async def`` tasks run on the worker's event loop; plain functions run in
    a pool of ``concurrency`` threads. Each queue's consumer has a prefetch
    of ``PREFETCH_PER_SLOT * concurrency`` and at most ``concurrency`` tasks run
    at once; messages beyond that wait, unacknowledged, for a slot, so a slot
    that frees up does not wait for the broker's next delivery. (Channel-wide "global"
    prefetch would bound the total, but quorum queues refuse it and RabbitMQ 4
    deprecates it.)
    """

    def __init__(
        self,
        app: TaskApp,
        queues: Sequence[str] | None = None,
        *,
        concurrency: int = 8,
        grace_period: float = 30.0,
        hostname: str | None = None,
        supervised: bool = False,
        max_tasks: int | None = None,
        metrics: bool = False,
        burst: bool = False,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.app = app
        self.queues = [check_queue_name(q) for q in (queues or [app.settings.default_queue])]
        self.concurrency = concurrency
        check_thread_count(app, self.queues, concurrency)
        add_task_fields()  # log records made inside a task name it
        self.grace_period = grace_period
        self.hostname = hostname or default_hostname()
        #: Sync tasks still running in threads when shutdown gave up on them.
        self.abandoned = 0
        #: Set when this process must be replaced by a fresh one (hard limit, terminate).
        self.replace_requested = False
        #: Stop gracefully after this many messages (a supervisor starts a fresh process).
        self.max_tasks = max_tasks
        self.processed = 0
        #: Stop once the queues and the delay cascade are empty and nothing is held.
        self.burst = burst
        #: Set when a burst worker stopped because everything was done.
        self.drained = False
        #: Unacknowledged messages held now, by queue (running or waiting for a slot).
        self.held_by_queue: Counter[str] = Counter()
        self.started = time.time()
        settings = app.settings
        self._client = BrokerClient(settings, app.topology)
        self._threads = TaskThreads(concurrency)
        #: This process's Redis client, shared by everything below (closed at shutdown).
        self.redis = async_client(settings)
        self.results = AsyncResultStore(settings, self.redis, app.keys)
        self.revocations = RevocationList(self.redis, app.keys)
        self.events = EventPublisher(settings, app.topology)
        #: State changes by (queue, state), for heartbeats.
        self.counts = OutcomeCounts()
        self.states = StateChanges(self.hostname)
        self.states.listen(self.counts)
        self.states.listen(self.events.emit)
        if self.results.enabled:
            self.states.listen(self.results.on_state)
        #: The app's ``on_task`` hooks, if it has any.
        self.signals = TaskSignals(app.task_hooks) if app.task_hooks else None
        if self.signals is not None:
            self.states.listen(self.signals)
        self.handler = MessageHandler(
            app,
            Outcomes(self._client, app.topology, self.states),
            self.results,
            self._threads,
            replace_process=self.replace_process if supervised else None,
            revoked=self.revocations,
        )
        #: Runs one message in a task slot (counted in progress when metrics are on).
        self._handle = self.handler.handle
        #: Prometheus metrics (taskcore.metrics); None: no metrics code runs per task.
        self.metrics: WorkerMetrics | None = None
        if metrics:
            from .metrics import WorkerMetrics

            self.metrics = WorkerMetrics(app, self.queues, concurrency)
            self.states.listen(self.metrics.on_state)
            self._handle = self.metrics.count_in_progress(self.handler.handle)
        self.control = WorkerControl(app.topology, app.keys, self.redis, self.snapshot)
        self.gate = RateGate(app, self._client, self.states, RateLimiter(self.redis, app.keys))
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._consumers: list[tuple[RawChannel, str]] = []
        self._acker: Acker | None = None
        #: Every message this process holds unacknowledged, by the asyncio task handling it.
        self._deliveries: dict[asyncio.Task[Any], Delivery] = {}
        self._slots = asyncio.Semaphore(concurrency)
        self._stop = asyncio.Event()
        self._lost = asyncio.Event()
        self._force = asyncio.Event()

    # -- life cycle -------------------------------------------------------

    async def run(self) -> None:
        """Run the start hooks, then consume until ``request_stop()``, reconnecting when
        the broker drops the connection; WorkerStartFailed if a start hook raised."""
        try:
            await run_start_hooks(self.app)
        except WorkerStartFailed:
            await self.redis.aclose()
            raise
        listener = asyncio.ensure_future(self.revocations.follow(self._terminate))
        await self._wait_for_revocation_list()
        await self.start()
        heartbeat = asyncio.ensure_future(self.control.heartbeat())
        watcher = asyncio.ensure_future(self._stop_when_drained()) if self.burst else None
        try:
            while await self._wait_for_stop_or_lost_connection() == "lost":
                await self._reconnect()
        finally:
            listener.cancel()
            heartbeat.cancel()
            if watcher is not None:
                watcher.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            await self.shutdown()

    async def _stop_when_drained(self) -> None:
        """--burst: stop after two looks in a row find nothing held, nothing ready in the
        consumed queues and nothing waiting in the delay cascade (retries, countdowns)."""
        names = [*self.queues, *map(self.app.topology.delay_exchange, range(delays.LEVELS))]
        quiet = 0
        while not self._stop.is_set():
            await asyncio.sleep(BURST_CHECK)
            empty = not self._deliveries and await self._all_empty(names)
            quiet = quiet + 1 if empty else 0
            if quiet >= 2:
                log.info("worker %s drained %s: stopping", self.hostname, ", ".join(self.queues))
                self.drained = True
                self._stop.set()

    async def _all_empty(self, names: Sequence[str]) -> bool:
        if self._connection is None or self._connection.is_closed:
            return False
        channel = await self._connection.channel()
        try:
            for name in names:
                queue = await channel.declare_queue(name, passive=True)
                if queue.declaration_result.message_count:
                    return False
            return True
        except Exception as exc:  # a queue deleted meanwhile, or the connection going away
            log.debug("burst: could not read queue depths: %s", exc)
            return False
        finally:
            if not channel.is_closed:
                await channel.close()

    def snapshot(self) -> WorkerSnapshot:
        """What this process is doing now (heartbeats and control answers)."""
        active = self.handler.active
        return WorkerSnapshot(
            hostname=self.hostname,
            queues=self.queues,
            concurrency=self.concurrency,
            processed=self.processed,
            started=self.started,
            counts=self.counts.by_queue(),
            held_by_queue=dict(self.held_by_queue),
            active=[
                {
                    "id": a.context.id,
                    "task": a.context.name,
                    "queue": a.context.queue,
                    "attempt": a.context.attempt,
                }
                for a in active.values()
            ],
            reserved=[
                {"id": d.message_id, "task": d.type}
                for d in self._deliveries.values()
                if d.message_id not in active
            ],
            registered=sorted(self.app.tasks),
        )

    @property
    def stopping(self) -> bool:
        """True once a stop was requested."""
        return self._stop.is_set()

    def request_stop(self) -> None:
        """Ask for a graceful stop; asked a second time, stop without waiting for running tasks."""
        if self._stop.is_set():
            self._force.set()
        self._stop.set()

    async def start(self) -> None:
        """Connect, declare the topology, and start consuming."""
        settings = self.app.settings
        await self._client.ensure_queues(self.queues)
        self._lost.clear()
        old, self._connection = self._connection, None
        if old is not None and not old.is_closed:
            await old.close()  # its channel was closed by the broker; start afresh
        connection = await connect(settings)
        connection.close_callbacks.add(self._on_connection_closed)
        self._connection = connection
        channel = self._channel = await connection.channel()
        # The broker closes a channel on its own for a consumer (ack) timeout:
        # treat that like a lost connection.
        channel.close_callbacks.add(self._on_connection_closed)
        await channel.set_qos(prefetch_count=self.concurrency * PREFETCH_PER_SLOT)
        await self.control.listen(channel)
        raw = await channel.get_underlay_channel()
        self._acker = Acker(raw)
        for name in self.queues:
            ok = await raw.basic_consume(name, functools.partial(self._on_message, queue=name))
            self._consumers.append((raw, str(ok.consumer_tag)))
        log.info(
            "worker %s consuming %s from %s with concurrency %d",
            self.hostname,
            ", ".join(self.queues),
            connected_to(connection),
            self.concurrency,
        )

    def _on_connection_closed(self, sender: object, exc: BaseException | None) -> None:
        current = sender is self._connection or sender is self._channel
        if current and not self._stop.is_set():
            log.warning("lost the broker connection (%s); reconnecting", exc)
            self._lost.set()

    async def _wait_for_stop_or_lost_connection(self) -> str:
        await wait_any(self._stop, self._lost)
        return "stop" if self._stop.is_set() else "lost"

    async def _reconnect(self) -> None:
        """Reconnect with capped exponential backoff until it works or a stop is requested.

        Tasks still running from the old connection finish, but their messages
        can no longer be acknowledged: the broker delivers them again.
        """
        self._consumers.clear()
        delay = 0.5
        while not self._stop.is_set():
            try:
                await self.start()
                log.info("worker %s reconnected", self.hostname)
                if self.metrics is not None:
                    self.metrics.reconnected()
                return
            except (*CONNECTION_ERRORS, PublishError, TimeoutError) as exc:
                log.warning("reconnect failed (%s); next try in %.1fs", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                delay = min(delay * 2, 10.0)

    async def shutdown(self) -> None:
        """Stop consuming, let running tasks finish within the grace period, requeue the rest."""
        for raw, tag in self._consumers:
            try:
                await raw.basic_cancel(tag)
            except Exception:  # the channel may already be gone; unacked messages return anyway
                log.debug("could not cancel consumer %s", tag, exc_info=True)
        self._consumers.clear()
        await self._wait_for_running()
        await self._requeue({t for t in self._deliveries if not t.done()})
        if self._acker is not None:
            await self._acker.drain()
        if self.signals is not None:
            await self.signals.drain()
        await run_stop_hooks(self.app)
        if self._connection is not None and not self._connection.is_closed:
            await self._connection.close()
        await self._client.close()
        await self.results.close()
        await self.events.close()
        await self.redis.aclose()
        self._threads.shutdown()
        log.info("worker %s stopped", self.hostname)

    async def _wait_for_running(self) -> None:
        """Wait for running tasks until they finish, the grace period ends, or a forced stop."""
        pending = set(self._deliveries)
        if not pending or self._force.is_set():
            return
        log.info("waiting up to %ss for %d running task(s)", self.grace_period, len(pending))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace_period
        forced = asyncio.ensure_future(self._force.wait())
        while pending and not forced.done() and (left := deadline - loop.time()) > 0:
            await asyncio.wait(
                [*pending, forced], timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            pending = {t for t in pending if not t.done()}
        forced.cancel()

    async def _requeue(self, unfinished: set[asyncio.Task[None]]) -> None:
        if not unfinished:
            return
        messages = [self._deliveries[t] for t in unfinished]
        self.abandoned = sum(1 for t in unfinished if getattr(t, "taskcore_in_thread", False))
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        for message in messages:
            try:
                await message.nack(requeue=True)
            except Exception:  # closing the channel requeues it just the same
                log.debug("could not requeue %s", message.message_id, exc_info=True)
        log.warning("requeued %d unfinished task(s) at shutdown", len(messages))

    # -- one message ------------------------------------------------------

    def _on_message(self, raw: DeliveredMessage, queue: str) -> Coroutine[Any, Any, None]:
        # aiormq runs what a consumer returns in a task that it cancels when the channel
        # closes. A task already running must still finish and record its outcome (else
        # its redelivery runs it again), so the handling runs in a task of ours.
        assert self._acker is not None
        message = Delivery(raw, self._acker)
        self.held_by_queue[queue] += 1
        handling = asyncio.ensure_future(self._on_delivery(message, queue))
        self._deliveries[handling] = message
        return _nothing()

    async def _on_delivery(self, message: Delivery, queue: str) -> None:
        try:
            await self._handle_in_slot(message, queue)
        except Exception:
            # A bug in handling must not leave the message held unacknowledged for as
            # long as this connection lives: give it back to the broker.
            log.exception("handling message %s failed; requeueing it", message.message_id)
            if not message.settled:
                await settle(message, "requeue")
        finally:
            task = asyncio.current_task()
            self._deliveries.pop(task, None)  # type: ignore[arg-type]
            self.held_by_queue[queue] -= 1

    async def _handle_in_slot(self, message: Delivery, queue: str) -> None:
        if not await self.gate.admit(message, queue):
            return  # sent round the delay cascade to wait for its rate-limit slot
        if H_LEASE in message.headers and await self.handler.leases.check(message, queue):
            return  # a lease's check copy, settled without waiting for a task slot
        if not await self._take_slot(message):
            return
        try:
            if self._stop.is_set():  # stopping: do not start anything new
                await settle(message, "requeue")
                return
            if not message.channel_open:
                # Prefetched on a connection lost since: the broker has already handed
                # it out again, so running this copy would run the task twice.
                return
            await self._handle(message, queue)
        finally:
            self._slots.release()
        self.processed += 1
        if self.max_tasks is not None and self.processed == self.max_tasks:
            log.info("worker %s ran %d tasks: recycling", self.hostname, self.max_tasks)
            self._stop.set()

    async def _take_slot(self, message: Delivery) -> bool:
        """A task slot for ``message``; False if none came before its lease hand-over was
        due: it is given back to the broker, which would otherwise close the channel over
        it (behind long tasks), and it comes round again."""
        due = self.handler.leases.hand_over_in(message)
        if due is None or not self._slots.locked():
            await self._slots.acquire()
            return True
        try:
            async with asyncio.timeout(due):
                await self._slots.acquire()
        except TimeoutError:
            waited = time.monotonic() - message.received_at
            log.info(
                "message %s waited %.1fs for a task slot: requeued", message.message_id, waited
            )
            await settle(message, "requeue")
            return False
        return True

    async def _wait_for_revocation_list(self) -> None:
        """Consume only once revoked ids are known, so none runs; Redis down: go on, and say so."""
        try:
            await asyncio.wait_for(self.revocations.loaded.wait(), REVOCATIONS_WAIT)
        except TimeoutError:
            log.warning(
                "could not load revoked task ids from Redis within %ss: consuming anyway; "
                "tasks revoked before now may run until Redis is back",
                REVOCATIONS_WAIT,
            )

    def _terminate(self, task_id: str) -> None:
        if self.handler.terminate(task_id):
            log.warning("task %s revoked with terminate: stopping it", task_id)

    def replace_process(self, reason: str) -> None:
        """End this process soon so that its supervisor starts a fresh one."""
        log.warning("worker %s ends its process: %s", self.hostname, reason)
        self.replace_requested = True
        self._stop.set()
        self._force.set()


def check_thread_count(app: TaskApp, queues: Sequence[str], concurrency: int) -> None:
    """Warn, or refuse (ConfigurationError), a concurrency that means thousands of threads
    for the plain-function tasks routed to ``queues``; ``async def`` tasks need none."""
    if concurrency <= SYNC_THREADS_WARN:
        return
    sync = sorted(
        t.name for t in app.tasks.values() if not t.is_async and app.queue_for(t) in queues
    )
    if not sync:
        return
    shown = ", ".join(sync[:5]) + (f" and {len(sync) - 5} more" if len(sync) > 5 else "")
    why = (
        f"--concurrency {concurrency} runs up to {concurrency} threads for the plain-function "
        f"tasks {shown}: each thread costs memory and start-up time and only one runs Python "
        "at a time. Make tasks that wait `async def` (they need no thread), or run more "
        "processes (--processes) with a smaller --concurrency"
    )
    if concurrency > SYNC_THREADS_MAX:
        raise ConfigurationError(f"{why} (over {SYNC_THREADS_MAX} threads is refused)")
    log.warning("%s", why)


async def _nothing() -> None:
    """What a consumer hands aiormq: the real work runs in the worker's own task."""
