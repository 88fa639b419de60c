"""Fixtures: a RabbitMQ vhost, a Redis key prefix and real worker processes per test."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from taskcore import TaskApp

from .broker_tools import Probe, broker_url, create_vhost, delete_vhost

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def vhost() -> Iterator[str]:
    """A RabbitMQ vhost of this test's own, deleted afterwards with everything in it."""
    name = create_vhost()
    yield name
    delete_vhost(name)


@pytest.fixture
def amqp_url(vhost: str) -> str:
    return broker_url(vhost)


@pytest.fixture
def probe(amqp_url: str) -> Probe:
    return Probe(amqp_url)


@pytest.fixture
def namespace() -> Iterator[str]:
    """This test's TASKCORE_NAMESPACE: prefixes its exchanges and its Redis keys."""
    name = f"tc{uuid.uuid4().hex[:10]}"
    yield name
    _delete_redis_keys(f"{name}:*")


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix for what the test tasks record; deleted afterwards."""
    prefix = f"taskcore-test:{uuid.uuid4().hex[:10]}:"
    yield prefix
    _delete_redis_keys(f"{prefix}*")


def _delete_redis_keys(pattern: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(pattern))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def rdb() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def task_env(amqp_url: str, redis_prefix: str, namespace: str) -> dict[str, str]:
    """Environment that points a TaskApp (here or in a worker process) at this test's vhost."""
    return {
        "TASKCORE_BROKER_URL": amqp_url,
        "TASKCORE_REDIS_URL": REDIS_URL,
        "TASKCORE_NAMESPACE": namespace,
        "TEST_REDIS_URL": REDIS_URL,
        "TEST_KEY_PREFIX": redis_prefix,
        # Commands that touch the history database (health) use PostgreSQL, not a SQLite
        # file left behind in the repository.
        "DATABASE_URL": PG_URL,
    }


@pytest.fixture
def app_from(task_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Import a tests.apps module with this test's environment and return its TaskApp."""
    import importlib

    for key, value in task_env.items():
        monkeypatch.setenv(key, value)
    loaded: list[TaskApp] = []

    def load(module: str) -> TaskApp:
        mod = importlib.reload(importlib.import_module(f"tests.apps.{module}"))
        loaded.append(mod.app)
        return mod.app

    yield load
    for app in loaded:
        app.close()


class WorkerProcess:
    """A `taskcore worker` started as a real subprocess."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workers", *args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def output(self) -> str:
        return self.log_path.read_text()

    def wait_for_output(self, text: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited ({self.proc.returncode}):\n{self.output}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker never printed {text!r}:\n{self.output}")
            time.sleep(0.05)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


# The subprocesses a test started, so that a failed test's report shows their output.
STARTED = pytest.StashKey[list[WorkerProcess]]()
LOG_TAIL_LINES = 150


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Add the last lines of each worker's or command's output to a failed test's report."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when != "call" or not report.failed:
        return
    for process in item.stash.get(STARTED, []):
        lines = process.output.splitlines()[-LOG_TAIL_LINES:]
        report.sections.append((f"output of taskcore {' '.join(process.args)}", "\n".join(lines)))


def _started(request: pytest.FixtureRequest) -> list[WorkerProcess]:
    return request.node.stash.setdefault(STARTED, [])


@pytest.fixture
def start_worker(
    task_env: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Any]:
    """Start `taskcore worker -A tests.apps.<module>:app ...`; returns once it consumes."""
    started = _started(request)

    def start(
        module: str, *options: str, wait: bool = True, env: dict[str, str] | None = None
    ) -> WorkerProcess:
        log_path = tmp_path / f"worker-{len(started)}.log"
        args = ["--loglevel", "info", "worker", "-A", f"tests.apps.{module}:app", *options]
        worker = WorkerProcess(args, {**task_env, **(env or {})}, log_path)
        started.append(worker)
        if wait:
            worker.wait_for_output("consuming")
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def database_url() -> Iterator[str]:
    """A PostgreSQL schema of this test's own (via search_path), dropped afterwards."""
    import sqlalchemy as sa

    from taskcore.history import make_engine

    schema = f"tc_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture
def history_engine(database_url: str) -> Iterator[Any]:
    """An engine on this test's schema, with taskcore's history tables in it."""
    from taskcore.history import create_schema, make_engine

    engine = make_engine(database_url)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def start_command(
    task_env: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Any]:
    """Start any `taskcore` subcommand as a subprocess, with this test's environment."""
    started = _started(request)

    def start(*args: str, env: dict[str, str] | None = None) -> WorkerProcess:
        log_path = tmp_path / f"command-{len(started)}.log"
        process = WorkerProcess(list(args), {**task_env, **(env or {})}, log_path)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def cli(task_env: dict[str, str]) -> Any:
    """Run `taskcore ...` as a subprocess with this test's environment."""

    def run(
        *args: str,
        input: str | None = None,
        timeout: float = 60,
        env_overrides: dict[str, str] | None = None,
    ) -> Any:
        return subprocess.run(
            [sys.executable, "-m", "workers", *args],
            cwd=ROOT,
            env={**os.environ, **task_env, **(env_overrides or {})},
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
