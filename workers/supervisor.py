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
unacknowledged messages return to the queue.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable

log = logging.getLogger("taskcore.supervisor")

#: Exit code of a child that could not start (bad app, broker unreachable at start-up).
EXIT_STARTUP_FAILED = 2
#: A child that dies within this many seconds is restarted only after a pause.
QUICK_DEATH = 1.0

_PR_SET_PDEATHSIG = 1


class Child:
    """A running worker process: its slot, pid and start time (monotonic)."""

    # A plain class: dataclasses would add ~1 MB to the supervisor's imports.
    __slots__ = ("index", "pid", "started")

    def __init__(self, index: int, pid: int, started: float) -> None:
        self.index, self.pid, self.started = index, pid, started


class Supervisor:
    """Forks ``processes`` children that each run ``run_child(index)`` and exit with its code."""

    def __init__(self, run_child: Callable[[int], int], processes: int) -> None:
        self.run_child = run_child
        self.processes = processes
        self.children: dict[int, Child] = {}
        self.stopping = False
        self.signals_seen = 0
        self.healthy_once = False

    def run(self) -> int:
        """Start the children and supervise them until a signal stops them all."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for index in range(self.processes):
            self._spawn(index)
        exit_code = 0
        while self.children:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                continue
            child = self.children.pop(pid, None)
            if child is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            lived = time.monotonic() - child.started
            if lived > QUICK_DEATH and code != EXIT_STARTUP_FAILED:
                self.healthy_once = True
            if self.stopping:
                log.info("worker process %d (slot %d) exited with %s", pid, child.index, code)
                continue
            if code == EXIT_STARTUP_FAILED and not self.healthy_once:
                log.error("worker process could not start; stopping (see the error above)")
                self._forward(signal.SIGTERM)
                self.stopping = True
                exit_code = 1
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
        return exit_code

    def _spawn(self, index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                _die_with_parent()
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                code = self.run_child(index)
            except BaseException:
                log.exception("worker process failed")
            finally:
                logging.shutdown()
                os._exit(code)
        self.children[pid] = Child(index, pid, time.monotonic())
        log.info("started worker process %d (slot %d)", pid, index)

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
    if code == 3:
        return "asked to be replaced"
    return f"exited with code {code}"


def _die_with_parent() -> None:
    """Linux: have the kernel SIGKILL this process when the supervisor dies."""
    import ctypes  # in the child only: the supervisor stays small

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: children notice on their next broker error
        pass
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)
