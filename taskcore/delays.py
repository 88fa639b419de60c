"""Broker-side delayed delivery through a cascade of delay levels.

RabbitMQ only expires messages at the head of a queue, so one delay queue with
per-message TTLs would hold a 1-second message behind a 1-hour one. Instead,
level ``n`` is a queue whose *queue* TTL is ``2**n`` units: every message in it
waits the same time, so its head always expires first. A delay of ``d`` units
is written in binary into the routing key, one word per level, highest level
first, then the destination queue::

    0.0. ... .1.0.1.email      (5 units: through level 2, then level 0)

Each level's topic exchange sends the message into its queue when its bit is
1 and on to the next lower level when it is 0; an expired message is
dead-lettered to the next lower level with its routing key intact, and level
0 hands it to the delivery exchange, which routes it to ``email`` by the last
word. NServiceBus's delayed delivery works the same way. No plugin, nothing
held in a worker's memory, any delay up to ``MAX_DELAY`` without blocking.
"""

from __future__ import annotations

import math
import time
from datetime import datetime

from .errors import ConfigurationError

#: Resolution of a delay, in seconds. Finer than one second so that retry
#: backoff with jitter arrives when asked (level 0 waits 100 ms).
UNIT = 0.1
#: Number of levels. The top level's TTL (2**25 units, 38.8 days) stays below
#: 2**32 ms, the longest timer RabbitMQ is documented to keep; a delay may be
#: up to 2**26 - 1 units, about 77 days.
LEVELS = 26
MAX_DELAY = (2**LEVELS - 1) * UNIT


def delay_units(seconds: float) -> int:
    """Seconds to whole delay units, rounded to the nearest unit."""
    if math.isnan(seconds) or seconds > MAX_DELAY:
        raise ConfigurationError(f"delay of {seconds}s is beyond the maximum of {MAX_DELAY:.0f}s")
    return max(0, round(seconds / UNIT))


def routing_key(units: int, queue: str) -> str:
    """The routing key that carries ``units`` through the cascade to ``queue``."""
    bits = ".".join("1" if units >> level & 1 else "0" for level in reversed(range(LEVELS)))
    return f"{bits}.{queue}"


def entry_level(units: int) -> int:
    """The highest level a delay passes through: where its publish enters the cascade."""
    if units <= 0:
        raise ValueError("a delay of zero units does not enter the cascade")
    return units.bit_length() - 1


def level_binding(level: int, bit: str) -> str:
    """Binding key on a level's exchange for routing keys whose bit at that level is ``bit``."""
    return "*." * (LEVELS - 1 - level) + bit + ".#"


def delivery_binding(queue: str) -> str:
    """Binding key on the delivery exchange that matches every delay bound for ``queue``."""
    return "*." * LEVELS + queue


def delay_seconds(countdown: float | None, eta: datetime | None) -> float:
    """The delay a call asks for, as ``countdown`` seconds or an ``eta`` (past: none)."""
    if countdown is not None and eta is not None:
        raise ConfigurationError("give countdown or eta, not both")
    if eta is not None:
        return max(0.0, eta.timestamp() - time.time())
    if countdown is not None:
        if countdown < 0:
            raise ConfigurationError(f"countdown must be >= 0 seconds, not {countdown}")
        return float(countdown)
    return 0.0
