"""SIGKILL worker processes while chains and chords run (``--processes 2``).

Every chain's last step and every chord's callback must run; a chord's callback
must run once. What the ledger owes is those final tasks: a chain whose hand-over
was lost would never reach its last step, and a chord whose claim went wrong
would call back twice or never.
"""

from __future__ import annotations

import random
import time

from taskcore import chain, chord

from . import tasks
from .environment import Drill, DrillFailed, kill
from .report import Report

FULL = {"chains": 600, "chords": 150, "members": 5, "kills": 30}
SHORT = {"chains": 80, "chords": 20, "members": 4, "kills": 6}


def run(short: bool) -> Report:
    size = SHORT if short else FULL
    report = Report("kill workers during chains and chords (SIGKILL, --processes 2)")
    started = time.monotonic()
    with Drill("kill-flows") as drill:
        worker = drill.start_worker("--processes", "2", "-c", "8", DRILL_WORK_SECONDS="0.01")
        drill.wait_consuming(2)
        step, total = tasks.step, tasks.total
        chains = [
            chain(step.s(i), step.s(), step.s(), step.s()).apply_async()
            for i in range(size["chains"])
        ]
        chords = [
            chord([step.s(i * 10 + j) for j in range(size["members"])], total.s()).apply_async()
            for i in range(size["chords"])
        ]
        drill.ledger.sent(h.id for h in [*chains, *chords])
        rng = random.Random(size["kills"])
        killed = 0
        deadline = time.monotonic() + 300
        while killed < size["kills"] and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.05, 0.3))
            children = drill.worker_children(worker)
            if len(children) == 2 and kill(rng.choice(children)):
                killed += 1
        drill.wait_settled(timeout=300)
        wrong = [h.id for i, h in enumerate(chains) if h.get(timeout=30) != i + 4]
        members = size["members"]
        wrong += [
            h.id
            for i, h in enumerate(chords)
            if h.get(timeout=30) != sum(i * 10 + j + 1 for j in range(members))
        ]
        if wrong:
            raise DrillFailed(f"{len(wrong)} workflow(s) ended with a wrong result: {wrong[:5]}")
        report.did.append(
            f"{killed} worker processes killed with SIGKILL while {size['chains']} chains of "
            f"4 steps and {size['chords']} chords of {members} members ran; every result right"
        )
        report.reconciliation = drill.reconcile()
        if report.reconciliation.duplicates:
            report.did.append(
                "duplicates are final steps or callbacks run twice: a kill between a task's "
                "side effects and its SUCCESS record (at least once)"
            )
    report.seconds = time.monotonic() - started
    return report
