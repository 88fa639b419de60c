"""Periodic schedules: declared in code, fired by ``taskcore beat``, managed through Redis.

Each fire time has a deterministic task id, ``<schedule name>@<fire time>``,
and is claimed in Redis (``SET NX``) before it is published, so no fire time
is ever enqueued twice, even if two beats briefly both think they lead.

Fire times are instants (Unix seconds); a cron schedule reads its expression in its
time zone (``tz``), so daylight saving is handled where the next fire time is
computed (taskcore/cron.py), and the beat only compares instants.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .cron import Cron, zone
from .errors import ConfigurationError

#: What a beat does with fire times it missed (it was down, or paused leadership):
#: run every one of them, run the latest once, or skip them all.
MISSED_POLICIES = ("run_all", "run_once", "skip")
#: A fire time older than this when the beat sees it counts as missed.
ON_TIME = 2.0
#: run_all never enqueues more than this many missed fire times at once.
RUN_ALL_CAP = 100


@dataclass(frozen=True)
class Schedule:
    """One periodic task: when (cron or every, and the zone ``tz`` it is read in), what
    (task name, arguments, queue)."""

    name: str
    task: str
    cron: Cron | None = None
    every: float | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None
    missed: str = "run_once"
    #: The IANA time zone the cron expression is read in and fire times are shown in
    #: (``every`` is the same instants in any zone).
    tz: str = "UTC"

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.every is None):
            raise ConfigurationError(f"schedule {self.name!r}: give cron= or every=, not both")
        if self.every is not None and self.every <= 0:
            raise ConfigurationError(f"schedule {self.name!r}: every must be positive")
        if self.missed not in MISSED_POLICIES:
            raise ConfigurationError(
                f"schedule {self.name!r}: missed must be one of {', '.join(MISSED_POLICIES)}"
            )
        zone(self.tz)
        if self.cron is not None and self.cron.zone.key != self.tz:
            raise ConfigurationError(
                f"schedule {self.name!r}: its cron is read in {self.cron.zone.key}, not {self.tz}"
            )

    @property
    def zone(self) -> ZoneInfo:
        """The time zone this schedule's times are read and shown in."""
        return self.cron.zone if self.cron else zone(self.tz)

    @property
    def when(self) -> str:
        """Human-readable timing: the cron expression or ``every 300s``."""
        return self.cron.expression if self.cron else f"every {self.every:g}s"

    def next_after(self, t: float) -> float:
        """The first fire time strictly after Unix time ``t``."""
        return next(self.fire_times(t))

    def fire_times(self, t: float) -> Iterator[float]:
        """Every fire time strictly after Unix time ``t``, in order (Unix times)."""
        if self.every is not None:  # multiples of the interval since the epoch
            n = math.floor(t / self.every)
            while True:
                n += 1
                yield n * self.every
        assert self.cron is not None
        for fire in self.cron.fire_times(datetime.fromtimestamp(t, UTC)):
            yield fire.timestamp()

    def latest_at_or_before(self, t: float, *, after: float) -> float:
        """The latest fire time in (``after``, ``t``]; ``after`` itself if there is none."""
        if self.every is not None:
            return max(after, math.floor(t / self.every) * self.every)
        latest = after
        for fire in self.fire_times(after):
            if fire > t:
                break
            latest = fire
        return latest

    def due(self, last: float, now: float) -> tuple[list[float], float | None]:
        """Fire times in (last, now] to run under the missed-fire policy, and the latest
        fire time in (last, now] (None if there is none), which becomes the new ``last``."""
        times: list[float] = []
        for t in self.fire_times(last):
            if t > now:
                break
            times.append(t)
            if len(times) > RUN_ALL_CAP:  # a long outage: keep only the most recent
                del times[0]
        if not times:
            return [], None
        on_time = [t for t in times if now - t <= ON_TIME]
        missed = [t for t in times if now - t > ON_TIME]
        if not missed or self.missed == "skip":
            return on_time, times[-1]
        if self.missed == "run_once":
            return [missed[-1], *on_time], times[-1]
        return missed + on_time, times[-1]

    def task_id(self, fire_time: float) -> str:
        """The deterministic id of the run for one fire time."""
        stamp = datetime.fromtimestamp(fire_time, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return f"{self.name}@{stamp}"


def make_schedule(
    name: str,
    task: str,
    *,
    cron: str | None = None,
    every: timedelta | float | None = None,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    queue: str | None = None,
    missed: str = "run_once",
    tz: str = "UTC",
) -> Schedule:
    """Build a Schedule from user-facing arguments (cron text read in the IANA zone
    ``tz``, timedelta); ConfigurationError for a bad expression or an unknown zone."""
    seconds = every.total_seconds() if isinstance(every, timedelta) else every
    return Schedule(
        name=name,
        task=task,
        cron=Cron.parse(cron, tz) if cron is not None else None,
        every=seconds,
        args=tuple(args),
        kwargs=dict(kwargs or {}),
        queue=queue,
        missed=missed,
        tz=tz,
    )


def find_schedule(schedules: Mapping[str, Schedule], name: str) -> Schedule:
    """The schedule called ``name``; ConfigurationError listing the known names if none."""
    try:
        return schedules[name]
    except KeyError:
        known = ", ".join(sorted(schedules)) or "none"
        raise ConfigurationError(f"no schedule named {name!r} (known: {known})") from None
