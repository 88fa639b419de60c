"""Prometheus endpoints of `taskcore worker`, `beat` and `recorder`, scraped over HTTP.

Names and labels are the contract of deploy/metrics.md. Every scrape must pass
`promtool check metrics` (Debian's prometheus package; `make test` installs it
with scripts/ensure_debian_package.sh).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from taskcore.history import make_engine

from .broker_tools import rabbitmqctl
from .conftest import ROOT
from .worker_log import wait_events

B = "tests.apps.basic."
F = "tests.apps.features."


# -- helpers ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Scrape:
    """One scrape of an endpoint: its text, checked by promtool, and its samples."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called ``name`` whose labels include ``labels``."""
        found = [v for n, ls, v in self.samples if n == name and labels.items() <= ls.items()]
        assert found, f"no sample {name}{labels} in:\n{self.text}"
        return sum(found)

    def labels(self, name: str, label: str) -> set[str]:
        return {ls[label] for n, ls, _ in self.samples if n == name and label in ls}


def scrape(port: int, timeout: float = 15.0) -> Scrape:
    """GET /metrics (waiting for the endpoint to come up) and check it with promtool."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
            break
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    check_with_promtool(text)
    return Scrape(text)


def check_with_promtool(text: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: run scripts/ensure_debian_package.sh (make test does)")
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, f"promtool check metrics:\n{done.stdout}{done.stderr}\n{text}"


def wait_for(port: int, check: Callable[[Scrape], bool], timeout: float = 15.0) -> Scrape:
    """Scrape until ``check`` holds; fail with the last scrape."""
    deadline = time.monotonic() + timeout
    while True:
        got = scrape(port)
        if check(got):
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"condition never held; last scrape:\n{got.text}")
        time.sleep(0.1)


def tasks_total(s: Scrape, task: str, outcome: str, queue: str = "work") -> float:
    return s.value("taskcore_tasks_total", task=task, queue=queue, outcome=outcome)


# -- the worker -----------------------------------------------------------------


def test_worker_counts_every_outcome_summed_over_its_processes(
    app_from, start_worker, vhost: str
) -> None:
    app = app_from("basic")
    revoked_id = uuid.uuid4().hex
    app.revoke(revoked_id)  # before the worker starts: it loads revoked ids first
    port = free_port()
    start_worker("basic", "-Q", "work", "--processes", "2", "--metrics-port", str(port))

    first = scrape(port)  # zero for each outcome of each task before anything ran
    assert tasks_total(first, B + "boom", "failed") == 0
    assert first.value("taskcore_tasks_in_progress", queue="work") == 0
    assert first.value("taskcore_broker_reconnects_total") == 0
    info = first.value("taskcore_worker_info", queues="work", concurrency="8")
    assert info == 1  # one series per host, not one per process

    two_args = app.tasks[B + "two_args"]
    two_args.map([(i, i) for i in range(3)])
    two_args.apply_async((1, 1), task_id=revoked_id)
    app.tasks[B + "boom"].delay("b")
    app.tasks[B + "retry_soon"].delay("r")  # two retries, then failed
    app.tasks[B + "refuse"].delay("x")
    stranger = app.send_task("tests.apps.nowhere", queue="work")

    def settled(s: Scrape) -> bool:
        return (
            tasks_total(s, B + "retry_soon", "failed") == 1
            and s.value("taskcore_tasks_total", outcome="dead_lettered") == 2
            and tasks_total(s, B + "two_args", "revoked") == 1
            and tasks_total(s, B + "boom", "failed") == 1
        )

    got = wait_for(port, settled)
    assert tasks_total(got, B + "two_args", "succeeded") == 3
    assert tasks_total(got, B + "retry_soon", "retried") == 2
    assert tasks_total(got, B + "refuse", "dead_lettered") == 1
    assert tasks_total(got, "unknown", "dead_lettered") == 1  # never the name sent
    assert got.value("taskcore_tasks_total", outcome="succeeded") == 3
    labels = {B + "two_args", B + "retry_soon"}
    for histogram in ("taskcore_task_runtime_seconds", "taskcore_task_queue_wait_seconds"):
        assert got.value(f"{histogram}_count", task=B + "two_args", queue="work") == 3
        assert got.labels(f"{histogram}_count", "task") == {B + "two_args"}  # successes only
        assert got.value(f"{histogram}_bucket", task=B + "two_args", le="+Inf") == 3
    assert got.value("taskcore_tasks_in_progress", queue="work") == 0
    # Label values are bounded: registered task names (or "unknown"), the consumed queues.
    assert got.labels("taskcore_tasks_total", "task") <= {*app.tasks, "unknown"}
    assert labels <= got.labels("taskcore_tasks_total", "task")
    for name in ("taskcore_tasks_total", "taskcore_tasks_in_progress"):
        assert got.labels(name, "queue") == {"work"}
    assert not any(revoked_id in str(ls) or stranger.id in str(ls) for _, ls, _ in got.samples)

    rabbitmqctl("close_all_connections", "-p", vhost, "test drops the connection")
    reconnected = wait_for(port, lambda s: s.value("taskcore_broker_reconnects_total") == 2)
    assert tasks_total(reconnected, B + "two_args", "succeeded") == 3


def test_a_killed_process_loses_no_counts_and_its_gauges_go(
    app_from, start_worker, rdb, redis_prefix
) -> None:
    app = app_from("features")
    port = free_port()
    worker = start_worker("features", "-Q", "feat", "--processes", "2", "--metrics-port", str(port))
    worker.wait_for_output("serving worker metrics")
    app.tasks[F + "add"].map([(i, 1) for i in range(10)])
    wait_for(port, lambda s: tasks_total(s, F + "add", "succeeded", "feat") == 10)
    app.tasks[F + "stuck"].delay(1.0)
    (start,) = wait_events(rdb, redis_prefix, "start", 1)
    running = wait_for(port, lambda s: s.value("taskcore_tasks_in_progress", queue="feat") == 1)
    assert tasks_total(running, F + "add", "succeeded", "feat") == 10

    os.kill(start["pid"], signal.SIGKILL)
    worker.wait_for_output("was killed by SIGKILL", timeout=10)
    after = scrape(port)
    assert tasks_total(after, F + "add", "succeeded", "feat") == 10  # the dead process's counts
    assert after.value("taskcore_task_runtime_seconds_count", task=F + "add") == 10

    done = wait_for(  # redelivered to the other process, and finished there
        port,
        lambda s: (
            tasks_total(s, F + "stuck", "succeeded", "feat") == 1
            # The killed process's in-progress gauge was dropped (mark_process_dead):
            and s.value("taskcore_tasks_in_progress", queue="feat") == 0
        ),
        timeout=20,
    )
    assert tasks_total(done, F + "add", "succeeded", "feat") == 10
    assert done.value("taskcore_worker_info", queues="feat") == 1
    files = os.listdir(directory := metrics_directory(worker))
    assert f"counter_{start['pid']}.db" not in files  # folded into the archive
    assert len([f for f in files if f.startswith("counter_archive-")]) == 1

    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    assert not os.path.exists(directory)  # removed at exit


def test_recycled_processes_fold_into_one_archive(app_from, start_worker) -> None:
    app = app_from("features")
    port = free_port()
    worker = start_worker(
        "features", "-Q", "feat", "-c", "1", "--max-tasks-per-child", "2",
        "--metrics-port", str(port),
    )  # fmt: skip
    app.tasks[F + "add"].map([(i, 1) for i in range(8)])
    wait_for(port, lambda s: tasks_total(s, F + "add", "succeeded", "feat") == 8, timeout=30)
    directory = metrics_directory(worker)

    def counter_files() -> list[str]:
        return [f for f in os.listdir(directory) if f.startswith("counter_")]

    deadline = time.monotonic() + 10
    while len(counter_files()) > 2 and time.monotonic() < deadline:  # archive + the live one
        time.sleep(0.1)
    assert len(counter_files()) <= 2, counter_files()
    # Live gauges exist while a process lives: wait for the one started last.
    got = wait_for(port, lambda s: "taskcore_worker_info{" in s.text)
    assert got.value("taskcore_worker_info", queues="feat") == 1
    assert got.value("taskcore_tasks_in_progress", queue="feat") == 0
    assert tasks_total(got, F + "add", "succeeded", "feat") == 8
    assert got.value("taskcore_task_runtime_seconds_count", task=F + "add") == 8


def test_a_killed_supervisor_leaves_no_metrics_directory(start_worker) -> None:
    worker = start_worker("basic", "-Q", "work", "--metrics-port", str(free_port()))
    worker.wait_for_output("serving worker metrics")
    directory = metrics_directory(worker)
    assert os.path.isdir(directory)
    worker.proc.kill()  # SIGKILL: the supervisor cleans nothing up itself
    worker.proc.wait(10)
    deadline = time.monotonic() + 10
    while os.path.exists(directory) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(directory)  # the metrics process removed it as it went


def metrics_directory(worker: Any) -> str:
    found = re.search(r"summed from (\S+)", worker.output)
    assert found is not None, worker.output
    return found.group(1)


def test_rate_limit_waits_are_counted_per_queue(app_from, start_worker) -> None:
    app = app_from("limited")
    port = free_port()
    start_worker("limited", "-Q", "slow,fast", "--metrics-port", str(port))
    app.tasks["tests.apps.limited.two_per_second"].map([(i,) for i in range(4)])
    got = wait_for(port, lambda s: s.value("taskcore_tasks_total", outcome="succeeded") == 4)
    assert got.value("taskcore_rate_limit_waits_total", queue="slow") >= 2
    assert got.value("taskcore_rate_limit_waits_total", queue="fast") == 0


def test_without_a_port_nothing_of_prometheus_is_loaded() -> None:
    code = """
