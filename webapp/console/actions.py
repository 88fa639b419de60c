"""The console's actions (POST): what an operator does. Each is audited, then redirects."""

from __future__ import annotations

import json
from typing import Any

from flask import abort, flash, redirect, request, url_for
from werkzeug.wrappers import Response

from taskcore import ConfigurationError, EncodeError, QueueNotFound

from ..api.exposed import is_exposed
from ..auth.access import audit, requires
from . import console, ops, queue_name, task_app
from .present import recorded_call


def _back(endpoint: str, **values: Any) -> Response:
    return redirect(url_for(endpoint, **values))


@console.post("/tasks/send")
@requires("operator")
def send_task() -> Response:
    """Queue a task the API may run, with JSON arguments typed into the form."""
    name = request.form.get("task", "")
    if not is_exposed(name):
        abort(404, description=f"No task named {name!r} may be sent from outside.")
    try:
        args = _json_field("args", "[]")
        kwargs = _json_field("kwargs", "{}")
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise ValueError("arguments must be a JSON list and keyword arguments a JSON object")
        handle = task_app().send_task(name, args, kwargs)
    except (ValueError, TypeError, EncodeError, ConfigurationError) as exc:
        flash(f"Not sent: {exc}", "error")
        return _back("console.tasks")
    audit("task.send", handle.id, name)
    flash(f"Queued {name} as {handle.id}.", "success")
    return _back("console.task_detail", task_id=handle.id)


def _json_field(name: str, empty: str) -> Any:
    """The form field ``name`` read as JSON (``empty`` if blank); ValueError says why not."""
    try:
        return json.loads(request.form.get(name) or empty)
    except RecursionError:  # "[[[[..." thousands deep: not a ValueError, it was a 500
        raise ValueError(f"the {name} are nested too deeply") from None


@console.post("/tasks/<task_id>/cancel")
@requires("operator")
def cancel_task(task_id: str) -> Response:
    """Revoke a task; with ``terminate`` stop it even if it is running."""
    terminate = request.form.get("terminate") == "1"
    state = ops().cancel(task_id, terminate=terminate)
    audit("task.cancel", task_id, "terminate" if terminate else "revoke")
    flash(f"Task {task_id} revoked{' (terminate)' if terminate else ''}: now {state}.", "success")
    return _back("console.task_detail", task_id=task_id)


@console.post("/tasks/<task_id>/rerun")
@requires("operator")
def rerun_task(task_id: str) -> Response:
    """Queue the same task again with the same arguments, as a new task id."""
    status = task_app().status(task_id)
    run = ops().task_run(task_id) or {}
    name = status.task or run.get("task")
    call = recorded_call(status.extra.get("args") or run.get("args"))
    if not name or call is None:
        abort(409, description="This task's arguments were not recorded whole: it cannot be rerun.")
    try:
        handle = task_app().send_task(name, call["args"], call["kwargs"])
    except (TypeError, EncodeError, ConfigurationError) as exc:
        abort(409, description=f"Cannot run {name} again: {exc}")
    audit("task.rerun", task_id, f"as {handle.id}")
    flash(f"Queued {name} again as {handle.id}.", "success")
    return _back("console.task_detail", task_id=handle.id)


@console.post("/queues/<name>/purge")
@requires("operator")
def purge_queue(name: str) -> Response:
    """Remove every ready message of a queue; the queue's name must be typed to confirm."""
    if request.form.get("confirm", "").strip() != name:
        flash(f"Type the queue's name, {name}, to confirm the purge. Nothing was removed.", "error")
        return _back("console.queues")
    removed = ops().purge(queue_name(name))
    audit("queue.purge", name, f"{removed} messages")
    flash(f"Removed {removed} message(s) from {name}.", "success")
    return _back("console.queues")


@console.post("/queues/<name>/dead/replay")
@requires("operator")
def replay_dead_letters(name: str) -> Response:
    """Replay the selected dead letters (``ids``) or all of them (``all=1``)."""
    everything = request.form.get("all") == "1"
    ids = request.form.getlist("ids")
    if not everything and not ids:
        flash("Select the dead letters to replay, or replay all.", "warning")
        return _back("console.dead_letters", name=name)
    try:
        moved, _ = ops().replay(queue_name(name), ids=None if everything else ids)
    except QueueNotFound as exc:
        abort(404, description=str(exc))
    audit("dead_letters.replay", name, "all" if everything else ", ".join(ids))
    flash(f"Replayed {moved} dead letter(s) to {name}.", "success")
    return _back("console.dead_letters", name=name)


@console.post("/queues/<name>/dead/discard")
@requires("operator")
def discard_dead_letters(name: str) -> Response:
    """Delete the selected dead letters."""
    ids = request.form.getlist("ids")
    if not ids:
        flash("Select the dead letters to discard.", "warning")
        return _back("console.dead_letters", name=name)
    try:
        removed = ops().discard(queue_name(name), ids)
    except QueueNotFound as exc:
        abort(404, description=str(exc))
    audit("dead_letters.discard", name, ", ".join(ids))
    flash(f"Discarded {removed} dead letter(s) from {name}.dead.", "success")
    return _back("console.dead_letters", name=name)


_SCHEDULE_ACTIONS = {"pause": "paused", "resume": "resumed", "run": "queued to run now"}


@console.post("/schedules/<name>/<action>")
@requires("operator")
def schedule_action(name: str, action: str) -> Response:
    """Pause, resume or run a schedule now."""
    if action not in _SCHEDULE_ACTIONS:
        abort(404)
    try:
        if action == "pause":
            ops().pause_schedule(name)
        elif action == "resume":
            ops().resume_schedule(name)
        else:
            ops().run_schedule(name)
    except ConfigurationError as exc:
        abort(404, description=str(exc))
    audit(f"schedule.{action}", name)
    flash(f"Schedule {name} {_SCHEDULE_ACTIONS[action]}.", "success")
    return _back("console.schedules")


@console.post("/rate-limits")
@requires("operator")
def set_rate_limit() -> Response:
    """Set (``rate``) or reset (``reset=1``) the limit named ``name``."""
    name = request.form.get("name", "").strip()
    rate = request.form.get("rate", "").strip()
    reset = request.form.get("reset") == "1"
    if not name or not (rate or reset):
        flash("Give a task or queue:<name> and a rate such as 20/m.", "error")
        return _back("console.rate_limits")
    try:
        ops().set_rate_limit(name, None if reset else rate)
    except ConfigurationError as exc:
        flash(str(exc), "error")
        return _back("console.rate_limits")
    audit("rate_limit.reset" if reset else "rate_limit.set", name, "" if reset else rate)
    flash(f"{name}: {'back to the declared limit' if reset else rate}.", "success")
    return _back("console.rate_limits")
