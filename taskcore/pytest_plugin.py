"""taskcore's pytest plugin (registered as ``taskcore`` through the ``pytest11`` entry point).

Fixtures:

* ``taskcore_in_process``: ``calls = taskcore_in_process(app)`` runs ``app``'s tasks in
  this process until the test ends (``taskcore.testing.run_in_process``).
* ``taskcore_worker``: ``worker = taskcore_worker(app, ["queue"], "--concurrency", "2")``
  starts a real ``taskcore worker`` on the app's broker; ``worker.join()`` waits until its
  queues are drained. At the end of the test the workers are stopped and the queues they
  consumed are deleted, with their ``.dead`` queues: point tests at a vhost of their own.

A failed test's report ends with the output of the workers it started.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from taskcore import TaskApp
    from taskcore.testing import RecordedCalls, WorkerProcess

log = logging.getLogger("taskcore.testing")

#: The workers a test started, for its report.
_WORKERS = pytest.StashKey[list["WorkerProcess"]]()
#: Lines of a worker's output shown in a failed test's report.
REPORT_LINES = 100


@pytest.fixture
def taskcore_in_process() -> Iterator[Callable[[TaskApp], RecordedCalls]]:
    """``taskcore_in_process(app)``: run ``app``'s tasks in this process until the test ends;
    returns the ``RecordedCalls``."""
    from taskcore.testing import run_in_process

    with contextlib.ExitStack() as stack:
        yield lambda app: stack.enter_context(run_in_process(app))


@pytest.fixture
def taskcore_worker(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """``taskcore_worker(app, queues=None, *options, env=None)``: a real ``taskcore worker``
    (see ``taskcore.testing.start_worker``), stopped at the end of the test; the queues it
    consumed and their ``.dead`` queues are then deleted."""
    from taskcore.testing import delete_queues, start_worker

    started = request.node.stash.setdefault(_WORKERS, [])

    def start(
        app: TaskApp | str, queues: Any = None, *options: str, **kwargs: Any
    ) -> WorkerProcess:
        log_path = tmp_path / f"taskcore-worker-{len(started)}.log"
        worker = start_worker(app, queues, *options, log_path=log_path, **kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
    for worker in started:
        try:
            delete_queues(worker.app, worker.queues)
        except Exception as exc:  # a vhost deleted already, a broker gone: nothing to keep
            log.warning("could not delete the queues of %r: %s", worker, exc)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Add the last lines of each worker's output to a failed test's report."""
    report = yield
    if report.when == "call" and report.failed:
        for worker in item.stash.get(_WORKERS, []):
            lines = worker.output.splitlines()[-REPORT_LINES:]
            report.sections.append((f"taskcore worker {worker.spec}", "\n".join(lines)))
    return report
