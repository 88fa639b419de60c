"""Leases: how a task that outlives the broker's ``consumer_timeout`` runs once.

RabbitMQ closes a channel whose oldest delivery stays unacknowledged longer
than ``consumer_timeout`` and delivers the message again; 3.10 cannot extend
that per queue. So a task still running at half the timeout
(``Settings.broker_consumer_timeout``, counted from its delivery) hands its
delivery over to a lease:

1. ``<namespace>:lease:<task id>`` is set to ``running:<worker>`` in Redis for
   ``lease_seconds``, and renewed every third of that while the task runs;
2. a copy of the message marked ``x-taskcore-lease`` (a *check copy*) is
   published, confirmed, into the delay cascade, due in ``lease_seconds``;
3. the delivery is acked (``Delivery.hand_over``): later acks and nacks do nothing.

When the task's outcome is recorded the lease becomes ``settled``. A check copy
that comes back is dropped if the lease is settled or the task has ended, sent
round again if the lease still runs, and run again, as a redelivery, if the
lease is gone: the worker running the task died.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Iterable
from typing import TYPE_CHECKING, Any

import redis

from .errors import ConfigurationError, PublishError
from .message import (
    H_ETA,
    Envelope,
    republish_headers,
    republish_properties,
    to_ms,
)
from .outcomes import forward, settle
from .rate_gate import H_RATE_SLOT
from .results import decode
from .states import State

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from .broker import BrokerClient
    from .delivery import Delivery
    from .keys import RedisKeys
    from .message import ReceivedMessage, TaskMessage
    from .results import TaskStatus
    from .settings import Settings
    from .task import Task
    from .topology import Topology

log = logging.getLogger("taskcore.worker")

#: Marks a check copy: a message whose task was handed over to a lease.
H_LEASE = "x-taskcore-lease"
RUNNING = b"running:"
SETTLED = b"settled"
#: Ended states: a check copy of such a task is dropped. (A SUCCESS goes the way of a
#: redelivered message instead, which also sends on a chain step or chord still owed.)
_ENDED = frozenset({State.FAILURE, State.DEAD, State.REVOKED})


class Leases:
    """Hand-overs, renewals and check copies for one worker."""

    def __init__(
        self,
        settings: Settings,
        client: aioredis.Redis,
        keys: RedisKeys,
        broker: BrokerClient,
        topology: Topology,
        worker: str,
    ) -> None:
        if settings.lease_seconds <= 0:
            raise ConfigurationError("TASKCORE_LEASE_SECONDS must be more than 0")
        self.redis = client
        self.keys = keys
        self.broker = broker
        self.topology = topology
        self.worker = worker
        #: Seconds the broker leaves a delivery unacked; 0 or less: it never times out.
        self.consumer_timeout = settings.broker_consumer_timeout
        self.seconds = settings.lease_seconds
        self.renew_every = self.seconds / 3
        self._background: set[asyncio.Task[None]] = set()
        #: Leases of running tasks not yet handed over. One timer looks for those due
        #: (a twentieth of the timeout late at most, and 1 s at most) instead of a loop
        #: timer per task.
        self._watched: set[Lease] = set()
        self._sweeping: asyncio.TimerHandle | None = None
        self.sweep_every = min(1.0, self.consumer_timeout / 20)

    @property
    def enabled(self) -> bool:
        return self.consumer_timeout > 0

    def announce(self, tasks: Iterable[Task]) -> None:
        """Log, once, which tasks may run past the broker's consumer_timeout."""
        longer = sorted(
            t.name
            for t in tasks
            if t.options.time_limit is not None and t.options.time_limit > self.consumer_timeout
        )
        if self.enabled and longer:
            log.info(
                "%s may run longer than the broker's consumer_timeout (%gs, "
                "TASKCORE_BROKER_CONSUMER_TIMEOUT): after %gs their deliveries are handed over "
                "to leases of %gs (TASKCORE_LEASE_SECONDS)",
                ", ".join(longer),
                self.consumer_timeout,
                self.consumer_timeout / 2,
                self.seconds,
            )

    def hand_over_in(self, message: Delivery) -> float | None:
        """Seconds from now until ``message`` is due for its hand-over (half the broker's
        timeout after its delivery, at least 0); None when the broker never times out."""
        if not self.enabled:
            return None
        since = time.monotonic() - message.received_at
        return max(0.0, self.consumer_timeout / 2 - since)

    def lease_for(self, message: Delivery, call: TaskMessage) -> Lease:
        """The lease of a task about to run, watched until it is handed over (if the
        task runs long enough) or ends."""
        lease = Lease(self, message, call)
        self._watched.add(lease)
        if self._sweeping is None:
            loop = asyncio.get_running_loop()
            self._sweeping = loop.call_later(self.sweep_every, self._sweep, loop)
        return lease

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand over every watched lease that is due; look again while any is watched."""
        for lease in [w for w in self._watched if self.hand_over_in(w.message) == 0.0]:
            lease.start()
        self._sweeping = (
            loop.call_later(self.sweep_every, self._sweep, loop) if self._watched else None
        )

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("lease of a task failed", exc_info=task.exception())

    async def hand_over(self, message: Delivery, call: TaskMessage, level: int) -> bool:
        """Lease, check copy, ack; False (logged at ``level``) if Redis or the broker
        failed: the delivery is kept, unacked."""
        running = RUNNING + self.worker.encode()
        try:
            await self.redis.set(self.keys.lease(call.id), running, px=to_ms(self.seconds))
        except redis.RedisError as exc:
            self._not_handed_over(call, f"Redis: {exc}", level)
            return False
        # Not through outcomes.forward: it requeues the message when the copy is not
        # confirmed, and a requeued message would run a second time beside this one.
        envelope = Envelope(
            *self.topology.address(call.queue, self.seconds),
            message.body,
            republish_properties(message, self._check_headers(message)),
        )
        try:
            await self.broker.publish([envelope])
        except PublishError as exc:
            self._not_handed_over(call, f"broker: {exc}", level)
            return False
        try:
            acked = await message.hand_over()
        except Exception as exc:  # the channel is gone: the broker delivers it again anyway
            log.warning("could not ack task %s[%s] at its hand-over: %s", call.task, call.id, exc)
            return True
        if not acked:  # its outcome came first: the check copy is to be dropped
            await self.settle(call.id)
            return False
        log.info(
            "task %s[%s] still running after %.1fs: its delivery is acked and a lease of %gs "
            "guards it (the broker's consumer_timeout is %gs)",
            call.task,
            call.id,
            time.monotonic() - message.received_at,
            self.seconds,
            self.consumer_timeout,
        )
        return True

    def _not_handed_over(self, call: TaskMessage, why: str, level: int) -> None:
        log.log(
            level,
            "cannot hand task %s[%s] over to a lease (%s): its delivery is kept, and the "
            "broker will deliver it again after its consumer_timeout (%gs) unless a later "
            "try succeeds",
            call.task,
            call.id,
            why,
            self.consumer_timeout,
        )

    async def renew(self, task_id: str) -> bool:
        """Extend a running task's lease; False if Redis failed (logged)."""
        running = RUNNING + self.worker.encode()
        try:
            await self.redis.set(self.keys.lease(task_id), running, px=to_ms(self.seconds))
        except redis.RedisError as exc:
            log.warning(
                "cannot renew the lease of task %s (Redis: %s): if it lapses (%gs) the task "
                "runs again elsewhere",
                task_id,
                exc,
                self.seconds,
            )
            return False
        return True

    async def settle(self, task_id: str) -> None:
        """Mark an ended task's lease settled, for longer than a check copy's delay."""
        try:
            await self.redis.set(self.keys.lease(task_id), SETTLED, px=to_ms(3 * self.seconds))
        except redis.RedisError as exc:
            log.warning(
                "cannot mark the lease of task %s settled (Redis: %s): its check copy will find "
                "the lease lapsed and run the task again unless its final state is stored",
                task_id,
                exc,
            )

    async def check(self, message: Delivery, queue: str) -> bool:
        """Settle a check copy that needs no run: True if it was dropped or sent round again.

        False: the lease is gone, so the worker that ran the task died. The copy is
        then unmarked and counted as redelivered, and the caller handles it like a
        message the broker delivered again (it runs, unless it already succeeded).
        """
        task_id = message.message_id or ""
        try:
            lease = await self.redis.get(self.keys.lease(task_id))
            status = None if lease else await self._status(task_id)
        except redis.RedisError as exc:
            log.warning(
                "cannot read the lease of task %s (Redis: %s): checking again in %gs",
                task_id,
                exc,
                self.seconds,
            )
            await self._send_round(message, queue)
            return True
        if lease == SETTLED or (status is not None and status.state in _ENDED):
            log.debug("task %s[%s] has ended: its lease check is dropped", message.type, task_id)
            await settle(message, "ack")
            return True
        if lease is not None:
            log.debug("task %s[%s] still runs (%s)", message.type, task_id, lease.decode())
            await self._send_round(message, queue)
            return True
        if status is None or status.state != State.SUCCESS:
            log.warning(
                "the lease of task %s[%s] on worker %s expired: the task runs again",
                message.type,
                task_id,
                (status and status.worker) or "(unknown)",
            )
        headers = message.headers
        headers.pop(H_LEASE, None)
        # The copies its outcome sends on (a retry) take a rate-limit slot of their own.
        headers.pop(H_RATE_SLOT, None)
        message.redelivered = True
        return False

    async def _status(self, task_id: str) -> TaskStatus:
        fields = ("state", "worker")
        values = await self.redis.hmget(self.keys.task(task_id), fields)
        return decode(task_id, {k: v for k, v in zip(fields, values, strict=True) if v})

    async def _send_round(self, message: ReceivedMessage, queue: str) -> None:
        await forward(
            self.broker,
            message,
            self.topology.address(queue, self.seconds),
            self._check_headers(message),
        )

    def _check_headers(self, message: ReceivedMessage) -> dict[str, Any]:
        now = time.time()
        return republish_headers(
            message,
            **{
                H_LEASE: 1,
                H_ETA: to_ms(now + self.seconds),
                # A slot already begun: the rate gate lets a check copy through at once,
                # without taking a rate-limit token or recording it as waiting.
                H_RATE_SLOT: to_ms(now),
            },
        )


