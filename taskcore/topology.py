"""Names of everything taskcore declares on the broker, and the declarations.

Declarations are idempotent: every process declares what it uses when it
connects, so a fresh broker (or vhost) needs no set-up step.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from aiormq.exceptions import ChannelPreconditionFailed
from pamqp.commands import Basic

from . import delays
from .errors import ConfigurationError
from .message import Envelope, TaskMessage
from .ratelimit import parse_rate

log = logging.getLogger(__name__)

DEAD_SUFFIX = ".dead"
#: Event messages kept for a stopped recorder before the oldest are dropped.
RECORDER_QUEUE_MAX = 1_000_000
#: Dropped event messages kept for the recorder to count (see declare_recorder_queue).
RECORDER_DROPPED_MAX = 100_000
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,200}$")


def check_queue_name(name: str) -> str:
    """Return ``name`` if it can be a work queue; raise ConfigurationError otherwise."""
    if not isinstance(name, str) or not _QUEUE_NAME.match(name):
        raise ConfigurationError(
            f"invalid queue name {name!r}: use letters, digits and _ . : - "
            "(at most 200 characters, not starting with a dot or dash)"
        )
    if name.endswith(DEAD_SUFFIX):
        raise ConfigurationError(
            f"invalid queue name {name!r}: '{DEAD_SUFFIX}' is for dead letters"
        )
    return name


QUEUE_OPTIONS = {"max_priority", "type", "rate_limit"}
#: Classic queues use RabbitMQ's second storage version (3.10+, the default from 4.0):
#: it confirms persistent messages about 1.5x as fast as version 1 on this project's
#: machine (see the README's performance section).
CLASSIC_V2 = {"x-queue-version": 2}


def queue_arguments(queue: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """AMQP arguments for a work queue's options; raise ConfigurationError for bad ones.

    ``max_priority`` (1-255; 9 is plenty) makes a classic queue deliver higher
    priorities first. ``type="quorum"`` makes a replicated quorum queue; quorum
    queues ignore priorities (RabbitMQ < 4.0), so the two do not mix.
    """
    unknown = set(options) - QUEUE_OPTIONS
    if unknown:
        raise ConfigurationError(
            f"queue {queue!r}: unknown option(s) {sorted(unknown)}; known: {sorted(QUEUE_OPTIONS)}"
        )
    arguments: dict[str, Any] = {}
    if "rate_limit" in options:  # applied by workers (see ratelimit.py), not by the broker
        parse_rate(options["rate_limit"])
    kind = options.get("type", "classic")
    if kind not in {"classic", "quorum"}:
        raise ConfigurationError(f"queue {queue!r}: type must be 'classic' or 'quorum'")
    if kind == "quorum":
        arguments["x-queue-type"] = "quorum"
    else:
        arguments.update(CLASSIC_V2)
    if "max_priority" in options:
        priority = options["max_priority"]
        if kind == "quorum":
            raise ConfigurationError(f"queue {queue!r}: quorum queues do not support max_priority")
        if not isinstance(priority, int) or not 1 <= priority <= 255:
            raise ConfigurationError(f"queue {queue!r}: max_priority must be an integer 1-255")
        arguments["x-max-priority"] = priority
    return arguments


def dead_queue(queue: str) -> str:
    """The dead-letter queue that belongs to work queue ``queue``."""
    return queue + DEAD_SUFFIX


class Topology:
    """Exchange and queue names under one namespace, and how to declare them."""

    def __init__(
        self, namespace: str = "taskcore", queues: Mapping[str, Mapping[str, Any]] | None = None
    ) -> None:
        self.namespace = namespace
        self.queue_options = {name: dict(options) for name, options in (queues or {}).items()}
        for name, options in self.queue_options.items():
            queue_arguments(name, options)  # fail at start-up, not at the first publish
        #: Direct exchange: a task message's routing key is its queue's name.
        self.work_exchange = namespace
        #: Direct exchange for dead letters, routing key ``<queue>.dead``.
        self.dead_exchange = f"{namespace}.dead"
        #: Topic exchange at the bottom of the delay cascade.
        self.delivery_exchange = f"{namespace}.delay.deliver"
        #: Fanout exchange for remote-control commands to every worker.
        self.control_exchange = f"{namespace}.control"
        #: Topic exchange for lifecycle events (routing keys ``task.<state>``).
        self.events_exchange = f"{namespace}.events"
        #: Durable queue where ``taskcore recorder`` collects the events.
        self.recorder_queue = f"{namespace}.events.recorder"
        #: Where the recorder queue dead-letters the messages it drops when full.
        self.recorder_dropped_queue = f"{namespace}.events.dropped"
        #: The caps of those two queues, in messages (tests make them tiny).
        self.recorder_queue_max = RECORDER_QUEUE_MAX
        self.recorder_dropped_max = RECORDER_DROPPED_MAX

    def address(self, queue: str, delay: float = 0.0) -> tuple[str, str]:
        """Exchange and routing key that reach work queue ``queue`` after ``delay`` seconds."""
        units = delays.delay_units(delay)
        if units == 0:
            return self.work_exchange, queue
        return self.delay_exchange(delays.entry_level(units)), delays.routing_key(units, queue)

    def envelope(self, message: TaskMessage, delay: float = 0.0) -> Envelope:
        """The publish that puts ``message`` in its work queue after ``delay`` seconds."""
        return Envelope(*self.address(message.queue, delay), message.body(), message.properties())

    def events_envelope(self, state: str, events: Sequence[Mapping[str, Any]]) -> Envelope:
        """The publish of a batch of history events of one state (a JSON array), routed
        ``task.<state>``; dropped by the broker while no recorder queue exists."""
        return Envelope(
            self.events_exchange,
            f"task.{state.lower()}",
            json.dumps(events, default=str).encode(),
            Basic.Properties(content_type="application/json", delivery_mode=2),
            mandatory=False,
        )

    def delay_exchange(self, level: int) -> str:
        """Exchange (and queue) name of delay level ``level``."""
        return f"{self.namespace}.delay.{level:02d}"

    async def declare_base(self, channel: AbstractChannel) -> None:
        """Declare the exchanges and the whole delay cascade."""
        try:
            await self._declare_base(channel)
        except ChannelPreconditionFailed as exc:
            raise ConfigurationError(
                f"taskcore's delay queues ({self.namespace}.delay.*) already exist with other "
                f"arguments, probably from an older taskcore ({exc}); delete them, e.g. "
                f"rabbitmqctl list_queues name | grep '^{self.namespace}.delay' | "
                "xargs -n1 rabbitmqctl delete_queue"
            ) from exc

    async def _declare_base(self, channel: AbstractChannel) -> None:
        await channel.declare_exchange(
            self.work_exchange, aio_pika.ExchangeType.DIRECT, durable=True
        )
        await channel.declare_exchange(
            self.dead_exchange, aio_pika.ExchangeType.DIRECT, durable=True
        )
        await channel.declare_exchange(
            self.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        await channel.declare_exchange(
            self.control_exchange, aio_pika.ExchangeType.FANOUT, durable=True
        )
        below: AbstractExchange = await channel.declare_exchange(
            self.delivery_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        for level in range(delays.LEVELS):
            name = self.delay_exchange(level)
            exchange = await channel.declare_exchange(
                name, aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(
                name,
                durable=True,
                arguments={
                    "x-message-ttl": int(2**level * delays.UNIT * 1000),
                    "x-dead-letter-exchange": below.name,
                    **CLASSIC_V2,
                },
            )
            await queue.bind(exchange, delays.level_binding(level, "1"))
            await below.bind(exchange, delays.level_binding(level, "0"))
            below = exchange

    async def declare_recorder_queue(self, channel: AbstractChannel) -> AbstractQueue:
        """The recorder's durable event queue; from its first declaration on it keeps events
        while no recorder runs (capped, oldest dropped first, so it cannot fill the broker).

        Nothing is dropped silently: the queue dead-letters each message it drops from
        its head (reason ``maxlen``) through the default exchange into
        ``<namespace>.events.dropped``, which the recorder drains and counts
        (``taskcore_recorder_events_dropped_total``). That queue is capped too
        (``RECORDER_DROPPED_MAX`` messages, oldest dropped): a recorder that comes back
        after more drops than that counts that many and logs that it counted a part.
        Dead-lettering is done by the broker itself, so drops are counted even while no
        recorder runs, at no cost to workers, which publish events without waiting.

        A recorder queue declared by an older taskcore (no dead-lettering) or with another
        cap is used as it is, with a warning that says how to count its drops.
        """
        await self.declare_recorder_dropped_queue(channel)
        arguments = {
            "x-max-length": self.recorder_queue_max,
            "x-overflow": "drop-head",
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.recorder_dropped_queue,
            **CLASSIC_V2,
        }
        try:
            queue = await channel.declare_queue(
                self.recorder_queue, durable=True, arguments=arguments
            )
        except ChannelPreconditionFailed as exc:
            await channel.reopen()  # the failed declaration closed it
            queue = await channel.declare_queue(self.recorder_queue, passive=True)
            log.warning(
                "%s exists with other arguments (%s), probably from an older taskcore: using "
                "it as it is; events it drops when full are not counted unless it dead-letters "
                "them to %s: rabbitmqctl set_policy --apply-to queues recorder-drops "
                '\'^%s$\' \'{"dead-letter-exchange": "", "dead-letter-routing-key": '
                '"%s"}\' (or delete the queue while no recorder runs and it is empty)',
                self.recorder_queue,
                exc,
                self.recorder_dropped_queue,
                re.escape(self.recorder_queue),
                self.recorder_dropped_queue,
            )
        await queue.bind(self.events_exchange, "task.#")
        return queue

    async def declare_recorder_dropped_queue(self, channel: AbstractChannel) -> AbstractQueue:
        """The queue of event messages the recorder queue dropped, waiting to be counted."""
        return await channel.declare_queue(
            self.recorder_dropped_queue,
            durable=True,
            arguments={
                "x-max-length": self.recorder_dropped_max,
                "x-overflow": "drop-head",
                **CLASSIC_V2,
            },
        )

    async def declare_queue(self, channel: AbstractChannel, queue: str) -> None:
        """Declare work queue ``queue``, its dead-letter queue, and their bindings."""
        check_queue_name(queue)
        dead = dead_queue(queue)
        arguments = {
            # Anything the broker itself rejects or expires lands in the
            # dead-letter queue too: nothing is dropped silently.
            "x-dead-letter-exchange": self.dead_exchange,
            "x-dead-letter-routing-key": dead,
            **queue_arguments(queue, self.queue_options.get(queue, {})),
        }
        try:
            work = await channel.declare_queue(queue, durable=True, arguments=arguments)
            dead_q = await channel.declare_queue(dead, durable=True, arguments=CLASSIC_V2)
        except ChannelPreconditionFailed as exc:
            raise ConfigurationError(
                f"queue {queue!r} or {dead!r} already exists with other arguments ({exc}); "
                f"delete it (rabbitmqctl delete_queue NAME) or use another queue name"
            ) from exc
        await work.bind(self.work_exchange, queue)
        await work.bind(self.delivery_exchange, delays.delivery_binding(queue))
        await dead_q.bind(self.dead_exchange, dead)
