"""RabbitMQ stopped and started under load (``rabbitmqctl stop_app`` / ``start_app``).

Never the shared broker: a private RabbitMQ node (scripts/drills/services.py)
whose default vhost ``/`` the sender, a worker, a beat and a recorder use. The
sender keeps calling ``delay()`` (plain, flaky and delayed tasks) while the
node's RabbitMQ application is stopped for a few seconds and started again.
Nobody is restarted by hand; expected:

* each ``delay()`` returns (then its task runs) or raises (the caller knows);
* the worker, the beat's publisher and the recorder reconnect by themselves,
  and what they declare is there again: after the restart a task with a
  countdown goes through the delay cascade, a flaky one retries through it,
  the worker answers ``inspect ping`` (its control queue) and the recorder
  writes the history of tasks sent after it;
* the beat publishes no fire time twice; the fire times of the outage follow
  ``run_once`` (as in the beats drill);
* reconciliation: nothing lost.

Booting a node takes several seconds (an Erlang VM, a fresh database), so the
short size of this drill costs about half a minute in the test suite.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from taskcore import BrokerUnavailable, PublishError
from taskcore.history import make_engine
from taskcore.operations import Operations
from taskcore.schedules import ON_TIME
from tests.broker_tools import Probe

from . import tasks
from .beats import check_fires
from .environment import QUEUE, Drill, DrillFailed
from .report import Report
from .services import PrivateRabbit

FULL = {"before": 4.0, "outage": 10.0, "after": 4.0}
SHORT = {"before": 1.5, "outage": 3.0, "after": 1.0}
PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


class NodeDrill(Drill):
    """A Drill whose taskcore (sender, workers, dead letters) uses a private node's ``/``.

    environment.Drill makes a vhost on the main broker and reads dead letters and
    depths there; this one points all of that at the node (the vhost it makes on
    the main broker stays empty and is deleted as usual).
    """

    def __init__(self, name: str, node: PrivateRabbit) -> None:
        super().__init__(name)
        self.node = node

    def __enter__(self) -> NodeDrill:
        super().__enter__()
        self.configure(broker_url=self.node.url)
        return self

    @property
    def direct_url(self) -> str:
        return self.node.url


@contextmanager
def quiet(*names: str) -> Iterator[None]:
    """Only critical log records from these loggers while the drill runs."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextmanager
def history_schema() -> Iterator[str]:
    """A schema of its own in the shared PostgreSQL; the URL that uses it."""
    schema = f"drill_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


class Sender(threading.Thread):
    """``delay()`` after ``delay()``: plain tasks, every fifth flaky, every seventh delayed."""

    def __init__(self, drill: Drill) -> None:
        super().__init__(daemon=True)
        self.drill = drill
        self.stop = threading.Event()
        self.attempts = 0

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            self.attempts += 1
            if i % 7 == 0:
                try:
                    handle = tasks.work.apply_async((i,), countdown=1.5)
                except (PublishError, BrokerUnavailable):
                    self.drill.ledger.refused()
                else:
                    self.drill.ledger.sent([handle.id])
            elif not self.drill.send_one(tasks.flaky if i % 5 == 0 else tasks.work, i):
                time.sleep(0.1)  # the broker is away: do not spin
            time.sleep(0.01)


