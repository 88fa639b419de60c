"""TASKCORE_QUEUE_TYPE=quorum: every queue taskcore declares is a quorum queue where
RabbitMQ allows one (work, dead-letter, delay and recorder queues), on the shared broker
in this test's vhost. What quorum queues cannot do is refused with a clear error."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
import sqlalchemy as sa

from taskcore import ConfigurationError, Settings, TaskApp
from taskcore.delays import LEVELS
from taskcore.history import create_schema, make_engine
from taskcore.operations import Operations
from taskcore.topology import queue_arguments

from .broker_tools import Probe, rabbitmqctl
from .test_drills_services import RecorderThread, _events_message, _publish, _wait
from .worker_log import wait_events

T = "tests.apps.basic."


def queues_of(vhost: str) -> dict[str, dict[str, Any]]:
    """Every queue of ``vhost`` as the broker sees it: type, exclusive, arguments."""
    out = rabbitmqctl(
        "list_queues", "-p", vhost, "name", "type", "exclusive", "arguments",
        "--formatter", "json", "-q",
    )  # fmt: skip
    rows = json.loads(out or "[]")
    for row in rows:  # arguments come as [name, type, value] triples
        row["arguments"] = {name: value for name, _, value in row["arguments"]}
    return {row["name"]: row for row in rows}


@pytest.fixture
def quorum_env(task_env: dict[str, str]) -> dict[str, str]:
    """This test's environment with TASKCORE_QUEUE_TYPE=quorum (apps and workers alike)."""
    task_env["TASKCORE_QUEUE_TYPE"] = "quorum"
    return task_env


def test_a_bad_queue_type_names_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="TASKCORE_QUEUE_TYPE='replicated'"):
        Settings.from_env({"TASKCORE_QUEUE_TYPE": "replicated"})
    with pytest.raises(ConfigurationError, match=r"classic .* or quorum"):
        TaskApp("bad", queue_type="stream")
    assert Settings.from_env({"TASKCORE_QUEUE_TYPE": " Quorum "}).queue_type == "quorum"
    assert Settings.from_env({}).queue_type == "classic"


def test_max_priority_and_quorum_are_refused_at_start_up_with_the_way_out() -> None:
    with pytest.raises(ConfigurationError) as caught:
        TaskApp("prio", queue_type="quorum", queues={"high": {"max_priority": 9}})
    message = str(caught.value)
    assert "queue 'high'" in message and "TASKCORE_QUEUE_TYPE=quorum" in message
    assert "x-max-priority" in message
    assert "{'type': 'classic', 'max_priority': 9}" in message
    with pytest.raises(ConfigurationError, match="its type makes it a quorum queue"):
        queue_arguments("high", {"type": "quorum", "max_priority": 9})
    # The way out: a queue's own type wins over the setting.
    kept = TaskApp(
        "prio", queue_type="quorum", queues={"high": {"type": "classic", "max_priority": 9}}
    )
    assert queue_arguments("high", kept.settings.queues["high"], "quorum") == {
        "x-queue-version": 2,
        "x-max-priority": 9,
    }
    kept.close()


def test_with_quorum_tasks_run_retries_cross_the_quorum_cascade_and_dead_letters_land(
    quorum_env: dict[str, str], app_from, start_worker, rdb, redis_prefix, probe: Probe, vhost: str
) -> None:
    app = app_from("basic")
    assert app.settings.queue_type == "quorum"
    start_worker("basic", "-Q", "work")
    assert app.tasks[T + "note"].delay("q").get(timeout=10) == "q"
    # 0.5, 1 and 2 s of backoff: delay levels 0 to 4 of the cascade, then the dead letter.
    handles = [app.tasks[T + "always_flaky"].delay(tag) for tag in ("x", "y")]
    attempts = wait_events(rdb, redis_prefix, "attempt", 8, timeout=20)
    for tag in ("x", "y"):
        times = [a["at"] for a in attempts if a["tag"] == tag]
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        for gap, expected in zip(gaps, [0.5, 1.0, 2.0], strict=True):
            assert abs(gap - expected) <= max(0.1 * expected, 0.2), (gaps, expected)
    assert probe.wait_depth("work.dead", 2) == 2

    queues = queues_of(vhost)  # while the worker runs: its control queue is there too
    ns = quorum_env["TASKCORE_NAMESPACE"]
    delay_queues = {f"{ns}.delay.{level:02d}" for level in range(LEVELS)}
    assert {"work", "work.dead"} | delay_queues <= set(queues)
    for name in {"work", "work.dead"} | delay_queues:
        assert queues[name]["type"] == "quorum", queues[name]
        assert "x-queue-version" not in queues[name]["arguments"]
    assert queues["work"]["arguments"]["x-dead-letter-exchange"] == f"{ns}.dead"
    for name in delay_queues:
        assert queues[name]["arguments"]["x-dead-letter-strategy"] == "at-least-once"
        assert queues[name]["arguments"]["x-overflow"] == "reject-publish"
    (control,) = [q for name, q in queues.items() if name.startswith("amq.gen-")]
    assert control["type"] == "classic" and control["exclusive"] is True

    # Dead letters read (each read puts them back in place) and leave a quorum queue.
    ops = Operations(app)
    listed = ops.dead_letters("work")
    assert [d["id"] for d in listed] == [d["id"] for d in ops.dead_letters("work")]
    assert {d["id"] for d in listed} == {h.id for h in handles}
    assert {(d["reason"], d["attempts"]) for d in listed} == {("max-retries-exceeded", 4)}
    dead = probe.get_all("work.dead")
    assert [d.message_id for d in dead] == [d["id"] for d in listed]
    assert {d.headers["x-taskcore-original-queue"] for d in dead} == {"work"}


