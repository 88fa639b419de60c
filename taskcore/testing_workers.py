"""Test support, part two: run a real worker for integration tests and wait until it has
drained its queues (``start_worker``, ``join``; re-exported by ``taskcore.testing``).

``join`` counts a queue drained when the broker holds nothing ready in it, every worker
consuming it answers the ``stats`` control command with nothing held, and the whole
delay cascade is empty, on two looks in a row.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from aiormq.exceptions import ChannelNotFoundEntity

from . import delays
from .app import TaskApp
from .broker import connect
from .control import broadcast
from .errors import ConfigurationError, QueueNotFound
from .topology import dead_queue

#: Seconds between two looks of ``join`` and ``start_worker`` at the broker.
LOOK_INTERVAL = 0.1
#: Seconds ``join`` waits for the workers' answers to "stats" (their held messages).
REPLY_WAIT = 0.2


def app_spec(app: TaskApp) -> str:
    """The ``module:attribute`` that names ``app`` for ``taskcore worker -A``: the one
    imported module that holds it or, among several, the one that defines its tasks;
    ConfigurationError if that is not one module."""
    found: list[tuple[str, str]] = []
    for name, module in list(sys.modules.items()):
        if name == "__main__" or module is None:
            continue
        try:
            found += [(name, attr) for attr, value in vars(module).items() if value is app]
        except TypeError:  # an odd module object without a __dict__
            continue
    if len(found) > 1:  # a test module that imported the app, say
        defining = {task.fn.__module__ for task in app.tasks.values()}
        found = [(name, attr) for name, attr in found if name in defining] or found
    specs = sorted(f"{name}:{attr}" for name, attr in found)
    if len(specs) != 1:
        raise ConfigurationError(
            f"say which module a worker imports for {app!r}: 'package.module:app', as for "
            f"`taskcore worker -A`, whose import registers every task (found {specs})"
        )
    return specs[0]


def load_app(spec: str) -> TaskApp:
    """The TaskApp at ``package.module:attribute`` (attribute defaults to ``app``)."""
    module_name, _, attribute = spec.partition(":")
    app = getattr(importlib.import_module(module_name), attribute or "app", None)
    if not isinstance(app, TaskApp):
        raise ConfigurationError(f"{spec}: no TaskApp there, found {type(app).__name__}")
    return app


class WorkerProcess:
    """A ``taskcore worker`` subprocess started by ``start_worker``."""

    def __init__(
        self,
        app: TaskApp,
        spec: str,
        queues: list[str],
        process: subprocess.Popen[bytes],
        log_path: Path,
        own_log: bool,
    ) -> None:
        self.app = app
        self.spec = spec
        self.queues = queues
        self.process = process
        self.log_path = log_path
        self._own_log = own_log
        self._output: str | None = None

    def __repr__(self) -> str:
        return f"<WorkerProcess {self.spec} -Q {','.join(self.queues)} pid={self.process.pid}>"

    @property
    def output(self) -> str:
        """What the worker printed so far (its log)."""
        if self._output is not None:
            return self._output
        return self.log_path.read_text(errors="replace")

    def join(self, timeout: float = 30.0) -> None:
        """``join(app, queues, timeout)`` for this worker's app and queues."""
        join(self.app, self.queues, timeout)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM (finish running tasks, requeue the rest), a second SIGTERM after half of
        ``timeout``, SIGKILL after ``timeout``; returns the exit code."""
        process = self.process
        for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGKILL):
            if process.poll() is not None:
                break
            process.send_signal(sig)
            try:
                process.wait(timeout / 2)
            except subprocess.TimeoutExpired:
                continue
        code = process.wait()
        if self._output is None:
            self._output = self.output
            if self._own_log:
                self.log_path.unlink(missing_ok=True)
        return code


def start_worker(
    app: TaskApp | str,
    queues: Sequence[str] | str | None = None,
    *options: str,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    timeout: float = 30.0,
) -> WorkerProcess:
    """Start ``taskcore worker -A <app> -Q <queues> <options>`` against the app's broker,
    Redis and namespace; return once it consumes every queue.

    ``app`` is a TaskApp (its module is looked up) or ``"package.module:app"``. The worker
    gets this environment, ``env``, the app's ``broker_url``, ``redis_url`` (and Sentinel
    master) and ``namespace``, and this process's ``sys.path``. Stop it with ``stop()``.
    """
    spec, app = (app, load_app(app)) if isinstance(app, str) else (app_spec(app), app)
    if isinstance(queues, str):
        queues = [queues]
    names = list(queues or [app.settings.default_queue])
    before = queue_depths(app, names)
    own_log = log_path is None
    if log_path is None:
        handle, name = tempfile.mkstemp(prefix="taskcore-worker-", suffix=".log")
        os.close(handle)
        log_path = Path(name)
    path = [os.getcwd(), *sys.path, os.environ.get("PYTHONPATH", "")]
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(p for p in path if p)),
        "TASKCORE_BROKER_URL": app.settings.broker_url,
        "TASKCORE_REDIS_URL": app.settings.redis_url,
        "TASKCORE_REDIS_SENTINEL_MASTER": app.settings.redis_sentinel_master,
        "TASKCORE_NAMESPACE": app.settings.namespace,
        **(env or {}),
    }
    command = [sys.executable, "-m", "workers", "--loglevel", "info", "worker", "-A", spec]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [*command, "-Q", ",".join(names), *options],
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    worker = WorkerProcess(app, spec, names, process, log_path, own_log)
    deadline = time.monotonic() + timeout
    while True:
        now = queue_depths(app, names)
        if all(now[q] is not None and now[q][1] > (before[q] or (0, 0))[1] for q in names):
            return worker
        if process.poll() is not None:
            worker.stop()
            raise RuntimeError(f"{worker!r} exited ({process.returncode}):\n{worker.output}")
        if time.monotonic() > deadline:
            worker.stop()
            raise TimeoutError(f"{worker!r} did not consume within {timeout}s:\n{worker.output}")
        time.sleep(LOOK_INTERVAL)


def queue_depths(app: TaskApp, queues: Sequence[str]) -> dict[str, tuple[int, int] | None]:
    """(ready messages, consumers) of each queue, None for a queue the broker does not have."""
    return app.loop.run(_depths(app, queues))


async def _depths(app: TaskApp, queues: Sequence[str]) -> dict[str, tuple[int, int] | None]:
    connection = await connect(app.settings)
    try:
        channel = await connection.channel()
        depths: dict[str, tuple[int, int] | None] = {}
        for name in queues:
            try:
                declared = await channel.declare_queue(name, passive=True)
            except ChannelNotFoundEntity:  # the broker closed the channel
                depths[name] = None
                channel = await connection.channel()
                continue
            result = declared.declaration_result
            depths[name] = (result.message_count or 0, result.consumer_count or 0)
        return depths
    finally:
        await connection.close()


def join(app: TaskApp, queues: Sequence[str] | str | None = None, timeout: float = 30.0) -> None:
    """Wait until ``queues`` (default: the app's default queue) are drained: no message
    ready in them, none in the delay queues (retries, countdowns), and none held
    unacknowledged by a worker, on two looks in a row.

    Ready and consumer counts come from the broker (a passive declare); held messages
    from the workers themselves (their answer to the "stats" control command counts what
    each holds, running or waiting for a slot), since AMQP does not tell unacknowledged
    counts; every consumer of a queue must have answered. Raises TimeoutError naming
    what is left, QueueNotFound for an unknown queue.
    """
    if isinstance(queues, str):
        queues = [queues]
    names = list(queues or [app.settings.default_queue])
    app.loop.run(_join(app, names, timeout))


async def _join(app: TaskApp, queues: list[str], timeout: float) -> None:
    delayed = [app.topology.delay_exchange(level) for level in range(delays.LEVELS)]
    deadline = time.monotonic() + timeout
    quiet = 0
    while True:
        depths = await _depths(app, [*queues, *delayed])
        missing = [name for name in queues if depths[name] is None]
        if missing:
            raise QueueNotFound(f"join: no queue named {', '.join(missing)} on the broker")
        held, answered = dict.fromkeys(queues, 0), dict.fromkeys(queues, 0)
        for reply in await broadcast(app, "stats", REPLY_WAIT):
            stats = reply["reply"]
            for name in set(queues) & set(stats.get("queues") or ()):
                answered[name] += 1
                held[name] += (stats.get("held_by_queue") or {}).get(name, 0)
        ready = {name: depths[name][0] for name in queues}  # type: ignore[index]
        # A consumer that did not answer (yet) may hold messages: not drained.
        silent = {name: depths[name][1] - answered[name] for name in queues}  # type: ignore[index]
        waiting = sum(depth[0] for name in delayed if (depth := depths[name]) is not None)
        if any(ready.values()) or any(held.values()) or waiting or max(silent.values()) > 0:
            quiet = 0
        else:
            quiet += 1
            if quiet == 2:
                return
        if time.monotonic() > deadline:
            busy = [
                f"{name}: {ready[name]} ready, {held[name]} held unacknowledged by workers"
                + (f", {silent[name]} consumer(s) not answering" if silent[name] > 0 else "")
                for name in queues
            ]
            raise TimeoutError(
                f"join: queues not drained after {timeout}s ({'; '.join(busy)}; "
                f"{waiting} waiting in the delay queues: retries, countdowns)"
            )
        await asyncio.sleep(LOOK_INTERVAL)


def delete_queues(app: TaskApp, queues: Iterable[str]) -> None:
    """Delete work queues and their ``.dead`` queues (missing ones are skipped)."""

    async def delete() -> None:
        connection = await connect(app.settings)
        try:
            for name in queues:
                for queue in (name, dead_queue(name)):
                    channel = await connection.channel()
                    try:
                        await channel.queue_delete(queue)
                    except ChannelNotFoundEntity:
                        continue
                    await channel.close()
        finally:
            await connection.close()

    app.loop.run(delete())
