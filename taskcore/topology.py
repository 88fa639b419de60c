"""Names of everything taskcore declares on the broker, and the declarations.

Declarations are idempotent: every process declares what it uses when it
connects, so a fresh broker (or vhost) needs no set-up step.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractQueue
from aiormq.abc import AbstractChannel as RawChannel
from aiormq.exceptions import ChannelInvalidStateError, ChannelPreconditionFailed
from pamqp.commands import Basic

from . import delays
from .errors import ConfigurationError
from .message import Envelope, TaskMessage
from .ratelimit import parse_rate
from .settings import QUEUE_TYPES

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
#: machine (see the README's performance section). Quorum queues refuse the argument.
CLASSIC_V2 = {"x-queue-version": 2}
QUORUM = {"x-queue-type": "quorum"}
#: Dead-lettering that keeps a message in its quorum queue until the queue it goes to
#: confirmed it (RabbitMQ 3.10+): a delayed message outlives a moment when the next delay
#: level's queue has no leader (a node of the cluster died). RabbitMQ requires
#: reject-publish overflow with it; the delay queues have no length limit, so nothing is
#: rejected. Classic queues dead-letter at most once.
AT_LEAST_ONCE = {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}


def type_arguments(kind: str) -> dict[str, Any]:
    """The arguments that make a queue of type ``kind`` (``classic`` or ``quorum``)."""
    return dict(QUORUM if kind == "quorum" else CLASSIC_V2)


def queue_arguments(
    queue: str, options: Mapping[str, Any], default_type: str = "classic"
) -> dict[str, Any]:
    """AMQP arguments for a work queue's options; raise ConfigurationError for bad ones.

    ``max_priority`` (1-255; 9 is plenty) makes a classic queue deliver higher
    priorities first. ``type="quorum"`` makes a replicated quorum queue; quorum
    queues take no ``x-max-priority``, so the two do not mix. A queue without a
    ``type`` of its own gets ``default_type`` (``TASKCORE_QUEUE_TYPE``).
    """
    unknown = set(options) - QUEUE_OPTIONS
    if unknown:
        raise ConfigurationError(
            f"queue {queue!r}: unknown option(s) {sorted(unknown)}; known: {sorted(QUEUE_OPTIONS)}"
        )
    if "rate_limit" in options:  # applied by workers (see ratelimit.py), not by the broker
        parse_rate(options["rate_limit"])
    kind = options.get("type", default_type)
    if kind not in QUEUE_TYPES:
        raise ConfigurationError(f"queue {queue!r}: type must be 'classic' or 'quorum'")
    arguments = type_arguments(kind)
    if "max_priority" in options:
        priority = options["max_priority"]
        if not isinstance(priority, int) or not 1 <= priority <= 255:
            raise ConfigurationError(f"queue {queue!r}: max_priority must be an integer 1-255")
        if kind == "quorum":
            why = "its type" if "type" in options else "TASKCORE_QUEUE_TYPE=quorum"
            raise ConfigurationError(
                f"queue {queue!r}: max_priority needs a classic queue and {why} makes it "
                "a quorum queue; RabbitMQ refuses x-max-priority on quorum queues (before "
                "4.0 they have no priorities). Keep this queue classic with "
                f"queues={{{queue!r}: {{'type': 'classic', 'max_priority': {priority}}}}}, "
                "or drop max_priority"
            )
        arguments["x-max-priority"] = priority
    return arguments


def dead_queue(queue: str) -> str:
    """The dead-letter queue that belongs to work queue ``queue``."""
    return queue + DEAD_SUFFIX


class Topology:
    """Exchange and queue names under one namespace, and how to declare them."""

    def __init__(
        self,
        namespace: str = "taskcore",
        queues: Mapping[str, Mapping[str, Any]] | None = None,
        queue_type: str = "classic",
    ) -> None:
        if queue_type not in QUEUE_TYPES:
            raise ConfigurationError(
                f"TASKCORE_QUEUE_TYPE={queue_type!r}: use 'classic' or 'quorum'"
            )
        self.namespace = namespace
        #: The type of every queue declared here, but for a work queue with a ``type`` of
        #: its own and the workers' exclusive control queues (always classic).
        self.queue_type = queue_type
        self.queue_options = {name: dict(options) for name, options in (queues or {}).items()}
        for name, options in self.queue_options.items():
            # fail at start-up, not at the first publish
            queue_arguments(name, options, queue_type)
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
            queues = f"taskcore delay queues ({self.namespace}.delay.*)"
            raise ConfigurationError(
                f"{_other_arguments(queues, exc, 'exist')}; once they are empty (they hold "
                "delayed tasks), delete them, e.g. "
                f"rabbitmqctl list_queues name | grep '^{self.namespace}.delay' | "
                "xargs -n1 rabbitmqctl delete_queue"
            ) from exc

    def delay_arguments(self, level: int, below: str) -> dict[str, Any]:
        """Delay level ``level``'s queue: its TTL, then dead-lettered to exchange ``below``."""
        arguments = {
            "x-message-ttl": int(2**level * delays.UNIT * 1000),
            "x-dead-letter-exchange": below,
            **type_arguments(self.queue_type),
        }
        if self.queue_type == "quorum":
            arguments.update(AT_LEAST_ONCE)
        return arguments

    async def _declare_base(self, channel: AbstractChannel) -> None:
        # Over a hundred declarations go out without waiting for their replies (AMQP
        # no-wait): one round trip instead of one each, ~50 ms at every connect. The broker
        # runs a channel's methods in order and closes the channel at the first that fails,
        # so the passive declaration at the end raises that one's error.
        raw = await channel.get_underlay_channel()
        try:
            await self._declare_base_nowait(raw)
        except ChannelInvalidStateError:
            # Closed by the broker at a failed declaration while later ones were going
            # out: its reason (PRECONDITION_FAILED, ...) is what the caller must see.
            async with asyncio.timeout(5):
                await raw.closing
            raise

    async def _declare_base_nowait(self, raw: RawChannel) -> None:
        for name, kind in (
            (self.work_exchange, "direct"),
            (self.dead_exchange, "direct"),
            (self.events_exchange, "topic"),
            (self.control_exchange, "fanout"),
            (self.delivery_exchange, "topic"),
        ):
            await raw.exchange_declare(name, exchange_type=kind, durable=True, nowait=True)
        below = self.delivery_exchange
        for level in range(delays.LEVELS):
            name = self.delay_exchange(level)
            arguments = self.delay_arguments(level, below)
            await raw.exchange_declare(name, exchange_type="topic", durable=True, nowait=True)
            await raw.queue_declare(name, durable=True, arguments=arguments, nowait=True)
            await raw.queue_bind(name, name, delays.level_binding(level, "1"), nowait=True)
            await raw.exchange_bind(below, name, delays.level_binding(level, "0"), nowait=True)
            below = name
        await raw.exchange_declare(below, passive=True)

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

        Both queues are quorum queues with ``TASKCORE_QUEUE_TYPE=quorum`` (which keep the
        cap and the drop-head dead-lettering, at most once). A recorder queue declared by
        an older taskcore (no dead-lettering), with another cap or of another type is used
        as it is, with a warning that says how to count its drops.
        """
        await self.declare_recorder_dropped_queue(channel)
        arguments = {
            "x-max-length": self.recorder_queue_max,
            "x-overflow": "drop-head",
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.recorder_dropped_queue,
            **type_arguments(self.queue_type),
        }
        try:
            queue = await channel.declare_queue(
                self.recorder_queue, durable=True, arguments=arguments
            )
        except ChannelPreconditionFailed as exc:
            await channel.reopen()  # the failed declaration closed it
            queue = await channel.declare_queue(self.recorder_queue, passive=True)
            log.warning(
                "%s: using it as it is; events it drops when full are not counted unless it "
                "dead-letters them to %s: rabbitmqctl set_policy --apply-to queues "
                'recorder-drops \'^%s$\' \'{"dead-letter-exchange": "", '
                '"dead-letter-routing-key": "%s"}\' (or delete the queue while no recorder '
                "runs and it is empty)",
                _other_arguments(self.recorder_queue, exc),
                self.recorder_dropped_queue,
                re.escape(self.recorder_queue),
                self.recorder_dropped_queue,
            )
        await queue.bind(self.events_exchange, "task.#")
        return queue

    async def declare_recorder_dropped_queue(self, channel: AbstractChannel) -> AbstractQueue:
        """The queue of event messages the recorder queue dropped, waiting to be counted
        (one declared with other arguments is used as it is, with a warning)."""
        arguments = {
            "x-max-length": self.recorder_dropped_max,
            "x-overflow": "drop-head",
            **type_arguments(self.queue_type),
        }
        try:
            return await channel.declare_queue(
                self.recorder_dropped_queue, durable=True, arguments=arguments
            )
        except ChannelPreconditionFailed as exc:
            await channel.reopen()  # the failed declaration closed it
            log.warning(
                "%s: using it as it is (delete it while no recorder runs to have it declared "
                "again)",
                _other_arguments(self.recorder_dropped_queue, exc),
            )
            return await channel.declare_queue(self.recorder_dropped_queue, passive=True)

    async def declare_queue(self, channel: AbstractChannel, queue: str) -> None:
        """Declare work queue ``queue``, its dead-letter queue, and their bindings."""
        check_queue_name(queue)
        dead = dead_queue(queue)
        arguments = {
            # Anything the broker itself rejects or expires lands in the
            # dead-letter queue too: nothing is dropped silently.
            "x-dead-letter-exchange": self.dead_exchange,
            "x-dead-letter-routing-key": dead,
            **queue_arguments(queue, self.queue_options.get(queue, {}), self.queue_type),
        }
        declared = []
        for name, args in ((queue, arguments), (dead, type_arguments(self.queue_type))):
            try:
                declared.append(await channel.declare_queue(name, durable=True, arguments=args))
            except ChannelPreconditionFailed as exc:
                raise ConfigurationError(
                    f"{_other_arguments(f'queue {name!r}', exc)}; drain and delete it "
                    f"(rabbitmqctl delete_queue {name}), or use another queue name"
                ) from exc
        work, dead_q = declared
        await work.bind(self.work_exchange, queue)
        await work.bind(self.delivery_exchange, delays.delivery_binding(queue))
        await dead_q.bind(self.dead_exchange, dead)


def _other_arguments(what: str, exc: Exception, exists: str = "exists") -> str:
    """Why a declaration met PRECONDITION_FAILED, for an error or a warning."""
    return (
        f"{what} already {exists} with other arguments ({exc}): declared by an older "
        "taskcore, with other queues= options or another TASKCORE_QUEUE_TYPE (RabbitMQ "
        "never changes the type or arguments of a queue that exists)"
    )
