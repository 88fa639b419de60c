"""Schedules in time zones: daylight-saving days, the app's zone and a schedule's own,
unknown zones, `taskcore schedule next`/`list`, the console, and a beat (real Redis and
RabbitMQ) ticking through each change of the clocks in Berlin and New York."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise, takewhile
from zoneinfo import ZoneInfo

import pytest
from flask import Flask

from taskcore import ConfigurationError, TaskApp
from taskcore.beat import Beat
from taskcore.schedules import Schedule, make_schedule

from .webapp_helpers import close_web_app, log_in, make_console_app
from .worker_log import wait_events

BERLIN, NEW_YORK, MANILA = "Europe/Berlin", "America/New_York", "Asia/Manila"


def z(text: str) -> datetime:
    """A UTC instant written ``2026-03-29T01:00Z``."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def fires(schedule: Schedule, start: str, end: str) -> list[datetime]:
    """The fire times in (start, end], as UTC datetimes."""
    times = takewhile(lambda t: t <= z(end).timestamp(), schedule.fire_times(z(start).timestamp()))
    return [datetime.fromtimestamp(t, UTC) for t in times]


def per_local_day(times: list[datetime], tz: str) -> Counter[date]:
    return Counter(t.astimezone(ZoneInfo(tz)).date() for t in times)


# -- daylight-saving days, computed ------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "cron", "start", "end", "expected"),
    [
        pytest.param(  # 02:00 -> 03:00 on 29 March: 02:30 runs at 03:00 CEST
            BERLIN,
            "30 2 * * *",
            "2026-03-27T23:00Z",  # midnight, 28 March
            "2026-03-30T22:00Z",  # midnight, 31 March
            ["2026-03-28T01:30Z", "2026-03-29T01:00Z", "2026-03-30T00:30Z"],
            id="berlin-spring-forward",
        ),
        pytest.param(  # 03:00 -> 02:00 on 25 October: 02:30 CEST only, not 02:30 CET too
            BERLIN,
            "30 2 * * *",
            "2026-10-23T22:00Z",
            "2026-10-26T23:00Z",
            ["2026-10-24T00:30Z", "2026-10-25T00:30Z", "2026-10-26T01:30Z"],
            id="berlin-fall-back",
        ),
        pytest.param(  # 02:00 -> 03:00 on 8 March: 02:30 runs at 03:00 EDT
            NEW_YORK,
            "30 2 * * *",
            "2026-03-07T05:00Z",
            "2026-03-10T04:00Z",
            ["2026-03-07T07:30Z", "2026-03-08T07:00Z", "2026-03-09T06:30Z"],
            id="new-york-spring-forward",
        ),
        pytest.param(  # 02:00 -> 01:00 on 1 November: 01:30 EDT only, not 01:30 EST too
            NEW_YORK,
            "30 1 * * *",
            "2026-10-31T04:00Z",
            "2026-11-03T05:00Z",
            ["2026-10-31T05:30Z", "2026-11-01T05:30Z", "2026-11-02T06:30Z"],
            id="new-york-fall-back",
        ),
        pytest.param(  # no daylight saving: 18:00 UTC the evening before, every day
            MANILA,
            "0 2 * * *",
            "2026-03-27T16:00Z",
            "2026-03-30T16:00Z",
            ["2026-03-27T18:00Z", "2026-03-28T18:00Z", "2026-03-29T18:00Z"],
            id="manila-nightly",
        ),
    ],
)
def test_a_daily_job_fires_once_a_day_across_a_change_of_the_clocks(
    tz: str, cron: str, start: str, end: str, expected: list[str]
) -> None:
    schedule = make_schedule("daily", "t", cron=cron, tz=tz)
    found = fires(schedule, start, end)
    assert found == [z(e) for e in expected]
    assert set(per_local_day(found, tz).values()) == {1}  # three local days, once each


def test_manila_has_no_daylight_saving_all_year() -> None:
    nightly = make_schedule("nightly", "t", cron="0 2 * * *", tz=MANILA)
    found = fires(nightly, "2025-12-31T18:00Z", "2026-12-31T18:00Z")
    assert len(found) == 365
    assert {(t.hour, t.minute) for t in found} == {(18, 0)}


