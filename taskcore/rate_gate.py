"""Where the worker applies rate limits: before a message takes a task slot.

A message whose task (or queue) is rate limited reserves its start slot
first. A short wait (up to ``LOCAL_WAIT_MAX``) is slept on the event loop
without holding a task slot, so tasks of other queues keep running. A longer
wait sends the message back through the delay cascade with its reserved slot
in a header and acks it, so nothing sits unacknowledged for long (RabbitMQ's
consumer timeout) and nothing is held only in memory. If Redis cannot be
reached the gate fails closed: the message goes round the cascade again and
is retried later; it is never run unlimited and never lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import redis

from .message import republish_headers, to_ms
from .outcomes import forward
from .ratelimit import Rate, RateLimiter, decode_override, parse_rate
from .states import State

if TYPE_CHECKING:
    from .app import TaskApp
    from .broker import BrokerClient
    from .listeners import StateChanges
    from .message import ReceivedMessage

log = logging.getLogger("taskcore.worker")

#: Waits up to this long are slept in the worker; longer ones go round the delay cascade.
LOCAL_WAIT_MAX = 2.0
#: How long a message waits when Redis is unreachable before it asks again.
REDIS_DOWN_DELAY = 5.0
#: How often the worker re-reads the run-time overrides.
OVERRIDES_TTL = 2.0
#: Header with the Unix time (milliseconds) a message's reserved start slot begins.
H_RATE_SLOT = "x-taskcore-rate-slot-ms"
#: Cascade deliveries are due up to 50 ms early or late: aim a little early, sleep the rest.
_EARLY = 0.2


class RateGate:
    """Admits a message to run once its rate-limit slot has come."""

    def __init__(
        self, app: TaskApp, client: BrokerClient, states: StateChanges, limiter: RateLimiter
    ) -> None:
        self.app = app
        self.client = client
        self.states = states
        self.limiter = limiter
        self._overrides: dict[str, Rate] = {}
        self._overrides_read = 0.0

    async def admit(self, message: ReceivedMessage, queue: str) -> bool:
        """True when the message may run now; False when it was sent round again (and acked)."""
        slot_ms = (message.headers or {}).get(H_RATE_SLOT)
        slot = slot_ms / 1000 if isinstance(slot_ms, int) else None
        if slot is None:
            limits = await self._limits_for(message.type, queue)
            if not limits:
                return True
            try:
                slot = await self.limiter.reserve(limits)
            except redis.RedisError as exc:
                log.error(
                    "rate limiter unavailable (Redis: %s); %s[%s] waits %ss and asks again",
                    exc,
                    message.type,
                    message.message_id,
                    REDIS_DOWN_DELAY,
                )
                await self._send_round(message, queue, REDIS_DOWN_DELAY, None)
                return False
        wait = slot - time.time()
        if wait <= 0:
            return True
        if message.message_id:
            await self.states.report(
                message.message_id,
                State.RECEIVED,
                task=message.type,
                queue=queue,
                waiting="rate limit",
                run_at=slot,
            )
        if wait <= LOCAL_WAIT_MAX:
            # Sleep until the slot, not for the wait measured before recording the
            # state: that Redis round trip would make the start late by its length.
            await asyncio.sleep(max(0.0, slot - time.time()))
            return True
        await self._send_round(message, queue, wait - _EARLY, slot)
        return False

    async def _send_round(
        self, message: ReceivedMessage, queue: str, delay: float, slot: float | None
    ) -> None:
        headers = republish_headers(message)
        headers.pop(H_RATE_SLOT, None)
        if slot is not None:
            headers[H_RATE_SLOT] = to_ms(slot)
        await forward(self.client, message, self.app.topology.address(queue, delay), headers)

    async def _limits_for(self, task_name: str | None, queue: str) -> dict[str, Rate]:
        overrides = await self._current_overrides()
        task = self.app.tasks.get(task_name or "")
        limits: dict[str, Rate] = {}
        if task is not None:
            rate = overrides.get(task.name) or task.rate
            if rate is not None:
                limits[task.name] = rate
        queue_name = f"queue:{queue}"
        default = self.app.topology.queue_options.get(queue, {}).get("rate_limit")
        rate = overrides.get(queue_name) or (parse_rate(default) if default else None)
        if rate is not None:
            limits[queue_name] = rate
        return limits

    async def _current_overrides(self) -> dict[str, Rate]:
        if time.monotonic() - self._overrides_read < OVERRIDES_TTL:
            return self._overrides
        try:
            raw = await self.limiter.redis.hgetall(self.app.keys.rate_overrides)
        except redis.RedisError:
            return self._overrides  # reserve() will notice and fail closed
        overrides = {name.decode(): decode_override(value) for name, value in raw.items()}
        self._overrides, self._overrides_read = overrides, time.monotonic()
        return overrides
