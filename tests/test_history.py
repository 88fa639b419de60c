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
        "task_workflows",
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


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_write_events_keeps_the_newest_state_and_every_event(
    backend: str, database_url: str, tmp_path: Any
) -> None:
    from taskcore.history import create_schema, write_events

    url = database_url if backend == "postgresql" else f"sqlite:///{tmp_path / 'history.db'}"
    engine = make_engine(url)
    create_schema(engine)
    awkward = 'add("a,b", "quote \\" and\nnewline")'  # CSV's special characters
    base = {"task_id": "t-1", "task": "tests.add", "queue": "default", "worker": "w@h"}
    try:
        write_events(
            engine, [{**base, "state": "STARTED", "at": 2.0, "attempts": 1, "args": awkward}]
        )
        # Arrives late: older than the stored state, so the run keeps STARTED.
        write_events(engine, [{**base, "state": "PENDING", "at": 1.0, "attempts": 1}])
        write_events(
            engine,
            [
                {
                    "task_id": "t-1",
                    "state": "SUCCESS",
                    "at": 3.0,
                    "attempts": 1,
                    "result": [1, "x"],
                },
                {
                    "task_id": "t-2",
                    "state": "FAILURE",
                    "at": 3.5,
                    "attempts": 2,
                    "worker": None,
                    "error": {"type": "ValueError", "message": "bad", "traceback": "tb"},
                },
            ],
        )
        with engine.connect() as connection:
            runs = {
                row.task_id: row for row in connection.execute(sa.text("SELECT * FROM task_runs"))
            }
            events = connection.execute(
                sa.text("SELECT task_id, state, worker, data FROM task_events ORDER BY at")
            ).all()
    finally:
        engine.dispose()
    done = runs["t-1"]
    assert (done.state, done.task, done.queue, done.worker, done.args) == (
        "SUCCESS",
        "tests.add",
        "default",
        "w@h",
        awkward,
    )  # fields the SUCCESS event did not carry are kept
    assert json.loads(done.result) == [1, "x"] and done.finished_at is not None
    assert done.started_at is not None and done.attempts == 1
    failed = runs["t-2"]
    assert (failed.state, failed.attempts, failed.error_type, failed.error_message) == (
        "FAILURE",
        2,
        "ValueError",
        "bad",
    )
    assert [(e.task_id, e.state, e.worker) for e in events] == [
        ("t-1", "PENDING", "w@h"),
        ("t-1", "STARTED", "w@h"),
        ("t-1", "SUCCESS", None),
        ("t-2", "FAILURE", None),
    ]
    data = events[1].data if isinstance(events[1].data, dict) else json.loads(events[1].data)
    assert data["args"] == awkward


def test_a_nul_character_in_a_task_argument_does_not_poison_the_history(
    database_url: str,
) -> None:
    # PostgreSQL text cannot hold NUL: a batch with one would be refused for ever.
    from taskcore.history import create_schema, write_events
    from taskcore.recorder import read_events

    engine = make_engine(database_url)
    create_schema(engine)
    body = json.dumps(
        [{"task_id": "t-nul", "state": "FAILURE", "at": 1.0, "args": "('a\x00b',)",
          "error": {"type": "ValueError", "message": "bad \x00 byte", "traceback": ""}}]
    ).encode()  # fmt: skip
    try:
        write_events(engine, read_events(body))
        with engine.connect() as connection:
            run = connection.execute(sa.text("SELECT * FROM task_runs")).one()
    finally:
        engine.dispose()
    assert (run.args, run.error_message) == ("('a\\x00b',)", "bad \\x00 byte")
