"""I/O-bound tasks: one worker process keeping thousands of waiting tasks in flight.

Each task waits ``S`` seconds (``asyncio.sleep`` in taskcore and Taskiq,
``time.sleep`` in a thread in Celery ``-P threads`` and Dramatiq), then does one
Redis INCR. N tasks are queued before the worker starts; the rate is measured
from the first task's end to the last's. The ceiling is C/S tasks/s. Reported
per row: tasks/s, % of the ceiling, CPU seconds of the worker per 1,000 tasks,
and peak RSS of the worker's process tree. taskcore runs with its defaults
(states stored in Redis, history events) and once more with states off. Usage:

    python scripts/bench_io.py [--runs 3] [--quick] [--markdown] [--rows 0,1,2]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.bench import PY, Run  # noqa: E402

#: (concurrency C, wait S seconds, tasks N)
ROWS = ((500, 1.0, 5_000), (5_000, 5.0, 40_000), (10_000, 2.0, 60_000))
SYSTEMS = ("taskcore", "taskcore-states-off", "taskiq", "celery", "dramatiq")


def _enqueue(system: str, seconds: float, n: int) -> None:
    """Child process: queue n tasks of ``system`` (BENCH_SYSTEM is set for io_apps)."""
    from scripts.bench_apps import io_apps

    if system == "taskcore":
        io_apps.wait_task.map([(seconds,) for _ in range(n)])
        io_apps.app.close()
    elif system == "celery":
        from celery import group

        for start in range(0, n, 5000):
            group(io_apps.wait_task.s(seconds) for _ in range(min(5000, n - start))).apply_async()
    elif system == "dramatiq":
        import dramatiq

        for start in range(0, n, 5000):
            dramatiq.group(
                io_apps.wait_task.message(seconds) for _ in range(min(5000, n - start))
            ).run()
    else:
        import asyncio

        async def send() -> None:
            await io_apps.broker.startup()
            for start in range(0, n, 1000):
                await asyncio.gather(
                    *(io_apps.wait_task.kiq(seconds) for _ in range(min(1000, n - start)))
                )
            await io_apps.broker.shutdown()

        asyncio.run(send())


def _command(system: str, concurrency: int) -> list[str]:
    app = "scripts.bench_apps.io_apps"
    return {
        "taskcore": [PY, "-m", "workers", "--loglevel", "warning", "worker", "-A", f"{app}:app",
                     "-Q", "bench", "-c", str(concurrency)],
        "taskiq": [PY, "-m", "taskiq", "worker", f"{app}:broker", "--workers", "1",
                   "--max-async-tasks", str(concurrency), "--no-configure-logging"],
        "celery": [PY, "-m", "celery", "-A", app, "worker", "-P", "threads",
                   "-c", str(concurrency), "-Q", "bench", "--loglevel", "warning",
                   "--without-gossip", "--without-mingle", "--without-heartbeat"],
        "dramatiq": [PY, "-m", "dramatiq", app, "--processes", "1", "--threads",
                     str(concurrency), "--queues", "bench"],
    }[system]  # fmt: skip


def measure(system: str, concurrency: int, seconds: float, n: int) -> dict[str, float]:
    """One run: queue n tasks, start one worker process, time them through."""
    base = system.removesuffix("-states-off")
    with Run(base, confirm=True) as run:
        run.env.update(BENCH_SYSTEM=base, BENCH_CONCURRENCY=str(concurrency))
        if system.endswith("-states-off"):
            run.env["TASKCORE_STORE_RESULTS"] = "0"
        done = subprocess.run(
            [PY, __file__, "_enqueue", base, str(seconds), str(n)],
            env=run.env, cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{system}: enqueue failed:\n{done.stderr[-2000:]}")
        run.worker = subprocess.Popen(
            _command(base, concurrency),
            env=run.env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=open(f"/tmp/bench-io-{system}.log", "w"),  # noqa: SIM115 - the child owns it
        )
        peak = _PeakRss(run.worker.pid)
        try:
            # The steady state: from the end of the first wave (C tasks, all started at
            # once after start-up) to the last task.
            run.wait_count(concurrency, timeout=120)
            first, cpu_first = time.perf_counter(), _cpu(run.worker.pid)
            run.wait_count(n, timeout=max(120.0, 20 * n * seconds / concurrency))
            last, cpu_last = time.perf_counter(), _cpu(run.worker.pid)
        finally:
            peak.stop()
        rate = (n - concurrency) / (last - first)
        return {
            "tasks_per_s": rate,
            "ceiling_pct": 100 * rate / (concurrency / seconds),
            "cpu_per_1000": 1000 * (cpu_last - cpu_first) / (n - concurrency),
            "rss_mb": peak.peak_mb,
        }


def _tree(pid: int) -> list[psutil.Process]:
    process = psutil.Process(pid)
    return [process, *process.children(recursive=True)]


def _cpu(pid: int) -> float:
    total = 0.0
    for process in _tree(pid):
        times = process.cpu_times()
        total += times.user + times.system
    return total


class _PeakRss:
    """Samples the worker tree's RSS every 0.1 s in a thread; keeps the highest."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            try:
                rss = sum(p.memory_info().rss for p in _tree(self.pid)) / 2**20
            except psutil.Error:
                continue
            self.peak_mb = max(self.peak_mb, rss)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="A fifth of the tasks, one run.")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--rows", default="0,1,2", help="Which rows (0-based), e.g. 0,2.")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    options = parser.parse_args()
    runs = 1 if options.quick else options.runs
    systems = options.systems.split(",")
    table: list[tuple[tuple[int, float, int], dict[str, dict[str, float] | None]]] = []
    for index in (int(i) for i in options.rows.split(",")):
        concurrency, seconds, n = ROWS[index]
        n = max(n // 5, 4 * concurrency) if options.quick else n
        found: dict[str, dict[str, float] | None] = {}
        for system in systems:
            try:
                results = [measure(system, concurrency, seconds, n) for _ in range(runs)]
            except (RuntimeError, TimeoutError) as exc:
                print(f"  {system} C={concurrency}: failed: {str(exc)[:300]}", flush=True)
                found[system] = None
                continue
            found[system] = {k: statistics.median(r[k] for r in results) for k in results[0]}
            shown = found[system]
            print(
                f"  C={concurrency} S={seconds:g} N={n} {system}: {shown['tasks_per_s']:.0f}/s "
                f"({shown['ceiling_pct']:.0f} %), {shown['cpu_per_1000']:.2f} CPU s/1000, "
                f"{shown['rss_mb']:.0f} MiB",
                flush=True,
            )
        table.append(((concurrency, seconds, n), found))
    print()
    print(render(table, runs, options.markdown))


def render(table: list[Any], runs: int, markdown: bool) -> str:
    """Rows C/S with each system's rate (% of ceiling), CPU per 1,000 and peak RSS, and
    taskcore's ratios to the best peer (rate: higher is better; CPU, RSS: lower)."""
    lines = [
        f"I/O-bound tasks, one worker process, medians of {runs} run(s)",
        "| C, S (ceiling) | system | tasks/s | % of ceiling | CPU s / 1,000 tasks | peak RSS MiB |",
        "|---|---|---|---|---|---|",
    ]
    for (concurrency, seconds, n), found in table:
        head = f"{concurrency:,}, {seconds:g} s ({concurrency / seconds:,.0f}/s, N={n:,})"
        for system, values in found.items():
            if values is None:
                lines.append(f"| {head} | {system} | failed | | | |")
                continue
            lines.append(
                f"| {head} | {system} | {values['tasks_per_s']:,.0f} | "
                f"{values['ceiling_pct']:.0f} % | {values['cpu_per_1000']:.2f} | "
                f"{values['rss_mb']:.0f} |"
            )
        peers = [v for s, v in found.items() if v and not s.startswith("taskcore")]
        ours = found.get("taskcore")
        if peers and ours:
            best_rate = max(p["tasks_per_s"] for p in peers)
            best_cpu = min(p["cpu_per_1000"] for p in peers)
            best_rss = min(p["rss_mb"] for p in peers)
            lines.append(
                f"| {head} | **taskcore vs best peer** | {ours['tasks_per_s'] / best_rate:.2f}x | "
                f"| {ours['cpu_per_1000'] / best_cpu:.2f}x | {ours['rss_mb'] / best_rss:.2f}x |"
            )
    text = "\n".join(lines)
    return text if markdown else text.replace("|", " ").replace("---", "")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_enqueue":
        _enqueue(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
