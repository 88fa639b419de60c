"""The process ``taskcore worker`` becomes: a small supervisor of worker processes.

``taskcore worker`` checks its options with click, then replaces itself (exec)
with ``python -m workers.supervise '<options as JSON>'``. The process that
stays up beside the workers therefore holds neither click nor the app, only
the standard library and supervisor.py, and each worker it forks starts from
that small image: ~6 MB less for one worker process than forking the click
process (measured with scripts/bench.py's RSS row).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

from . import log_setup
from .supervisor import EXIT_STARTUP_FAILED, Supervisor


def exec_supervisor(options: dict[str, Any]) -> None:
    """Replace this process with the supervisor for these ``taskcore worker`` options."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "workers.supervise", json.dumps(options)])


def main(options: dict[str, Any]) -> int:
    """Supervise ``options["processes"]`` worker processes; returns the exit code."""
    log_setup.configure(
        options["loglevel"], options.get("log_format", "plain"), options.get("log_config")
    )
    metrics_port = options.get("metrics_port")
    metrics = None
    if metrics_port:
        # Before the first fork: every process must see PROMETHEUS_MULTIPROC_DIR.
        from .metrics_process import MetricsProcess

        try:
            metrics = MetricsProcess(metrics_port)
        except OSError as exc:  # no writable temporary directory (TMPDIR, /tmp)
            logging.getLogger("taskcore.supervisor").error(
                "cannot make a directory for the metrics files: %s", exc
            )
            return 1

    def run_child(index: int) -> int:
        # Only worker processes import the app, aio-pika and Redis.
        if metrics is not None:
            metrics.in_worker()
        from taskcore import TaskcoreError

        from .find_app import AppNotFound, find_app
        from .run_worker import run_worker

        try:
            app = find_app(options["app_spec"])
            if app.settings.metrics_port and not metrics_port:
                logging.getLogger("taskcore.worker").warning(
                    "the app sets metrics_port=%s, but `taskcore worker` serves metrics only "
                    "with --metrics-port or TASKCORE_METRICS_PORT",
                    app.settings.metrics_port,
                )
            return run_worker(
                app,
                options["queues"] or [app.settings.default_queue],
                concurrency=options["concurrency"],
                grace_period=options["grace_period"],
                hostname=_hostname(options["hostname"], index),
                supervised=True,
                max_tasks=options["max_tasks_per_child"] or None,
                metrics=metrics is not None,
                burst=bool(options.get("burst")),
            )
        except (TaskcoreError, AppNotFound) as exc:
            logging.getLogger("taskcore.worker").error("cannot start: %s", exc)
            return EXIT_STARTUP_FAILED

    return Supervisor(run_child, options["processes"], helper=metrics).run()


def _hostname(pattern: str | None, index: int) -> str | None:
    if not pattern:
        return None
    import socket

    return (
        pattern.replace("%h", socket.gethostname())
        .replace("%i", str(index))
        .replace("%p", str(os.getpid()))
    )


if __name__ == "__main__":
    raise SystemExit(main(json.loads(sys.argv[1])))
