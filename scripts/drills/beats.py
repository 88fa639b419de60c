"""Two ``taskcore beat`` processes: the leader SIGKILLed, then their Redis restarted empty.

The beats (scripts/drills/beat_app.py) fire ``drills.tick`` every second under
the default missed-fire policy, ``run_once``. A private redis-server without
persistence holds the lease, the claims and the last fire times, so the
restart loses all three. Expected, from the README's "Periodic schedules":

* no fire time is published twice, and none runs twice;
* fire times are skipped only while no beat leads (the killed leader's lease
  running out; Redis down), and each such stretch of missed fire times ends
  with its latest one, run once, late (``run_once``): for the Redis outage
  that means a gap of all but the last of the seconds it was down, then that
  last one published more than ``ON_TIME`` (2 s) after it was due;
* every other fire time is published on time, and every published one ran.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import time
from datetime import UTC, datetime

import redis

from taskcore.schedules import ON_TIME

from .beat_app import SCHEDULE
from .environment import Drill, DrillFailed
from .report import Report
from .services import PrivateRedis

FULL = {"before": 8.0, "after_kill": 8.0, "outage": 12.0, "after": 8.0}
SHORT = {"before": 2.0, "after_kill": 3.0, "outage": 5.0, "after": 3.0}


def run(short: bool) -> Report:
    size = SHORT if short else FULL
    report = Report("two beats: leader SIGKILLed, Redis restarted empty (private redis-server)")
    started = time.monotonic()
    with PrivateRedis() as server, Drill("beats") as drill:
        drill.configure(redis_url=server.url)
        lease_key = drill.app.keys.beat_leader
        client = redis.Redis.from_url(server.url, socket_timeout=2)
        drill.start_worker("-c", "4")
        drill.wait_consuming()

        def start_beat(name: str) -> None:
            beats[name] = drill.start("beat", "-A", "scripts.drills.beat_app:app", "--name", name)

        def leader(not_: str = "") -> str:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    holder = client.get(lease_key)
                except redis.RedisError:
                    holder = None
                if holder is not None and holder.decode() != not_:
                    return holder.decode()
                time.sleep(0.05)
            raise DrillFailed(f"no beat took the lead within 20 s (logs in {drill.logs})")

        beats: dict[str, subprocess.Popen[bytes]] = {}
        for name in ("beat-0", "beat-1"):
            start_beat(name)
        first = leader()
        time.sleep(size["before"])

        killed_at = time.time()
        beats[first].send_signal(signal.SIGKILL)
        second = leader(not_=first)
        took_over_at = time.time()
        report.did.append(
            f"leader {first} SIGKILLed; {second} took over after {took_over_at - killed_at:.1f} s"
        )
        start_beat("beat-2")
        time.sleep(size["after_kill"])

        server.stop()
        down_at = time.time()
        time.sleep(size["outage"])
        server.start()
        up_at = time.time()
        third = leader()
        report.did.append(
            f"Redis down {up_at - down_at:.1f} s and back empty (no lease, claims or last fire "
            f"times); {third} leads after it"
        )
        time.sleep(size["after"])
        for name, process in beats.items():
            if name != first:
                process.send_signal(signal.SIGTERM)
        for name, process in beats.items():
            if name != first and process.wait(15) != 0:
                raise DrillFailed(f"{name} exited {process.returncode} (logs in {drill.logs})")
        client.close()
        drill.wait_settled(timeout=60)

        windows = {
            "leader killed": (killed_at - 1, took_over_at + 1),
            "Redis down": (down_at - 1, up_at + ON_TIME + 1),
        }
        report.did += check_fires(drill, windows, required=(down_at, up_at))
        report.reconciliation = drill.reconcile()
        if report.reconciliation.duplicates:
            raise DrillFailed(f"beats: a fire time ran twice: {report.reconciliation}")
    report.seconds = time.monotonic() - started
    return report


def fire_time(task_id: str) -> float:
    stamp = task_id.removeprefix(SCHEDULE + "@")
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def check_fires(
    drill: Drill,
    windows: dict[str, tuple[float, float]],
    required: tuple[float, float] | None,
) -> list[str]:
    """Check the fire times published (beat_app.py) against ``run_once``; lines for the report.

    ``windows``: (from, to) of each time no beat could fire, by name; fire times may be
    skipped only in these. ``required``: (down, up) of an outage that must show as a gap
    of all but its last fire time (the latest missed, which runs late)."""
    prefix = drill.ledger.prefix
    counts = drill.ledger.redis.hgetall(prefix + "published")
    twice = [k.decode() for k, v in counts.items() if int(v) != 1]
    if twice:
        raise DrillFailed(f"fire times published more than once: {twice}")
    published_at = {
        fire_time(k.decode()): float(v)
        for k, v in drill.ledger.redis.hgetall(prefix + "published_at").items()
    }
    fired = sorted(published_at)
    late = {t: published_at[t] - t for t in fired}

    def window_of(t: float) -> str | None:
        return next((name for name, (a, b) in windows.items() if a <= t <= b), None)

    gaps = [(a, b) for a, b in itertools.pairwise(fired) if b - a > 1.5]
    lines = [
        f"{len(fired)} fire times published once each, {_stamp(fired[0])}..{_stamp(fired[-1])}"
    ]
    for a, b in gaps:
        missing = round(b - a) - 1
        where = window_of(a + 1), window_of(b - 1)
        if None in where:
            raise DrillFailed(f"{missing} fire times after {_stamp(a)} skipped outside an outage")
        if late[b] <= ON_TIME:  # run_once: the latest missed one runs, more than ON_TIME late
            raise DrillFailed(
                f"after the {missing} fire times skipped from {_stamp(a + 1)} ({where[0]}), "
                f"{_stamp(b)} was published {late[b]:.2f} s late: the latest missed one did not run"
            )
        lines.append(
            f"{where[0]}: {missing} fire times skipped, then the latest missed, {_stamp(b)}, "
            f"run once {late[b]:.1f} s late (run_once)"
        )
    if required is not None:
        down_at, up_at = required
        outage = [(a, b) for a, b in gaps if down_at - 1 <= a + 1 and b - 1 <= up_at + 1]
        expected_missing = (up_at - down_at) - ON_TIME - 2  # a second at each edge
        if not outage or round(outage[0][1] - outage[0][0]) - 1 < expected_missing:
            raise DrillFailed(
                f"the fire times of the outage did not follow run_once: gaps {gaps}, "
                f"down {_stamp(down_at)}..{_stamp(up_at)}"
            )
    tardy = [t for t in fired if late[t] > ON_TIME and window_of(t) is None]
    if tardy:
        raise DrillFailed(f"fire times published late outside any outage: {tardy}")
    return lines


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S.%f")[:-3]
