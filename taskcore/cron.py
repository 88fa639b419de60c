"""Five-field cron expressions (minute hour day-of-month month day-of-week) read in an
IANA time zone, on cronsim (the library healthchecks.io uses; see scripts/bench_cron.py
for why it replaced taskcore's own parser).

The syntax is cron's: ``*``, numbers, ranges ``a-b``, lists ``a,b``, steps ``*/n``,
``a-b/n`` and ``a/n`` (``a`` to the field's end), month and weekday names (``jan``,
``mon``), Sunday as 0 or 7, and cronsim's ``L`` (the last day of the month), ``LW``
(its last weekday), ``5L`` (the last Friday) and ``5#2`` (the second Friday). When
both day fields are restricted a day matches either; a day field that starts with
``*`` (``*/2`` too) is no restriction, so a day must then match both (as in Vixie
cron and cronie: ``0 0 */2 * mon`` is odd days that are Mondays).

Daylight saving follows Debian's Vixie cron. An expression whose minute and hour
fields both start with something other than ``*`` runs at fixed local times
(cronsim's handling): one in a skipped hour runs once at the first valid time after
the gap (``30 2 * * *`` at 03:00 the day Berlin springs forward), and one in a
repeated hour runs once, at its first pass. Any other expression (``*/15 * * * *``,
``0 * * * *``) runs at every real minute whose local time matches: nothing in a
skipped hour, both passes of a repeated one.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from .errors import ConfigurationError

#: Each field's name and what it takes, for error messages.
_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31, L, LW"),
    ("month", "1-12 or jan-dec"),
    ("day of week", "0-7 or sun-sat, 5L, 5#2"),
)
_SYNTAX = "with * , - and /"
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
#: Each field's names, in the order of their numbers (months from 1, days from 0).
_NAMES: tuple[list[str], ...] = ([], [], [], _MONTHS, _DAYS)
#: Seconds: longer than any change of the clocks (two hours, the most there has been).
_LONGEST_CHANGE = 3 * 3600
#: Where a parse is checked from: any fixed moment will do.
_PROBE = datetime(2000, 1, 1, tzinfo=UTC)


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; ConfigurationError saying so if there is none."""
    try:
        if isinstance(name, str) and name.isascii():
            return ZoneInfo(name)
    except (ValueError, LookupError, OSError):
        pass
    raise ConfigurationError(
        f"unknown time zone {name!r}: give an IANA name such as 'Europe/Berlin' or 'UTC'"
    )


@dataclass(frozen=True)
class Cron:
    """A checked cron expression read in ``zone``; ``next_after(dt)`` gives the next fire."""

    expression: str
    zone: ZoneInfo
    #: The expression as cronsim is given it (see ``_for_cronsim``).
    simulated: str

    @classmethod
    def parse(cls, expression: str, tz: str = "UTC") -> Cron:
        """Check ``expression``: ConfigurationError naming it and what is wrong if bad."""
        simulated = _for_cronsim(_fields(expression))
        _check(expression, simulated)
        return cls(expression, zone(tz), simulated)

    @property
    def fixed(self) -> bool:
        """Whether it runs at fixed local times: neither minute nor hour starts with ``*``."""
        minute, hour = self.simulated.split()[:2]
        return not (minute.startswith("*") or hour.startswith("*"))

    def fire_times(self, moment: datetime) -> Iterator[datetime]:
        """Every fire time strictly after ``moment`` (an aware datetime), in order, as
        aware datetimes in the zone; ConfigurationError if there is none."""
        after = moment.timestamp()
        found = False
        times = self._fixed_times(moment) if self.fixed else self._real_minutes(after)
        for fire in times:
            # A start in the second pass of a repeated hour reads as its first pass, so
            # cronsim may begin with a fire time before the start: skip those.
            if fire.timestamp() > after:
                found = True
                yield fire
        if not found:  # cronsim looks 50 years ahead
            raise ConfigurationError(f"cron expression {self.expression!r} never fires")

    def next_after(self, moment: datetime) -> datetime:
        """The first fire time strictly after ``moment`` (an aware datetime)."""
        return next(self.fire_times(moment))

    def _fixed_times(self, moment: datetime) -> Iterator[datetime]:
        """Fixed local times, by cronsim's rule for them (Debian cron's)."""
        return iter(CronSim(self.simulated, moment.astimezone(self.zone)))

    def _real_minutes(self, after: float) -> Iterator[datetime]:
        """Every real minute after ``after`` whose local time matches: cronsim finds the
        matching local times (on the wall clock, no zone), each becomes the instants the
        clocks read it (none in a gap, two in a repeated hour), yielded in order.

        Given the zone, cronsim steps an hour at a time there, and so misses minutes after
        Lord Howe Island's half-hour change, and fires at a skipped midnight it reaches by
        a change of day; this does neither."""
        start = datetime.fromtimestamp(after, self.zone)
        near_a_change = any(
            datetime.fromtimestamp(after + shift, self.zone).utcoffset() != start.utcoffset()
            for shift in (-_LONGEST_CHANGE, _LONGEST_CHANGE)
        )
        wall = start.replace(tzinfo=None) - timedelta(seconds=_LONGEST_CHANGE * near_a_change)
        pending: list[float] = []  # instants found, not yet yielded (a heap)
        for local in CronSim(self.simulated, wall):
            passes = _instants(local, self.zone)
            while pending and passes and pending[0] < passes[0]:
                yield datetime.fromtimestamp(heapq.heappop(pending), self.zone)
            for t in passes:
                heapq.heappush(pending, t)
        while pending:
            yield datetime.fromtimestamp(heapq.heappop(pending), self.zone)


