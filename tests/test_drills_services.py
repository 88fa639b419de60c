"""Drills against the services themselves (scripts/drills), on private instances.

Each drill stops and starts a private Redis, PostgreSQL or RabbitMQ node of its
own (never the shared ones) under load, and must end with every task
reconciled. ``make drills`` runs them at full size. Also here: the recorder's
capped queue, shown overflowing with a tiny cap, counts what it drops.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from scripts.drills import beats, broker_restart, postgres_stop, redis_restart
from taskcore import TaskApp
from taskcore.history import create_schema, make_engine
from taskcore.metrics import RecorderCollector
from taskcore.recorder import Recorder
from taskcore.schedules import make_schedule

from .broker_tools import Probe
from .test_metrics_workers import check_with_promtool

FIRES = re.compile(r"(\d+) fire times published once each")


def test_redis_restart_under_load_loses_nothing_and_rate_limits_recover() -> None:
    report = redis_restart.run(short=True)
    print(report)
    result = report.reconciliation
    assert result is not None
    assert result.lost == 0 and result.dead == 0
    assert result.succeeded == result.sent > redis_restart.SHORT["rounds"] * 10
    assert result.retried > 0
    assert "none ran before Redis was back" in report.did[1]
    assert "handle.get() answered" in report.did[2]


def test_two_beats_fire_each_time_once_through_a_leader_kill_and_a_redis_restart() -> None:
    report = beats.run(short=True)
    print(report)
    result = report.reconciliation
    assert result is not None
    assert result.lost == 0 and result.duplicates == 0
    assert result.succeeded == result.sent >= 10
    assert any(line.startswith("Redis down:") and "(run_once)" in line for line in report.did)


def test_postgres_stop_under_load_the_recorder_catches_up_with_every_event() -> None:
    report = postgres_stop.run(short=True)
    print(report)
    result = report.reconciliation
    assert result is not None
    assert result.lost == 0
    assert result.succeeded == result.sent
    assert "batches refused" in report.did[0]


def test_broker_stop_app_start_app_everyone_reconnects_and_nothing_is_lost() -> None:
    report = broker_restart.run(short=True)
    print(report)
    result = report.reconciliation
    assert result is not None
    assert result.lost == 0
    assert result.succeeded == result.sent
    fires = int(next(m.group(1) for line in report.did if (m := FIRES.match(line))))
    # Every delay() returned (sent) or raised (refused); then 1 before, 22 after, the beat's.
    assert result.sent + result.refused == report.attempts + 1 + 22 + fires
    assert result.refused > 0  # delay() raised while the broker was down, as promised
    assert any("the recorder wrote all 22 tasks" in line for line in report.did)


def test_a_beat_counts_fire_times_up_to_losing_redis_as_done() -> None:
    every = make_schedule("s", "t", every=1.0)
    assert every.latest_at_or_before(105.5, after=100.0) == 105.0
    assert every.latest_at_or_before(100.5, after=100.0) == 100.0
    nightly = make_schedule("n", "t", cron="0 2 * * *")
    day = 86400.0
    assert nightly.latest_at_or_before(10 * day + 3 * 3600, after=7 * day) == 10 * day + 7200
    assert nightly.latest_at_or_before(7 * day + 3600, after=7 * day) == 7 * day


# -- the recorder's capped queue ---------------------------------------------------------


def _events_message(n: int) -> bytes:
    return json.dumps(
        [
            {"task_id": f"t{n:02d}-{k}", "state": "SUCCESS", "at": time.time(), "task": "x"}
            for k in range(2)
        ]
    ).encode()


def _publish(probe: Probe, exchange: str, bodies: list[bytes]) -> None:
    async def go(channel: Any) -> None:
        raw = await channel.get_underlay_channel()
        await raw.confirm_delivery()
        for body in bodies:
            await raw.basic_publish(body, exchange=exchange, routing_key="task.success")

    probe._run(go)


class RecorderThread:
    """A Recorder on its own event loop in a thread of the test process."""

    def __init__(self, app: TaskApp, engine: sa.Engine) -> None:
        self.recorder = Recorder(app, engine, flush_interval=0.1)
        self.loop = asyncio.new_event_loop()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self.recorder.run())
        except BaseException as exc:
            self.error = exc

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self.recorder

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.recorder.request_stop)
        self.thread.join(30)
        self.loop.close()
        assert self.error is None, self.error


def _metrics(recorder: Recorder) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(RecorderCollector(recorder))
    text = generate_latest(registry).decode()
    check_with_promtool(text)
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _wait(condition: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_recorder_counts_the_events_its_full_queue_drops(
    amqp_url: str, namespace: str, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = TaskApp("drops", broker_url=amqp_url, namespace=namespace)
    topology = app.topology
    topology.recorder_queue_max = 5  # the real cap is a million messages
    probe = Probe(amqp_url)

    async def declare(channel: Any) -> None:
        await topology.declare_base(channel)
        await topology.declare_recorder_queue(channel)

    probe._run(declare)
    # No recorder runs: 12 messages of 2 events each arrive at a queue that keeps 5.
    _publish(probe, topology.events_exchange, [_events_message(n) for n in range(12)])
    assert probe.depth(topology.recorder_queue) == 5
    assert probe.depth(topology.recorder_dropped_queue) == 7  # the oldest, dead-lettered
    engine = make_engine(database_url)
    create_schema(engine)
    caplog.set_level(logging.WARNING, logger="taskcore.recorder")
    try:
        with RecorderThread(app, engine) as recorder:
            _wait(lambda: recorder.written == 10 and recorder.dropped == 14)
            found = _metrics(recorder)
            assert found["taskcore_recorder_events_dropped_total"] == 14
            assert found["taskcore_recorder_events_written_total"] == 10
            # Drops while the recorder runs are counted as they happen.
            _publish(probe, topology.events_exchange, [_events_message(n) for n in range(12, 14)])
            _wait(lambda: recorder.written == 14)
            assert _metrics(recorder)["taskcore_recorder_events_dropped_total"] == 14
        with engine.connect() as connection:
            ids = connection.execute(sa.text("SELECT task_id FROM task_events")).scalars().all()
    finally:
        engine.dispose()
    assert sorted(ids) == sorted(f"t{n:02d}-{k}" for n in range(7, 14) for k in range(2))
    assert probe.depth(topology.recorder_dropped_queue) == 0
    assert any(
        "14 task events were dropped by the full queue" in r.getMessage() for r in caplog.records
    ), [r.getMessage() for r in caplog.records]


def test_a_recorder_queue_from_an_older_taskcore_is_used_as_it_is(
    amqp_url: str, namespace: str, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = TaskApp("older", broker_url=amqp_url, namespace=namespace)
    topology = app.topology
    probe = Probe(amqp_url)

    async def declare_as_before(channel: Any) -> None:  # no dead-lettering of drops
        await topology.declare_base(channel)
        queue = await channel.declare_queue(
            topology.recorder_queue,
            durable=True,
            arguments={"x-max-length": 1_000_000, "x-overflow": "drop-head", "x-queue-version": 2},
        )
        await queue.bind(topology.events_exchange, "task.#")

    probe._run(declare_as_before)
    _publish(probe, topology.events_exchange, [_events_message(n) for n in range(3)])
    engine = make_engine(database_url)
    create_schema(engine)
    caplog.set_level(logging.WARNING, logger="taskcore.topology")
    try:
        with RecorderThread(app, engine) as recorder:
            _wait(lambda: recorder.written == 6)
    finally:
        engine.dispose()
    warning = next(r.getMessage() for r in caplog.records if r.name == "taskcore.topology")
    assert "exists with other arguments" in warning and "set_policy" in warning
