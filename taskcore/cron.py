"""Five-field cron expressions (minute hour day-of-month month day-of-week), in UTC.

Supports ``*``, numbers, ranges ``a-b``, lists ``a,b``, steps ``*/n``, ``a-b/n``
and ``a/n`` (``a`` to the field's end), month and weekday names (``jan``, ``mon``),
and Sunday as 0 or 7. When both day fields are restricted, a day matches either; a
day field that starts with ``*`` (``*/2`` too) is no restriction, so a day must then
match both (as in Vixie cron and cronie: ``0 0 */2 * mon`` is odd days that are
Mondays).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from .errors import ConfigurationError

_MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
#: Give up looking for a next fire time after this long (e.g. "0 0 31 2 *" never fires).
_HORIZON = timedelta(days=366 * 5)


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression; ``next_after(dt)`` gives the next fire time."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, expression: str) -> Cron:
        parts = expression.split()
        if len(parts) != 5:
            raise ConfigurationError(
                f"cron expression {expression!r} needs 5 fields "
                "(minute hour day-of-month month day-of-week), e.g. '0 2 * * *'"
            )
        sets = [
            _parse_field(part, name, lo, hi, names, expression)
            for part, (name, lo, hi, names) in zip(parts, _FIELDS, strict=True)
        ]
        weekdays = frozenset(0 if d == 7 else d for d in sets[4])
        return cls(
            expression,
            sets[0],
            sets[1],
            sets[2],
            sets[3],
            weekdays,
            any_day=parts[2].startswith("*"),
            any_weekday=parts[4].startswith("*"),
        )

    def _day_matches(self, moment: datetime) -> bool:
        in_days = moment.day in self.days
        in_weekdays = (moment.weekday() + 1) % 7 in self.weekdays
        if self.any_day or self.any_weekday:
            return in_days and in_weekdays
        return in_days or in_weekdays

    def next_after(self, moment: datetime) -> datetime:
        """The first fire time strictly after ``moment`` (an aware datetime)."""
        t = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        end = moment + _HORIZON
        while t < end:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t += timedelta(minutes=1)
            else:
                return t
        raise ConfigurationError(f"cron expression {self.expression!r} never fires")


def _parse_field(
    text: str, name: str, lo: int, hi: int, names: dict[str, int], expression: str
) -> frozenset[int]:
    def number(token: str) -> int:
        token = token.lower()
        if token in names:
            return names[token]
        # ASCII digits only: str.isdigit() also takes "²" (which int() refuses) and other
        # scripts' digits. No field's number has more than two, leading zeros aside (and
        # int() refuses thousands).
        digits = token.isascii() and token.isdigit() and len(token.lstrip("0")) <= 2
        if not digits or not lo <= int(token) <= hi:
            raise ConfigurationError(
                f"cron expression {expression!r}: {token!r} is not a valid {name} ({lo}-{hi})"
            )
        return int(token)

    values: set[int] = set()
    for item in text.split(","):
        span, _, step_text = item.partition("/")
        step = number(step_text) if step_text else 1
        if step < 1:
            raise ConfigurationError(f"cron expression {expression!r}: step must be >= 1")
        if span == "*":
            first, last = lo, hi
        elif "-" in span:
            a, b = span.split("-", 1)
            first, last = number(a), number(b)
        else:
            first = last = number(span)
            if step_text:
                last = hi
        if first > last:
            raise ConfigurationError(f"cron expression {expression!r}: range {span} is reversed")
        values.update(range(first, last + 1, step))
    return frozenset(values)
