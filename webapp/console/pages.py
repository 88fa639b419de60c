"""The console's pages (GET): what a viewer sees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import abort, flash, render_template, request

from taskcore import READY_STATES, ConfigurationError, State
from taskcore.workflow_history import KINDS

from ..api.exposed import EXPOSED
from ..auth.access import requires
from . import console, ops, queue_name, task_app
from .present import chain_position, clipped, membership, recorded_call, window

#: Finished states worth a filter on /tasks, and every other state.
STATES = [s.value for s in State]


@console.get("/")
@requires("viewer")
def overview() -> Any:
    """Throughput over the last hour, backlogs, workers, dead letters, failures, next fires."""
    reading = ops().status()
    alive = [w for w in reading["workers"] if w["alive"]]
    since = datetime.now(UTC) - timedelta(hours=1)
    return render_template(
        "console/overview.html",
        reading=reading,
        alive=alive,
        totals={
            "ready": sum(q["ready"] or 0 for q in reading["queues"]),
            "unacked": sum(q["unacked"] or 0 for q in reading["queues"]),
            "dead": sum(q["dead"] or 0 for q in reading["queues"]),
        },
        throughput=ops().throughput(since=since),
        failures=ops().history(state=State.FAILURE.value, limit=8)["runs"],
        next_fires=sorted(
            (s for s in reading["schedules"] if not s["paused"]), key=lambda s: s["next_fire"]
        )[:5],
    )


@console.get("/tasks")
@requires("viewer")
def tasks() -> Any:
    """Task history: filters, search and keyset pagination."""
    args = request.args
    filters: dict[str, Any] = {
        name: args.get(name, "").strip() or None
        for name in ("state", "task", "queue", "worker", "search")
    }
    if filters["state"] is not None and filters["state"] not in STATES:
        flash(f"Unknown state {filters['state']!r}: showing every state.", "warning")
        filters["state"] = None
    for name in ("since", "until"):
        filters[name] = _datetime_arg(name)
    try:
        page = ops().history(**filters, limit=50, after=args.get("after") or None)
    except ConfigurationError as exc:  # a cursor that was edited by hand
        flash(f"{exc}; showing the first page.", "warning")
        page = ops().history(**filters, limit=50)
    shown = {k: v for k, v in args.items() if k != "after" and v}
    return render_template(
        "console/tasks.html",
        page=page,
        filters=filters,
        shown=shown,
        states=STATES,
        sendable=sorted(EXPOSED),
    )


def _datetime_arg(name: str) -> datetime | None:
    text = request.args.get(name, "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        flash(f"{name} {text!r} is not a date and time (2026-01-31T14:00): ignored.", "warning")
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@console.get("/tasks/<task_id>")
@requires("viewer")
def task_detail(task_id: str) -> Any:
    """One task: arguments, result or error, attempts, progress and its timeline."""
    status = task_app().status(task_id)
    run = ops().task_run(task_id)
    events = run["events"] if run else []
    retries = [e for e in events if e["state"] == State.RETRY.value]
    return render_template(
        "console/task.html",
        task_id=task_id,
        status=status,
        run=run,
        events=events,
        retries=retries,
        ready=status.state in READY_STATES or (run is not None and status.state == State.PENDING),
        unknown=run is None and status.state == State.PENDING and not status.extra,
        rerun=recorded_call(status.extra.get("args") or (run or {}).get("args")),
        part_of=_part_of(
            task_id, (run or {}).get("workflow_id") or status.extra.get("workflow_id")
        ),
    )


def _part_of(task_id: str, workflow_id: Any) -> dict[str, Any] | None:
    """The workflow ``task_id`` belongs to, as its page's "Part of" line shows it."""
    if not isinstance(workflow_id, str) or not workflow_id:
        return None
    return membership(workflow_id, ops().workflow(workflow_id), task_id)


@console.get("/workflows")
@requires("viewer")
def workflows() -> Any:
    """Chains, groups and chords, newest first, each with its state and progress."""
    kind = request.args.get("kind", "").strip() or None
    if kind is not None and kind not in KINDS:
        flash(f"Unknown kind {clipped(kind)!r}: showing every kind.", "warning")
        kind = None
    try:
        page = ops().workflows(kind=kind, limit=50, after=request.args.get("after") or None)
    except ConfigurationError as exc:  # a cursor that was edited by hand
        flash(f"{exc}; showing the first page.", "warning")
        page = ops().workflows(kind=kind, limit=50)
    return render_template("console/workflows.html", page=page, kind=kind, kinds=KINDS)


@console.get("/workflows/<workflow_id>")
@requires("viewer")
def workflow_detail(workflow_id: str) -> Any:
    """One workflow: its members in order with their states, a chord's callback."""
    found = ops().workflow(workflow_id)
    if found is None:
        abort(
            404,
            description=(
                f"No workflow {clipped(workflow_id)!r} in the history: chains, groups and "
                "chords appear here once the history recorder has written them."
            ),
        )
    return render_template("console/workflow.html", workflow=found, position=chain_position(found))


@console.get("/queues")
@requires("viewer")
def queues() -> Any:
    """Per queue: ready, unacked, consumers, dead letters, rates; purge."""
    return render_template("console/queues.html", reading=ops().status())


@console.get("/queues/<name>/dead")
@requires("viewer")
def dead_letters(name: str) -> Any:
    """The dead letters of one queue with reason, error, attempts and arguments."""
    letters = ops().dead_letters(queue_name(name), limit=200)
    return render_template("console/dead_letters.html", queue=name, letters=letters)


@console.get("/queues/<name>/dead/<task_id>")
@requires("viewer")
def dead_letter(name: str, task_id: str) -> Any:
    """One dead letter in full: headers, traceback, body."""
    letters = ops().dead_letters(queue_name(name), limit=1000)
    letter = next((d for d in letters if d["id"] == task_id), None)
    if letter is None:
        abort(404, description=f"No dead letter {task_id} in the first 1,000 of {name}.dead.")
    return render_template("console/dead_letter.html", queue=name, letter=letter)


@console.get("/workers")
@requires("viewer")
def workers() -> Any:
    """Every worker process: identity, queues, concurrency, active tasks, counts, heartbeat."""
    beats = ops().workers()
    hosts: dict[str, int] = {}
    for beat in beats:
        if beat["alive"]:
            host = beat["hostname"].rpartition("@")[2]
            hosts[host] = hosts.get(host, 0) + 1
    return render_template("console/workers.html", workers=beats, hosts=hosts)


@console.get("/schedules")
@requires("viewer")
def schedules() -> Any:
    """Periodic schedules: last and next fire, paused; pause, resume, run now."""
    return render_template("console/schedules.html", schedules=ops().schedules())


@console.get("/rate-limits")
@requires("viewer")
def rate_limits() -> Any:
    """Global rate limits in force; change or reset them live."""
    targets = sorted(task_app().tasks) + [f"queue:{q}" for q in ops().known_queues()]
    return render_template(
        "console/rate_limits.html",
        limits=ops().rate_limits(),
        declared=ops().declared_rate_limits(),
        targets=targets,
    )


@console.get("/performance")
@requires("viewer")
def performance() -> Any:
    """Per task over a window: count, failure rate, run time and queue wait percentiles."""
    name, since = window(request.args.get("window"))
    return render_template(
        "console/performance.html",
        rows=ops().performance(since=since),
        window=name,
        since=since,
    )
