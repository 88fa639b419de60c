"""Compare cron implementations: taskcore's hand-written parser (as it was before it was
replaced, read from git), taskcore's cron.py now (cronsim with taskcore's handling of
zones around it), cronsim alone and croniter, for correctness on daylight-saving days
and for the speed of computing next fire times. Usage:

    python scripts/bench_cron.py [--repeat 7] [--number 2000]

Needs ``pip install cronsim croniter`` (croniter is not a taskcore dependency). The
correctness table checks each implementation's fire times against the instants a cron
user expects (Vixie cron's rules: a job at a fixed local time in a skipped hour runs
once at the first valid time after the gap, and once, not twice, in a repeated hour;
a job with ``*`` in the minute or hour field runs at every real matching minute).
Speed is the median over ``--repeat`` runs of the time per next fire time, for a
beat's two uses: stepping one iterator through successive fire times, and one fresh
computation (parse the expression, then find the next fire time; taskcore's row
parses once, as a schedule does, and checks the expression more when it does).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
#: The last commit with the hand-written cron parser.
OLD_CRON_COMMIT = "c180e72"

#: A function from (expression, aware start) to an iterator of aware fire times.
Impl = Callable[[str, datetime], Iterator[datetime]]


def load_old_cron() -> types.ModuleType | None:
    """taskcore/cron.py as of OLD_CRON_COMMIT, imported as a module (None outside git)."""
    shown = subprocess.run(
        ["git", "show", f"{OLD_CRON_COMMIT}:taskcore/cron.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if shown.returncode != 0:
        return None
    source = shown.stdout.replace("from .errors import", "from taskcore.errors import")
    module = types.ModuleType("old_cron")
    sys.modules["old_cron"] = module  # dataclasses look their module up
    exec(compile(source, "old_cron.py", "exec"), module.__dict__)
    return module


def implementations() -> dict[str, Impl]:
    """Every implementation that can be imported here, by name."""
    found: dict[str, Impl] = {}
    old = load_old_cron()
    if old is not None:

        def hand_written(expression: str, start: datetime) -> Iterator[datetime]:
            cron, t = old.Cron.parse(expression), start
            while True:
                t = cron.next_after(t)
                yield t

        found["hand-written"] = hand_written
    from taskcore.cron import Cron

    parsed = functools.cache(Cron.parse)  # once, as a schedule is: the beat never parses

    found["taskcore"] = lambda e, s: parsed(e, str(s.tzinfo)).fire_times(s)
    try:
        from cronsim import CronSim

        found["cronsim"] = CronSim
    except ImportError:
        print("cronsim not installed: pip install cronsim", file=sys.stderr)
    try:
        from croniter import croniter

        found["croniter"] = lambda e, s: croniter(e, s).all_next(datetime)
    except ImportError:
        print("croniter not installed: pip install croniter", file=sys.stderr)
    return found


def z(text: str) -> datetime:
    """An ISO 8601 UTC instant ending in Z."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def hourly(first: str, count: int, minutes: int = 60) -> list[datetime]:
    """``count`` instants ``minutes`` apart from ``first``."""
    return [z(first) + timedelta(minutes=minutes * k) for k in range(count)]