def _instants(local: datetime, tz: ZoneInfo) -> list[float]:
    """The instants (Unix) at which the clocks in ``tz`` read the naive time ``local``:
    none in a gap, one, or two in a repeated hour."""
    first = local.replace(tzinfo=tz, fold=0)
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != local:
        return []
    return sorted({first.timestamp(), local.replace(tzinfo=tz, fold=1).timestamp()})


def _fields(expression: str) -> list[str]:
    """The five fields of ``expression``; ConfigurationError if it has not five, or
    anything but ASCII (``"\u017fun".upper()`` is ``"SUN"``)."""
    if not isinstance(expression, str) or not expression.isascii():
        raise ConfigurationError(
            f"cron expression {expression!r}: only ASCII digits, names and * , - / are allowed"
        )
    parts = expression.split()
    if len(parts) != 5:
        raise ConfigurationError(
            f"cron expression {expression!r} needs 5 fields "
            "(minute hour day-of-month month day-of-week), e.g. '0 2 * * *'"
        )
    return parts


def _for_cronsim(parts: list[str]) -> str:
    """The expression with each one-value range with a step (``5-5/2``) written as its
    value (``5``): cronsim reads it as ``5/2`` (5 to the field's end), cron as just 5."""
    return " ".join(
        ",".join(_one_value(item, names) for item in part.split(","))
        for part, names in zip(parts, _NAMES, strict=True)
    )


def _one_value(item: str, names: list[str]) -> str:
    span, _, step = item.partition("/")
    first, dash, last = span.partition("-")
    same = _value(first, names) is not None and _value(first, names) == _value(last, names)
    stepped = step.isdigit() and step.strip("0") != ""
    return first if dash and same and stepped else item


def _value(token: str, names: list[str]) -> int | None:
    """A field's number or name as a number (None if it is neither)."""
    if token.isdigit() and len(token) < 9:
        return int(token)
    if token.lower() not in names:
        return None
    return names.index(token.lower()) + (1 if names is _MONTHS else 0)


def _check(expression: str, simulated: str) -> None:
    """Raise ConfigurationError naming ``expression`` and its fault, if it has one."""
    parts = expression.split()
    for index, (name, values) in enumerate(_FIELDS):
        alone = ["*"] * 5
        alone[index] = simulated.split()[index]
        if not _parses(" ".join(alone)):
            raise ConfigurationError(
                f"cron expression {expression!r}: {parts[index]!r} is not a valid "
                f"{name}{_hint(parts[index])} ({values}, {_SYNTAX})"
            )
    if not _parses(simulated):  # every field is fine alone: their days never meet
        raise ConfigurationError(
            f"cron expression {expression!r} never fires: no month it allows has that day"
        )


def _hint(field: str) -> str:
    """What is wrong with one field, where a reversed range or a zero step says it."""
    for item in field.split(","):
        span, slash, step = item.partition("/")
        if slash and step and not step.strip("0"):
            return ": a step must be at least 1"
        first, dash, last = span.partition("-")
        numbers = first.isdigit() and last.isdigit() and len(first + last) < 9
        if dash and numbers and int(first) > int(last):
            return f": the range {span} is reversed"
    return ""


def _parses(expression: str) -> bool:
    try:
        CronSim(expression, _PROBE)
    except (CronSimError, ValueError):  # ValueError: more digits than int() converts
        return False
    return True
