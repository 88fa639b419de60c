"""The metrics process of ``taskcore worker --metrics-port``: one endpoint for all worker processes.

Worker processes write their metrics to files in a directory made for this
supervisor run (prometheus_client's multiprocess mode: PROMETHEUS_MULTIPROC_DIR,
set before any process imports the client). A process forked by the supervisor
beside them serves ``/metrics`` summed from those files. Counter and histogram
files of a process that ended stay, so a replaced process loses no counts; its
live gauges (tasks in progress, worker info) are dropped with
``mark_process_dead`` when the supervisor reports its pid through a pipe.

Files of ended processes would pile up with ``--max-tasks-per-child`` (two per
recycled process, each read at every scrape), so this process folds them into
one archive per type as it hears of each end (``Archive``), never while a
scrape reads them.

The supervisor imports only this module's standard-library part and never
prometheus_client; the client is imported in the metrics process and in the
workers, and only when a port is given.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterable
from typing import Any

from .supervisor import EXIT_STARTUP_FAILED, _die_with_parent

log = logging.getLogger("taskcore.supervisor")


class MetricsProcess:
    """The directory, the pipe and the serving process of one supervisor run."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.supervisor = os.getpid()
        self.directory = tempfile.mkdtemp(prefix="taskcore-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = self.directory
        # Pids of ended workers, newline-separated. The supervisor keeps the read end
        # open too, so pids written while no metrics process runs wait for the next.
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)

    # -- in the supervisor ---------------------------------------------------

    def worker_ended(self, pid: int) -> None:
        """Tell the metrics process to drop the live gauges of ``pid``."""
        try:
            os.write(self._write, b"%d\n" % pid)
        except OSError as exc:  # the pipe is full: that process's gauges stay
            log.warning(
                "could not report the end of process %d to the metrics process: %s", pid, exc
            )

    def close(self) -> None:
        """Remove the directory (after the metrics process and the workers ended)."""
        os.close(self._read)
        os.close(self._write)
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- in a worker process -------------------------------------------------

    def in_worker(self) -> None:
        """A worker process has no use for the pipe."""
        os.close(self._read)
        os.close(self._write)

    # -- in the metrics process ----------------------------------------------

    def serve(self) -> int:
        """Serve the sum of every worker process's metrics until killed; returns an exit code."""
        os.close(self._write)
        # Ctrl-C reaches the whole process group: keep serving while the workers drain;
        # the supervisor ends this process after them (SIGTERM). If the supervisor dies
        # (SIGKILL, OOM), the kernel sends SIGTERM here too: remove the directory then.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, self._on_sigterm)
        _die_with_parent(signal.SIGTERM)
        from prometheus_client import CollectorRegistry, start_http_server
        from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

        archive = Archive(self.directory)
        registry = CollectorRegistry()
        registry.register(archive.guarding(MultiProcessCollector(None, path=self.directory)))
        try:
            start_http_server(self.port, registry=registry)
        except OSError as exc:
            log.error("cannot serve metrics on port %d: %s", self.port, exc)
            return EXIT_STARTUP_FAILED
        log.info(
            "serving worker metrics on port %d (/metrics), summed from %s",
            self.port,
            self.directory,
        )
        with os.fdopen(self._read, "rb") as ended:
            for line in ended:
                pid = int(line)
                mark_process_dead(pid, self.directory)
                try:
                    archive.fold(pid)
                except Exception:  # its files stay and are still summed: nothing is lost
                    log.exception("could not fold the metrics of process %d into the archive", pid)
        # End of file: the supervisor, the only writer left, has ended. Had it ended in
        # order it would have stopped this process first, so it died: the SIGTERM it
        # leaves may come after this, or never reach a process about to exit.
        shutil.rmtree(self.directory, ignore_errors=True)
        return 0

    def _on_sigterm(self, _signum: int, _frame: object) -> None:
        if os.getppid() != self.supervisor:  # it died: nobody else will remove the directory
            shutil.rmtree(self.directory, ignore_errors=True)
        os._exit(0)


#: File types whose values are summed across processes (live gauges are dropped instead).
SUMMED = ("counter", "histogram")


class Archive:
    """The counters and histograms of ended worker processes, one file per type.

    ``fold(pid)`` writes archive + that process's file to a new archive named
    ``<type>_archive-<generation>-<pid>.db``, then removes the process's file and
    the old archive, all under the lock that scrapes take. If this process dies
    half-way, the next one (``_recover``) keeps the newest archive and removes
    the file of the pid its name says it holds, so nothing is counted twice.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.lock = threading.Lock()
        self.generation = 0
        self.current: dict[str, str] = {}
        self._recover()

    def guarding(self, collector: Any) -> Any:
        """``collector``, reading the files only while no fold is under way."""
        lock = self.lock

        class Guarded:
            def collect(self) -> Iterable[Any]:
                with lock:
                    return list(collector.collect())

        return Guarded()

    def fold(self, pid: int) -> None:
        with self.lock:
            try:
                for typ in SUMMED:
                    ended = os.path.join(self.directory, f"{typ}_{pid}.db")
                    if os.path.exists(ended):
                        self._fold(typ, ended, pid)
            except BaseException:
                self._recover()  # whatever step failed, count each process once
                raise

    def _fold(self, typ: str, ended: str, pid: int) -> None:
        from prometheus_client.mmap_dict import MmapedDict

        old = self.current.get(typ)
        totals: dict[str, list[float]] = {}
        for path in (old, ended):
            if path is None:
                continue
            for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(path):
                total = totals.setdefault(key, [0.0, 0.0])
                total[0] += value
                total[1] = max(total[1], timestamp)
        partial = os.path.join(self.directory, f"{typ}_archive.partial")
        out = MmapedDict(partial)
        try:
            for key, (value, timestamp) in totals.items():
                out.write_value(key, value, timestamp)
        finally:
            out.close()
        self.generation += 1
        new = os.path.join(self.directory, f"{typ}_archive-{self.generation}-{pid}.db")
        os.rename(partial, new)  # from here the new archive holds the ended process's counts
        os.remove(ended)
        if old is not None:
            os.remove(old)
        self.current[typ] = new

    def _recover(self) -> None:
        """Finish what a metrics process that died during a fold left behind."""
        for partial in glob.glob(os.path.join(self.directory, "*_archive.partial")):
            os.remove(partial)
        for typ in SUMMED:
            found = []
            for path in glob.glob(os.path.join(self.directory, f"{typ}_archive-*.db")):
                _, generation, pid = os.path.basename(path)[:-3].split("-")
                found.append((int(generation), pid, path))
            if not found:
                continue
            found.sort()
            generation, pid, newest = found[-1]
            for _, _, older in found[:-1]:
                os.remove(older)
            ended = os.path.join(self.directory, f"{typ}_{pid}.db")
            if os.path.exists(ended):
                os.remove(ended)
            self.current[typ] = newest
            self.generation = max(self.generation, generation)
