"""Periodic schedules: cron arithmetic, and two beats firing each fire time exactly once."""

from __future__ import annotations

import re
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from taskcore import ConfigurationError
from taskcore.cron import Cron
from taskcore.operations import Operations
from taskcore.schedules import make_schedule

from .worker_log import events, wait_events


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 2 * * *", "2026-11-22T18:30", "2026-11-23T02:00"),
        ("*/15 9-17 * * mon-fri", "2026-11-21T18:30", "2026-11-23T09:00"),  # Saturday
        ("0 0 29 2 *", "2026-03-01T00:00", "2028-02-29T00:00"),
        ("30 4 1,15 * 5", "2026-11-21T18:30", "2026-11-27T04:30"),  # a Friday comes first
        ("0 0 * * 7", "2026-11-22T00:00", "2026-11-29T00:00"),  # 7 is Sunday too
    ],
)
def test_cron_next_fire_time(expression: str, after: str, expected: str) -> None:
    assert Cron.parse(expression).next_after(at(after)) == at(expected)


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("* * * *", "needs 5 fields"),
        ("0 0 0 * * *", "needs 5 fields"),  # cronsim's seconds field is not ours
        ("61 * * * *", "'61' is not a valid minute (0-59"),
        ("* * * foo *", "'foo' is not a valid month (1-12 or jan-dec"),
        ("5-1 * * * *", "'5-1' is not a valid minute: the range 5-1 is reversed"),
        ("*/0 * * * *", "'*/0' is not a valid minute: a step must be at least 1"),
        ("0 0 31 2 *", "never fires"),
        ("0 0 * * m\u00f6n", "only ASCII"),
    ],
)
def test_bad_cron_expressions_say_what_is_wrong(bad: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Cron.parse(bad)
    assert str(caught.value).startswith(f"cron expression {bad!r}")
    assert says in str(caught.value)


def test_cronsim_extensions_and_a_one_value_stepped_range() -> None:
    assert Cron.parse("0 0 L * *").next_after(at("2026-02-03T00:00")) == at("2026-02-28T00:00")
    assert Cron.parse("0 9 * * 5#2").next_after(at("2026-11-01T00:00")) == at("2026-11-13T09:00")
    # 5-5/10 is minute 5 only, as in cron (cronsim alone would read 5, 15, 25, ...)
    assert Cron.parse("5-5/10 * * * *").next_after(at("2026-11-01T00:05")) == at("2026-11-01T01:05")


def test_missed_fire_time_policies() -> None:
    def due(policy: str) -> list[float]:
        schedule = make_schedule("s", "t", every=10, missed=policy)
        return schedule.due(last=100.0, now=151.0)[0]

    assert due("run_all") == [110.0, 120.0, 130.0, 140.0, 150.0]
    assert due("run_once") == [140.0, 150.0]  # the latest missed one, then the on-time one
    assert due("skip") == [150.0]


def fire_second(task_id: str) -> float:
    """The fire time (Unix seconds) in a schedule's deterministic task id."""
    stamp = re.sub(r"^[^@]+@", "", task_id)
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def start_two_beats(app_from: Any, start_worker: Any, start_command: Any) -> tuple[Any, Any]:
    """A worker for tests/apps/scheduled.py and two beats; returns (leader, follower)."""
    app_from("scheduled")
    start_worker("scheduled", "-Q", "periodic")
    beats = [
        start_command(
            "--loglevel", "info", "beat", "-A", "tests.apps.scheduled:app", "--name", f"beat-{i}"
        )
        for i in range(2)
    ]
    for beat in beats:
        beat.wait_for_output("started")
    deadline = time.monotonic() + 15
    while not any("is now the leader" in b.output for b in beats):
        assert time.monotonic() < deadline, [b.output for b in beats]
        time.sleep(0.05)
    leader = next(b for b in beats if "is now the leader" in b.output)
    return leader, next(b for b in beats if b is not leader)


def test_two_beats_fire_each_time_once_and_survive_the_leader(
    app_from, start_worker, start_command, rdb, redis_prefix
) -> None:
    leader, follower = start_two_beats(app_from, start_worker, start_command)
    wait_events(rdb, redis_prefix, "tick", 6, timeout=15)
    leader.signal(signal.SIGKILL)
    leader.wait(10)
    killed_at = time.time()
    follower.wait_for_output("is now the leader", timeout=10)
    wait_events(rdb, redis_prefix, "tick", 12, timeout=20)

    ticks = events(rdb, redis_prefix, "tick")
    ids = [t["id"] for t in ticks]
    assert all(n == 1 for n in Counter(ids).values()), Counter(ids).most_common(3)
    seconds = sorted(fire_second(i) for i in ids)
    before = [s for s in seconds if s < killed_at - 1]
    assert before == [before[0] + k for k in range(len(before))]  # no gaps, no repeats
    assert any(s > killed_at + 1 for s in seconds)  # the follower kept firing


def test_pause_resume_run_now_and_list(app_from, start_worker, start_command, rdb, redis_prefix):
    app = app_from("scheduled")
    ops = Operations(app)
    start_worker("scheduled", "-Q", "periodic")
    ops.pause_schedule("every-second")
    beat = start_command("beat", "-A", "tests.apps.scheduled:app")
    beat.wait_for_output("is now the leader")
    time.sleep(2.5)
    assert events(rdb, redis_prefix, "tick") == []
    info = {s["name"]: s for s in ops.schedules()}
    assert info["every-second"]["paused"] is True
    assert info["nightly"]["when"] == "0 2 * * *" and info["nightly"]["queue"] == "periodic"
    handle = ops.run_schedule("nightly")
    assert handle.get(timeout=10) is None
    assert [t["label"] for t in events(rdb, redis_prefix, "tick")] == ["n"]
    ops.resume_schedule("every-second")
    wait_events(rdb, redis_prefix, "tick", 3, timeout=10)
    with pytest.raises(ConfigurationError, match="no schedule named 'nope'"):
        ops.pause_schedule("nope")
