"""Properties of cron expressions in time zones (taskcore/cron.py, on cronsim), with
hypothesis.

- ``Cron.parse`` of any text parses or raises ConfigurationError naming the expression:
  never another exception; what parses is ASCII, has five fields and fires (or says it
  never does).
- For generated valid expressions (``*``, numbers, names, ranges, steps and lists in
  every field), zones with daylight saving (some changing the clocks at midnight, by
  30 minutes, or on a :45 offset) and moments near their changes, ``next_after(t)`` is
  strictly after ``t``, is a fire time of the expression in the zone, and no fire time
  lies between: it equals a brute-force scan of the local days and their minutes. An
  iterator of fire times gives what repeated ``next_after`` gives.

The reference builds each field's values from the generated parts themselves, not from
the implementation. Day matching is cron's (Vixie cron, cronie): when both day fields
are restricted, a day matching either fires; a field starting with ``*`` (``*/2`` too)
is not a restriction. Daylight saving is Debian cron's, as documented in cron.py: when
the minute and hour fields both start with something other than ``*`` a matching local
time fires once, at its first pass, or at the end of the gap if the clocks skip it;
otherwise every real minute whose local time matches fires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from itertools import islice
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from taskcore.cron import Cron
from taskcore.errors import ConfigurationError

PROPERTIES = settings(max_examples=300, deadline=None, database=None)
#: Longer than any wait for a valid expression's next fire (29 February: 8 years).
HORIZON = timedelta(days=366 * 9)
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Manila",  # no daylight saving
    "Asia/Kolkata",  # +05:30
    "America/Santiago",  # changes at midnight
    "America/Havana",  # changes at midnight
    "Australia/Lord_Howe",  # 30 minutes
    "Pacific/Chatham",  # +12:45 / +13:45
]


@dataclass(frozen=True)
class Field:
    text: str
    values: frozenset[int]
    star: bool  # starts with "*": no restriction on the day (cron's DOM_STAR/DOW_STAR)


@dataclass(frozen=True)
class Expected:
    text: str
    minutes: Field
    hours: Field
    days: Field
    months: frozenset[int]
    weekdays: Field

    @property
    def fixed(self) -> bool:
        """Runs at fixed local times (Debian cron's rule for daylight saving)."""
        return not (self.minutes.star or self.hours.star)

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_days = day.day in self.days.values
        in_weekdays = (day.weekday() + 1) % 7 in self.weekdays.values
        if self.days.star or self.weekdays.star:
            return in_days and in_weekdays
        return in_days or in_weekdays

    def matches(self, local: datetime) -> bool:
        return (
            self.day_matches(local.date())
            and local.hour in self.hours.values
            and local.minute in self.minutes.values
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
    return Expected(text, minute, hour, day, month.values, weekdays)


def _exists(wall: datetime, zone: ZoneInfo) -> bool:
    """Whether the clocks in ``zone`` ever read the naive time ``wall``."""
    there = wall.replace(tzinfo=zone)
    return there.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall


def _ends_a_gap(local: datetime) -> bool:
    """Whether the clocks jumped to ``local`` (the minute before it never was)."""
    return not _exists(local.replace(tzinfo=None) - timedelta(minutes=1), local.tzinfo)


def instants(expected: Expected, wall: datetime, zone: ZoneInfo) -> list[datetime]:
    """The instants (UTC) at which a matching local time ``wall`` fires."""
    if not _exists(wall, zone):
        if not expected.fixed:
            return []
        while not _exists(wall, zone):  # the end of the gap
            wall += timedelta(minutes=1)
    passes = {wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)}
    return [min(passes)] if expected.fixed else sorted(passes)


def brute_force_next(expected: Expected, tz: str, moment: datetime) -> datetime | None:
    """The first fire time after ``moment``: every local day from the day before, and
    every minute of the days that match; None if none before ``moment + HORIZON``."""
    zone = ZoneInfo(tz)
    day = moment.astimezone(zone).date() - timedelta(days=1)
    found: list[datetime] = []
    while day <= (moment + HORIZON).date():
        if expected.day_matches(day):
            for hour in sorted(expected.hours.values):
                for minute in sorted(expected.minutes.values):
                    wall = datetime(day.year, day.month, day.day, hour, minute)
                    found += [t for t in instants(expected, wall, zone) if t > moment]
        if found and day > min(found).astimezone(zone).date():
            return min(found)  # a later day's times are all later
        day += timedelta(days=1)
    return min(found) if found else None


def _offset(zone: ZoneInfo, t: datetime) -> timedelta | None:
    return t.astimezone(zone).utcoffset()


@cache
def changes(tz: str, year: int) -> tuple[datetime, ...]:
    """The instants (to the hour) in ``year`` at which ``tz`` changes its UTC offset."""
    zone, day, found = ZoneInfo(tz), datetime(year, 1, 1, tzinfo=UTC), []
    while day.year == year:
        following = day + timedelta(days=1)
        if _offset(zone, day) != _offset(zone, following):
            hour = day
            while _offset(zone, hour) == _offset(zone, hour + timedelta(hours=1)):
                hour += timedelta(hours=1)
            found.append(hour)
        day = following
    return tuple(found)


@st.composite
def zoned_moments(draw: st.DrawFn) -> tuple[str, datetime]:
    """A zone and a moment: anywhere in 1990-2090, or within two days of a change."""
    tz = draw(st.sampled_from(ZONES))
    anywhere = draw(
        st.datetimes(datetime(1990, 1, 1), datetime(2090, 12, 31), timezones=st.just(UTC))
    )
    near = changes(tz, draw(st.integers(2000, 2040)))
    if not near or draw(st.booleans()):
        return tz, anywhere
    offset = timedelta(seconds=draw(st.integers(-2 * 86400, 2 * 86400)))
    return tz, draw(st.sampled_from(near)) + offset


def _expected(text: str, *parts: tuple[set[int], bool]) -> Expected:
    """An example's Expected from each field's values and star flag."""
    fields = [Field(p, frozenset(v), s) for p, (v, s) in zip(text.split(), parts, strict=True)]
    return Expected(text, fields[0], fields[1], fields[2], fields[3].values, fields[4])


ANY_DAY = (set(range(1, 32)), True)
ANY_MONTH = (set(range(1, 13)), True)
ANY_WEEKDAY = (set(range(7)), True)


def _daily(text: str, minute: int, hour: int) -> Expected:
    return _expected(text, ({minute}, False), ({hour}, False), ANY_DAY, ANY_MONTH, ANY_WEEKDAY)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@PROPERTIES
@given(expected=expressions(), zoned=zoned_moments())
@example(  # Berlin springs forward: 02:30 runs at 03:00
    expected=_daily("30 2 * * *", 30, 2), zoned=("Europe/Berlin", at("2026-03-28T12:00"))
)
@example(  # ... and falls back: 02:30 runs once, at its first pass
    expected=_daily("30 2 * * *", 30, 2), zoned=("Europe/Berlin", at("2026-10-25T00:45"))
)
@example(  # from the second pass of New York's repeated hour: tomorrow
    expected=_daily("30 1 * * *", 30, 1), zoned=("America/New_York", at("2026-11-01T06:10"))
)
@example(  # every minute of the skipped hour: none of them
    expected=_expected(
        "* 2 * * *", (set(range(60)), True), ({2}, False), ANY_DAY, ANY_MONTH, ANY_WEEKDAY
    ),
    zoned=("Europe/Berlin", at("2026-03-29T00:30")),
)
@example(  # Santiago skips midnight: a midnight job runs at 01:00
    expected=_daily("0 0 * * *", 0, 0), zoned=("America/Santiago", at("2026-09-05T12:00"))
)
@example(  # ... and every minute of that skipped hour runs in none of it
    expected=_expected(
        "* 0 * * *", (set(range(60)), True), ({0}, False), ANY_DAY, ANY_MONTH, ANY_WEEKDAY
    ),
    zoned=("America/Santiago", at("2026-09-05T12:00")),
)
@example(  # ... also when cronsim reaches that midnight by a change of day: next year
    expected=_expected(
        "* 0 6 9 *", (set(range(60)), True), ({0}, False), ({6}, False), ({9}, False), ANY_WEEKDAY
    ),
    zoned=("America/Santiago", at("2026-09-01T12:00")),
)
@example(  # ... while an hourly job on that day fires at 01:00, the first real hour
    expected=_expected(
        "0 * 6 9 *", ({0}, False), (set(range(24)), True), ({6}, False), ({9}, False), ANY_WEEKDAY
    ),
    zoned=("America/Santiago", at("2026-09-01T12:00")),
)
@example(  # a one-value range with a step is that value (cronsim alone reads 0/1)
    expected=_expected(
        "0-0/1 * * * *", ({0}, False), (set(range(24)), True), ANY_DAY, ANY_MONTH, ANY_WEEKDAY
    ),
    zoned=("UTC", at("2000-01-01T00:00")),
)
@example(  # Sunday as 7 in a range; a step over a named range
    expected=_expected(
        "0 12 * jan-mar/2 5-7",
        ({0}, False),
        ({12}, False),
        ANY_DAY,
        ({1, 3}, False),
        ({5, 6, 0}, False),
    ),
    zoned=("UTC", at("2026-11-22T18:30:15")),
)
@example(  # both day fields restricted: either fires
    expected=_expected(
        "30 4 1,15 * fri", ({30}, False), ({4}, False), ({1, 15}, False), ANY_MONTH, ({5}, False)
    ),
    zoned=("Asia/Manila", at("2026-11-21T18:30")),
)
@example(  # a stepped star is no restriction: odd days that are Mondays
    expected=_expected(
        "0 0 */2 * mon",
        ({0}, False),
        ({0}, False),
        (set(range(1, 32, 2)), True),
        ANY_MONTH,
        ({1}, False),
    ),
    zoned=("UTC", at("2026-11-22T00:00")),
)
@example(  # 29 February: eight years from 2096 (2100 is no leap year)
    expected=_expected(
        "0 0 29 2 *", ({0}, False), ({0}, False), ({29}, False), ({2}, False), ANY_WEEKDAY
    ),
    zoned=("UTC", at("2096-03-01T00:00")),
)
def test_next_fire_time_is_the_first_fire_time_after(
    expected: Expected, zoned: tuple[str, datetime]
) -> None:
    tz, moment = zoned
    scanned = brute_force_next(expected, tz, moment)
    if scanned is None:  # e.g. "0 0 31 2 *"
        with pytest.raises(ConfigurationError, match="never fires"):
            Cron.parse(expected.text, tz).next_after(moment)
        return
    found = Cron.parse(expected.text, tz).next_after(moment)
    assert found > moment and found.tzinfo == ZoneInfo(tz)
    assert (
        found.second == 0
        and found.microsecond == 0
        and _exists(found.replace(tzinfo=None), ZoneInfo(tz))
    )
    # Instants compared as timestamps: == of two zones is False for a time in a fold.
    assert found.timestamp() == scanned.timestamp(), (expected.text, tz, moment, scanned)
    # A fire time matches the expression in the zone, or ends a gap for a skipped time.
    local = found.astimezone(ZoneInfo(tz))
    assert expected.matches(local) or (expected.fixed and _ends_a_gap(local))


@PROPERTIES
@given(expected=expressions(), zoned=zoned_moments())
def test_an_iterator_of_fire_times_agrees_with_next_after(
    expected: Expected, zoned: tuple[str, datetime]
) -> None:
    tz, moment = zoned
    if brute_force_next(expected, tz, moment) is None:
        return
    cron = Cron.parse(expected.text, tz)
    stepped = list(islice(cron.fire_times(moment), 4))
    one_by_one = [cron.next_after(moment)]
    for _ in range(len(stepped) - 1):
        one_by_one.append(cron.next_after(one_by_one[-1]))
    assert [t.timestamp() for t in stepped] == [t.timestamp() for t in one_by_one]


#: Text near the grammar: digits (some not ASCII), names, separators, white space.
TOKENS = [*"0123456789*/-, \t#LW", "jan", "MON", "sun", "7", "²", "٣", "\x00", "\u017fun"]
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
@example(text="0 0 31 2 *")  # never fires
@example(text="0 0 * * \u017fun")  # the long s: "\u017f".upper() is "S"
@example(text="0 0 0 * * *")  # six fields (cronsim's seconds): not ours
def test_any_text_parses_or_says_what_is_wrong(text: str) -> None:
    try:
        cron = Cron.parse(text)
    except ConfigurationError as exc:
        assert "cron expression" in str(exc)
        return
    assert text.isascii(), "only ASCII digits and names make a cron expression"
    assert len(text.split()) == 5
    try:
        fire = cron.next_after(datetime(2026, 1, 1, tzinfo=UTC))
    except ConfigurationError as exc:
        assert "never fires" in str(exc)
    else:
        assert fire > datetime(2026, 1, 1, tzinfo=UTC)
