"""Properties of cron expressions (taskcore/cron.py), with hypothesis.

- ``Cron.parse`` of any text parses (into non-empty sets within each field's range) or
  raises ConfigurationError naming the expression: never another exception.
- For generated valid expressions (``*``, numbers, names, ranges, steps and lists in
  every field), ``next_after(t)`` is strictly after ``t``, matches the expression, and
  no matching minute lies between: compared with a brute-force scan, day by day and
  minute by minute within matching days, over the same five-year horizon; an
  expression that never fires in it raises ConfigurationError, and the scan agrees.

The reference below builds each field's values from the generated parts themselves, not
from the parser. Day matching is cron's (Vixie cron, cronie): when both day fields are
restricted, a day matching either fires; a field starting with ``*`` (``*/2`` too) is
not a restriction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from taskcore.cron import Cron
from taskcore.errors import ConfigurationError

PROPERTIES = settings(max_examples=200, deadline=None, database=None)
HORIZON = timedelta(days=366 * 5)
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


@dataclass(frozen=True)
class Field:
    text: str
    values: frozenset[int]
    star: bool  # starts with "*": no restriction on the day (cron's DOM_STAR/DOW_STAR)


@dataclass(frozen=True)
class Expected:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: Field
    months: frozenset[int]
    weekdays: Field

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_days = day.day in self.days.values
        in_weekdays = (day.weekday() + 1) % 7 in self.weekdays.values
        if self.days.star or self.weekdays.star:
            return in_days and in_weekdays
        return in_days or in_weekdays

    def matches(self, moment: datetime) -> bool:
        return (
            self.day_matches(moment.date())
            and moment.hour in self.hours
            and moment.minute in self.minutes
        )


def _number(lo: int, hi: int, names: list[str] | None, first: int) -> st.SearchStrategy:
    """(text, value) of one number of the field: digits, or a name in any case."""
    values = st.integers(lo, hi)
    as_digits = values.map(lambda n: (str(n), n))
    if names is None:
        return as_digits
    as_name = st.tuples(st.integers(first, first + len(names) - 1), st.booleans()).map(
        lambda p: (names[p[0] - first].upper() if p[1] else names[p[0] - first], p[0])
    )
    return as_digits | as_name


@st.composite
def item(draw: st.DrawFn, lo: int, hi: int, names: list[str] | None, first: int) -> tuple:
    """One item of a list: ``*``, ``*/s``, ``n``, ``n/s``, ``a-b``, ``a-b/s``."""
    number = _number(lo, hi, names, first)
    kind = draw(st.sampled_from(["*", "n", "a-b"]))
    step = draw(st.none() | st.integers(1, hi))
    if kind == "*":
        text, first_value, last_value = "*", lo, hi
    elif kind == "n":
        text, first_value = draw(number)
        last_value = hi if step else first_value
    else:
        (a_text, a), (b_text, b) = sorted([draw(number), draw(number)], key=lambda p: p[1])
        text, first_value, last_value = f"{a_text}-{b_text}", a, b
    if step:
        text += f"/{step}"
    return text, set(range(first_value, last_value + 1, step or 1))


@st.composite
def field(
    draw: st.DrawFn, lo: int, hi: int, names: list[str] | None = None, first: int = 0
) -> Field:
    items = draw(st.lists(item(lo, hi, names, first), min_size=1, max_size=3))
    text = ",".join(t for t, _ in items)
    values = frozenset().union(*(v for _, v in items))
    return Field(text, values, star=text.startswith("*"))


@st.composite
def expressions(draw: st.DrawFn) -> Expected:
    minute, hour = draw(field(0, 59)), draw(field(0, 23))
    day, month = draw(field(1, 31)), draw(field(1, 12, MONTHS, 1))
    weekday = draw(field(0, 7, DAYS, 0))
    weekdays = Field(weekday.text, frozenset(d % 7 for d in weekday.values), weekday.star)
    spaces = draw(st.lists(st.sampled_from([" ", "  ", "\t"]), min_size=4, max_size=4))
    parts = [minute.text, hour.text, day.text, month.text, weekday.text]
    text = parts[0] + "".join(s + p for s, p in zip(spaces, parts[1:], strict=True))
    return Expected(text, minute.values, hour.values, day, month.values, weekdays)


def brute_force_next(expected: Expected, moment: datetime) -> datetime | None:
    """The first matching minute after ``moment`` and before ``moment + HORIZON``, found
    by checking every day, and every minute of the days that match."""
    start = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
    end = moment + HORIZON
    day = start.date()
    while day <= end.date():
        if expected.day_matches(day):
            minute = max(start, datetime(day.year, day.month, day.day, tzinfo=UTC))
            while minute.date() == day and minute < end:
                if minute.hour in expected.hours and minute.minute in expected.minutes:
                    return minute
                minute += timedelta(minutes=1)
        day += timedelta(days=1)
    return None


MOMENTS = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC)
)


@PROPERTIES
@given(expected=expressions(), moment=MOMENTS)
@example(  # Sunday as 7 in a range; a step over a named range
    expected=Expected(
        "0 12 * jan-mar/2 5-7",
        frozenset({0}),
        frozenset({12}),
        Field("*", frozenset(range(1, 32)), star=True),
        frozenset({1, 3}),
        Field("5-7", frozenset({5, 6, 0}), star=False),
    ),
    moment=datetime(2026, 11, 22, 18, 30, 15, tzinfo=UTC),
)
@example(  # both day fields restricted: either fires
    expected=Expected(
        "30 4 1,15 * fri",
        frozenset({30}),
        frozenset({4}),
        Field("1,15", frozenset({1, 15}), star=False),
        frozenset(range(1, 13)),
        Field("fri", frozenset({5}), star=False),
    ),
    moment=datetime(2026, 11, 21, 18, 30, tzinfo=UTC),
)
@example(  # a stepped star is no restriction: odd days that are Mondays
    expected=Expected(
        "0 0 */2 * mon",
        frozenset({0}),
        frozenset({0}),
        Field("*/2", frozenset(range(1, 32, 2)), star=True),
        frozenset(range(1, 13)),
        Field("mon", frozenset({1}), star=False),
    ),
    moment=datetime(2026, 11, 22, 0, 0, tzinfo=UTC),
)
@example(  # never: 31 February
    expected=Expected(
        "0 0 31 2 *",
        frozenset({0}),
        frozenset({0}),
        Field("31", frozenset({31}), star=False),
        frozenset({2}),
        Field("*", frozenset(range(7)), star=True),
    ),
    moment=datetime(2026, 1, 1, tzinfo=UTC),
)
def test_next_fire_time_is_the_first_matching_minute(expected: Expected, moment: datetime) -> None:
    cron = Cron.parse(expected.text)
    assert (cron.minutes, cron.hours, cron.months) == (
        expected.minutes,
        expected.hours,
        expected.months,
    )
    assert (cron.days, cron.weekdays) == (expected.days.values, expected.weekdays.values)
    scanned = brute_force_next(expected, moment)
    if scanned is None:
        with pytest.raises(ConfigurationError, match="never fires"):
            cron.next_after(moment)
        return
    found = cron.next_after(moment)
    assert found > moment and expected.matches(found)
    assert found.second == 0 and found.microsecond == 0 and found.tzinfo is not None
    assert found == scanned


#: Text near the grammar: digits (some not ASCII), names, separators, white space.
TOKENS = [*"0123456789*/-, \t", "jan", "MON", "sun", "7", "²", "٣", "\x00"]
CRONISH = st.lists(st.sampled_from(TOKENS), max_size=30).map("".join)


@PROPERTIES
@given(text=st.text(max_size=40) | CRONISH)
@example(text="² * * * *")  # str.isdigit() says yes, int() says no
@example(text="٣ * * * *")  # an Arabic-Indic digit
@example(text=("1" * 5000) + " * * * *")  # more digits than int() converts
@example(text="*/0 * * * *")
@example(text="1-2-3 * * * *")
@example(text="5/ * * * *")
@example(text=", * * * *")
def test_any_text_parses_or_says_what_is_wrong(text: str) -> None:
    try:
        cron = Cron.parse(text)
    except ConfigurationError as exc:
        assert "cron expression" in str(exc)
        return
    assert cron.minutes and cron.minutes <= set(range(60))
    assert cron.hours and cron.hours <= set(range(24))
    assert cron.days and cron.days <= set(range(1, 32))
    assert cron.months and cron.months <= set(range(1, 13))
    assert cron.weekdays and cron.weekdays <= set(range(7))
    assert text.isascii(), "only ASCII digits and names make a cron expression"
