"""Cut the broker connection again and again while tasks are published and consumed.

Sender and worker reach RabbitMQ through a TCP proxy that the drill cuts: every
open connection reset at once. Each ``delay()`` either returns (then the task
must run) or raises (then the caller knows); no worker stays disconnected.
"""

from __future__ import annotations

import threading
import time

from . import tasks
from .environment import Drill, DrillFailed
from .proxy import TcpProxy
from .report import Report

FULL = {"cuts": 30, "interval": 1.0}
SHORT = {"cuts": 6, "interval": 0.4}


def run(short: bool) -> Report:
    size = SHORT if short else FULL
    cuts, interval = int(size["cuts"]), size["interval"]
    report = Report("broker connection cut (TCP proxy)")
    started = time.monotonic()
    with Drill("cuts") as drill, TcpProxy("127.0.0.1", 5672) as proxy:
        drill.configure(broker_url=proxy.url(drill.direct_url))
        drill.send_one(tasks.work, -1)  # connect and declare before the faults
        drill.start_worker("-c", "8", DRILL_WORK_SECONDS="0.01")
        drill.wait_consuming()  # a worker that cannot start at all exits: not this drill
        cutting = threading.Event()
        cutting.set()
        calls = [0]

        def publish() -> None:  # one delay() after another until the cuts are over
            while cutting.is_set():
                drill.send_one(tasks.work if calls[0] % 5 else tasks.flaky, calls[0])
                calls[0] += 1

        sender = threading.Thread(target=publish)
        sender.start()
        dropped = 0
        for _ in range(cuts):
            time.sleep(interval)
            dropped += proxy.cut()
        cutting.clear()
        sender.join(120)
        if sender.is_alive():
            raise DrillFailed("a delay() was still blocked 120 s after the last cut")
        # After the last cut a task sent now must still run: nobody stays disconnected.
        drill.send_one(tasks.work, calls[0])
        drill.wait_settled(timeout=120)
        report.did.append(
            f"{cuts} cuts, {interval} s apart ({dropped} connections reset), while "
            f"{calls[0] + 2} delay() calls were made one at a time and a worker consumed; "
            f"{proxy.connections} connections made in all"
        )
        report.attempts = calls[0] + 2
        report.reconciliation = drill.reconcile()
    report.seconds = time.monotonic() - started
    return report
