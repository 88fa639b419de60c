"""One drill's private world: a vhost, a namespace, a ledger and its worker processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
import redis

from taskcore import BrokerUnavailable, PublishError
from tests.broker_tools import Probe, broker_url, create_vhost, delete_vhost, management

from . import tasks
from .ledger import Ledger, Reconciliation

ROOT = Path(__file__).resolve().parents[2]
MAIN_REDIS_URL = os.environ.get("DRILL_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = "drills"
#: The drill processes' log level (DRILL_LOGLEVEL=info shows every task).
LOGLEVEL = os.environ.get("DRILL_LOGLEVEL", "warning")


class DrillFailed(AssertionError):
    """The system did not recover, or a task went missing."""


class Drill:
    """Sets up, runs workers for and cleans up after one drill.

    ``broker_url`` and ``redis_url`` are what taskcore (sender and workers) use,
    so a drill can put a proxy or a private server in between; the ledger always
    lives in the machine's main Redis.
    """

    def __init__(self, name: str, say: Callable[[str], None] = print) -> None:
        self.name = name
        self.say = say
        self.vhost = ""
        self.namespace = f"drill{uuid.uuid4().hex[:8]}"
        self.ledger = Ledger(MAIN_REDIS_URL, f"drill:{self.namespace}:")
        self.redis_url = MAIN_REDIS_URL
        self.workers: list[subprocess.Popen[bytes]] = []
        self.logs = Path(tempfile.mkdtemp(prefix=f"drill-{name}-"))
        self.app = tasks.app
        self._direct_url = ""
        self.broker_url = ""

    def __enter__(self) -> Drill:
        self.vhost = create_vhost(f"drill-{self.name}")
        self._direct_url = self.broker_url = broker_url(self.vhost)
        self.configure()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.stop_workers()
        if exc_type is None:  # kept when the drill failed: its message names the directory
            shutil.rmtree(self.logs, ignore_errors=True)
        self.app.close()
        delete_vhost(self.vhost)
        self.ledger.delete()
        for url in {self.redis_url, MAIN_REDIS_URL}:
            try:
                client = redis.Redis.from_url(url)
                keys = list(client.scan_iter(self.namespace + ":*"))
                if keys:
                    client.delete(*keys)
                client.close()
            except redis.RedisError:
                pass  # a private Redis the drill has already stopped

    @property
    def direct_url(self) -> str:
        """The drill's vhost on the broker itself (not through any proxy)."""
        return self._direct_url

    def configure(self, **overrides: str) -> None:
        """Point this process's drill app (the sender) at the drill's broker and Redis."""
        for key, value in overrides.items():
            setattr(self, key, value)
        self.app.configure(
            broker_url=self.broker_url, redis_url=self.redis_url, namespace=self.namespace
        )

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a worker (or beat) process of this drill."""
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TASKCORE_BROKER_URL": self.broker_url,
            "TASKCORE_REDIS_URL": self.redis_url,
            "TASKCORE_NAMESPACE": self.namespace,
            **self.ledger.env(MAIN_REDIS_URL),
            **extra,
        }

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``taskcore ARGS`` with this drill's environment; output goes to a log file."""
        log = open(self.logs / f"process-{len(self.workers)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "workers", "--loglevel", LOGLEVEL, *args],
            env=env or self.env(),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.workers.append(process)
        return process

    def start_worker(self, *options: str, **env: str) -> subprocess.Popen[bytes]:
        """A worker for the drill's queue."""
        return self.start(
            "worker", "-A", "scripts.drills.tasks:app", "-Q", QUEUE, *options, env=self.env(**env)
        )

    def wait_consuming(self, consumers: int = 1, timeout: float = 60) -> None:
        """Wait until ``consumers`` consumers are on the drill's queue (workers have started)."""
        path = f"/queues/{quote(self.vhost, safe='')}/{QUEUE}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                if management("GET", path).get("consumers", 0) >= consumers:
                    return
            except RuntimeError:
                pass  # the queue is not declared yet
            if time.monotonic() > deadline:
                raise DrillFailed(
                    f"{self.name}: no worker consuming after {timeout:.0f}s (logs in {self.logs})"
                )
            time.sleep(0.2)

    def worker_children(self, worker: subprocess.Popen[bytes]) -> list[psutil.Process]:
        """The task-running processes under a ``--processes N`` worker's supervisor (the
        drills run no metrics helper, so every child runs tasks)."""
        try:
            return psutil.Process(worker.pid).children(recursive=False)
        except psutil.NoSuchProcess:
            return []

    def stop_workers(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                for child in psutil.Process(process.pid).children(recursive=True):
                    child.kill()
                process.kill()
                process.wait(10)
        self.workers.clear()

    def send(self, task: Any, arguments: Sequence[tuple[Any, ...]], batch: int = 500) -> int:
        """Send in batches with ``map``; record what was confirmed. Returns how many were."""
        sent = 0
        for start in range(0, len(arguments), batch):
            handles = task.map(list(arguments[start : start + batch]))
            self.ledger.sent(handle.id for handle in handles)
            sent += len(handles)
        return sent

    def send_one(self, task: Any, *args: Any) -> bool:
        """One ``delay()``: recorded as sent when it returns, as refused when it raises."""
        try:
            handle = task.delay(*args)
        except (PublishError, BrokerUnavailable):
            self.ledger.refused()
            return False
        self.ledger.sent([handle.id])
        return True

    def dead_letters(self) -> dict[str, str]:
        """Task id -> reason for every message in the drill's dead-letter queue."""
        letters = Probe(self.direct_url).get_all(QUEUE + ".dead")
        return {
            str(got.message_id): str(got.headers.get("x-taskcore-reason", "?")) for got in letters
        }

    def wait_settled(self, timeout: float, dead: int = 0) -> None:
        """Wait until every sent task ran (``dead`` of them may be dead letters instead)."""
        deadline = time.monotonic() + timeout
        probe = Probe(self.direct_url)
        while True:
            sent, ran = self.ledger.sent_count(), self.ledger.ran_count()
            if ran >= sent - dead and probe.depth(QUEUE) == 0:
                return
            if time.monotonic() > deadline:
                raise DrillFailed(
                    f"{self.name}: after {timeout:.0f}s only {ran} of {sent} tasks ran "
                    f"(worker logs in {self.logs})"
                )
            time.sleep(0.25)

    def reconcile(self) -> Reconciliation:
        """The final count; raises DrillFailed when any task is missing."""
        result = self.ledger.reconcile(self.dead_letters())
        if result.lost:
            raise DrillFailed(f"{self.name}: {result} (worker logs in {self.logs})")
        return result


def kill(process: psutil.Process) -> bool:
    """SIGKILL ``process``; False when it had already gone."""
    try:
        process.send_signal(signal.SIGKILL)
    except psutil.NoSuchProcess:
        return False
    return True
