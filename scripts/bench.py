"""Benchmark taskcore against Celery and Dramatiq on the same RabbitMQ and Redis (`make bench`).

Every system runs the same task body (one Redis INCR) in its own vhost. Each
measurement runs in a fresh process and is repeated; the table shows medians
and each taskcore figure as a ratio to the best peer, then two small tables:
taskcore's single confirmed caller against the broker's floor (a bare aiormq
loop), and the history recorder against the worker it records. Usage:

    python scripts/bench.py [--runs 3] [--quick] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
import redis

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
SYSTEMS = ("taskcore", "celery", "dramatiq")
PY = sys.executable


# -- one measurement per process (`bench.py _enqueue ...`, `_probes ...`) -------------------


def _enqueue(system: str, mode: str, n: int) -> float:
    """Send n tasks; returns tasks/s. mode: confirmed, batch, unconfirmed (one caller), or
    threads8 (confirmed, 8 threads of one process each calling delay() n/8 times at once)."""
    if system == "taskcore":
        from scripts.bench_apps.taskcore_app import incr_task as task

        send = task.delay

        def batch() -> None:
            task.map([() for _ in range(n)])

        finish = task.app.flush  # unconfirmed: until every message was handed to the socket
    elif system == "celery":
        from celery import group

        from scripts.bench_apps.celery_app import incr_task as task

        send = task.delay

        def batch() -> None:
            group(task.s() for _ in range(n)).apply_async()

        def finish() -> None:
            pass
    else:
        import dramatiq

        from scripts.bench_apps.dramatiq_app import incr_task as task

        send = task.send

        def batch() -> None:
            dramatiq.group(task.message() for _ in range(n)).run()

        def finish() -> None:
            pass

    send()  # connect and declare outside the timing
    if mode == "threads8":
        return n / _in_threads(send, n, 8)
    started = time.perf_counter()
    if mode == "batch":
        batch()
    else:
        for _ in range(n):
            send()
    finish()
    return n / (time.perf_counter() - started)


def _in_threads(send: Callable[[], object], n: int, threads: int) -> float:
    """Seconds until ``threads`` threads, started together, have each called send() n/threads
    times. Each first sends one untimed task (Dramatiq opens a connection per thread)."""
    start = threading.Barrier(threads + 1, timeout=60)

    def caller() -> None:
        send()
        start.wait()
        for _ in range(n // threads):
            send()

    with ThreadPoolExecutor(threads) as pool:
        callers = [pool.submit(caller) for _ in range(threads)]
        start.wait()
        started = time.perf_counter()
        for done in callers:
            done.result()
        return time.perf_counter() - started


def _floor(n: int) -> float:
    """The broker's floor for one confirmed caller: a bare aiormq loop (no framework) that
    publishes n persistent messages one at a time to a classic v2 queue and waits for each
    confirm (not for aiormq's socket drain, as taskcore); returns messages/s."""
    import asyncio

    import aiormq
    from pamqp.commands import Basic

    from taskcore.topology import CLASSIC_V2

    async def publish() -> float:
        connection = await aiormq.connect(os.environ["BENCH_BROKER_URL"])
        try:
            channel = await connection.channel(publisher_confirms=True)
            await channel.queue_declare("bench", durable=True, arguments=CLASSIC_V2)
            body = b'{"args": [], "kwargs": {}}'  # taskcore's body for incr_task.delay()
            properties = Basic.Properties(content_type="application/json", delivery_mode=2)

            async def publish_one() -> None:
                await channel.basic_publish(
                    body, routing_key="bench", properties=properties, wait=False
                )

            await publish_one()  # untimed, as the first delay() of the other rows
            started = time.perf_counter()
            for _ in range(n):
                await publish_one()
            return n / (time.perf_counter() - started)
        finally:
            await connection.close()

    return asyncio.run(publish())


def _declare_recorder_queue() -> None:
    """Declare the recorder's queue, so that the workers' events are kept for it."""
    import asyncio

    from scripts.bench_apps.taskcore_app import app
    from taskcore.broker import connect

    async def declare() -> None:
        connection = await connect(app.settings)
        try:
            channel = await connection.channel()
            await app.topology.declare_base(channel)
            await app.topology.declare_recorder_queue(channel)
        finally:
            await connection.close()

    asyncio.run(declare())


def _probes(system: str, n: int, rate: float) -> None:
    """Send one untimed warm-up task (it opens the connection), then n probes at a steady rate."""
    if system == "taskcore":
        from scripts.bench_apps.taskcore_app import incr_task, probe_task

        incr_task.delay()

        def send(t: float) -> None:
            probe_task.delay(t)
    elif system == "celery":
        from scripts.bench_apps.celery_app import incr_task, probe_task

        incr_task.delay()

        def send(t: float) -> None:
            probe_task.delay(t)
    else:
        from scripts.bench_apps.dramatiq_app import incr_task, probe_task

        incr_task.send()

        def send(t: float) -> None:
            probe_task.send(t)

    start = time.perf_counter()
    for i in range(n):
        due = start + i / rate
        if (wait := due - time.perf_counter()) > 0:
            time.sleep(wait)
        send(time.time())


# -- the driver -----------------------------------------------------------------------------


class Run:
    """A vhost and a Redis prefix for one measurement, cleaned up afterwards."""

    def __init__(self, system: str, confirm: bool = True) -> None:
        self.system = system
        self.vhost = f"bench-{uuid.uuid4().hex[:8]}"
        self.prefix = f"bench:{uuid.uuid4().hex[:8]}:"
        self.redis = redis.Redis.from_url(REDIS_URL)
        url = f"amqp://guest:guest@127.0.0.1:5672/{quote(self.vhost, safe='')}"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "BENCH_BROKER_URL": url,
            "TASKCORE_BROKER_URL": url,
            "TASKCORE_NAMESPACE": f"tc{self.vhost[-8:]}",
            "BENCH_PREFIX": self.prefix,
            "BENCH_REDIS_URL": REDIS_URL,
            "BENCH_CONFIRM": "1" if confirm else "0",
            "TASKCORE_CONFIRM_PUBLISH": "1" if confirm else "0",
        }
        self.worker: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Run:
        _ctl("add_vhost", self.vhost)
        _ctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.worker is not None and self.worker.poll() is None:
            for child in psutil.Process(self.worker.pid).children(recursive=True):
                child.kill()
            self.worker.kill()
            self.worker.wait()
        _ctl("delete_vhost", self.vhost)
        keys = list(self.redis.scan_iter(self.prefix + "*"))
        if keys:
            self.redis.delete(*keys)
        namespace = self.env["TASKCORE_NAMESPACE"]
        keys = list(self.redis.scan_iter(namespace + ":*"))
        if keys:
            self.redis.delete(*keys)

    def child(self, *args: str) -> str:
        done = subprocess.run(
            [PY, str(Path(__file__)), *args], env=self.env, capture_output=True, text=True, cwd=ROOT
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def start_worker(self, processes: int = 1) -> float:
        """One worker process with 8 slots (Celery: threads), or ``processes`` of them (Celery:
        prefork, one task at a time per process); returns when it was spawned."""
        pool = (
            ["-P", "threads", "-c", "8"]
            if processes == 1
            else ["-P", "prefork", "-c", str(processes)]
        )
        commands = {
            "taskcore": [PY, "-m", "workers", "--loglevel", "warning", "worker", "-A",
                         "scripts.bench_apps.taskcore_app:app", "-Q", "bench", "-c", "8",
                         "--processes", str(processes)],
            "celery": [PY, "-m", "celery", "-A", "scripts.bench_apps.celery_app", "worker",
                       *pool, "-Q", "bench", "--loglevel", "warning",
                       "--without-gossip", "--without-mingle", "--without-heartbeat"],
            "dramatiq": [PY, "-m", "dramatiq", "scripts.bench_apps.dramatiq_app",
                         "--processes", str(processes), "--threads", "8", "--queues", "bench"],
        }  # fmt: skip
        started = time.perf_counter()
        self.worker = subprocess.Popen(
            commands[self.system],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return started

    def count(self) -> int:
        return int(self.redis.get(self.prefix + "count") or 0)

    def wait_count(self, n: int, timeout: float = 300) -> float:
        deadline = time.perf_counter() + timeout
        while (seen := self.count()) < n:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{self.system}: only {seen} of {n} tasks ran")
            time.sleep(0.002)
        return time.perf_counter()

    def worker_rss_mb(self) -> float:
        assert self.worker is not None
        process = psutil.Process(self.worker.pid)
        tree = [process, *process.children(recursive=True)]
        return sum(p.memory_info().rss for p in tree) / 2**20


def _ctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True)


def measure_enqueue(system: str, mode: str, n: int) -> float:
    with Run(system, confirm=mode != "unconfirmed") as run:
        return float(run.child("_enqueue", system, mode, str(n)))


def measure_floor(n: int) -> float:
    with Run("aiormq", confirm=True) as run:
        return float(run.child("_floor", str(n)))


def measure_drain(system: str, n: int, results: bool, processes: int = 1) -> dict[str, float]:
    with Run(system, confirm=False) as run:
        if not results:  # only taskcore has results to switch off
            run.env["TASKCORE_STORE_RESULTS"] = "0"
        run.child("_enqueue", system, "batch", str(n))
        spawned = run.start_worker(processes)
        first = run.wait_count(1)
        last = run.wait_count(n)
        return {
            "startup_s": first - spawned,
            "tasks_per_s": (n - 1) / (last - first),
            "rss_mb": run.worker_rss_mb(),
        }


def measure_latency(system: str, n: int, rate: float) -> dict[str, float]:
    with Run(system, confirm=True) as run:
        run.start_worker()
        run.child("_probes", system, "1", "1")  # warm up: the worker is consuming
        run.wait_count(2, timeout=60)
        run.redis.delete(run.prefix + "latency")
        run.child("_probes", system, str(n), str(rate))  # its own warm-up task, then n probes
        run.wait_count(n + 3)
        samples = sorted(float(x) for x in run.redis.lrange(run.prefix + "latency", 0, -1))
        return {
            "p50_ms": 1000 * samples[len(samples) // 2],
            "p99_ms": 1000 * samples[int(len(samples) * 0.99) - 1],
            "max_ms": 1000 * samples[-1],
        }


def measure_recorder(n: int) -> dict[str, float]:
    """Events/s one worker produces while draining n tasks, and events/s the recorder then
    writes them into PostgreSQL (its own schema), starting from a full queue."""
    import sqlalchemy as sa

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg2://", 1))
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    from taskcore.history import create_schema

    create_schema(engine)  # before the clock starts, as `taskcore init-db` would
    try:
        with Run("taskcore", confirm=False) as run:
            run.env["DATABASE_URL"] = url
            run.child("_declare_recorder_queue")
            run.child("_enqueue", "taskcore", "batch", str(n))
            run.start_worker()
            first = run.wait_count(1)
            last = run.wait_count(n)
            drain_s = last - first
            started = time.perf_counter()
            recorder = subprocess.Popen(
                [PY, "-m", "workers", "--loglevel", "warning", "recorder", "-A",
                 "scripts.bench_apps.taskcore_app:app"],
                env=run.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                first_rows, first_at, written, last_at = _wait_until_still(
                    engine, "SELECT count(*) FROM task_events"
                )
            finally:
                recorder.kill()
                recorder.wait()
        return {  # the recorder's rate from its first write to its last (start-up apart)
            "produced_per_s": written * (n - 1) / n / drain_s,
            "written_per_s": (written - first_rows) / (last_at - first_at),
            "recorder_startup_s": first_at - started,
        }
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _wait_until_still(engine: Any, sql: str, quiet: float = 3.0) -> tuple[int, float, int, float]:
    """Poll a count until it has not changed for ``quiet`` seconds: the count when it was
    first above zero and when, then the final count and when it last grew. Rows appear a
    commit at a time, so the rows first seen were written before the first of these times."""
    import sqlalchemy as sa

    first, first_at, seen, changed_at = 0, 0.0, 0, time.perf_counter()
    while True:
        with engine.connect() as connection:
            count = connection.execute(sa.text(sql)).scalar() or 0
        now = time.perf_counter()
        if count != seen:
            if not first:
                first, first_at = count, now
            seen, changed_at = count, now
        elif count > 0 and now - changed_at > quiet:
            if seen == first:
                raise RuntimeError(f"all {seen} rows came in one commit: no rate to measure")
            return first, first_at, seen, changed_at
        time.sleep(0.02)


def median_of(runs: int, fn: Any, *args: Any) -> Any:
    results = [fn(*args) for _ in range(runs)]
    if isinstance(results[0], dict):
        return {k: statistics.median(r[k] for r in results) for k in results[0]}
    return statistics.median(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="Smaller counts, one run.")
    parser.add_argument("--markdown", action="store_true", help="Print a Markdown table.")
    options = parser.parse_args()
    runs = 1 if options.quick else options.runs
    scale = 0.2 if options.quick else 1.0
    n_single, n_batch, n_drain = int(2000 * scale), int(10000 * scale), int(10000 * scale)
    n_latency = int(1000 * scale)

    rows: list[tuple[str, str, dict[str, float], bool]] = []  # name, unit, by system, higher?

    def row(name: str, unit: str, values: dict[str, float], higher_is_better: bool) -> None:
        rows.append((name, unit, values, higher_is_better))
        print(f"  {name}: " + ", ".join(f"{s} {v:.1f}" for s, v in values.items()), flush=True)

    print(f"benchmark: {runs} run(s) each, medians", flush=True)
    enqueued: dict[str, dict[str, float]] = {}
    for mode, n, label in (
        ("confirmed", n_single, "enqueue, confirmed, one call at a time"),
        ("threads8", n_single, "enqueue, confirmed, 8 threads calling at once"),
        ("batch", n_batch, "enqueue, confirmed, batch API"),
        ("unconfirmed", n_single, "enqueue, no confirms"),
    ):
        enqueued[mode] = {s: median_of(runs, measure_enqueue, s, mode, n) for s in SYSTEMS}
        row(label, "tasks/s", enqueued[mode], True)
    floor = median_of(runs, measure_floor, n_single)
    print(f"  broker floor, bare aiormq: {floor:.1f}", flush=True)
    drains = {s: median_of(runs, measure_drain, s, n_drain, True) for s in SYSTEMS}
    no_results = median_of(runs, measure_drain, "taskcore", n_drain, False)
    row("drain, results stored (taskcore) / none (peers)", "tasks/s",
        {s: d["tasks_per_s"] for s, d in drains.items()}, True)  # fmt: skip
    row("drain, results off", "tasks/s",
        {"taskcore": no_results["tasks_per_s"],
         **{s: drains[s]["tasks_per_s"] for s in SYSTEMS[1:]}}, True)  # fmt: skip
    row("drain, 2 worker processes (Celery: prefork), results stored (taskcore)", "tasks/s",
        {s: median_of(runs, measure_drain, s, n_drain, True, 2)["tasks_per_s"] for s in SYSTEMS},
        True)  # fmt: skip
    row("start-up to first task", "s", {s: d["startup_s"] for s, d in drains.items()}, False)
    latency = {s: median_of(runs, measure_latency, s, n_latency, 200.0) for s in SYSTEMS}
    for key, label in (("p50_ms", "latency p50 at 200/s"), ("p99_ms", "latency p99 at 200/s"),
                       ("max_ms", "latency max at 200/s")):  # fmt: skip
        row(label, "ms", {s: latency[s][key] for s in SYSTEMS}, False)
    row("worker RSS after drain", "MB", {s: d["rss_mb"] for s, d in drains.items()}, False)
    # The recorder commits up to 2,000 rows at a time: its rate needs several commits.
    recording = median_of(runs, measure_recorder, max(n_drain, 8000))

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, " + (
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}"
    )
    print()
    print(render(rows, machine, runs, markdown=options.markdown))
    print()
    print(render_floors(floor, enqueued["confirmed"]["taskcore"], markdown=options.markdown))
    print()
    print(render_recorder(recording, markdown=options.markdown))


def render_floors(floor: float, single: float, markdown: bool) -> str:
    """taskcore's single confirmed caller against the broker's floor for it (same run)."""
    lines = [
        ("bare aiormq, one persistent publish at a time, each confirm awaited, classic v2 queue",
         f"{floor:,.0f}/s"),
        ("taskcore, enqueue, confirmed, one call at a time", f"{single:,.0f}/s"),
        ("taskcore vs the floor (target >= 0.9x)", f"{single / floor:.2f}x"),
    ]  # fmt: skip
    if markdown:
        rows = [f"| {name} | {value} |" for name, value in lines]
        return "\n".join(["| floors | |", "|---|---|", *rows])
    width = max(len(name) for name, _ in lines)
    return "\n".join(f"{a:<{width}} {b}" for a, b in lines)


def render_recorder(recording: dict[str, float], markdown: bool) -> str:
    """The recorder against the worker it records (taskcore only: the peers have none)."""
    ratio = recording["written_per_s"] / recording["produced_per_s"]
    lines = [
        ("events one worker produces at full drain", f"{recording['produced_per_s']:,.0f}/s"),
        ("events the recorder writes to PostgreSQL", f"{recording['written_per_s']:,.0f}/s"),
        ("recorder vs worker (target >= 3x)", f"{ratio:.2f}x"),
        ("recorder start-up to first write", f"{recording['recorder_startup_s']:.2f} s"),
    ]
    if markdown:
        rows = [f"| {name} | {value} |" for name, value in lines]
        return "\n".join(["| history recorder | |", "|---|---|", *rows])
    return "\n".join(f"{a:<45} {b}" for a, b in lines)


def render(rows: list[Any], machine: str, runs: int, markdown: bool) -> str:
    header = ["measurement", "unit", *SYSTEMS, "taskcore vs best peer"]
    lines = []
    for name, unit, values, higher in rows:
        peers = [values[s] for s in SYSTEMS[1:]]
        best = max(peers) if higher else min(peers)
        ratio = values["taskcore"] / best if higher else best / values["taskcore"]
        cells = [name, unit, *(f"{values[s]:,.1f}" for s in SYSTEMS), f"{ratio:.2f}x"]
        lines.append(cells)
    title = f"Machine: {machine}; medians of {runs} run(s); ratio > 1 means taskcore is better."
    if markdown:
        out = [title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(cells) + " |" for cells in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(header)]
    out = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out += ["  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) for cells in lines]
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_enqueue":
        print(_enqueue(sys.argv[2], sys.argv[3], int(sys.argv[4])))
    elif len(sys.argv) > 1 and sys.argv[1] == "_floor":
        print(_floor(int(sys.argv[2])))
    elif len(sys.argv) > 1 and sys.argv[1] == "_declare_recorder_queue":
        _declare_recorder_queue()
    elif len(sys.argv) > 1 and sys.argv[1] == "_probes":
        _probes(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        main()
