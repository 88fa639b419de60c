"""SIGKILL worker processes at random moments during a run with ``--processes 2``.

Kills land mid-task, during retries (``flaky`` fails its first attempt) and
during rate-limit waits (``limited`` runs at 200/s). The supervisor replaces
each killed process; the broker redelivers what it held unacknowledged.
"""

from __future__ import annotations

import random
import threading
import time

from . import tasks
from .environment import Drill, DrillFailed, kill
from .report import Report

FULL = {"tasks": 20_000, "kills": 50}
SHORT = {"tasks": 2_000, "kills": 8}


def run(short: bool) -> Report:
    size = SHORT if short else FULL
    n, kills = size["tasks"], size["kills"]
    report = Report("kill workers (SIGKILL, --processes 2)")
    started = time.monotonic()
    with Drill("kill") as drill:
        worker = drill.start_worker("--processes", "2", "-c", "8", DRILL_WORK_SECONDS="0.005")
        drill.wait_consuming(2)
        sender = threading.Thread(target=_send_mix, args=(drill, n))
        sender.start()
        killed = 0
        rng = random.Random(n)
        deadline = time.monotonic() + 600
        while killed < kills:
            if time.monotonic() > deadline:
                raise DrillFailed(f"only {killed} kills in 600 s: worker processes did not return")
            time.sleep(rng.uniform(0.05, 0.4))
            children = drill.worker_children(worker)
            if len(children) < 2:
                continue  # wait for the supervisor to replace the last one
            if kill(rng.choice(children)):
                killed += 1
            if not sender.is_alive() and drill.ledger.ran_count() >= n:
                # Every task ran before the kills were done: send more work to kill into.
                sender.join()
                sender = threading.Thread(target=_send_mix, args=(drill, n // 10, n))
                sender.start()
        sender.join()
        drill.wait_settled(timeout=600)
        report.did.append(f"{killed} worker processes killed with SIGKILL while tasks ran")
        report.reconciliation = drill.reconcile()
    report.seconds = time.monotonic() - started
    return report


def _send_mix(drill: Drill, n: int, offset: int = 0) -> None:
    """80% plain tasks, 10% that fail once and retry, 10% under a rate limit."""
    mix: dict[object, list[tuple[int]]] = {tasks.work: [], tasks.flaky: [], tasks.limited: []}
    for i in range(offset, offset + n):
        task = tasks.flaky if i % 10 == 3 else tasks.limited if i % 10 == 7 else tasks.work
        mix[task].append((i,))
    for task, arguments in mix.items():
        drill.send(task, arguments)
