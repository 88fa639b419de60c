"""Global rate limits: a GCRA token bucket in Redis, taken atomically by a Lua script.

Each call *reserves* the next free slot instead of trying and failing: the
script returns the slot's start as a Unix time on Redis's clock. Waiters therefore
run in the order they asked, none can starve, and over any window the number
of starts is at most ``rate x window + burst``. The limit is shared by every
worker and process that talks to the same Redis. Workers compare slots with
their own clocks, so their machines keep time with NTP.

A limit is a string ``"<count>/<unit>"`` with unit s, m or h (``"10/m"``,
``"5/s"``, ``"1000/h"``). ``TaskApp.set_rate_limit`` stores an override in
Redis that the script reads on every call, so a change applies at once to
every worker, without a restart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import redis.asyncio as aioredis

from .errors import ConfigurationError
from .keys import RedisKeys

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_UNIT_SECONDS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60}
_UNIT_SECONDS |= {"h": 3600, "hour": 3600}


@dataclass(frozen=True, slots=True)
class Rate:
    """A parsed rate: one start per ``interval`` seconds, ``burst`` at once after idling."""

    text: str
    interval: float
    burst: int = 1


def parse_rate(text: str, burst: int = 1) -> Rate:
    """``"10/m"`` → Rate(interval=6.0); raise ConfigurationError for anything else."""
    match = _RATE.match(text) if isinstance(text, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise ConfigurationError(
            f"invalid rate limit {text!r}: use '<count>/<s|m|h>', e.g. '10/m' or '5/s'"
        )
    count = float(match.group(1))
    return Rate(text.strip(), _UNIT_SECONDS[match.group(2)] / count, burst)


# KEYS[1]: the overrides hash; KEYS[2..]: one TAT key per limit.
# ARGV: (name, interval, burst) per limit. Returns the slot's Unix time, as a string.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local limits = {}
local allowed = now
for i = 2, #KEYS do
  local base = (i - 2) * 3
  local name = ARGV[base + 1]
  local interval = tonumber(ARGV[base + 2])
  local burst = tonumber(ARGV[base + 3])
  local override = redis.call('HGET', KEYS[1], name)
  if override then
    local iv, b = string.match(override, '^(%S+) (%S+)')
    interval = tonumber(iv)
    burst = tonumber(b)
  end
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  local at = tat - (burst - 1) * interval
  if at > allowed then allowed = at end
  limits[i] = {tat, interval}
end
for i = 2, #KEYS do
  local tat = limits[i][1]
  if allowed > tat then tat = allowed end
  tat = tat + limits[i][2]
  local ttl = math.ceil((tat - now) * 1000) + 60000
  redis.call('SET', KEYS[i], string.format('%.6f', tat), 'PX', ttl)
end
return string.format('%.6f', allowed)
"""


class RateLimiter:
    """Reserves start slots for named limits (a task name, or ``queue:<name>``)."""

    def __init__(self, client: aioredis.Redis, keys: RedisKeys) -> None:
        self.redis = client
        self.keys = keys
        self._script = client.register_script(_RESERVE)

    async def reserve(self, limits: dict[str, Rate]) -> float:
        """Reserve one start under every limit; returns the Unix time the start may happen.

        An absolute time, not a wait: a wait would be counted from whenever the
        reply is read, so a worker whose loop was busy for 20 ms would start
        20 ms late and bunch up with the next start (seen on a loaded machine).
        """
        keys = [self.keys.rate_overrides] + [self.keys.rate(name) for name in limits]
        argv: list[str | float | int] = []
        for name, rate in limits.items():
            argv += [name, rate.interval, rate.burst]
        return float(await self._script(keys=keys, args=argv))


def encode_override(rate: Rate) -> str:
    """How an override is stored in the overrides hash (the Lua script reads it)."""
    return f"{rate.interval!r} {rate.burst} {rate.text}"


def decode_override(value: bytes | str) -> Rate:
    """Read an override back from the overrides hash."""
    text = value.decode() if isinstance(value, bytes) else value
    interval, burst, original = text.split(" ", 2)
    return Rate(original, float(interval), int(burst))
