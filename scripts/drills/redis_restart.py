"""Redis stopped and started again under load (a private ``redis-server``, no persistence).

The sender keeps sending a mix of plain, flaky (fail once, retry) and rate-limited
(``drills.limited``, 200/s) tasks while taskcore's Redis is down for a few seconds
and comes back empty. What the README promises, checked here:

* tasks keep running: state writes are logged and skipped while Redis is down;
* the rate limiter fails closed: no rate-limited task sent during the outage
  runs before Redis is back (each goes round the delay cascade and asks again);
* after the restart rate limits hold again (a burst starts at <= 200 per second)
  and ``handle.get()`` answers for new tasks;
* reconciliation: every task sent ran (or is a dead letter with a reason), none lost.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from . import tasks
from .environment import Drill, DrillFailed
from .report import Report
from .services import PrivateRedis

FULL = {"rounds": 120, "per_round": 60, "outage": 10.0, "burst": 1000}
SHORT = {"rounds": 40, "per_round": 30, "outage": 4.0, "burst": 300}
#: drills.limited's rate (tasks.py): starts in any 1 s window, at most rate + 1 (GCRA).
LIMITED_RATE = 200


class Sender(threading.Thread):
    """Sends ``rounds`` rounds of mixed tasks, 0.1 s apart; remembers what went when."""

    def __init__(self, drill: Drill, rounds: int, per_round: int) -> None:
        super().__init__(daemon=True)
        self.drill, self.rounds, self.per_round = drill, rounds, per_round
        #: (monotonic time sent, task ids) of each rate-limited batch.
        self.limited: list[tuple[float, list[str]]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for round_ in range(self.rounds):
                base = round_ * self.per_round
                mix: dict[Any, list[tuple[int]]] = {tasks.work: [], tasks.flaky: []}
                mix[tasks.limited] = []
                for i in range(base, base + self.per_round):
                    kind = i % 10
                    task = tasks.flaky if kind == 3 else tasks.limited if kind == 7 else tasks.work
                    mix[task].append((i,))
                for task, arguments in mix.items():
                    handles = task.map(arguments)
                    self.drill.ledger.sent(h.id for h in handles)
                    if task is tasks.limited:
                        self.limited.append((time.monotonic(), [h.id for h in handles]))
                time.sleep(0.1)
        except BaseException as exc:  # reported by the drill
            self.error = exc


def run(short: bool) -> Report:
    size = SHORT if short else FULL
    report = Report("Redis stopped and started under load (private redis-server)")
    started = time.monotonic()
    with PrivateRedis() as server, Drill("redis") as drill:
        drill.configure(redis_url=server.url)
        worker = drill.start_worker("-c", "8", DRILL_WORK_SECONDS="0.005")
        first = tasks.work.delay(-1)
        drill.ledger.sent([first.id])
        if first.get(timeout=60) != -1:
            raise DrillFailed("the first task's result was wrong")

        sender = Sender(drill, size["rounds"], size["per_round"])
        sender.start()
        time.sleep(1.0)
        ran_before = drill.ledger.ran_count()
        server.stop()
        down_at = time.monotonic()
        time.sleep(size["outage"])
        ran_while_down = drill.ledger.ran_count() - ran_before
        runs_when_back = set(_run_ids(drill))
        server.start()
        up_at = time.monotonic()
        report.did.append(
            f"Redis down {up_at - down_at:.1f} s while tasks were sent and consumed; "
            f"{ran_while_down} tasks ran during the outage"
        )
        if ran_while_down == 0:
            raise DrillFailed("no task ran while Redis was down: state writes block the worker")

        # Fail closed: a rate-limited task sent during the outage cannot have run in it.
        sent_in_outage = [
            task_id
            for at, ids in sender.limited
            if down_at + 0.5 < at < up_at - 0.5  # clear of the edges of the outage
            for task_id in ids
        ]
        unlimited = [i for i in sent_in_outage if i in runs_when_back]
        if not sent_in_outage:
            raise DrillFailed("no rate-limited task was sent during the outage")
        if unlimited:
            raise DrillFailed(f"{len(unlimited)} rate-limited tasks ran while Redis was down")
        report.did.append(
            f"{len(sent_in_outage)} rate-limited tasks sent during the outage: none ran "
            "before Redis was back (the limiter failed closed)"
        )

        sender.join(300)
        if sender.error is not None:
            raise DrillFailed(f"sending failed: {sender.error!r}")
        drill.wait_settled(timeout=300)

        # Redis is back (empty): results, and rate limits, work again for new tasks.
        handle = tasks.work.delay(10**6)
        drill.ledger.sent([handle.id])
        if handle.get(timeout=60) != 10**6:
            raise DrillFailed("handle.get() after the restart returned the wrong value")
        burst = tasks.limited.map([(i,) for i in range(size["burst"])])
        drill.ledger.sent(h.id for h in burst)
        drill.wait_settled(timeout=120)
        # A task that waited for its slot has it stored (run_at): those slots are exact
        # and at most rate + 1 fit in any second. The whole burst, timed by slots or starts,
        # must take at least as long as the rate allows.
        waited = sorted(s for h in burst if (s := _slot(h, waited=True)) is not None)
        times = sorted(s for h in burst if (s := _slot(h)) is not None)
        busiest = max_in_window(waited, 1.0)
        span = times[-1] - times[0]
        if (
            len(waited) < len(burst) // 2
            or busiest > LIMITED_RATE + 1
            or span < (len(times) - 1) / LIMITED_RATE * 0.95
        ):
            raise DrillFailed(
                f"rate limit not in force after the restart: {len(waited)} tasks waited for "
                f"a slot, {busiest} slots in one second, {len(times)} starts in {span:.2f} s"
            )
        report.did.append(
            f"after the restart: handle.get() answered; a burst of {len(burst)} rate-limited "
            f"tasks took {span:.2f} s, the {len(waited)} that waited for their slot got at "
            f"most {busiest} slots in any second (limit {LIMITED_RATE}/s)"
        )
        log = (drill.logs / "process-0.log").read_text(errors="replace")
        report.did.append(
            f"worker log: {log.count('rate limiter unavailable')} 'rate limiter unavailable', "
            f"{log.count('could not record')} state writes skipped; worker still running: "
            f"{worker.poll() is None}"
        )
        if worker.poll() is not None:
            raise DrillFailed(f"the worker exited ({worker.returncode}); logs in {drill.logs}")
        report.reconciliation = drill.reconcile()
    report.seconds = time.monotonic() - started
    return report


def _run_ids(drill: Drill) -> list[str]:
    runs = drill.ledger.redis.hkeys(drill.ledger.prefix + "runs")
    return [key.decode() for key in runs]


def _slot(handle: Any, waited: bool = False) -> float | None:
    """The start slot the rate limiter gave a finished task: ``run_at`` of a task that had to
    wait for it; for one whose slot had come when it arrived, its start (SUCCESS minus run
    time), unless ``waited``."""
    extra = handle.info.extra
    if "run_at" in extra:
        return float(extra["run_at"])
    if waited:
        return None
    return float(extra["success_at"]) - float(extra.get("runtime") or 0.0)


def max_in_window(times: list[float], width: float) -> int:
    """The most of the sorted ``times`` inside any window ``width`` long."""
    best, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] > width:
            first += 1
        best = max(best, last - first + 1)
    return best