@pytest.mark.parametrize(
    ("day", "count", "hours"),
    [(date(2026, 3, 29), 23, 23), (date(2026, 10, 25), 25, 24), (date(2026, 6, 1), 24, 24)],
)
def test_an_hourly_job_fires_every_real_hour(day: date, count: int, hours: int) -> None:
    hourly = make_schedule("hourly", "t", cron="0 * * * *", tz=BERLIN)
    found = fires(hourly, "2026-01-01T00:00Z", "2026-12-31T00:00Z")
    assert {b - a for a, b in pairwise(found)} == {timedelta(hours=1)}
    local = [t.astimezone(ZoneInfo(BERLIN)) for t in found]
    on_the_day = [t for t in local if t.date() == day]
    assert len(on_the_day) == count  # 02:00 skipped in March, twice in October
    assert len({t.hour for t in on_the_day}) == hours


def test_from_the_second_pass_of_a_repeated_hour_the_next_fire_is_tomorrow() -> None:
    # 01:30 EDT (05:30Z) fired; at 01:10 EST (06:10Z) the clocks read 01:10 again.
    nightly = make_schedule("n", "t", cron="30 1 * * *", tz=NEW_YORK)
    assert (
        nightly.next_after(z("2026-11-01T06:10Z").timestamp()) == z("2026-11-02T06:30Z").timestamp()
    )
    assert (
        nightly.next_after(z("2026-11-01T05:30Z").timestamp()) == z("2026-11-02T06:30Z").timestamp()
    )
    assert (
        nightly.next_after(z("2026-11-01T05:29Z").timestamp()) == z("2026-11-01T05:30Z").timestamp()
    )


def test_a_beat_missing_the_change_of_the_clocks_runs_its_fire_time_once() -> None:
    nightly = make_schedule("n", "t", cron="30 2 * * *", tz=BERLIN, missed="run_all")
    last, now = z("2026-03-28T12:00Z").timestamp(), z("2026-03-29T12:00Z").timestamp()
    assert nightly.due(last, now) == (
        [z("2026-03-29T01:00Z").timestamp()],
        z("2026-03-29T01:00Z").timestamp(),
    )
    last, now = z("2026-10-24T12:00Z").timestamp(), z("2026-10-25T12:00Z").timestamp()
    assert nightly.due(last, now)[0] == [z("2026-10-25T00:30Z").timestamp()]


# -- the app's zone, a schedule's own, unknown zones --------------------------------------


def test_the_app_zone_is_the_default_and_a_schedule_tz_overrides_it() -> None:
    app = TaskApp("zones", timezone=MANILA)
    try:
        nightly = app.schedule("nightly", "t", cron="0 2 * * *")
        in_utc = app.schedule("in-utc", "t", cron="0 2 * * *", tz="UTC")
        in_berlin = app.schedule("in-berlin", "t", cron="0 2 * * *", tz=BERLIN)
        every = app.schedule("every", "t", every=timedelta(hours=1), tz=NEW_YORK)
    finally:
        app.close()
    after = z("2026-07-01T00:00Z").timestamp()
    assert nightly.tz == MANILA and nightly.next_after(after) == z("2026-07-01T18:00Z").timestamp()
    assert in_utc.tz == "UTC" and in_utc.next_after(after) == z("2026-07-01T02:00Z").timestamp()
    assert in_berlin.next_after(after) == z("2026-07-01T00:00Z").timestamp() + 86400
    assert every.next_after(after + 1) == after + 3600  # every= ignores the zone


def test_the_default_zone_is_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASKCORE_TIMEZONE", raising=False)
    app = TaskApp("plain")
    try:
        nightly = app.schedule("nightly", "t", cron="0 2 * * *")
    finally:
        app.close()
    assert nightly.tz == "UTC"
    assert (
        nightly.next_after(z("2026-07-01T00:00Z").timestamp()) == z("2026-07-01T02:00Z").timestamp()
    )


@pytest.mark.parametrize(
    "bad", ["Europe/Berln", "Mars/Olympus", "europe", "", "../etc/passwd", "Europe"]
)
def test_an_unknown_zone_is_refused_with_an_example(bad: str) -> None:
    message = (
        rf"unknown time zone {re.escape(repr(bad))}: give an IANA name such as 'Europe/Berlin'"
    )
    with pytest.raises(ConfigurationError, match=message):
        make_schedule("n", "t", cron="0 2 * * *", tz=bad)
    with pytest.raises(ConfigurationError, match=message):
        make_schedule("n", "t", every=60, tz=bad)
    app = TaskApp("bad-zone", timezone=bad)
    try:
        with pytest.raises(ConfigurationError, match=message):
            app.schedule("n", "t", cron="0 2 * * *")
        assert app.schedules == {}
    finally:
        app.close()