def run(short: bool) -> Report:
    size = SHORT if short else FULL
    report = Report("RabbitMQ stop_app/start_app under load (private node)")
    started = time.monotonic()
    with (
        quiet("aiormq", "aio_pika", "taskcore.broker"),  # this process's sender: reconnects
        PrivateRabbit() as node,
        history_schema() as database,
        NodeDrill("broker", node) as drill,
    ):
        report.did.append(f"private node {node.node} up in {time.monotonic() - started:.0f} s")
        drill.send_one(tasks.work, 0)  # declares the drill's queue before the beat publishes
        drill.start_worker("-c", "8", DRILL_WORK_SECONDS="0.005")
        recorder = drill.start(
            "recorder", "-A", "scripts.drills.tasks:app", "--flush-interval", "0.2",
            env=drill.env(DATABASE_URL=database),
        )  # fmt: skip
        drill.start("beat", "-A", "scripts.drills.beat_app:app", "--name", "beat-0")
        probe = Probe(node.url)
        _wait_consumers(probe, [QUEUE, drill.app.topology.recorder_queue], drill)

        sender = Sender(drill)
        sender.start()
        time.sleep(size["before"])
        node.stop_app()
        down_at = time.time()
        time.sleep(size["outage"])
        up_at = _start_app(node)
        report.did.append(f"RabbitMQ application down {up_at - down_at:.1f} s under load")
        time.sleep(size["after"])
        sender.stop.set()
        sender.join(60)

        # What is declared on connect must be there again, and everyone back on it.
        _wait_consumers(probe, [QUEUE, drill.app.topology.recorder_queue], drill)
        delayed = tasks.work.apply_async((-2,), countdown=1.5)
        retried = tasks.flaky.delay(-3)
        plain = tasks.work.map([(-i,) for i in range(10, 30)])
        after = {delayed.id, retried.id, *(h.id for h in plain)}
        drill.ledger.sent(after)
        for handle, value in ((delayed, -2), (retried, -3)):
            if handle.get(timeout=60) != value:
                raise DrillFailed(f"{handle.id} returned a wrong value after the restart")
        pongs = Operations(drill.app).inspect("ping", timeout=3.0)
        if not pongs:
            raise DrillFailed("no worker answered inspect ping after the restart")
        drill.wait_settled(timeout=300)
        _wait_recorded(database, after, drill)
        if recorder.poll() is not None:
            raise DrillFailed(f"the recorder exited ({recorder.returncode}): {drill.logs}")
        report.did.append(
            f"after the restart: a countdown task went through the delay cascade, a flaky one "
            f"retried, {len(pongs)} worker(s) answered ping, the recorder wrote all "
            f"{len(after)} tasks sent then"
        )

        windows = {"broker down": (down_at - 1, up_at + ON_TIME + 2)}
        report.did += check_fires(drill, windows, required=(down_at, up_at))
        report.attempts = sender.attempts
        report.reconciliation = drill.reconcile()
        if report.reconciliation.duplicates:
            report.did.append(
                f"{report.reconciliation.duplicates} tasks ran twice: their ack was lost with "
                "the connection (at-least-once)"
            )
    report.seconds = time.monotonic() - started
    return report


def _start_app(node: PrivateRabbit) -> float:
    """``start_app``; returns when the node began to accept AMQP connections (rabbitmqctl
    itself returns a second or two later)."""
    starting = threading.Thread(target=node.start_app)
    starting.start()
    while True:
        try:
            socket.create_connection(("127.0.0.1", node.port), timeout=0.5).close()
            up_at = time.time()
            break
        except OSError:
            if not starting.is_alive():
                raise DrillFailed("start_app ended but the node takes no connection") from None
            time.sleep(0.05)
    starting.join(120)
    return up_at


def _wait_consumers(probe: Probe, queues: list[str], drill: Drill, timeout: float = 60) -> None:
    """Wait until each queue has a consumer again (every process reconnected)."""

    async def consumers(channel: Any) -> list[int]:
        found = []
        for queue in queues:
            declared = await channel.declare_queue(queue, passive=True)
            found.append(declared.declaration_result.consumer_count)
        return found

    deadline = time.monotonic() + timeout
    while True:
        try:
            counts = probe._run(consumers)
        except Exception:  # not declared yet, or the node not accepting connections yet
            counts = [0]
        if all(counts):
            return
        if time.monotonic() > deadline:
            raise DrillFailed(f"no consumer on {queues} after {timeout:.0f} s ({drill.logs})")
        time.sleep(0.2)


def _wait_recorded(database: str, task_ids: set[str], drill: Drill, timeout: float = 60) -> None:
    """Wait until each of ``task_ids`` has its task_runs row in state SUCCESS."""
    engine = make_engine(database)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as connection:
                rows = connection.execute(
                    sa.text("SELECT task_id FROM task_runs WHERE state = 'SUCCESS'")
                ).scalars()
                missing = task_ids - set(rows)
            if not missing:
                return
            if time.monotonic() > deadline:
                raise DrillFailed(
                    f"the recorder wrote {len(task_ids) - len(missing)} of the {len(task_ids)} "
                    f"tasks sent after the restart (logs in {drill.logs})"
                )
            time.sleep(0.5)
    finally:
        engine.dispose()
