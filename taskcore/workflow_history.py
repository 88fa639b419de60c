"""Reading workflows (chains, groups, chords) from the history, each as one unit.

A workflow's shape is in ``task_workflows`` (kind, members in order, a chord's
callback); its members' states are their ``task_runs`` rows. A member no
worker has reported on yet (a chain's later step, a queued group member) is
PENDING. The workflow's own state sums its members': FAILURE as soon as one
failed or was dead-lettered, REVOKED if one was revoked, SUCCESS once all
succeeded, STARTED once any was reported on, PENDING before.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .errors import ConfigurationError
from .history import task_runs, task_workflows
from .history_queries import _row, keyset, next_cursor
from .states import READY_STATES, State

#: The kinds of workflow there are.
KINDS = ("chain", "group", "chord")
#: What a member's row shows on a workflow's page.
_MEMBER_COLUMNS = (
    "task_id",
    "state",
    "worker",
    "attempts",
    "runtime",
    "started_at",
    "finished_at",
    "error_type",
    "error_message",
)


def workflow_state(counts: Mapping[str, int], total: int) -> str:
    """One state for a workflow of ``total`` tasks, given how many are in each state."""
    if counts.get(State.FAILURE) or counts.get(State.DEAD):
        return State.FAILURE.value
    if counts.get(State.REVOKED):
        return State.REVOKED.value
    if counts.get(State.SUCCESS, 0) >= total:
        return State.SUCCESS.value
    if any(counts.values()):
        return State.STARTED.value
    return State.PENDING.value


def workflow(engine: sa.Engine, workflow_id: str) -> dict[str, Any] | None:
    """One workflow with each member's state (a chain's steps in order); None if unknown.

    Keys: workflow_id, kind, created_at, state, done, total, members (each ``id``,
    ``task``, ``queue``, ``state`` and its run's timings, worker and error), callback
    (a chord's, shaped like a member, or None).
    """
    with engine.connect() as connection:
        shape = connection.execute(
            sa.select(task_workflows).where(task_workflows.c.workflow_id == workflow_id)
        ).one_or_none()
        if shape is None:
            return None
        tasks = [*shape.members, *([shape.callback] if shape.callback else [])]
        columns = [task_runs.c[name] for name in _MEMBER_COLUMNS]
        runs = {
            row["task_id"]: row
            for row in map(
                _row,
                connection.execute(
                    sa.select(*columns).where(task_runs.c.task_id.in_([t["id"] for t in tasks]))
                ),
            )
        }
    members = [_member(m, runs.get(m["id"])) for m in shape.members]
    callback = _member(shape.callback, runs.get(shape.callback["id"])) if shape.callback else None
    everyone = [*members, *([callback] if callback else [])]
    counts: dict[str, int] = defaultdict(int)
    for member in everyone:
        if member["state"] != State.PENDING:
            counts[member["state"]] += 1
    return {
        **_summary(_row(shape), counts),
        "members": members,
        "callback": callback,
    }


def query_workflows(
    engine: sa.Engine, *, kind: str | None = None, limit: int = 50, after: str | None = None
) -> dict[str, Any]:
    """One page of workflows, newest first: ``{"workflows": [...], "next": cursor or None}``.

    Each has workflow_id, kind, created_at, state, done, total and ``tasks``: a
    chain's steps' task names in order, a group's or chord's names each once.
    ``after`` is the previous page's ``next``; a malformed one, an unknown kind or
    a limit below 1 raise ConfigurationError.
    """
    if kind is not None and kind not in KINDS:
        raise ConfigurationError(f"unknown workflow kind {kind!r}: use one of {', '.join(KINDS)}")
    w = task_workflows.c
    statement = keyset(sa.select(task_workflows), w.created_at, w.workflow_id, limit, after)
    if kind is not None:
        statement = statement.where(w.kind == kind)
    with engine.connect() as connection:
        shapes = [_row(r) for r in connection.execute(statement)]
        following = next_cursor(shapes, limit, "created_at", "workflow_id")
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        if shapes:
            c = task_runs.c
            tallies = connection.execute(
                sa.select(c.workflow_id, c.state, sa.func.count())
                .where(c.workflow_id.in_([s["workflow_id"] for s in shapes]))
                .group_by(c.workflow_id, c.state)
            )
            for workflow_id, state, count in tallies:
                counts[workflow_id][state] = count
    return {
        "workflows": [
            {**_summary(s, counts[s["workflow_id"]]), "tasks": _task_names(s)} for s in shapes
        ],
        "next": following,
    }


def _summary(shape: Mapping[str, Any], counts: Mapping[str, int]) -> dict[str, Any]:
    total = len(shape["members"]) + (1 if shape["callback"] else 0)
    created_at: datetime = shape["created_at"]
    return {
        "workflow_id": shape["workflow_id"],
        "kind": shape["kind"],
        "created_at": created_at,
        "state": workflow_state(counts, total),
        "done": sum(n for state, n in counts.items() if state in READY_STATES),
        "total": total,
    }


def _member(member: Mapping[str, Any], run: Mapping[str, Any] | None) -> dict[str, Any]:
    found = {name: (run or {}).get(name) for name in _MEMBER_COLUMNS if name != "task_id"}
    return {
        "id": member["id"],
        "task": member["task"],
        "queue": member["queue"],
        **found,
        "state": run["state"] if run else State.PENDING.value,
    }


def _task_names(shape: Mapping[str, Any]) -> list[str]:
    tasks = [*shape["members"], *([shape["callback"]] if shape["callback"] else [])]
    names = [t["task"] for t in tasks]
    return names if shape["kind"] == "chain" else list(dict.fromkeys(names))
