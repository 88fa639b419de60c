"""Workflows: signatures, chains and groups (Celery's canvas) on confirmed publishing.

A ``Signature`` is a task call not sent yet: a task name, arguments and options
(``add.s(2)``; ``.si()`` for one that ignores the previous result). A chain runs
its steps one after another, each step's result prepended to the next step's
arguments. Every step's id is chosen when the chain is sent, and the steps still
to run travel in the message's ``x-taskcore-chain`` header. When a step
succeeds, the worker publishes the next one and waits for the broker's confirm
before it acks the step, so a crash between the two repeats the hand-over,
never drops the rest. A step that ends in a dead-letter queue stops the chain:
the steps after it are marked FAILURE, naming the step that failed. A group
sends its members at once; its result lists theirs in order. A chord is a group
and a callback that gets the list of the members' results: each member's
``x-taskcore-chord`` header names the chord, its members and the callback; when
a member succeeds, its worker adds it to the chord's set in Redis, and the
member that completes the set claims the callback (one Lua script), publishes
it and waits for the confirm before acking. A redelivered member counts once
(a set), and only the claimer may publish, again after a crash, until the
callback's confirm is recorded.

Every chain, group and chord has an id of its own: each of its messages carries
it (``x-taskcore-workflow``), so its workers' events tie the member tasks to it,
and its shape (kind and members in order) goes to the history recorder in the
same confirmed publish as its first messages. The console and the API show it
as one unit from the history.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, EncodeError
from .message import TaskMessage, new_task_id

if TYPE_CHECKING:
    from .app import TaskApp
    from .task import TaskHandle

#: The steps of a chain still to run after this message's task: a JSON list of
#: ``{"id", "task", "queue", "args", "kwargs", "immutable", "priority"}``.
H_CHAIN = "x-taskcore-chain"
#: What to send if this message's task ends in a dead-letter queue (a step, whose
#: first argument will be the failed task's id).
H_LINK_ERROR = "x-taskcore-link-error"
#: The chord a group member belongs to: ``{"id", "members": [ids], "body": step}``.
H_CHORD = "x-taskcore-chord"
#: The id of the chain, group or chord a message belongs to.
H_WORKFLOW = "x-taskcore-workflow"
#: The state of the event that records a workflow's shape for the history.
WORKFLOW_EVENT = "WORKFLOW"
#: Options a signature keeps for its call.
SIGNATURE_OPTIONS = {"queue", "priority", "countdown"}


@dataclass(frozen=True)
class Signature:
    """A task call to be sent later, alone, in a chain or in a group."""

    task: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    immutable: bool = False
    app: TaskApp | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        unknown = set(self.options) - SIGNATURE_OPTIONS
        if unknown:
            raise ConfigurationError(
                f"{self.task}: signature option(s) {', '.join(sorted(unknown))} not supported; "
                f"use {', '.join(sorted(SIGNATURE_OPTIONS))}"
            )

    def set(self, **options: Any) -> Signature:
        """The same call with these options (queue, priority, countdown)."""
        return replace(self, options={**self.options, **options})

    def delay(self, *args: Any, **kwargs: Any) -> TaskHandle:
        """Send the call; ``args`` go before the signature's own (Celery's partials)."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> TaskHandle:
        """Send the call with extra arguments (before the signature's) and options."""
        call_args = self.args if self.immutable else (*args, *self.args)
        sent = {**self.options, **options}
        return _app_of(self).send_task(
            self.task, call_args, {**self.kwargs, **(kwargs or {})}, **sent
        )

    def __or__(self, other: Signature | Chain) -> Chain:
        return Chain(self, other)


