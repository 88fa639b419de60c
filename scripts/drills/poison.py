"""Poison messages published straight to the work queue, past taskcore's sender.

Each must land in the dead-letter queue with a reason, and the worker must go
on running the good tasks sent after them.
"""

from __future__ import annotations

import os
import time

from tests.broker_tools import Probe

from . import tasks
from .environment import QUEUE, Drill, DrillFailed
from .report import Report

BIG = 50 * 2**20


def poisons() -> dict[str, tuple[bytes, dict[str, object]]]:
    """Message id -> (body, AMQP properties) of each kind of bad message."""
    work = {"message_type": "drills.work"}
    return {
        "poison-not-json": (b"{this is not json", work),
        "poison-not-an-object": (b"[1, 2, 3]", work),
        "poison-wrong-schema": (b'{"args": {"i": 1}, "kwargs": []}', work),
        "poison-bad-arguments": (b'{"args": [1, 2, 3], "kwargs": {}}', work),
        "poison-unknown-task": (b'{"args": [], "kwargs": {}}', {"message_type": "no.such"}),
        "poison-no-task-name": (b'{"args": [1], "kwargs": {}}', {}),
        "poison-pickle": (
            b'{"args": [1], "kwargs": {}}',
            {**work, "content_type": "application/x-python-serialize"},
        ),
        "poison-gzip": (b'{"args": [1], "kwargs": {}}', {**work, "content_encoding": "gzip"}),
        "poison-bad-retries-header": (
            b'{"args": [1], "kwargs": {}}',
            {**work, "headers": {"x-taskcore-retries": "many"}},
        ),
        "poison-50mb": (os.urandom(BIG), work),
    }


def run(short: bool) -> Report:
    report = Report("poison messages")
    started = time.monotonic()
    with Drill("poison") as drill:
        drill.send(tasks.work, [(0,)])  # declares the queues
        drill.start_worker("-c", "4")
        probe = Probe(drill.direct_url)
        exchange = tasks.app.topology.work_exchange
        bad = poisons()
        for message_id, (body, properties) in bad.items():
            probe.publish_raw(exchange, QUEUE, body, message_id=message_id, **properties)
        drill.ledger.sent(bad)  # owed: a run or a dead letter each
        drill.send(tasks.work, [(i,) for i in range(1, 51)])
        drill.wait_settled(timeout=120, dead=len(bad))
        deadline = time.monotonic() + 60
        while (depth := probe.depth(QUEUE + ".dead")) < len(bad):
            if time.monotonic() > deadline:
                raise DrillFailed(f"only {depth} of {len(bad)} poison messages were dead-lettered")
            time.sleep(0.2)
        letters = drill.dead_letters()
        for message_id in bad:
            report.did.append(f"{message_id}: dead-lettered, reason {letters.get(message_id)!r}")
        report.did.append("50 good tasks sent after them all ran")
        report.reconciliation = drill.ledger.reconcile(letters)
        if report.reconciliation.lost or set(bad) - set(letters):
            raise DrillFailed(f"poison: {report.reconciliation}; dead letters: {letters}")
    report.seconds = time.monotonic() - started
    return report