# -- taskcore schedule next / list --------------------------------------------------------

ZONED = ("-A", "tests.apps.zoned:app")


def test_schedule_next_prints_local_times_with_offsets_and_utc(cli) -> None:
    shown = cli("schedule", "next", *ZONED, "berlin-0230", "--after", "2026-03-27", "--count", "4")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        "berlin-0230: 30 2 * * * in Europe/Berlin, after 2026-03-27T00:00:00+01:00",
        "  2026-03-27 02:30:00+01:00 (2026-03-27T01:30:00Z)",
        "  2026-03-28 02:30:00+01:00 (2026-03-28T01:30:00Z)",
        "  2026-03-29 03:00:00+02:00 (2026-03-29T01:00:00Z)",
        "  2026-03-30 02:30:00+02:00 (2026-03-30T00:30:00Z)",
    ]
    every = cli(
        "schedule", "next", *ZONED, "every-6h", "--after", "2026-03-27T00:00Z", "--count", "2"
    )
    assert every.stdout.splitlines()[1:] == [
        "  2026-03-27 14:00:00+08:00 (2026-03-27T06:00:00Z)",
        "  2026-03-27 20:00:00+08:00 (2026-03-27T12:00:00Z)",
    ]


def test_schedule_next_as_json(cli) -> None:
    args = ("new-york-0130", "--after", "2026-10-31T12:00Z", "--count", "2", "--format", "json")
    shown = cli("schedule", "next", *ZONED, *args)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == {
        "name": "new-york-0130",
        "when": "30 1 * * *",
        "tz": NEW_YORK,
        "after": "2026-10-31T08:00:00-04:00",
        "fires": [
            {
                "local": "2026-11-01T01:30:00-04:00",
                "utc": "2026-11-01T05:30:00Z",
                "offset": "-04:00",
                "unix": z("2026-11-01T05:30Z").timestamp(),
            },
            {
                "local": "2026-11-02T01:30:00-05:00",
                "utc": "2026-11-02T06:30:00Z",
                "offset": "-05:00",
                "unix": z("2026-11-02T06:30Z").timestamp(),
            },
        ],
    }


def test_schedule_next_defaults_to_five_from_now(cli) -> None:
    before = datetime.now(UTC)
    shown = cli("schedule", "next", *ZONED, "manila-nightly", "--format", "json")
    found = json.loads(shown.stdout)["fires"]
    assert len(found) == 5
    assert before < z(found[0]["utc"]) <= before + timedelta(days=1)
    assert {f["local"][10:] for f in found} == {"T02:00:00+08:00"}


def test_schedule_next_reads_the_zone_from_the_environment(cli) -> None:
    args = ("schedule", "next", "-A", "tests.apps.scheduled:app", "nightly")
    args += ("--after", "2026-07-01T00:00Z", "--count", "1")
    in_manila = cli(*args, env_overrides={"TASKCORE_TIMEZONE": MANILA})
    assert "  2026-07-02 02:00:00+08:00 (2026-07-01T18:00:00Z)" in in_manila.stdout.splitlines()
    in_utc = cli(*args)
    assert "  2026-07-01 02:00:00+00:00 (2026-07-01T02:00:00Z)" in in_utc.stdout.splitlines()
    unknown = cli(*args, env_overrides={"TASKCORE_TIMEZONE": "Moon/Tranquility"})
    assert unknown.returncode != 0
    assert "unknown time zone 'Moon/Tranquility'" in unknown.stderr


def test_schedule_next_refuses_an_unknown_name_or_time(cli) -> None:
    unknown = cli("schedule", "next", *ZONED, "nope")
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert (
        "no schedule named 'nope' (known: berlin-0230, berlin-hourly, every-6h," in unknown.stderr
    )
    bad_time = cli("schedule", "next", *ZONED, "berlin-0230", "--after", "tomorrow")
    assert bad_time.returncode == 2 and "'tomorrow' is not an ISO 8601 time" in bad_time.stderr