class Chain:
    """Steps run one after another; ``apply_async()`` returns the last step's handle."""

    def __init__(self, *steps: Signature | Chain) -> None:
        flat: list[Signature] = []
        for step in steps:
            flat.extend(step.steps if isinstance(step, Chain) else [step])
        if not flat:
            raise ConfigurationError("a chain needs at least one step")
        for step in flat:
            if not isinstance(step, Signature):
                raise ConfigurationError(
                    f"chain steps are signatures (task.s(...) or task.si(...)), not {step!r}"
                )
        self.steps = flat

    def __or__(self, other: Signature | Chain) -> Chain:
        return Chain(self, other)

    def delay(self, *args: Any, **kwargs: Any) -> TaskHandle:
        return self.apply_async(args, kwargs)

    def apply_async(
        self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
    ) -> TaskHandle:
        """Send the first step (with ``args`` before its own) carrying the rest; every
        step's arguments are checked now, the previous result standing in for the first."""
        from .task import TaskHandle

        first, *rest = self.steps
        app = _app_of(first)
        workflow_id = new_task_id()
        ids = [new_task_id() for _ in self.steps]
        call_args = first.args if first.immutable else (*args, *first.args)
        message = app.message(
            first.task,
            call_args,
            {**first.kwargs, **(kwargs or {})},
            queue=first.options.get("queue"),
            task_id=ids[0],
            priority=first.options.get("priority"),
        )
        message.headers[H_WORKFLOW] = workflow_id
        later = [
            _step(app, step, step_id, workflow_id)
            for step, step_id in zip(rest, ids[1:], strict=True)
        ]
        if later:
            try:
                message.headers[H_CHAIN] = json.dumps(later, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise EncodeError(f"a chain step's arguments are not JSON: {exc}") from None
        shape = workflow_event(workflow_id, "chain", [_member(message), *later])
        app.publish([(message, float(first.options.get("countdown") or 0.0))], events=[shape])
        last = later[-1] if later else {"task": message.task, "queue": message.queue}
        return TaskHandle(ids[-1], last["task"], last["queue"], app, workflow_id=workflow_id)


class Group:
    """Tasks sent together, pipelined; ``apply_async()`` returns a ``GroupResult``."""

    def __init__(self, *members: Signature | Iterable[Signature]) -> None:
        if len(members) == 1 and not isinstance(members[0], Signature):
            members = tuple(members[0])
        self.members = [m for m in members if isinstance(m, Signature)]
        if len(self.members) != len(members):
            raise ConfigurationError("group members are signatures (task.s(...))")

    def delay(self, *args: Any, **kwargs: Any) -> GroupResult:
        return self.apply_async(args, kwargs)

    def apply_async(
        self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
    ) -> GroupResult:
        """Send every member (``args`` before each one's own) under one wait for confirms."""
        from .task import TaskHandle

        if not self.members:
            return GroupResult([])
        app = _app_of(self.members[0])
        workflow_id = new_task_id()
        items = []
        for member in self.members:
            message = app.message(
                member.task,
                member.args if member.immutable else (*args, *member.args),
                {**member.kwargs, **(kwargs or {})},
                queue=member.options.get("queue"),
                priority=member.options.get("priority"),
            )
            message.headers[H_WORKFLOW] = workflow_id
            items.append((message, float(member.options.get("countdown") or 0.0)))
        app.publish(
            items, events=[workflow_event(workflow_id, "group", [_member(m) for m, _ in items])]
        )
        return GroupResult(
            [TaskHandle(m.id, m.task, m.queue, app, workflow_id=workflow_id) for m, _ in items],
            workflow_id,
        )


class GroupResult:
    """The handles of a group's members, in the order they were given; ``id`` is the
    group's workflow id (None for an empty group, which sends nothing)."""

    def __init__(self, results: list[TaskHandle], id: str | None = None) -> None:
        self.results = results
        self.id = id

    def __len__(self) -> int:
        return len(self.results)

    def ready(self) -> bool:
        return all(handle.ready() for handle in self.results)

    def completed_count(self) -> int:
        """How many members have finished (succeeded, failed, dead or revoked)."""
        return sum(handle.ready() for handle in self.results)

    def get(self, timeout: float | None = None) -> list[Any]:
        """Every member's result in order; TaskFailed for the first that failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        values = []
        for handle in self.results:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            values.append(handle.get(timeout=left))
        return values


class Chord:
    """A group and a callback that runs once with the list of the members' results."""

    def __init__(self, header: Group | Iterable[Signature], body: Signature) -> None:
        self.header = header if isinstance(header, Group) else Group(header)
        if not isinstance(body, Signature):
            raise ConfigurationError("a chord's callback is a signature (task.s(...))")
        self.body = body

    def delay(self, *args: Any, **kwargs: Any) -> TaskHandle:
        return self.apply_async(args, kwargs)

    def apply_async(
        self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
    ) -> TaskHandle:
        """Send every member (``args`` before each one's own); returns the callback's handle."""
        from .task import TaskHandle

        members = self.header.members
        if not members:
            raise ConfigurationError("a chord needs at least one member")
        app = _app_of(self.body)
        app.results.require_enabled()  # the callback collects the members' stored results
        chord_id = new_task_id()  # also the workflow's id
        body = _step(app, self.body, new_task_id(), chord_id)
        messages = [
            app.message(
                member.task,
                member.args if member.immutable else (*args, *member.args),
                {**member.kwargs, **(kwargs or {})},
                queue=member.options.get("queue"),
                priority=member.options.get("priority"),
            )
            for member in members
        ]
        chord_header = json.dumps(
            {"id": chord_id, "members": [m.id for m in messages], "body": body}
        )
        for message in messages:
            message.headers[H_CHORD] = chord_header
            message.headers[H_WORKFLOW] = chord_id
        shape = workflow_event(chord_id, "chord", [_member(m) for m in messages], callback=body)
        app.publish([(message, 0.0) for message in messages], events=[shape])
        return TaskHandle(body["id"], body["task"], body["queue"], app, workflow_id=chord_id)


#: KEYS: the chord's done set, its claim, its published mark; ARGV: member id, member
#: count, seconds to keep them. 1 when this member is the one to publish the callback.
CLAIM_CHORD = """
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
if redis.call('SCARD', KEYS[1]) < tonumber(ARGV[2]) then return 0 end
local holder = redis.call('GET', KEYS[2])
if not holder then
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[3])
  return 1
end
if holder == ARGV[1] then return 1 end
return 0
"""


def chord_keys(namespace: str, chord_id: str) -> list[str]:
    """The Redis keys of one chord: done members, the claim, the published mark."""
    base = f"{namespace}:chord:{chord_id}"
    return [f"{base}:done", f"{base}:claim", f"{base}:published"]


def chord_body(chord: Mapping[str, Any], results: list[Any]) -> TaskMessage:
    """The callback message of a chord (its parsed header), given its members' results."""
    return _message(chord["body"], results)


def chain(*steps: Signature | Chain) -> Chain:
    """``chain(a.s(1), b.s(), c.s())``: a's result goes to b, b's to c."""
    return Chain(*steps)


def group(*members: Signature | Iterable[Signature]) -> Group:
    """``group(a.s(1), a.s(2))`` or ``group(a.s(i) for i in range(10))``."""
    return Group(*members)


def chord(header: Group | Iterable[Signature], body: Signature) -> Chord:
    """``chord(group(a.s(i) for i in ...), total.s())``: total gets the list of results."""
    return Chord(header, body)


def link_headers(
    app: TaskApp, link: Signature | None, link_error: Signature | None
) -> dict[str, str]:
    """Headers for ``apply_async(link=..., link_error=...)``: a link is a one-step chain."""
    headers = {}
    for name, signature in ((H_CHAIN, link), (H_LINK_ERROR, link_error)):
        if signature is None:
            continue
        if not isinstance(signature, Signature):
            raise ConfigurationError(
                f"{name.removeprefix('x-taskcore-').replace('-', '_')} takes one signature "
                f"(task.s(...)), not {signature!r}; for several steps use chain()"
            )
        step = _step(app, signature, new_task_id())
        headers[name] = json.dumps([step] if name == H_CHAIN else step)
    return headers


def error_callback(headers: Mapping[str, Any], task_id: str) -> TaskMessage | None:
    """The ``link_error`` message for a task that was dead-lettered, if it has one."""
    raw = headers.get(H_LINK_ERROR)
    return _message(json.loads(raw), task_id) if raw else None


def next_step(call: TaskMessage, result: Any) -> TaskMessage | None:
    """The message of the chain step after ``call``, given its result; None if none."""
    raw = call.headers.get(H_CHAIN)
    if not raw:
        return None
    step, *rest = json.loads(raw)
    message = _message(step, result)
    if rest:
        message.headers[H_CHAIN] = json.dumps(rest)
    return message


def steps_after(headers: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The steps a message's headers say are still to run after it: a chain's later
    steps, a chord's callback (marked failed when the message is dead-lettered)."""
    chain_steps = json.loads(headers[H_CHAIN]) if headers.get(H_CHAIN) else []
    chord_steps = [json.loads(headers[H_CHORD])["body"]] if headers.get(H_CHORD) else []
    return chain_steps + chord_steps


def workflow_event(
    workflow_id: str,
    kind: str,
    members: Sequence[Mapping[str, Any]],
    callback: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The history event that records a workflow's shape: its kind and its members
    (``{"id", "task", "queue"}``, a chain's in order), and a chord's callback."""
    event = {
        "task_id": workflow_id,
        "state": WORKFLOW_EVENT,
        "at": time.time(),
        "kind": kind,
        "members": [_member(m) for m in members],
    }
    if callback is not None:
        event["callback"] = _member(callback)
    return event


def workflow_fields(workflow_id: str | None) -> dict[str, str]:
    """The state-change fields that tie a task to its workflow (none for a lone task)."""
    return {"workflow_id": workflow_id} if workflow_id else {}


def _member(member: TaskMessage | Mapping[str, Any]) -> dict[str, str]:
    if isinstance(member, TaskMessage):
        return {"id": member.id, "task": member.task, "queue": member.queue}
    return {"id": member["id"], "task": member["task"], "queue": member["queue"]}


def _message(step: Mapping[str, Any], result: Any) -> TaskMessage:
    message = TaskMessage(
        id=step["id"],
        task=step["task"],
        queue=step["queue"],
        args=list(step["args"]) if step["immutable"] else [result, *step["args"]],
        kwargs=dict(step["kwargs"]),
        priority=step.get("priority"),
    )
    if step.get("workflow"):
        message.headers[H_WORKFLOW] = step["workflow"]
    return message


def _step(
    app: TaskApp, step: Signature, step_id: str, workflow_id: str | None = None
) -> dict[str, Any]:
    task = app.tasks.get(step.task)
    if task is not None:  # the previous result stands in for the first argument
        task.check_arguments(step.args if step.immutable else (None, *step.args), step.kwargs)
    if "countdown" in step.options:
        raise ConfigurationError(f"{step.task}: a countdown is only for a chain's first step")
    return {
        "id": step_id,
        "task": step.task,
        "queue": app.queue_for(task or step.task, step.options.get("queue")),
        "args": list(step.args),
        "kwargs": dict(step.kwargs),
        "immutable": step.immutable,
        "priority": step.options.get("priority"),
        "workflow": workflow_id,
    }


def _app_of(signature: Signature) -> TaskApp:
    if signature.app is not None:
        return signature.app
    from .shared import current_app

    return current_app()
