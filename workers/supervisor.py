"""Run N worker processes and keep them running (``taskcore worker --processes N``).

The supervisor forks its children before anything imports the app: it stays
a small process (the app, aio-pika and Redis live only in the children; see
supervise.py for how click is left behind too), and a child that cannot load
the app exits with EXIT_STARTUP_FAILED. A child that
dies is replaced; one that reached ``--max-tasks-per-child`` or asked to be
replaced (hard time limit, terminate of a sync task) is started afresh.
SIGTERM/SIGINT are passed on to every child, which drains gracefully; a
second signal is passed on too and stops them at once. If the supervisor
itself is killed, the kernel kills its children (PR_SET_PDEATHSIG), so their
unacknowledged messages return to the queue. An optional helper process (the
metrics endpoint) starts before the workers, is restarted if it dies, hears
of every worker that ended, and is stopped after the last worker exited.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("taskcore.supervisor")

#: Exit code of a child that could not start (bad app, broker unreachable at start-up).
EXIT_STARTUP_FAILED = 2
#: Exit code of a child that asks for a fresh process (hard time limit, terminate).
EXIT_REPLACE = 3
#: Exit code of a ``--burst`` child that drained its queues: it is not replaced.
EXIT_DRAINED = 4
#: A child that dies within this many seconds is restarted only after a pause.
QUICK_DEATH = 1.0

_PR_SET_PDEATHSIG = 1


class Child:
    """A running worker process: its slot, pid and start time (monotonic)."""

    # A plain class: dataclasses would add ~1 MB to the supervisor's imports.
    __slots__ = ("index", "pid", "started")

    def __init__(self, index: int, pid: int, started: float) -> None:
        self.index, self.pid, self.started = index, pid, started


class Helper(Protocol):
    """A process that serves the workers (workers.metrics_process.MetricsProcess)."""

    def serve(self) -> int:
        """Run in the helper process; returns its exit code (EXIT_STARTUP_FAILED: give up)."""

    def worker_ended(self, pid: int) -> None:
        """Called in the supervisor for every worker process that ended."""

    def close(self) -> None:
        """Called in the supervisor once the helper and every worker ended."""


class Supervisor:
    """Forks ``processes`` children that each run ``run_child(index)`` and exit with its code."""

    def __init__(
        self, run_child: Callable[[int], int], processes: int, helper: Helper | None = None
    ) -> None:
        self.run_child = run_child
        self.processes = processes
        self.children: dict[int, Child] = {}
        self.stopping = False
        self.signals_seen = 0
        self.healthy_once = False
        self.helper = helper
        self.helper_child: Child | None = None
        self.helper_starts = 0
        self.exit_code = 0

    def run(self) -> int:
        """Start the children and supervise them until a signal stops them all."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            if self.helper is not None:
                self._spawn_helper()
            for index in range(self.processes):
                self._spawn(index)
            self._supervise()
        finally:
            self._stop_helper()
        return self.exit_code

    def _supervise(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                continue
            if self.helper_child is not None and pid == self.helper_child.pid:
                self._helper_ended(os.waitstatus_to_exitcode(status))
                continue
            child = self.children.pop(pid, None)
            if child is None:
                continue
            if self.helper is not None:
                self.helper.worker_ended(pid)
            code = os.waitstatus_to_exitcode(status)
            lived = time.monotonic() - child.started
            if lived > QUICK_DEATH and code != EXIT_STARTUP_FAILED:
                self.healthy_once = True
            if self.stopping or code == EXIT_DRAINED:
                log.info("worker process %d (slot %d) %s", pid, child.index, _describe(code))
                continue
            if code == EXIT_STARTUP_FAILED and not self.healthy_once:
                log.error("worker process could not start; stopping (see the error above)")
                self._give_up()
                continue
            log.warning(
                "worker process %d (slot %d) %s after %.1fs; starting a new one",
                pid,
                child.index,
                _describe(code),
                lived,
            )
            if lived < QUICK_DEATH:
                time.sleep(QUICK_DEATH)
            if not self.stopping:
                self._spawn(child.index)

    def _give_up(self) -> None:
        self._forward(signal.SIGTERM)
        self.stopping = True
        self.exit_code = 1

    def _fork(self, run: Callable[[], int], what: str) -> int:
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                _die_with_parent()
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                code = run()
            except BaseException:
                log.exception("%s process failed", what)
            finally:
                logging.shutdown()
                os._exit(code)
        return pid

    def _spawn(self, index: int) -> None:
        pid = self._fork(lambda: self.run_child(index), "worker")
        self.children[pid] = Child(index, pid, time.monotonic())
        log.info("started worker process %d (slot %d)", pid, index)

    def _run_helper(self) -> int:
        assert self.helper is not None
        return self.helper.serve()

    def _spawn_helper(self) -> None:
        pid = self._fork(self._run_helper, "helper")
        self.helper_child = Child(-1, pid, time.monotonic())
        self.helper_starts += 1

    def _helper_ended(self, code: int) -> None:
        assert self.helper_child is not None
        lived = time.monotonic() - self.helper_child.started
        self.helper_child = None
        if self.stopping:
            return
        if code == EXIT_STARTUP_FAILED and self.helper_starts == 1:
            log.error("the helper process could not start; stopping (see the error above)")
            self._give_up()
            return
        log.warning("helper process %s after %.1fs; starting a new one", _describe(code), lived)
        if lived < QUICK_DEATH:
            time.sleep(QUICK_DEATH)
        if not self.stopping:
            self._spawn_helper()

    def _stop_helper(self) -> None:
        """After the workers: end the helper process and let it clean up."""
        if self.helper is None:
            return
        if self.helper_child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.helper_child.pid, signal.SIGTERM)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.helper_child.pid, 0)
            self.helper_child = None
        self.helper.close()

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.signals_seen += 1
        self.stopping = True
        log.info(
            "received %s: %s %d worker process(es)",
            signal.Signals(signum).name,
            "stopping" if self.signals_seen > 1 else "draining",
            len(self.children),
        )
        self._forward(signal.SIGTERM)

    def _forward(self, signum: int) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)


def _describe(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    if code == EXIT_REPLACE:
        return "asked to be replaced"
    if code == EXIT_DRAINED:
        return "drained its queues"
    return f"exited with code {code}"


def _die_with_parent(signum: int = signal.SIGKILL) -> None:
    """Linux: have the kernel send ``signum`` to this process when the supervisor dies."""
    import ctypes  # in the child only: the supervisor stays small

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signum)
    except (OSError, AttributeError):  # not Linux: children notice on their next broker error
        pass
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)
