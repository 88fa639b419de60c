"""A message as the worker receives it: the raw aiormq delivery, read through properties.

The worker consumes on aiormq's channel directly rather than through
aio-pika's ``Queue.consume``: aio-pika wraps every delivery in a second
asyncio task and an ``IncomingMessage``, and waits for the socket to drain on
every ack. At thousands of tasks a second those costs were a fifth of the
worker's CPU (see the README's performance section). ``Delivery`` offers the
same attribute names as ``IncomingMessage``, so the code that reads messages
(``decode``, dead letters, the rate gate) works with either.

Acks go through an ``Acker``: the acks of one loop iteration leave as one
``basic.ack`` with ``multiple=True`` up to the oldest message still held, plus
single acks for any finished after it.

A task that outlives half the broker's ``consumer_timeout`` has its delivery
handed over to a lease (leases.py): acked while the task still runs. From then
on the outcome paths' ack and nack do nothing; a requeue they ask for is only
noted (``given_back``), and the lease is left to lapse so that the task runs
again, as the requeued message would have.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from aiormq.abc import AbstractChannel as RawChannel
from aiormq.abc import DeliveredMessage

from .coalesce import Coalescer


class Acker:
    """Acknowledges the deliveries of one channel, coalescing the acks of each loop iteration."""

    def __init__(self, channel: RawChannel) -> None:
        self.channel = channel
        #: Delivery tags received and not yet acked or nacked.
        self.held: set[int] = set()
        #: No tag below this is held (the channel numbers its deliveries 1, 2, 3, ...).
        self._lowest_held = 1
        self._next_tag = 1
        self._acks: Coalescer[int] = Coalescer(self._flush)

    def received(self, tag: int) -> None:
        self.held.add(tag)
        self._next_tag = max(self._next_tag, tag + 1)

    async def ack(self, tag: int) -> None:
        await self._acks.add(tag)

    async def nack(self, tag: int, requeue: bool) -> None:
        self.held.discard(tag)
        await self.channel.basic_nack(tag, requeue=requeue, wait=False)

    async def _flush(self, tags: list[int]) -> None:
        done = set(tags)
        held = self.held
        held.difference_update(done)  # in place: thousands may be held, a few are done
        lowest, end = self._lowest_held, self._next_tag
        while lowest < end and lowest not in held:
            lowest += 1
        self._lowest_held = lowest
        below = [t for t in done if t < lowest]
        if below:  # every held tag up to max(below) is done: one frame acks them all
            await self.channel.basic_ack(max(below), multiple=True, wait=False)
        for tag in done.difference(below):
            await self.channel.basic_ack(tag, wait=False)

    async def drain(self) -> None:
        """Wait for acks not yet sent (before closing the channel)."""
        await self._acks.drain()


class Delivery:
    """One delivered message; ``ack``/``nack`` settle it once (later calls do nothing)."""

    __slots__ = (
        "_acker",
        "body",
        "delivery_tag",
        "given_back",
        "handed_over",
        "properties",
        "received_at",
        "redelivered",
        "settled",
    )

    def __init__(self, raw: DeliveredMessage, acker: Acker) -> None:
        self.body: bytes = raw.body
        self.properties = raw.header.properties
        self.delivery_tag: int = raw.delivery.delivery_tag  # type: ignore[union-attr]
        self.redelivered: bool = bool(raw.delivery.redelivered)  # type: ignore[union-attr]
        self._acker = acker
        self.settled = False
        #: Acked while its task still runs, which a lease now guards (see ``hand_over``).
        self.handed_over = False
        #: A requeue was asked for after the hand-over (its outcome could not be sent on).
        self.given_back = False
        #: time.monotonic() at delivery: the broker's consumer_timeout counts from here.
        self.received_at = time.monotonic()
        acker.received(self.delivery_tag)

    @property
    def channel_open(self) -> bool:
        """False once the channel it came on closed: it can no longer be settled, and the
        broker hands it out again."""
        return not self._acker.channel.is_closed

    @property
    def headers(self) -> dict[str, Any]:
        """The AMQP headers (empty when the message has none)."""
        return self.properties.headers or {}

    @property
    def message_id(self) -> str | None:
        """The task id."""
        return self.properties.message_id

    @property
    def type(self) -> str | None:
        """The task name."""
        return self.properties.message_type

    @property
    def content_type(self) -> str | None:
        return self.properties.content_type

    @property
    def content_encoding(self) -> str | None:
        return self.properties.content_encoding

    @property
    def priority(self) -> int | None:
        return self.properties.priority

    @property
    def correlation_id(self) -> str | None:
        return self.properties.correlation_id

    @property
    def timestamp(self) -> datetime | None:
        return self.properties.timestamp

    @property
    def app_id(self) -> str | None:
        return self.properties.app_id

    async def ack(self) -> None:
        """Acknowledge: the broker forgets the message."""
        if not self.settled:
            self.settled = True
            await self._acker.ack(self.delivery_tag)

    async def nack(self, requeue: bool = True) -> None:
        """Give the message back to the broker (``requeue``) or drop it."""
        if self.handed_over:
            self.given_back = self.given_back or requeue
        elif not self.settled:
            self.settled = True
            await self._acker.nack(self.delivery_tag, requeue)

    async def hand_over(self) -> bool:
        """Ack now although the task still runs: a lease guards it from here on (leases.py).
        False if the message was settled already (its outcome came first)."""
        if self.settled:
            return False
        self.handed_over = True
        await self.ack()
        return True
