"""PostgreSQL stopped under load while ``taskcore recorder`` writes the task history.

A private PostgreSQL cluster (initdb in a temporary directory, never the
shared one) gets the history tables with ``taskcore init-db``; a worker runs
plain and flaky tasks and a recorder writes their events, while PostgreSQL is
stopped (``pg_ctl stop -m fast``: every session ended) for a few seconds and
started again. The recorder's failed batches go back to its queue and it
retries; once it has caught up, every event the workers published is in
``task_events`` (a witness queue bound to the events exchange got a copy of each)
and every task sent has its ``task_runs`` row in state SUCCESS.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

from taskcore.history import make_engine
from tests.broker_tools import Probe, management

from . import tasks
from .environment import ROOT, Drill, DrillFailed
from .report import Report
from .services import PrivatePostgres, free_port

FULL = {"rounds": 100, "per_round": 50, "outage": 10.0}
SHORT = {"rounds": 30, "per_round": 20, "outage": 4.0}
WITNESS = "drill.events.witness"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def run(short: bool) -> Report:
    size = SHORT if short else FULL
    report = Report("PostgreSQL stopped under load while the recorder writes (private cluster)")
    started = time.monotonic()
    with PrivatePostgres() as pg, Drill("postgres") as drill:
        env = drill.env(DATABASE_URL=pg.url)
        init = subprocess.run(
            [sys.executable, "-m", "workers", "init-db"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if init.returncode != 0:
            raise DrillFailed(f"taskcore init-db failed: {init.stderr}")
        topology = drill.app.topology
        Probe(drill.direct_url)._run(lambda channel: _declare_witness(channel, topology))
        port = free_port()
        recorder = drill.start(
            "recorder", "-A", "scripts.drills.tasks:app", "--flush-interval", "0.2",
            "--metrics-port", str(port), env=env,
        )  # fmt: skip
        _wait_consumer(drill, topology.recorder_queue)
        drill.start_worker("-c", "8", DRILL_WORK_SECONDS="0.005")

        sender = threading.Thread(target=_send, args=(drill, size["rounds"], size["per_round"]))
        sender.start()
        time.sleep(1.0)
        pg.stop(mode="fast")
        down_at = time.monotonic()
        time.sleep(size["outage"])
        errors_in_outage = _metric(port, "taskcore_recorder_write_errors_total")
        pg.start()
        report.did.append(
            f"PostgreSQL down {time.monotonic() - down_at:.1f} s while tasks ran; the recorder "
            f"had {errors_in_outage:.0f} batches refused by then (sent back to its queue)"
        )
        sender.join(300)
        drill.wait_settled(timeout=300)
        if recorder.poll() is not None:
            raise DrillFailed(f"the recorder exited ({recorder.returncode}): logs in {drill.logs}")
        if errors_in_outage < 1:
            raise DrillFailed("the recorder counted no write error while PostgreSQL was down")

        published = _witnessed(drill)
        missing, duplicated, stored = _wait_recorded(drill, pg.url, published, timeout=120)
        if missing:
            raise DrillFailed(
                f"{sum(missing.values())} events never reached task_events, e.g. "
                f"{list(missing)[:3]} (logs in {drill.logs})"
            )
        report.did.append(
            f"{sum(published.values())} events published; all {stored} in task_events after the "
            f"restart ({sum(duplicated.values())} written twice: at-least-once)"
        )
        _check_runs(drill, pg.url)
        dropped = _metric(port, "taskcore_recorder_events_dropped_total")
        if dropped:
            raise DrillFailed(f"the recorder counted {dropped:.0f} dropped events")
        report.did.append(
            "every task sent has its task_runs row in state SUCCESS, every retried one a "
            "RETRY event; taskcore_recorder_events_dropped_total 0"
        )
        report.reconciliation = drill.reconcile()
    report.seconds = time.monotonic() - started
    return report


async def _declare_witness(channel: Any, topology: Any) -> None:
    """A queue that gets a copy of every event published (what the history must hold)."""
    await topology.declare_base(channel)
    queue = await channel.declare_queue(WITNESS, durable=True)
    await queue.bind(topology.events_exchange, "task.#")


def _wait_consumer(drill: Drill, queue: str, timeout: float = 60) -> None:
    path = f"/queues/{quote(drill.vhost, safe='')}/{quote(queue, safe='')}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if management("GET", path).get("consumers", 0) >= 1:
                return
        except RuntimeError:
            pass  # not declared yet
        time.sleep(0.2)
    raise DrillFailed(f"no recorder consuming {queue} after {timeout:.0f} s ({drill.logs})")


def _send(drill: Drill, rounds: int, per_round: int) -> None:
    for round_ in range(rounds):
        base = round_ * per_round
        plain = [(i,) for i in range(base, base + per_round) if i % 10 != 3]
        drill.send(tasks.work, plain)
        drill.send(tasks.flaky, [(i,) for i in range(base, base + per_round) if i % 10 == 3])
        time.sleep(0.1)


def _key(event: dict[str, Any]) -> tuple[str, str, int]:
    """An event by task, state and time (in microseconds, rounded as the recorder does)."""
    at = datetime.fromtimestamp(float(event["at"]), UTC)
    return str(event["task_id"]), str(event["state"]), _microseconds(at)


def _microseconds(at: datetime) -> int:
    return (at - EPOCH) // timedelta(microseconds=1)


def _witnessed(drill: Drill) -> Counter[tuple[str, str, int]]:
    events: Counter[tuple[str, str, int]] = Counter()
    for got in Probe(drill.direct_url).get_all(WITNESS):
        payload = json.loads(got.body)
        for event in payload if isinstance(payload, list) else [payload]:
            events[_key(event)] += 1
    return events


def _wait_recorded(
    drill: Drill, url: str, published: Counter[tuple[str, str, int]], timeout: float
) -> tuple[Counter[Any], Counter[Any], int]:
    """Wait until the recorder caught up; (missing, written more than once, rows) events."""
    engine = make_engine(url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as connection:
                rows = connection.execute(sa.text("SELECT task_id, state, at FROM task_events"))
                stored = Counter((task_id, state, _microseconds(at)) for task_id, state, at in rows)
            missing = published - stored
            if not missing or time.monotonic() > deadline:
                duplicated = Counter({k: n - published[k] for k, n in stored.items() if n > 1})
                return missing, duplicated, sum(stored.values())
            time.sleep(0.5)
    finally:
        engine.dispose()


def _check_runs(drill: Drill, url: str) -> None:
    ledger = drill.ledger
    sent = {i.decode() for i in ledger.redis.smembers(ledger.prefix + "sent")}
    retried = {i.decode() for i in ledger.redis.smembers(ledger.prefix + "retried")}
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            states = dict(connection.execute(sa.text("SELECT task_id, state FROM task_runs")).all())
            with_retry = {
                row[0]
                for row in connection.execute(
                    sa.text("SELECT DISTINCT task_id FROM task_events WHERE state = 'RETRY'")
                )
            }
    finally:
        engine.dispose()
    wrong = {i: states.get(i) for i in sent if states.get(i) != "SUCCESS"}
    if wrong:
        raise DrillFailed(f"{len(wrong)} tasks without a SUCCESS row in task_runs: {wrong}")
    if retried - with_retry:
        raise DrillFailed(f"{len(retried - with_retry)} retried tasks have no RETRY event")


def _metric(port: int, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise DrillFailed(f"the recorder's metrics have no {name}")
