"""``taskcore recorder``: move lifecycle events from RabbitMQ into the database, in batches.

Events wait in a durable queue, so a recorder that was stopped catches up
when it starts again. A batch is acknowledged only after its transaction
committed; if the database is down, the batch goes back to the queue.

The queue is capped (topology.RECORDER_QUEUE_MAX messages); when it is full
the broker drops its oldest messages into ``<namespace>.events.dropped``,
which the recorder drains and counts (``dropped``, the metric
``taskcore_recorder_events_dropped_total``, and a warning in the log): those
events never reach the history, and now somebody knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from aio_pika.abc import AbstractConnection
from aiormq.abc import AbstractChannel as RawChannel
from aiormq.abc import DeliveredMessage
from aiormq.exceptions import ChannelInvalidStateError

from .aio import wait_any
from .broker import CONNECTION_ERRORS, connect
from .errors import BrokerUnavailable
from .history import write_events

if TYPE_CHECKING:
    from .app import TaskApp

log = logging.getLogger("taskcore.recorder")

#: Seconds before the first try to reconnect after losing the broker; doubling up to the max.
RECONNECT_FIRST = 0.5
RECONNECT_MAX = 10.0


class Recorder:
    """Consumes the event queue and writes batches of up to ``batch_size`` events."""

    def __init__(
        self,
        app: TaskApp,
        engine: sa.Engine,
        *,
        batch_size: int = 2000,
        flush_interval: float = 1.0,
    ) -> None:
        self.app = app
        self.engine = engine
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.written = 0
        #: Batches the database refused (``taskcore_recorder_write_errors_total``).
        self.write_errors = 0
        #: Events the full queue dropped, counted (``taskcore_recorder_events_dropped_total``).
        self.dropped = 0
        self._dropped_unlogged = 0
        #: The ``at`` of the newest event written, None while idle: the lag is now minus this.
        self.behind_from: float | None = None
        #: (delivery tag, its events) of the messages not yet written.
        self._batch: list[tuple[int, list[dict[str, Any]]]] = []
        self._raw: RawChannel | None = None
        self._pending_events = 0
        self._stop = asyncio.Event()
        self._full = asyncio.Event()
        self._lost = asyncio.Event()
        #: Times the recorder connected again after losing the broker.
        self.reconnects = 0

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Record until request_stop(); the last partial batch is written before returning.

        A broker that cannot be reached at the start raises BrokerUnavailable. Once
        running, a lost connection is reconnected with capped exponential backoff
        (0.5 s up to 10 s); the messages of a batch not yet acknowledged are delivered
        again by the broker (written twice if their transaction had committed).
        """
        connection = await connect(self.app.settings)
        delay = RECONNECT_FIRST
        while True:
            if await self._session(connection):
                delay = RECONNECT_FIRST  # it consumed: the next loss starts the backoff anew
            while not self._stop.is_set():
                await wait_any(self._stop, timeout=delay)
                delay = min(delay * 2, RECONNECT_MAX)
                try:
                    connection = await connect(self.app.settings)
                except (BrokerUnavailable, *CONNECTION_ERRORS, TimeoutError) as exc:
                    log.warning("recorder cannot reconnect (%s); next try in %.1fs", exc, delay)
                    continue
                self.reconnects += 1
                break
            if self._stop.is_set():
                return

    async def _session(self, connection: AbstractConnection) -> bool:
        """Record on ``connection`` until a stop (True) or until it is lost; whether it got
        as far as consuming. The connection is closed on the way out."""
        self._lost.clear()
        connection.close_callbacks.add(self._on_closed)
        consuming = False
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self.batch_size * 2)
            topology = self.app.topology
            await topology.declare_base(channel)
            queue = await topology.declare_recorder_queue(channel)
            dropped = await topology.declare_recorder_dropped_queue(channel)
            waiting = dropped.declaration_result.message_count or 0
            if waiting >= topology.recorder_dropped_max:
                log.error(
                    "%s is full (%d messages): more event messages were dropped than it keeps; "
                    "taskcore_recorder_events_dropped_total counts only those it kept",
                    dropped.name,
                    waiting,
                )
            # The broker closes the channel on its own for a consumer (ack) timeout: treat
            # that like a lost connection (not before: a declaration may close and reopen it).
            channel.close_callbacks.add(self._on_closed)
            # On aiormq's channel: no aio-pika message object per delivery, and one ack
            # (or nack) per batch (measured: see write_events and scripts/bench.py).
            raw = self._raw = await channel.get_underlay_channel()
            # Dropped messages are only counted: taken without acknowledgements.
            counting = await raw.basic_consume(dropped.name, self._on_dropped, no_ack=True)
            ok = await raw.basic_consume(queue.name, self._on_event)
            consuming = True
            log.info("recorder consuming %s into %s", queue.name, self.engine.url)
            while not self._stop.is_set():
                await wait_any(self._stop, self._full, self._lost, timeout=self.flush_interval)
                if self._lost.is_set():
                    raise ChannelInvalidStateError("the broker closed the connection")
                await self._flush()
            await raw.basic_cancel(str(ok.consumer_tag))
            await raw.basic_cancel(str(counting.consumer_tag))
            await self._flush()
            return True
        except (*CONNECTION_ERRORS, TimeoutError) as exc:
            # Unacknowledged deliveries of a lost channel go back to the queue by themselves.
            self._batch.clear()
            self._pending_events = 0
            if not self._stop.is_set():
                log.error("recorder lost the broker (%s); reconnecting", exc)
            return consuming
        finally:
            self._raw = None
            connection.close_callbacks.discard(self._on_closed)
            with contextlib.suppress(Exception):
                await connection.close()

    def _on_closed(self, sender: object, exc: BaseException | None) -> None:
        self._lost.set()

    async def _on_event(self, message: DeliveredMessage) -> None:
        events = read_events(message.body)
        self._batch.append((message.delivery_tag, events))
        self._pending_events += len(events)
        if self._pending_events >= self.batch_size:
            self._full.set()

    async def _on_dropped(self, message: DeliveredMessage) -> None:
        count = len(read_events(message.body))
        self.dropped += count
        self._dropped_unlogged += count

    async def _flush(self) -> None:
        self._full.clear()
        if self._dropped_unlogged:
            log.warning(
                "%d task events were dropped by the full queue %s (capped at %d messages, "
                "oldest dropped first): they are not in the history",
                self._dropped_unlogged,
                self.app.topology.recorder_queue,
                self.app.topology.recorder_queue_max,
            )
            self._dropped_unlogged = 0
        if not self._batch:
            self.behind_from = None  # idle: nothing waits to be written
            return
        if self._lost.is_set():  # these deliveries are coming back: do not write them now
            raise ChannelInvalidStateError("the broker closed the connection")
        batch, self._batch = self._batch, []
        self._pending_events = 0
        events = [event for _, message_events in batch for event in message_events]
        last = batch[-1][0]
        assert self._raw is not None
        try:
            await asyncio.to_thread(write_events, self.engine, events)
        except sa.exc.SQLAlchemyError as exc:
            log.error("could not write %d events (%s); they go back to the queue", len(events), exc)
            self.write_errors += 1
            if self.behind_from is None:  # nothing written yet: behind since the oldest of these
                self.behind_from = min(_times(events), default=time.time())
            await self._raw.basic_nack(last, multiple=True, requeue=True)
            await asyncio.sleep(2)
            return
        await self._raw.basic_ack(last, multiple=True)
        self.written += len(events)
        self.behind_from = max(_times(events), default=time.time())
        log.debug("recorded %d events", len(events))


def _times(events: list[dict[str, Any]]) -> list[float]:
    return [e["at"] for e in events if isinstance(e.get("at"), int | float)]


def read_events(body: bytes) -> list[dict[str, Any]]:
    """The events in a message body (an array of events, or one event); unreadable ones dropped."""
    try:
        payload = json.loads(body)
    except ValueError as exc:
        log.warning("dropping events that are not JSON (%s): %r", exc, body[:200])
        return []
    events = payload if isinstance(payload, list) else [payload]
    if b"\\u0000" in body:  # PostgreSQL text cannot hold NUL: it is written as \x00
        events = _without_nul(events)
    good = [e for e in events if isinstance(e, dict) and "task_id" in e and "state" in e]
    if len(good) < len(events):
        log.warning(
            "dropping %d item(s) that are not task events: %r", len(events) - len(good), body[:200]
        )
    return good


def _without_nul(value: Any) -> Any:
    """``value`` with every NUL character in its strings (keys too) spelled ``\\x00``."""
    if isinstance(value, str):
        return value.replace("\x00", "\\x00")
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value