#: (what, zone, expression, start in the zone, the expected fire times in UTC).
CASES: list[tuple[str, str, str, datetime, list[datetime]]] = [
    (
        "Berlin spring forward, daily 02:30",
        "Europe/Berlin",
        "30 2 * * *",
        datetime(2026, 3, 28, 12),
        [z("2026-03-29T01:00Z"), z("2026-03-30T00:30Z"), z("2026-03-31T00:30Z")],
    ),
    (
        "Berlin fall back, daily 02:30",
        "Europe/Berlin",
        "30 2 * * *",
        datetime(2026, 10, 24, 12),
        [z("2026-10-25T00:30Z"), z("2026-10-26T01:30Z"), z("2026-10-27T01:30Z")],
    ),
    (
        "New York spring forward, daily 02:30",
        "America/New_York",
        "30 2 * * *",
        datetime(2026, 3, 7, 12),
        [z("2026-03-08T07:00Z"), z("2026-03-09T06:30Z")],
    ),
    (
        "New York fall back, daily 01:30",
        "America/New_York",
        "30 1 * * *",
        datetime(2026, 10, 31, 12),
        [z("2026-11-01T05:30Z"), z("2026-11-02T06:30Z")],
    ),
    (
        "Berlin fall back, hourly (25 real hours)",
        "Europe/Berlin",
        "0 * * * *",
        datetime(2026, 10, 24, 23, 30),
        hourly("2026-10-24T22:00Z", 25),
    ),
    (
        "Berlin spring forward, every 15 min (23 real hours)",
        "Europe/Berlin",
        "*/15 * * * *",
        datetime(2026, 3, 28, 23, 59),
        hourly("2026-03-28T23:00Z", 92, minutes=15),
    ),
    (
        "Manila (no DST), nightly 02:00",
        "Asia/Manila",
        "0 2 * * *",
        datetime(2026, 3, 28, 12),
        [z("2026-03-28T18:00Z"), z("2026-03-29T18:00Z")],
    ),
]


def check(impl: Impl, zone: str, expression: str, start: datetime, expected: list) -> str:
    """'ok', or the first fire times that differ from the expected ones."""
    fires = impl(expression, start.replace(tzinfo=ZoneInfo(zone)))
    got = [next(fires).astimezone(UTC) for _ in expected]
    if got == expected:
        return "ok"
    wrong = next((g, e) for g, e in zip(got, expected, strict=True) if g != e)
    return f"got {wrong[0]:%m-%d %H:%MZ}, expected {wrong[1]:%m-%d %H:%MZ}"


def correctness(impls: dict[str, Impl]) -> None:
    """Print one line per case and implementation."""
    print("## Daylight-saving days (fire times in UTC)\n")
    for what, zone, expression, start, expected in CASES:
        results = {name: check(impl, zone, expression, start, expected)
                   for name, impl in impls.items()}  # fmt: skip
        print(f"* {what} (`{expression}`): " + "; ".join(f"{n} {r}" for n, r in results.items()))


SPEED_EXPRESSIONS = ["0 2 * * *", "*/15 9-17 * * mon-fri", "30 4 1,15 * 5", "* * * * *"]
SPEED_ZONES = ["UTC", "Europe/Berlin"]


def per_call(run: Callable[[], None], number: int, repeat: int) -> float:
    """Median microseconds per call of ``run`` over ``repeat`` rounds of ``number`` calls."""
    rounds = []
    for _ in range(repeat):
        began = time.perf_counter()
        for _ in range(number):
            run()
        rounds.append((time.perf_counter() - began) / number * 1e6)
    return statistics.median(rounds)


def speed(impls: dict[str, Impl], number: int, repeat: int) -> None:
    """Print the median time per next fire time, stepping and fresh."""
    start = datetime(2026, 1, 1, 12, 0, 30)
    print(f"\n## Microseconds per next fire time (median of {repeat} x {number})\n")
    print("| zone | expression | " + " | ".join(f"{n} step / fresh" for n in impls) + " |")
    print("|---|---|" + "---|" * len(impls))
    for zone in SPEED_ZONES:
        tz = UTC if zone == "UTC" else ZoneInfo(zone)
        for expression in SPEED_EXPRESSIONS:
            begin = start.replace(tzinfo=tz)
            cells = []
            for impl in impls.values():
                fires = impl(expression, begin)
                step = per_call(lambda f=fires: next(f), number, repeat)
                fresh = per_call(
                    lambda i=impl, e=expression, b=begin: next(i(e, b)),
                    max(1, number // 4),
                    repeat,
                )
                cells.append(f"{step:.1f} / {fresh:.1f}")
            print(f"| {zone} | `{expression}` | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=1000)
    options = parser.parse_args()
    impls = implementations()
    correctness(impls)
    speed(impls, options.number, options.repeat)


if __name__ == "__main__":
    main()
