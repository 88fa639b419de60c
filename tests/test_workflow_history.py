"""Workflows as one unit in the history: a chain, group or chord and its members' states."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from taskcore import TaskApp, TaskFailed, chain, chord, group
from taskcore.errors import ConfigurationError
from taskcore.history import write_events
from taskcore.operations import Operations
from taskcore.workflows import workflow_event

W = "tests.apps.workflows."


@pytest.fixture
def engine(history_engine: sa.Engine) -> sa.Engine:
    return history_engine


@pytest.fixture
def recorded(app_from, start_worker, start_command, database_url: str, engine: sa.Engine):
    """The workflows test app with a worker and a recorder writing to this test's schema."""
    app = app_from("workflows")
    recorder = start_command(
        "recorder",
        "-A",
        "tests.apps.workflows:app",
        "--flush-interval",
        "0.1",
        env={"DATABASE_URL": database_url},
    )
    recorder.wait_for_output("recorder consuming")
    start_worker("workflows", "-Q", "flow", "--concurrency", "4")
    ops = Operations(app, engine)
    yield app, ops


def settled(ops: Operations, workflow_id: str, timeout: float = 15.0) -> dict[str, Any]:
    """The workflow once the history has every member finished."""
    deadline = time.monotonic() + timeout
    while True:
        found = ops.workflow(workflow_id)
        if found and found["done"] == found["total"]:
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.1)


def test_a_chain_is_one_unit_with_its_steps_in_order(recorded) -> None:
    app, ops = recorded
    add, mul = app.tasks[W + "add"], app.tasks[W + "mul"]
    handle = chain(add.s(1, 2), mul.s(10), add.s(5)).apply_async()
    assert handle.get(timeout=15) == 35
    found = settled(ops, handle.workflow_id)
    assert found["kind"] == "chain" and found["state"] == "SUCCESS"
    assert [m["task"] for m in found["members"]] == [W + "add", W + "mul", W + "add"]
    assert [m["state"] for m in found["members"]] == ["SUCCESS"] * 3
    assert found["members"][-1]["id"] == handle.id
    assert all(m["runtime"] is not None and m["worker"] for m in found["members"])
    # Each member's own row names the workflow: the task page links to it.
    assert ops.task_run(handle.id)["workflow_id"] == handle.workflow_id
    (listed,) = ops.workflows()["workflows"]
    assert listed["workflow_id"] == handle.workflow_id
    assert listed["tasks"] == [W + "add", W + "mul", W + "add"]  # a chain's steps, in order
    assert (listed["state"], listed["done"], listed["total"]) == ("SUCCESS", 3, 3)


def test_a_chain_that_stops_shows_the_failed_step_and_those_never_run(recorded) -> None:
    app, ops = recorded
    add, refuse = app.tasks[W + "add"], app.tasks[W + "refuse"]
    last = chain(add.s(1, 1), refuse.s(), add.s(1)).apply_async()
    with pytest.raises(TaskFailed):
        last.get(timeout=15)
    found = settled(ops, last.workflow_id)
    assert found["state"] == "FAILURE"
    first, failed, never = found["members"]
    assert (first["state"], failed["state"], never["state"]) == ("SUCCESS", "DEAD", "FAILURE")
    assert never["error_type"] == "taskcore.ChainStopped" and never["runtime"] is None


def test_a_group_and_a_chord_list_their_members_and_the_callback(recorded) -> None:
    app, ops = recorded
    add, tally = app.tasks[W + "add"], app.tasks[W + "tally"]
    members = group(add.s(i, i) for i in range(4)).apply_async()
    assert members.get(timeout=15) == [0, 2, 4, 6]
    found = settled(ops, members.id)
    assert found["kind"] == "group" and found["callback"] is None
    assert [m["id"] for m in found["members"]] == [h.id for h in members.results]
    callback = chord(group(add.s(i, 1) for i in range(3)), tally.s()).apply_async()
    assert callback.get(timeout=15) == 6
    found = settled(ops, callback.workflow_id)
    assert found["kind"] == "chord" and found["state"] == "SUCCESS"
    assert len(found["members"]) == 3 and found["total"] == 4
    assert found["callback"]["id"] == callback.id and found["callback"]["state"] == "SUCCESS"
    assert [w["kind"] for w in ops.workflows()["workflows"]] == ["chord", "group"]
    assert [w["kind"] for w in ops.workflows(kind="group")["workflows"]] == ["group"]


