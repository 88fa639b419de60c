"""The operations API the CLI and the console share: dead letters by id, queue status."""

from __future__ import annotations

import pytest

from taskcore import QueueNotFound
from taskcore.operations import Operations

from .broker_tools import Probe

T = "tests.apps.basic."


def test_replay_and_discard_chosen_dead_letters(app_from, start_worker, probe: Probe) -> None:
    app = app_from("basic")
    ops = Operations(app)
    worker = start_worker("basic", "-Q", "work", "--concurrency", "1")
    handles = [app.tasks[T + "boom"].delay(tag) for tag in ("a", "b", "c", "d")]
    assert probe.wait_depth("work.dead", 4) == 4
    worker.signal(15)
    worker.wait(15)
    a, b, c, d = (h.id for h in handles)
    assert [row["id"] for row in ops.dead_letters("work")] == [a, b, c, d]

    assert ops.replay("work", ids=[b, d]) == (2, 2)  # two moved, two left in place
    assert ops.discard("work", [c]) == 1
    assert [row["id"] for row in ops.dead_letters("work")] == [a]  # order kept
    assert sorted(m.message_id for m in probe.get_all("work")) == sorted([b, d])
    assert ops.discard("work", ["no-such-id"]) == 0
    assert probe.depth("work.dead") == 1


def test_a_missing_queue_is_named(app_from) -> None:
    ops = Operations(app_from("basic"))
    with pytest.raises(QueueNotFound, match=r"no queue named 'nowhere\.dead'"):
        ops.dead_letters("nowhere")
    reading = ops.status()  # queues the app knows but the broker has not seen yet
    assert {q["queue"]: q["ready"] for q in reading["queues"]}["work"] is None
