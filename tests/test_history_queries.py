"""History reads: the task list (filters, search, keyset pages), one run, performance."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from taskcore import ConfigurationError, TaskApp
from taskcore.history import TRIGRAM_INDEX, create_schema, make_engine, write_events
from taskcore.history_queries import decode_cursor, encode_cursor, percentile
from taskcore.operations import Operations
from workers.history_cli import parse_since

NOW = time.time()


def event(task_id: str, state: str, ago: float, **fields: Any) -> dict[str, Any]:
    """A task event ``ago`` seconds before the test started."""
    return {"task_id": task_id, "state": state, "at": NOW - ago, **fields}


@pytest.fixture
def engine(history_engine: sa.Engine) -> sa.Engine:
    return history_engine


@pytest.fixture
def ops(engine: sa.Engine) -> Iterator[Operations]:
    app = TaskApp("history-queries-test")
    yield Operations(app, engine)
    app.close()


def ids(page: dict[str, Any]) -> list[str]:
    return [run["task_id"] for run in page["runs"]]


def test_filters_by_state_task_queue_worker_and_time(ops: Operations) -> None:
    write_events(
        ops.engine,
        [
            event("a", "SUCCESS", 50, task="t.send", queue="email", worker="w1"),
            event("b", "FAILURE", 40, task="t.send", queue="email", worker="w2"),
            event("c", "SUCCESS", 30, task="t.grade", queue="default", worker="w1"),
            event("d", "DEAD", 20, task="t.grade", queue="default", worker="w2"),
            event("e", "STARTED", 10, task="t.send", queue="sms", worker="w1"),
            event("old", "SUCCESS", 10 * 86400, task="t.send", queue="email", worker="w1"),
        ],
    )
    assert ids(ops.history()) == ["e", "d", "c", "b", "a", "old"]
    assert ids(ops.history(state="FAILURE")) == ["b"]
    assert ids(ops.history(task="t.grade")) == ["d", "c"]
    assert ids(ops.history(queue="email")) == ["b", "a", "old"]
    assert ids(ops.history(worker="w2")) == ["d", "b"]
    assert ids(ops.history(task="t.send", worker="w1")) == ["e", "a", "old"]
    moment = datetime.fromtimestamp(NOW, UTC)
    assert ids(ops.history(since=moment - timedelta(days=1))) == ["e", "d", "c", "b", "a"]
    # since is inclusive, until exclusive: the run 30 s ago is in, the one 20 s ago is out.
    window = ops.history(since=moment - timedelta(seconds=40), until=moment - timedelta(seconds=20))
    assert ids(window) == ["c", "b"]
    assert ops.history(state="REVOKED") == {"runs": [], "next": None}
    run = ops.history(task="t.grade", state="DEAD")["runs"][0]
    assert run["queue"] == "default" and run["worker"] == "w2"
    assert run["updated_at"] == datetime.fromtimestamp(NOW - 20, UTC)
    assert run["finished_at"] is not None and run["updated_at"].tzinfo is not None


def test_search_matches_task_id_prefix_or_argument_text(ops: Operations) -> None:
    def call(*args: Any, **kwargs: Any) -> str:
        return json.dumps({"args": list(args), "kwargs": kwargs})

    write_events(
        ops.engine,
        [
            event("3f9a1c-order", "SUCCESS", 5, args=call("Customer7@Example.com", "receipt")),
            event("77aa00-quiz", "SUCCESS", 4, args=call(12, learner="ada")),
            event("abc", "SUCCESS", 3, args=call("50% off", code="a_b")),
            event("xyz", "SUCCESS", 2, args=call("500 off", code="axb")),
            event("noargs", "SUCCESS", 1),
        ],
    )
    assert ids(ops.history(search="3f9a1c-order")) == ["3f9a1c-order"]  # the whole id
    assert ids(ops.history(search="77aa")) == ["77aa00-quiz"]  # a prefix
    assert ids(ops.history(search="00-quiz")) == []  # the middle of an id is not a match
    assert ids(ops.history(search="customer7@example")) == ["3f9a1c-order"]  # any case
    assert ids(ops.history(search='"learner": "ada"')) == ["77aa00-quiz"]
    # LIKE's wildcards are searched for as text, not as patterns.
    assert ids(ops.history(search="50%")) == ["abc"]
    assert ids(ops.history(search="a_b")) == ["abc"]
    assert ids(ops.history(search="  ")) == ids(ops.history())  # blank: no search
    assert ids(ops.history(search="receipt", task="nope")) == []


def test_trigram_index_backs_the_argument_search(engine: sa.Engine) -> None:
    create_schema(engine)  # a second time: nothing to do, no error
    with engine.connect() as connection:
        definition = connection.execute(
            sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = :name"
                    " AND schemaname = current_schema()"),
            {"name": TRIGRAM_INDEX},
        ).scalar_one()  # fmt: skip
        assert "gin (args public.gin_trgm_ops)" in definition
        connection.execute(sa.text("SET LOCAL enable_seqscan = off"))
        plan = connection.execute(
            sa.text("EXPLAIN SELECT task_id FROM task_runs WHERE args ILIKE '%customer%'")
        ).all()
    assert TRIGRAM_INDEX in " ".join(line for (line,) in plan)


def test_create_schema_replaces_the_indexes_of_older_versions(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        create_schema(engine)
        with engine.begin() as connection:  # as an older version (before migrations) left them
            connection.execute(sa.text("DROP TABLE taskcore_alembic_version"))
            connection.execute(sa.text("DROP INDEX ix_task_runs_state_updated"))
            connection.execute(sa.text("CREATE INDEX ix_task_runs_state ON task_runs (state)"))
        create_schema(engine)
        names = {i["name"] for i in sa.inspect(engine).get_indexes("task_runs")}
    finally:
        engine.dispose()
    assert "ix_task_runs_state" not in names
    assert {"ix_task_runs_state_updated", "ix_task_runs_updated", TRIGRAM_INDEX} <= names


def test_pages_have_no_duplicates_or_gaps_even_with_equal_times(ops: Operations) -> None:
    # 23 runs, in groups that share one updated_at: pages must split groups cleanly.
    events = [
        event(f"run-{i:02d}", "FAILURE" if i % 3 else "SUCCESS", ago=i // 4) for i in range(23)
    ]
    write_events(ops.engine, events)
    everything = ids(ops.history(limit=100))
    assert len(everything) == 23
    for filters in ({}, {"state": "FAILURE"}):
        expected = ids(ops.history(limit=100, **filters))
        seen: list[str] = []
        page = ops.history(limit=5, **filters)
        pages = 1
        while page["next"]:
            assert len(page["runs"]) == 5
            seen += ids(page)
            page = ops.history(limit=5, after=page["next"], **filters)
            pages += 1
        seen += ids(page)
        assert seen == expected
        assert pages == -(-len(expected) // 5)
    # Newest first, ties broken by task id (descending).
    assert everything[:4] == ["run-03", "run-02", "run-01", "run-00"]


def test_a_full_last_page_has_no_next(ops: Operations) -> None:
    write_events(ops.engine, [event(f"r{i}", "SUCCESS", i) for i in range(4)])
    first = ops.history(limit=2)
    second = ops.history(limit=2, after=first["next"])
    assert ids(first) == ["r0", "r1"] and ids(second) == ["r2", "r3"]
    assert second["next"] is None


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "",
        "!!!",
        encode_cursor(datetime(2026, 1, 31, 14, tzinfo=UTC), "x")[:-3],
        "WyJub3QgYSB0aW1lIiwgIngiXQ",
    ],
)
def test_a_malformed_cursor_is_a_clear_error(ops: Operations, cursor: str) -> None:
    with pytest.raises(ConfigurationError, match="malformed history cursor"):
        ops.history(after=cursor)


def test_cursor_round_trip() -> None:
    moment = datetime(2026, 1, 31, 14, 0, 0, 123456, tzinfo=UTC)
    assert decode_cursor(encode_cursor(moment, 'a|b"c')) == (moment, 'a|b"c')
    naive = datetime(2026, 1, 31, 14, 0)  # as SQLite returns times: taken as UTC
    assert decode_cursor(encode_cursor(naive, "x"))[0] == naive.replace(tzinfo=UTC)


def test_limit_must_be_positive(ops: Operations) -> None:
    with pytest.raises(ConfigurationError, match="limit"):
        ops.history(limit=0)


def test_task_run_has_the_row_and_its_events_oldest_first(ops: Operations) -> None:
    write_events(
        ops.engine,
        [
            event("t1", "SUCCESS", 1, worker="w1", runtime=2.0, result={"ok": 1}, task="t.x"),
            event("t1", "STARTED", 3, worker="w1", task="t.x", args='{"args": [1]}'),
            event("t1", "RETRY", 5, worker="w0", error={"type": "E", "message": "boom"}),
            event("other", "SUCCESS", 2),
        ],
    )
    run = ops.task_run("t1")
    assert run is not None
    assert run["state"] == "SUCCESS" and run["task"] == "t.x" and run["result"] == '{"ok": 1}'
    assert run["args"] == '{"args": [1]}' and run["runtime"] == 2.0
    assert [e["state"] for e in run["events"]] == ["RETRY", "STARTED", "SUCCESS"]
    assert [e["worker"] for e in run["events"]] == ["w0", "w1", "w1"]
    assert run["events"][0]["at"] == datetime.fromtimestamp(NOW - 5, UTC)
    assert run["events"][0]["data"]["error"] == {"type": "E", "message": "boom"}
    assert set(run["events"][0]) == {"state", "worker", "at", "data"}
    assert ops.task_run("nobody") is None


def timed_runs() -> list[dict[str, Any]]:
    """t.slow: 100 runs taking 1..100 s (waits 0.1..10 s), 4 failed or dead; t.fast: 3 runs."""
    events = []
    for i in range(1, 101):
        state = "FAILURE" if i in (10, 20, 30) else "DEAD" if i == 40 else "SUCCESS"
        events.append(
            event(f"slow-{i}", state, 60 + i, task="t.slow", runtime=float(i), queue_wait=i / 10)
        )
    events += [event(f"fast-{i}", "SUCCESS", 60, task="t.fast", runtime=0.5) for i in range(3)]
    events.append(event("fast-old", "SUCCESS", 3 * 86400, task="t.fast", runtime=99.0))
    events.append(event("fast-running", "STARTED", 1, task="t.fast"))  # not finished: no count
    events.append(event("revoked", "REVOKED", 30, task="t.revoked"))  # finished, no timings
    return events


def test_performance_counts_failures_and_interpolates_percentiles(ops: Operations) -> None:
    write_events(ops.engine, timed_runs())
    since = datetime.fromtimestamp(NOW - 3600, UTC)
    rows = ops.performance(since=since)
    assert [r["task"] for r in rows] == ["t.slow", "t.fast", "t.revoked"]
    slow, fast, revoked = rows
    assert slow == {
        "task": "t.slow",
        "count": 100,
        "failed": 4,
        "failure_rate": 0.04,
        "runtime_p50": pytest.approx(50.5),
        "runtime_p95": pytest.approx(95.05),
        "runtime_p99": pytest.approx(99.01),
        "wait_p50": pytest.approx(5.05),
        "wait_p95": pytest.approx(9.505),
        "wait_p99": pytest.approx(9.901),
    }
    assert fast["count"] == 3 and fast["failed"] == 0 and fast["failure_rate"] == 0
    assert fast["runtime_p99"] == pytest.approx(0.5) and fast["wait_p50"] is None
    assert revoked["count"] == 1 and revoked["runtime_p50"] is None
    assert [r["count"] for r in ops.performance(since=since, task="t.fast")] == [3]
    week = ops.performance(since=since - timedelta(days=7), task="t.fast")
    assert week[0]["count"] == 4 and week[0]["runtime_p99"] > 90
    assert ops.performance(since=datetime.now(UTC) + timedelta(hours=1)) == []


def test_sqlite_gives_the_same_answers(ops: Operations, tmp_path: Path) -> None:
    """The laptop database: percentiles computed in Python, the same pages and cursors."""
    lite = make_engine(f"sqlite:///{tmp_path / 'history.sqlite3'}")
    try:
        create_schema(lite)
        create_schema(lite)
        for engine in (ops.engine, lite):
            write_events(engine, timed_runs())
        since = datetime.fromtimestamp(NOW - 3600, UTC)
        here = Operations(ops.app, lite)
        for a, b in zip(ops.performance(since=since), here.performance(since=since), strict=True):
            assert a == {k: pytest.approx(v) if isinstance(v, float) else v for k, v in b.items()}
        page, lite_page = ops.history(limit=7), here.history(limit=7)
        assert ids(page) == ids(lite_page)
        assert page["runs"][0]["updated_at"] == lite_page["runs"][0]["updated_at"]
        assert ids(ops.history(limit=7, after=page["next"])) == ids(
            here.history(limit=7, after=lite_page["next"])
        )
        assert ids(here.history(search="slow-10")) == ["slow-10", "slow-100"]
        assert here.task_run("slow-1")["events"][0]["state"] == "SUCCESS"
    finally:
        lite.dispose()


def test_percentile_matches_percentile_cont() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([3.0, 1.0, 2.0, 4.0], 0.5) == 2.5
    assert percentile([float(i) for i in range(1, 101)], 0.95) == pytest.approx(95.05)


def test_since_accepts_durations_and_iso_times() -> None:
    now = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    assert parse_since("30m", now) == now - timedelta(minutes=30)
    assert parse_since("1h", now) == now - timedelta(hours=1)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("2026-01-30T08:00", now) == datetime(2026, 1, 30, 8, 0, tzinfo=UTC)
    assert parse_since("2026-01-30T08:00+02:00", now).utcoffset() == timedelta(hours=2)
    for bad in ("0h", "1y", "yesterday", "-1h", ""):
        with pytest.raises(ValueError):
            parse_since(bad, now)


def test_performance_command(cli, engine: sa.Engine, database_url: str) -> None:
    write_events(engine, timed_runs())
    env = {"DATABASE_URL": database_url}
    app = ("-A", "tests.apps.features:app")
    found = cli("performance", *app, "--since", "2h", "--format", "json", env_overrides=env)
    assert found.returncode == 0, found.stderr
    rows = json.loads(found.stdout)
    assert [r["task"] for r in rows] == ["t.slow", "t.fast", "t.revoked"]
    assert rows[0]["runtime_p50"] == pytest.approx(50.5) and rows[0]["failed"] == 4

    table = cli("performance", *app, "--task", "t.slow", env_overrides=env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith("runs finished since ")
    assert lines[1].split()[:4] == ["TASK", "COUNT", "FAILED", "FAILURE_RATE"]
    assert lines[2].split()[:5] == ["t.slow", "100", "4", "4.0%", "50.500"]
    assert len(lines) == 3

    since = (datetime.now(UTC) - timedelta(days=4)).strftime("%Y-%m-%dT%H:%M")
    week = cli("performance", *app, "--since", since, "--task", "t.fast", "--format", "json",
               env_overrides=env)  # fmt: skip
    assert json.loads(week.stdout)[0]["count"] == 4

    bad = cli("performance", *app, "--since", "soon", env_overrides=env)
    assert bad.returncode == 2 and "Invalid value for '--since'" in bad.stderr

    nothing_there = {"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/test"}
    down = cli("performance", *app, env_overrides=nothing_there)
    assert down.returncode == 1
    assert "cannot reach the history database" in down.stderr and "Traceback" not in down.stderr
