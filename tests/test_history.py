"""Task history: workers publish events, `taskcore recorder` writes them to PostgreSQL."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import pytest
import sqlalchemy as sa

from taskcore import TaskFailed
from taskcore.history import make_engine

F = "tests.apps.features."


def rows(url: str, sql: str) -> list[dict[str, Any]]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return [dict(r._mapping) for r in connection.execute(sa.text(sql))]
    finally:
        engine.dispose()


def wait_rows(url: str, sql: str, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = rows(url, sql)
        except sa.exc.ProgrammingError:  # the recorder has not created the tables yet
            found = []
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_recorder_keeps_history_in_postgres_and_catches_up(
    app_from, start_worker, start_command, database_url: str
) -> None:
    app = app_from("features")
    env = {"DATABASE_URL": database_url}
    recorder = start_command(
        "recorder", "-A", "tests.apps.features:app", "--flush-interval", "0.2", env=env
    )
    recorder.wait_for_output("recorder consuming")
    start_worker("features", "-Q", "feat")

    ok = app.tasks[F + "add"].delay(20, 22)
    bad = app.tasks[F + "divide"].delay(1, 0)
    slow = app.tasks[F + "stuck"].delay(0.3)
    assert ok.get(timeout=10) == 42
    assert slow.get(timeout=10) is None
    with pytest.raises(TaskFailed):
        bad.get(timeout=10)

    finished = "SELECT * FROM task_runs WHERE finished_at IS NOT NULL ORDER BY task"
    runs = {r["task_id"]: r for r in wait_rows(database_url, finished, 3)}
    assert runs[ok.id]["state"] == "SUCCESS"
    assert runs[ok.id]["task"] == F + "add" and runs[ok.id]["queue"] == "feat"
    assert runs[ok.id]["result"] == "42"
    assert runs[ok.id]["attempts"] == 1
    assert runs[ok.id]["args"] == '{"args": [20, 22], "kwargs": {}}'
    assert runs[ok.id]["worker"].startswith("taskcore-")
    assert runs[slow.id]["started_at"] <= runs[slow.id]["finished_at"]
    # The worker was already running: each task waited in its queue well under a second.
    assert 0 <= runs[ok.id]["queue_wait"] < 1.0 and runs[ok.id]["runtime"] < 1.0
    assert runs[bad.id]["state"] == "FAILURE"
    assert runs[bad.id]["error_type"] == "builtins.ZeroDivisionError"
    assert "ZeroDivisionError" in runs[bad.id]["traceback"]
    events = rows(
        database_url, f"SELECT state FROM task_events WHERE task_id = '{ok.id}' ORDER BY at"
    )
    assert [e["state"] for e in events] == ["SUCCESS"]  # fast: no STARTED (STARTED_AFTER)
    events = rows(
        database_url, f"SELECT state FROM task_events WHERE task_id = '{slow.id}' ORDER BY at"
    )
    assert [e["state"] for e in events] == ["STARTED", "SUCCESS"]

    # Stopped, the recorder misses nothing: events wait in its durable queue.
    recorder.signal(signal.SIGTERM)
    assert recorder.wait(10) == 0
    later = app.tasks[F + "add"].delay(1, 1)
    assert later.get(timeout=10) == 2
    assert rows(database_url, f"SELECT * FROM task_runs WHERE task_id = '{later.id}'") == []
    again = start_command(
        "recorder", "-A", "tests.apps.features:app", "--flush-interval", "0.2", env=env
    )
    again.wait_for_output("recorder consuming")
    caught_up = wait_rows(
        database_url, f"SELECT state FROM task_runs WHERE task_id = '{later.id}'", 1
    )
    assert caught_up == [{"state": "SUCCESS"}]


def test_init_db_creates_the_tables(start_command, database_url: str) -> None:
    command = start_command("init-db", env={"DATABASE_URL": database_url})
    assert command.wait(30) == 0
    assert "task history tables are ready" in command.output
    tables = rows(
        database_url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()",
    )
    assert {t["table_name"] for t in tables} == {
        "task_runs",
        "task_events",
        "taskcore_alembic_version",  # the migrations' revision, in this test's schema
    }


def test_recorder_reads_event_batches_and_drops_only_what_is_not_an_event() -> None:
    from taskcore.recorder import read_events

    good = {"task_id": "a", "state": "SUCCESS", "at": 1.0}
    assert read_events(json.dumps([good, {"task_id": "b", "state": "STARTED"}]).encode()) == [
        good,
        {"task_id": "b", "state": "STARTED"},
    ]
    assert read_events(json.dumps(good).encode()) == [good]  # one event per message (older workers)
    assert read_events(json.dumps([good, {"state": "x"}, 3]).encode()) == [good]
    assert read_events(b"not json") == []
