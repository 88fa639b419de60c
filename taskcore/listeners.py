"""The one hook every task state change in a worker goes through.

The worker reports each change (RECEIVED, STARTED, PROGRESS, RETRY, SUCCESS,
FAILURE, REVOKED, DEAD) once, to ``StateChanges.report``; what happens next
is up to its listeners: the result store writes the state to Redis, the
event publisher sends it to the history recorder, the heartbeat counts it.
A listener that raises is logged and never changes the task's outcome.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .workflows import H_WORKFLOW, workflow_fields

if TYPE_CHECKING:
    from .message import TaskMessage
    from .states import State

log = logging.getLogger("taskcore.worker")

#: ``listener(task_id, state, fields)``; may be a coroutine function. ``fields`` holds
#: task, queue, worker and whatever the change carries (result, error, progress, ...).
StateListener = Callable[[str, "State", dict[str, Any]], Awaitable[None] | None]


class StateChanges:
    """Reports state changes of the tasks one worker handles to every listener, in order."""

    def __init__(self, worker: str) -> None:
        #: The worker's hostname, added to every change.
        self.worker = worker
        self._listeners: list[StateListener] = []

    def listen(self, listener: StateListener) -> None:
        """Call ``listener`` for every state change from now on."""
        self._listeners.append(listener)

    async def report(self, task_id: str, state: State, **fields: Any) -> None:
        """Tell every listener; returns once the async ones are done (errors are logged)."""
        fields["worker"] = self.worker
        for listener in self._listeners:
            try:
                outcome = listener(task_id, state, fields)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                log.exception("state listener %r failed on %s of task %s", listener, state, task_id)

    async def report_call(self, call: TaskMessage, state: State, **fields: Any) -> None:
        """``report`` for a decoded call: its task name, queue and workflow come along."""
        fields.update(workflow_fields(call.headers.get(H_WORKFLOW)))
        await self.report(call.id, state, task=call.task, queue=call.queue, **fields)