# -- reading the history without a worker ------------------------------------------------


def shape(workflow_id: str, kind: str, count: int, at: float) -> dict[str, Any]:
    members = [{"id": f"{workflow_id}-{i}", "task": f"t{i}", "queue": "q"} for i in range(count)]
    return {**workflow_event(workflow_id, kind, members), "at": at}


def run(task_id: str, state: str, workflow_id: str, at: float) -> dict[str, Any]:
    return {"task_id": task_id, "state": state, "at": at, "workflow_id": workflow_id}


@pytest.fixture
def ops(engine: sa.Engine) -> Iterator[Operations]:
    app = TaskApp("workflow-history-test")
    yield Operations(app, engine)
    app.close()


def test_members_no_worker_reported_on_are_pending(engine: sa.Engine, ops: Operations) -> None:
    write_events(engine, [shape("w1", "chain", 3, at=100.0)])
    found = ops.workflow("w1")
    assert found["state"] == "PENDING" and (found["done"], found["total"]) == (0, 3)
    assert [m["state"] for m in found["members"]] == ["PENDING"] * 3
    write_events(engine, [run("w1-0", "STARTED", "w1", at=101.0)])
    assert ops.workflow("w1")["state"] == "STARTED"
    write_events(engine, [run("w1-0", "SUCCESS", "w1", at=102.0)])
    assert (ops.workflow("w1")["state"], ops.workflow("w1")["done"]) == ("STARTED", 1)
    assert ops.workflow("nope") is None


def test_a_shape_recorded_twice_keeps_the_first(engine: sa.Engine, ops: Operations) -> None:
    write_events(engine, [shape("w2", "group", 2, at=100.0)])
    write_events(engine, [shape("w2", "group", 5, at=200.0)])  # a resent publish
    assert ops.workflow("w2")["total"] == 2


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ({"SUCCESS": 2, "DEAD": 1}, "FAILURE"),
        ({"SUCCESS": 1, "FAILURE": 1}, "FAILURE"),
        ({"REVOKED": 1, "STARTED": 1}, "REVOKED"),
        ({"SUCCESS": 3}, "SUCCESS"),
        ({"RETRY": 1}, "STARTED"),
        ({}, "PENDING"),
    ],
)
def test_a_workflow_state_sums_its_members(
    engine: sa.Engine, ops: Operations, states: dict[str, int], expected: str
) -> None:
    write_events(engine, [shape("w3", "group", 3, at=100.0)])
    ids = iter(range(3))
    write_events(
        engine,
        [
            run(f"w3-{next(ids)}", state, "w3", at=101.0)
            for state, count in states.items()
            for _ in range(count)
        ],
    )
    found = ops.workflow("w3")
    assert found["state"] == expected
    assert ops.workflows()["workflows"][0]["state"] == expected


def test_workflows_page_newest_first_and_refuse_what_they_cannot_read(
    engine: sa.Engine, ops: Operations
) -> None:
    write_events(engine, [shape(f"p{i}", "chain", 1, at=100.0 + i) for i in range(5)])
    first = ops.workflows(limit=2)
    assert [w["workflow_id"] for w in first["workflows"]] == ["p4", "p3"]
    second = ops.workflows(limit=2, after=first["next"])
    assert [w["workflow_id"] for w in second["workflows"]] == ["p2", "p1"]
    third = ops.workflows(limit=2, after=second["next"])
    assert [w["workflow_id"] for w in third["workflows"]] == ["p0"] and third["next"] is None
    bad: list[Callable[[], Any]] = [
        lambda: ops.workflows(kind="pipeline"),
        lambda: ops.workflows(limit=0),
        lambda: ops.workflows(after="garbage"),
    ]
    for call in bad:
        with pytest.raises(ConfigurationError):
            call()
