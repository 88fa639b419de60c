"""Run one worker process: signals, the event loop, and a clean exit."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from taskcore import TaskApp
from taskcore.worker import Worker

from .supervisor import EXIT_DRAINED, EXIT_REPLACE

log = logging.getLogger("taskcore.worker")


def run_worker(
    app: TaskApp,
    queues: Sequence[str],
    *,
    concurrency: int,
    grace_period: float,
    hostname: str | None,
    supervised: bool = False,
    max_tasks: int | None = None,
    metrics: bool = False,
    burst: bool = False,
) -> int:
    """Run a worker until SIGTERM/SIGINT; returns the process exit code.

    The first signal stops consuming and lets running tasks finish within
    ``grace_period``; a second one stops at once. Unfinished messages are
    requeued, never lost. ``metrics``: record Prometheus metrics (taskcore.metrics).
    ``burst``: stop once the queues are drained (exit code EXIT_DRAINED).
    """
    worker = Worker(
        app,
        queues,
        concurrency=concurrency,
        grace_period=grace_period,
        hostname=hostname,
        supervised=supervised,
        max_tasks=max_tasks,
        metrics=metrics,
        burst=burst,
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, _on_signal, worker, sig)
        await worker.run()

    asyncio.run(main())
    exit_code = EXIT_REPLACE if worker.replace_requested else 0
    if worker.drained:
        exit_code = EXIT_DRAINED
    if worker.abandoned or exit_code:
        # Threads running sync tasks cannot be interrupted and would keep the
        # interpreter alive; their messages are already settled or requeued.
        log.warning("exiting with %d task thread(s) still running", worker.abandoned)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exit_code)
    return exit_code


def _on_signal(worker: Worker, sig: signal.Signals) -> None:
    log.info("received %s: %s", sig.name, "stopping now" if worker.stopping else "draining")
    worker.request_stop()