def test_schedule_list_shows_each_zone_and_the_next_fire_with_its_offset(cli) -> None:
    rows = {
        r["name"]: r for r in json.loads(cli("schedule", "list", *ZONED, "--format", "json").stdout)
    }
    assert {n: r["tz"] for n, r in rows.items()} == {
        "berlin-0230": BERLIN,
        "berlin-hourly": BERLIN,
        "new-york-0130": NEW_YORK,
        "new-york-0230": NEW_YORK,
        "manila-nightly": MANILA,
        "every-6h": MANILA,
    }
    manila = rows["manila-nightly"]
    assert manila["next_fire_local"].endswith(" 02:00:00+08:00")
    local = datetime.fromisoformat(manila["next_fire_local"])
    assert local.timestamp() == manila["next_fire"]
    table = cli("schedule", "list", *ZONED).stdout.splitlines()
    assert re.search(r"\bTZ\b.*\bNEXT_FIRE_LOCAL\b", table[0])
    line = next(row for row in table if row.startswith("manila-nightly"))
    assert "Asia/Manila" in line and manila["next_fire_local"] in line


# -- the console ----------------------------------------------------------------------------


@pytest.fixture
def console(database_url: str, task_env: dict[str, str]) -> Iterator[Flask]:
    """The web app on this test's services, with a viewer, vera."""
    app = make_console_app(database_url, task_env, vera="viewer")
    yield app
    close_web_app(app)


def test_the_console_shows_each_zone_and_the_next_fire_with_its_offset(console: Flask) -> None:
    task_app = console.extensions["taskcore"]
    task_app.schedule("zoned-nightly", "webapp.tasks.ping", cron="30 2 * * *", tz=BERLIN)
    try:
        client = console.test_client()
        assert log_in(client, "vera").status_code == 302
        page = client.get("/schedules").get_data(as_text=True)
    finally:
        del task_app.schedules["zoned-nightly"]
    row = next(r for r in page.split("<tr>") if "zoned-nightly" in r)
    assert ">Europe/Berlin<" in row
    assert re.search(r">\d{4}-\d\d-\d\d (02:30|03:00):00\+0[12]:00<", row), row
    assert "When (UTC)" not in page and ">When, zone</th>" in page


# -- a beat through each change of the clocks ------------------------------------------------

#: One window of two days around each change; the fire times that show the change.
WINDOWS = [
    (
        "2026-03-28T12:00Z",
        "2026-03-30T12:00Z",
        "berlin-0230",
        ["2026-03-29T01:00Z", "2026-03-30T00:30Z"],
    ),
    (
        "2026-10-24T12:00Z",
        "2026-10-26T12:00Z",
        "berlin-0230",
        ["2026-10-25T00:30Z", "2026-10-26T01:30Z"],
    ),
    (
        "2026-03-07T12:00Z",
        "2026-03-09T12:00Z",
        "new-york-0230",
        ["2026-03-08T07:00Z", "2026-03-09T06:30Z"],
    ),
    (
        "2026-10-31T12:00Z",
        "2026-11-02T12:00Z",
        "new-york-0130",
        ["2026-11-01T05:30Z", "2026-11-02T06:30Z"],
    ),
]
STEP = 300  # every fire time of tests/apps/zoned.py is a multiple of five minutes


def test_a_beat_fires_each_time_once_through_every_change_of_the_clocks(
    app_from, start_worker, rdb, redis_prefix
) -> None:
    app = app_from("zoned")
    start_worker("zoned", "-Q", "periodic")
    beat = Beat(app, name="dst-beat")
    expected: dict[str, list[str]] = {}
    for start, end, name, shown in WINDOWS:
        app.redis.delete(app.keys.schedules_last)  # each window starts the schedules afresh
        beat.known_last.clear()
        for now in range(int(z(start).timestamp()), int(z(end).timestamp()) + 1, STEP):
            beat.tick(float(now))
            assert beat.leading
        for schedule in app.schedules.values():
            expected.setdefault(schedule.name, []).extend(
                schedule.task_id(t.timestamp()) for t in fires(schedule, start, end)
            )
        window_ids = expected[name][-len(shown) :]
        assert window_ids == [app.schedules[name].task_id(z(s).timestamp()) for s in shown]
    total = sum(map(len, expected.values()))
    ticks = wait_events(rdb, redis_prefix, "tick", total, timeout=60)
    ids = Counter(t["id"] for t in ticks)
    assert all(n == 1 for n in ids.values()), ids.most_common(3)
    assert sorted(ids) == sorted(i for v in expected.values() for i in v)
    stamps = [i.split("@")[1] for i in expected["berlin-hourly"]]
    hourly = [datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) for s in stamps]
    days = per_local_day(hourly, BERLIN)
    assert days[date(2026, 3, 29)] == 23 and days[date(2026, 10, 25)] == 25
