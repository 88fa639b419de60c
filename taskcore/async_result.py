"""``AsyncResult(task_id)``: a TaskHandle with Celery's spelling of its members."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import TaskFailed
from .shared import current_app
from .states import State
from .task import TaskHandle, failure_of

if TYPE_CHECKING:
    from .app import TaskApp
    from .results import TaskStatus


class AsyncResult(TaskHandle):
    """The handle of any task id, read through ``app`` (default: the current app).

    Besides TaskHandle's members: ``status`` (the state as a string), ``result``
    and ``info`` as Celery means them (the return value once succeeded, a
    TaskFailed once it failed, else the last ``update_state`` meta, or None),
    ``successful()``, ``failed()``, ``traceback``, ``task_id``, and
    ``get(propagate=False)``. TaskHandle's ``info`` (a TaskStatus) is ``details``.
    """

    __slots__ = ()

    def __init__(self, id: str, app: TaskApp | None = None) -> None:
        app = app if app is not None else current_app()
        status = app.status(id)
        super().__init__(id, status.task or "", status.queue or "", app)

    @property
    def task_id(self) -> str:
        """The task id (Celery's other name for ``id``)."""
        return self.id

    @property
    def details(self) -> TaskStatus:
        """Everything known about the task (a TaskStatus): TaskHandle's ``info``."""
        return self._status()

    @property
    def status(self) -> str:
        """The state as a plain string: ``"PENDING"``, ``"PROGRESS"``, ``"SUCCESS"``, ..."""
        return str(self._status().state)

    @property
    def result(self) -> Any:
        """The value if succeeded, a TaskFailed if it failed (or was dead-lettered or
        revoked), else the last progress meta reported (None before any)."""
        status = self._status()
        if status.state == State.SUCCESS:
            return status.result
        if status.ready:
            return failure_of(self.id, status)
        if status.progress is not None:
            return status.progress.get("meta", status.progress)
        return None

    @property
    def info(self) -> Any:  # type: ignore[override]
        """Celery's ``info``: the same as ``result``."""
        return self.result

    @property
    def traceback(self) -> str | None:
        """The error's traceback once the task failed, else None."""
        error = self._status().error or {}
        return error.get("traceback")

    def successful(self) -> bool:
        """True once the task succeeded."""
        return self._status().state == State.SUCCESS

    def failed(self) -> bool:
        """True once the task failed (FAILURE) or could not run at all (DEAD)."""
        return self._status().state in {State.FAILURE, State.DEAD}

    def get(  # type: ignore[override]
        self, timeout: float | None = None, propagate: bool = True, interval: float = 0.05
    ) -> Any:
        """Wait for the result; with ``propagate=False`` a failure is returned, not raised."""
        try:
            return super().get(timeout=timeout, interval=interval)
        except TaskFailed as failure:
            if propagate:
                raise
            return failure
