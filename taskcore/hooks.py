"""Worker lifecycle hooks: what a worker process opens before it consumes, and closes after.

``@app.on_worker_start`` and ``@app.on_worker_stop`` register them; each gets
``app.resources``, the dict through which tasks reach what the start hooks
opened (an HTTP client, a Redis client with a bounded pool). They run once per
worker process, in the order declared, on the worker's event loop.
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING

from .errors import WorkerStartFailed

if TYPE_CHECKING:
    from .app import TaskApp, WorkerHook

log = logging.getLogger("taskcore.worker")


async def run_start_hooks(app: TaskApp) -> None:
    """Run every start hook; WorkerStartFailed, naming the hook and its error, if one raises."""
    for hook in app.start_hooks:
        try:
            await _call(hook, app)
        except Exception as exc:
            raise WorkerStartFailed(
                f"on_worker_start hook {_name(hook)} failed: {type(exc).__name__}: {exc}"
            ) from exc


async def run_stop_hooks(app: TaskApp) -> None:
    """Run every stop hook; one that raises is logged and the others still run."""
    for hook in app.stop_hooks:
        try:
            await _call(hook, app)
        except Exception:
            log.exception("on_worker_stop hook %s failed", _name(hook))


async def _call(hook: WorkerHook, app: TaskApp) -> None:
    outcome = hook(app.resources)
    if inspect.isawaitable(outcome):
        await outcome


def _name(hook: WorkerHook) -> str:
    return f"{getattr(hook, '__module__', '?')}.{getattr(hook, '__qualname__', repr(hook))}"