def test_a_queue_of_its_own_type_wins_and_dead_letter_queues_follow_the_setting(
    quorum_env: dict[str, str], vhost: str
) -> None:
    app = TaskApp(
        "own",
        broker_url=quorum_env["TASKCORE_BROKER_URL"],
        namespace=quorum_env["TASKCORE_NAMESPACE"],
        queue_type="quorum",
        queues={"prio": {"type": "classic", "max_priority": 9}},
    )
    try:
        app.send_task("anything", queue="prio", priority=5)
    finally:
        app.close()
    queues = queues_of(vhost)
    assert queues["prio"]["type"] == "classic"
    assert queues["prio"]["arguments"]["x-max-priority"] == 9
    assert queues["prio.dead"]["type"] == "quorum"


def test_the_recorder_counts_what_its_full_quorum_queue_drops(
    quorum_env: dict[str, str], vhost: str, database_url: str
) -> None:
    app = TaskApp(
        "drops",
        broker_url=quorum_env["TASKCORE_BROKER_URL"],
        namespace=quorum_env["TASKCORE_NAMESPACE"],
        queue_type="quorum",
    )
    topology = app.topology
    topology.recorder_queue_max = 5
    probe = Probe(quorum_env["TASKCORE_BROKER_URL"])

    async def declare(channel: Any) -> None:
        await topology.declare_base(channel)
        await topology.declare_recorder_queue(channel)

    probe._run(declare)
    queues = queues_of(vhost)
    for name in (topology.recorder_queue, topology.recorder_dropped_queue):
        assert queues[name]["type"] == "quorum", queues[name]
    # 12 messages of 2 events each, into a quorum queue that keeps 5 (drop-head).
    _publish(probe, topology.events_exchange, [_events_message(n) for n in range(12)])
    assert probe.depth(topology.recorder_queue) == 5
    assert probe.depth(topology.recorder_dropped_queue) == 7
    engine = make_engine(database_url)
    create_schema(engine)
    try:
        with RecorderThread(app, engine) as recorder:
            _wait(lambda: recorder.written == 10 and recorder.dropped == 14)
        with engine.connect() as connection:
            ids = connection.execute(sa.text("SELECT task_id FROM task_events")).scalars().all()
    finally:
        engine.dispose()
        app.close()
    assert sorted(ids) == sorted(f"t{n:02d}-{k}" for n in range(7, 12) for k in range(2))


def test_switching_a_vhost_from_classic_to_quorum_says_what_to_do(
    task_env: dict[str, str],
) -> None:
    common = {
        "broker_url": task_env["TASKCORE_BROKER_URL"],
        "namespace": task_env["TASKCORE_NAMESPACE"],
    }
    classic = TaskApp("before", **common)
    try:
        classic.send_task("anything", queue="work")
    finally:
        classic.close()
    quorum = TaskApp("after", queue_type="quorum", **common)
    try:
        with pytest.raises(ConfigurationError) as caught:
            quorum.send_task("anything", queue="work")
    finally:
        quorum.close()
    message = str(caught.value)
    assert "delay queues" in message and "TASKCORE_QUEUE_TYPE" in message
    assert "rabbitmqctl" in message and "delete_queue" in message

    # With the delay queues gone, the work queue (and only it) is named.
    async def delete_delay_queues(channel: Any) -> None:
        for level in range(LEVELS):
            await channel.queue_delete(f"{common['namespace']}.delay.{level:02d}")

    Probe(common["broker_url"])._run(delete_delay_queues)
    quorum = TaskApp("after", queue_type="quorum", **common)
    try:
        with pytest.raises(ConfigurationError, match="queue 'work' already exists") as caught:
            quorum.send_task("anything", queue="work")
    finally:
        quorum.close()
    assert "rabbitmqctl delete_queue work" in str(caught.value)