import sys
import workers.supervise, workers.supervisor, workers.metrics_process, workers.cli
assert "prometheus_client" not in sys.modules, "supervisor imports"
from taskcore import TaskApp
from taskcore.worker import Worker
worker = Worker(TaskApp("t"), ["q"])
assert worker.metrics is None and worker._handle == worker.handler.handle
assert "prometheus_client" not in sys.modules, "worker imports"
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_a_port_in_use_stops_the_worker_with_a_clear_error(start_worker) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = start_worker("basic", "-Q", "work", "--metrics-port", str(port), wait=False)
        assert worker.wait(20) == 1
    assert f"cannot serve metrics on port {port}" in worker.output


# -- beat and recorder ------------------------------------------------------------


def test_beat_reports_leadership_fires_and_schedule_lag(app_from, start_command, rdb) -> None:
    app = app_from("scheduled")
    keys = app.keys
    now = time.time()
    # Another beat holds the lease, and every-second last fired 10 s ago: this beat
    # stands by and the schedule falls behind.
    rdb.set(keys.beat_leader, "someone-else", px=60_000)
    rdb.hset(keys.schedules_last, "every-second", repr(now - 10))
    port = free_port()
    start_command("beat", "-A", "tests.apps.scheduled:app", "--metrics-port", str(port))

    standby = scrape(port)
    assert standby.value("taskcore_beat_leader") == 0
    assert 9 <= standby.value("taskcore_schedule_lag_seconds", schedule="every-second") < 30
    assert standby.value("taskcore_schedule_lag_seconds", schedule="nightly") == 0
    assert standby.value("taskcore_schedule_fires_total", schedule="every-second") == 0
    assert standby.labels("taskcore_schedule_fires_total", "schedule") == {
        "every-second",
        "nightly",
    }

    rdb.sadd(keys.schedules_paused, "every-second")
    paused = scrape(port)
    assert paused.value("taskcore_schedule_lag_seconds", schedule="every-second") == 0
    rdb.srem(keys.schedules_paused, "every-second")

    rdb.delete(keys.beat_leader)  # the other beat is gone: this one leads and catches up
    leading = wait_for(
        port,
        lambda s: (
            s.value("taskcore_beat_leader") == 1
            and s.value("taskcore_schedule_fires_total", schedule="every-second") >= 2
        ),
    )
    assert leading.value("taskcore_schedule_lag_seconds", schedule="every-second") < 1.5
    assert leading.value("taskcore_schedule_fires_total", schedule="nightly") == 0
    assert leading.value("process_resident_memory_bytes") > 0


