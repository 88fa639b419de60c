"""An asyncio AMQP client for publishing with confirms; reconnects on demand.

It holds one connection and one confirm channel, opened on first use. When a
publish finds the connection gone (the broker restarted, a network blip), the
unconfirmed messages are sent once more on a fresh connection; if that fails
too, the caller gets a PublishError at once instead of waiting on a dead
socket. A resend after a lost confirm may duplicate a message: delivery is
at-least-once.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable, Sequence

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection
from aiormq.abc import AbstractChannel as RawChannel
from aiormq.exceptions import AMQPConnectionError, ChannelInvalidStateError, DeliveryError
from pamqp.commands import Basic

from .errors import BrokerUnavailable, PublishError
from .message import H_RESENT, Envelope
from .settings import Settings, redact_url
from .topology import Topology

log = logging.getLogger(__name__)

#: A publish gets ``publish_timeout`` for every started batch of this many messages.
TIMEOUT_BATCH = 10_000


def publish_timeout_for(settings: Settings, count: int) -> float:
    """Seconds a publish of ``count`` messages may take: ``publish_timeout`` for every
    started ``TIMEOUT_BATCH`` of them, so a big ``map`` gets time in proportion."""
    return settings.publish_timeout * max(1, math.ceil(count / TIMEOUT_BATCH))


#: Failures that mean "the connection is gone", worth one resend on a new one.
CONNECTION_ERRORS = (AMQPConnectionError, ChannelInvalidStateError, ConnectionError, OSError)


#: Per TASKCORE_BROKER_URL, the index of the node that answered last: connections
#: start there, so that a process's connections stay on one node while it answers.
_answered_last: dict[str, int] = {}


async def connect(settings: Settings) -> AbstractConnection:
    """Open a connection to the broker; BrokerUnavailable says where and why if it cannot.

    Every part of taskcore connects through here: workers, publishers, the
    recorder, remote control and the operations API. With several URLs (a
    cluster's nodes, ``;``-separated) it tries the one that answered last first,
    then the others in order, each for up to ``connect_timeout``.
    """
    urls = broker_urls(settings.broker_url)
    first = _answered_last.get(settings.broker_url, 0) % len(urls)
    failures = []
    for index in [*range(first, len(urls)), *range(first)]:
        try:
            connection = await aio_pika.connect(urls[index], timeout=settings.connect_timeout)
        except (TimeoutError, *CONNECTION_ERRORS) as exc:
            failures.append(f"{redact_url(urls[index])}: {_describe(exc)}")
            continue
        if index != first:
            log.warning("connected to the broker at %s instead", redact_url(urls[index]))
        _answered_last[settings.broker_url] = index
        return connection
    where = failures[0] if len(failures) == 1 else "; ".join(failures)
    raise BrokerUnavailable(
        f"cannot reach the broker at {where}. Is RabbitMQ running? (TASKCORE_BROKER_URL)"
    )


def next_node(settings: Settings) -> None:
    """Make the next connection start at the node after the one that answered last."""
    count = len(broker_urls(settings.broker_url))
    _answered_last[settings.broker_url] = (_answered_last.get(settings.broker_url, 0) + 1) % count


class BrokerRefused(PublishError):
    """The broker nacked a message: the queue cannot take it through this node now."""


def broker_urls(setting: str) -> list[str]:
    """The URLs of a TASKCORE_BROKER_URL: one, or a cluster's nodes separated by ``;``."""
    urls = [url.strip() for url in setting.split(";") if url.strip()]
    if not urls:
        raise BrokerUnavailable("TASKCORE_BROKER_URL is empty: set it to amqp://HOST:5672/")
    return urls


def connected_to(connection: AbstractConnection) -> str:
    """The URL (without password) of the node a connection reached, for logs."""
    return redact_url(str(connection.url))


class BrokerClient:
    """One connection and confirm channel for publishing task messages."""

    def __init__(self, settings: Settings, topology: Topology) -> None:
        self.settings = settings
        self.topology = topology
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._raw: RawChannel | None = None
        self._queues: set[str] = set()
        self._lock: asyncio.Lock | None = None

    @property
    def is_open(self) -> bool:
        """True while a channel is open and ready (it may still turn out dead on the next
        publish). Not while another caller is still opening it: ``_raw`` comes last."""
        return self._raw is not None and self._channel is not None and not self._channel.is_closed

    async def channel(self) -> AbstractChannel:
        """The open confirm channel, connecting (and declaring the base topology) if needed."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.is_open:
                assert self._channel is not None
                return self._channel
            await self.close()
            self._connection = await connect(self.settings)
            try:
                self._channel = await self._connection.channel(
                    publisher_confirms=self.settings.confirm_publish
                )
                await self.topology.declare_base(self._channel)
                self._raw = await self._channel.get_underlay_channel()
            except (TimeoutError, *CONNECTION_ERRORS) as exc:
                await self.close()
                raise BrokerUnavailable(
                    f"lost the broker at {self.settings.safe_broker_url} while opening a "
                    f"channel: {_describe(exc)}"
                ) from exc
            return self._channel

    def declared(self, queues: Iterable[str]) -> bool:
        """True when the channel is open and every one of ``queues`` was declared on it."""
        return self.is_open and self._queues.issuperset(queues)

    async def ensure_queues(self, queues: Iterable[str]) -> None:
        """Declare the work queues this client has not declared on this connection."""
        if self.declared(queues):
            return
        channel = await self.channel()
        for queue in queues:
            if queue not in self._queues:
                await self.topology.declare_queue(channel, queue)
                self._queues.add(queue)

    async def publish(self, envelopes: Sequence[Envelope], queues: Iterable[str] = ()) -> None:
        """Publish all envelopes, pipelined, and return once the broker confirmed every one.

        ``queues`` are work queues the messages end up in; they are declared
        first so that a message never goes to a queue that does not exist. The
        timeout is ``publish_timeout`` per started ``TIMEOUT_BATCH`` messages, so a
        big ``map`` gets time in proportion.
        """
        envelopes = list(envelopes)
        timeout = publish_timeout_for(self.settings, len(envelopes))
        try:
            async with asyncio.timeout(timeout):
                await self._publish(envelopes, list(queues))
        except TimeoutError:
            await self.close()
            raise PublishError(
                f"the broker at {self.settings.safe_broker_url} did not confirm "
                f"{len(envelopes)} message(s) within {timeout:g}s (TASKCORE_PUBLISH_TIMEOUT, "
                f"per {TIMEOUT_BATCH:,} messages)"
            ) from None

    async def publish_fast(self, envelope: Envelope) -> None:
        """Publish one envelope on a channel without confirms: straight to the socket when
        the connection is open (no lock, no timeout scope), else through ``publish``."""
        if self.settings.confirm_publish or self._raw is None or not self.is_open:
            await self.publish([envelope])
            return
        try:
            await self._publish_one(self._raw, envelope)
        except CONNECTION_ERRORS as exc:
            await self.close()
            raise self._lost(exc, 1) from exc

    async def publish_unconfirmed(self, envelopes: Sequence[Envelope]) -> None:
        """Publish without waiting for confirms; a failure is logged (the messages are lost)."""
        try:
            for envelope in envelopes:
                await self.publish_fast(envelope)
        except PublishError as exc:
            log.error("unconfirmed publish failed, messages lost: %s", exc)

    async def _publish(self, pending: list[Envelope], queues: list[str]) -> None:
        for attempt in (1, 2):
            fresh = not self.is_open
            try:
                await self.ensure_queues(queues)
            except CONNECTION_ERRORS as exc:
                if fresh or attempt == 2:
                    raise self._lost(exc, len(pending)) from exc
                await self.close()
                continue
            assert self._raw is not None
            results = await self._publish_all(self._raw, pending)
            lost: list[Envelope] = []
            for envelope, result in zip(pending, results, strict=True):
                if isinstance(result, CONNECTION_ERRORS):
                    lost.append(envelope)
                elif isinstance(result, BrokerRefused):
                    await self._leave_refusing_node(result)
                    raise result
                elif isinstance(result, BaseException):
                    raise result
            if not lost:
                return
            error = next(r for r in results if isinstance(r, CONNECTION_ERRORS))
            await self.close()
            if fresh or attempt == 2:
                raise self._lost(error, len(lost)) from error  # type: ignore[arg-type]
            log.warning("broker connection lost (%s); resending %d message(s)", error, len(lost))
            for envelope in lost:
                envelope.properties.headers = {**(envelope.properties.headers or {}), H_RESENT: 1}
            pending = lost

    async def _publish_all(
        self, raw: RawChannel, envelopes: list[Envelope]
    ) -> list[BaseException | None]:
        """Publish pipelined; each envelope's outcome (None or its error), in order."""
        if len(envelopes) == 1:  # the common delay(): no gather, no extra task
            try:
                await self._publish_one(raw, envelopes[0])
            except Exception as exc:
                return [exc]
            return [None]
        return await asyncio.gather(
            *(self._publish_one(raw, envelope) for envelope in envelopes), return_exceptions=True
        )

    async def _publish_one(self, raw: RawChannel, envelope: Envelope) -> None:
        try:
            result = await raw.basic_publish(
                envelope.body,
                exchange=envelope.exchange,
                routing_key=envelope.routing_key,
                properties=envelope.properties,
                mandatory=envelope.mandatory,
                wait=False,  # no drain wait per message: the confirm is what we wait for
            )
        except DeliveryError as exc:
            raise BrokerRefused(
                f"the broker refused message {envelope.properties.message_id} "
                f"(exchange {envelope.exchange!r}, routing key {envelope.routing_key!r}): {exc}"
            ) from exc
        if (
            self.settings.confirm_publish
            and envelope.mandatory
            and not isinstance(result, Basic.Ack)
        ):
            raise PublishError(
                f"the broker could not route message {envelope.properties.message_id}: "
                f"no queue is bound to exchange {envelope.exchange!r} "
                f"with routing key {envelope.routing_key!r}"
            )

    async def _leave_refusing_node(self, refused: BrokerRefused) -> None:
        # In a cluster, a node can refuse a queue's messages while another takes them
        # (seen: a node that had just rejoined, after the queue's leader died, nacked
        # every publish for 10 s and more). The caller gets the refusal; the next
        # publish goes to the next node. With one URL this reconnects to the same.
        if len(broker_urls(self.settings.broker_url)) < 2:
            return
        log.warning("%s; the next publish goes to the next broker node", refused)
        await self.close()
        next_node(self.settings)

    def _lost(self, exc: BaseException, count: int) -> PublishError:
        return PublishError(
            f"lost the connection to the broker at {self.settings.safe_broker_url} "
            f"before {count} message(s) were confirmed: {_describe(exc)}"
        )

    async def close(self) -> None:
        """Close the connection (if any); the next publish opens a new one."""
        connection, self._connection = self._connection, None
        self._channel = self._raw = None
        self._queues.clear()
        if connection is not None and not connection.is_closed:
            try:
                await connection.close()
            except Exception:  # closing a broken connection may fail in many ways
                log.debug("error while closing broker connection", exc_info=True)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "…"
