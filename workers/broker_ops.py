"""Broker operations behind the CLI: queue depths, peeking, replaying and purging."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from aiormq.exceptions import ChannelNotFoundEntity

from taskcore import TaskApp
from taskcore.broker import BrokerClient
from taskcore.dead_letters import H_ATTEMPTS, H_EXC_MESSAGE, H_EXC_TYPE, H_REASON
from taskcore.errors import PublishError
from taskcore.message import H_RETRIES, Envelope, republish_properties
from taskcore.topology import dead_queue

T = TypeVar("T")

#: Headers a dead letter gained (and broker death records) that a replay drops.
_DROP_ON_REPLAY = ("x-taskcore-", "x-death", "x-first-death", "x-last-death")
_KEEP_ON_REPLAY = {"x-taskcore-queue", "x-taskcore-idempotency-key"}


class QueueMissing(Exception):
    """The named queue does not exist on the broker."""


def run(app: TaskApp, work: Callable[[AbstractChannel], Awaitable[T]]) -> T:
    """Open a connection, run ``work`` on a channel, close; PublishError if unreachable."""

    async def main() -> T:
        settings = app.settings
        try:
            connection = await aio_pika.connect(
                settings.broker_url, timeout=settings.connect_timeout
            )
        except (OSError, ConnectionError, TimeoutError) as exc:
            raise PublishError(
                f"cannot reach the broker at {settings.safe_broker_url}: {exc}"
            ) from exc
        try:
            channel = await connection.channel()
            return await work(channel)
        finally:
            await connection.close()

    return asyncio.run(main())


async def queue_depth(channel: AbstractChannel, name: str) -> tuple[int, int]:
    """(ready messages, consumers) of a queue; QueueMissing if it does not exist."""
    try:
        queue = await channel.declare_queue(name, passive=True)
    except ChannelNotFoundEntity:
        await channel.reopen()
        raise QueueMissing(name) from None
    result = queue.declaration_result
    return result.message_count or 0, result.consumer_count or 0


def describe(message: AbstractIncomingMessage) -> dict[str, Any]:
    """A dead letter as a row: id, task, reason, error, attempts, arguments."""
    headers = dict(message.headers or {})
    return {
        "id": message.message_id,
        "task": message.type,
        "reason": headers.get(H_REASON),
        "error": f"{headers.get(H_EXC_TYPE)}: {headers.get(H_EXC_MESSAGE)}"
        if headers.get(H_EXC_TYPE)
        else None,
        "attempts": headers.get(H_ATTEMPTS),
        "dead_at": headers.get("x-taskcore-dead-at"),
        "body": message.body.decode(errors="replace"),
        "headers": {k: v for k, v in headers.items() if k != "x-death"},
    }


async def peek(channel: AbstractChannel, queue: str, limit: int) -> list[dict[str, Any]]:
    """Read up to ``limit`` messages without removing them (all are requeued in order)."""
    q = await channel.declare_queue(queue, passive=True)
    held: list[AbstractIncomingMessage] = []
    try:
        while len(held) < limit and (message := await q.get(no_ack=False, fail=False)):
            held.append(message)
        return [describe(m) for m in held]
    finally:
        if held:  # nack all at once (multiple) keeps their order in the queue
            await held[-1].nack(multiple=True, requeue=True)


async def replay(
    app: TaskApp,
    channel: AbstractChannel,
    queue: str,
    *,
    task: str | None,
    limit: int | None,
    progress: Callable[[int], None] = lambda n: None,
) -> tuple[int, int]:
    """Move dead letters of ``queue`` back to it with attempts reset; returns (moved, kept).

    Each message is removed from the dead-letter queue only after its copy
    was confirmed in the work queue, so an interruption loses nothing (at
    worst a message is in both queues).
    """
    dead = await channel.declare_queue(dead_queue(queue), passive=True)
    client = BrokerClient(app.settings, app.topology)
    moved, skipped = 0, []
    try:
        while limit is None or moved < limit:
            message = await dead.get(no_ack=False, fail=False)
            if message is None:
                break
            if task is not None and message.type != task:
                skipped.append(message)
                continue
            headers = {
                k: v
                for k, v in (message.headers or {}).items()
                if not k.startswith(_DROP_ON_REPLAY) or k in _KEEP_ON_REPLAY
            }
            headers[H_RETRIES] = 0
            properties = republish_properties(message, headers)
            envelope = Envelope(app.topology.work_exchange, queue, message.body, properties)
            await client.publish([envelope], [queue])
            await message.ack()
            moved += 1
            progress(1)
    finally:
        for message in skipped:
            await message.nack(requeue=True)
        await client.close()
    return moved, len(skipped)


async def purge(channel: AbstractChannel, queue: str) -> int:
    """Remove every ready message from ``queue``; returns how many."""
    q = await channel.declare_queue(queue, passive=True)
    result = await q.purge()
    return result.message_count or 0