def test_recorder_reports_events_written_errors_and_lag(
    app_from, start_worker, start_command, database_url: str
) -> None:
    app = app_from("basic")
    port = free_port()
    recorder = start_command(
        "recorder",
        "-A",
        "tests.apps.basic:app",
        "--flush-interval",
        "0.1",
        "--metrics-port",
        str(port),
        env={"DATABASE_URL": database_url},
    )
    recorder.wait_for_output("recorder consuming")
    start_worker("basic", "-Q", "work")
    idle = scrape(port)
    assert idle.value("taskcore_recorder_events_written_total") == 0
    assert idle.value("taskcore_recorder_lag_seconds") == 0

    app.tasks[B + "two_args"].map([(i, i) for i in range(5)])
    written = wait_for(port, lambda s: s.value("taskcore_recorder_events_written_total") >= 5)
    assert written.value("taskcore_recorder_write_errors_total") == 0
    assert written.value("taskcore_recorder_lag_seconds") < 5
    wait_for(port, lambda s: s.value("taskcore_recorder_lag_seconds") == 0)  # idle again

    engine = make_engine(database_url)
    with engine.begin() as connection:  # the database refuses the next batch
        connection.execute(sa.text("DROP TABLE task_events, task_runs"))
    engine.dispose()
    app.tasks[B + "two_args"].delay(1, 2)
    failing = wait_for(port, lambda s: s.value("taskcore_recorder_write_errors_total") >= 1)
    assert failing.value("taskcore_recorder_lag_seconds") > 0


def test_the_archive_recovers_from_a_fold_cut_short(tmp_path) -> None:
    from prometheus_client.mmap_dict import MmapedDict, mmap_key

    from workers.metrics_process import Archive

    key = mmap_key("taskcore_tasks_total", "taskcore_tasks_total", ["outcome"], ["failed"], "h")

    def write(name: str, value: float) -> None:
        out = MmapedDict(str(tmp_path / name))
        out.write_value(key, value, 0.0)
        out.close()

    def total() -> float:
        return sum(
            value
            for path in tmp_path.glob("counter_*.db")
            for k, value, _, _ in MmapedDict.read_all_values_from_file(str(path))
            if k == key
        )

    write("counter_11.db", 2)
    write("counter_12.db", 3)
    write("counter_13.db", 4)  # a live process: never folded
    archive = Archive(str(tmp_path))
    archive.fold(11)
    archive.fold(12)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "counter_13.db",
        "counter_archive-2-12.db",
    ]
    assert total() == 9

    # A metrics process died after writing the next archive, before removing the
    # ended process's file and the old archive: both would count twice.
    write("counter_14.db", 5)
    write("counter_archive-3-14.db", 10)
    write("counter_archive.partial", 99)
    assert total() == 9 + 5 + 10
    Archive(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "counter_13.db",
        "counter_archive-3-14.db",
    ]
    assert total() == 14