class Lease:
    """The lease of one running task: handed over when due, renewed, settled at its end."""

    __slots__ = ("_ended", "_holding", "_settled", "call", "leases", "message")

    def __init__(self, leases: Leases, message: Delivery, call: TaskMessage) -> None:
        self.leases = leases
        self.message = message
        self.call = call
        # Made at the hand-over only: most tasks end long before (no cost per task).
        self._ended: asyncio.Event | None = None
        self._holding: asyncio.Task[None] | None = None
        self._settled = False

    def start(self) -> None:
        """Hand the delivery over and keep the lease renewed until the task ends."""
        self.leases._watched.discard(self)
        if self._ended is None:
            self._ended = asyncio.Event()
            self._holding = self.leases.spawn(self._hold(self._ended))

    async def _hold(self, ended: asyncio.Event) -> None:
        leases, message = self.leases, self.message
        level = logging.ERROR
        while True:
            if message.settled or not message.channel_open:
                return  # ended, or the broker took the message back with its channel
            if await leases.hand_over(message, self.call, level):
                break
            level = logging.DEBUG  # said once; tried again at each renewal interval
            if await _wait(ended, leases.renew_every):
                return
        if level == logging.DEBUG:
            log.info("task %s[%s] handed over to a lease after all", self.call.task, self.call.id)
        while not await _wait(ended, leases.renew_every):
            await leases.renew(self.call.id)

    def stop(self) -> None:
        """Stop renewing without settling (the task was abandoned: the lease lapses and a
        check copy runs the task again)."""
        self.leases._watched.discard(self)
        if self._ended is None:
            self._ended = asyncio.Event()  # a later start() starts nothing
        self._ended.set()

    async def end(self) -> None:
        """The task's outcome is recorded: stop renewing, then mark the lease settled,
        unless the outcome asked for the message back (then the lease lapses)."""
        self.stop()
        if self._holding is None:
            return
        await asyncio.wait([self._holding])  # its Redis or broker call in flight ends first
        if self.message.handed_over and not self.message.given_back and not self._settled:
            self._settled = True
            await self.leases.settle(self.call.id)


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; True if it is set."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True
