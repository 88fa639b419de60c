"""Workflows (chains, groups, chords) as one unit, from the history database."""

from __future__ import annotations

from typing import Any

from flask import current_app

from . import api, present
from .endpoint import endpoint
from .errors import NotFound
from .schemas import ID_PATTERN, WorkflowPageSchema, WorkflowQuerySchema, WorkflowSchema


@api.get("/workflows")
@endpoint(
    "Chains, groups and chords, newest first",
    tag="workflows",
    query=WorkflowQuerySchema,
    response=WorkflowPageSchema,
    errors=(503,),
)
def workflows(query: dict[str, Any]) -> Any:
    """Each with its state (summed from its tasks) and how many of its tasks are done.
    Filter by ``kind``; page with ``after=<next>``."""
    return current_app.extensions["taskcore_ops"].workflows(**query)


@api.get("/workflows/<workflow_id>")
@endpoint(
    "One chain, group or chord with each task's state",
    tag="workflows",
    response=WorkflowSchema,
    errors=(404, 503),
    path_patterns={"workflow_id": ID_PATTERN},
)
def workflow(workflow_id: str) -> Any:
    """A chain's steps in order (a step not reached yet is PENDING), a group's or a
    chord's members, and a chord's callback. The id is ``handle.workflow_id``
    (``GroupResult.id`` for a group), or a task's ``workflow_id``."""
    found = current_app.extensions["taskcore_ops"].workflow(workflow_id)
    if found is None:
        raise NotFound(
            f"no workflow {workflow_id!r} in the history (it appears once the recorder "
            "has written it)"
        )
    return present.workflow(found)
