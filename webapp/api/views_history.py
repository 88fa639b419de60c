"""History (filters, keyset pages) and per-task performance, from the history database."""

from __future__ import annotations

from typing import Any

from flask import current_app

from . import api, present
from .endpoint import endpoint
from .schemas import (
    HistoryPageSchema,
    HistoryQuerySchema,
    PerformanceQuerySchema,
    PerformanceSchema,
)


@api.get("/history")
@endpoint(
    "Task runs, newest first",
    tag="history",
    query=HistoryQuerySchema,
    response=HistoryPageSchema,
    errors=(503,),
)
def history(query: dict[str, Any]) -> Any:
    """Finished and running tasks, kept after Redis forgot them. Filter by state, task,
    queue, worker and time (``since``/``until``), search text; page with ``after=<next>``."""
    found = current_app.extensions["taskcore_ops"].history(**query)
    return {"runs": [present.history_row(row) for row in found["runs"]], "next": found["next"]}


@api.get("/performance")
@endpoint(
    "Run time and queue wait per task",
    tag="history",
    query=PerformanceQuerySchema,
    response=PerformanceSchema,
    errors=(503,),
)
def performance(query: dict[str, Any]) -> Any:
    """Per task since ``since`` (default ``1h``): count, failed, failure rate and the
    50th/95th/99th percentiles of run time and of queue wait, in seconds."""
    rows = current_app.extensions["taskcore_ops"].performance(
        since=query["since"], task=query["task"]
    )
    return {"since": query["since"], "tasks": rows}
