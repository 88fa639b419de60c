"""The tasks every drill runs (worker: ``-A scripts.drills.tasks:app``).

Each records its completed run in the drill's ledger; ``flaky`` fails its first
attempt so that drills also kill and cut during retries, and ``limited`` runs
under a global rate limit so that they do so during rate-limit waits.
"""

from __future__ import annotations

import os
import time

from taskcore import TaskApp, current_task

from .ledger import Ledger

app = TaskApp("drills")
ledger = Ledger.from_env()
#: Seconds each task body takes, so that kills land mid-task.
WORK_SECONDS = float(os.environ.get("DRILL_WORK_SECONDS", "0.002"))


@app.task(queue="drills", name="drills.work", max_retries=10, retry_backoff=0.05)
def work(i: int) -> int:
    time.sleep(WORK_SECONDS)
    ledger.ran(current_task.id)
    return i


@app.task(
    queue="drills",
    name="drills.flaky",
    max_retries=10,
    retry_backoff=0.05,
    autoretry_for=(RuntimeError,),
)
def flaky(i: int) -> int:
    if current_task.retries == 0:
        ledger.failed_once(current_task.id)
        raise RuntimeError(f"drill task {i} fails its first attempt on purpose")
    time.sleep(WORK_SECONDS)
    ledger.ran(current_task.id)
    return i


@app.task(queue="drills", name="drills.limited", rate_limit="200/s", max_retries=10)
def limited(i: int) -> int:
    ledger.ran(current_task.id)
    return i


@app.task(queue="drills", name="drills.tick")
def tick(fire_time: str = "") -> None:
    """Fired by a beat: records each run under the schedule's fire time."""
    ledger.ran(current_task.id)


@app.task(queue="drills", name="drills.step")
def step(value: int, increment: int = 1) -> int:
    """A chain step or chord member: records its run, passes its value on."""
    time.sleep(WORK_SECONDS)
    ledger.ran(current_task.id)
    return value + increment


@app.task(queue="drills", name="drills.total")
def total(values: list[int]) -> int:
    """A chord callback: records its run (a second run is a duplicate)."""
    ledger.ran(current_task.id)
    return sum(values)
