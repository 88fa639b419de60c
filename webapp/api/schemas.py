"""marshmallow schemas of every body, query and response of /api/v1.

The views load requests and dump responses with these, and ``openapi.py`` builds the
OpenAPI document from the very same objects, so the document cannot drift from the code.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from marshmallow import (
    Schema,
    ValidationError,
    fields,
    validate,
    validates,
    validates_schema,
)

from taskcore.errors import ConfigurationError
from taskcore.ratelimit import parse_rate
from taskcore.states import State
from taskcore.workflow_history import KINDS as WORKFLOW_KINDS

from .fields import FullMatch, JSONBoolean, JSONInteger, JSONNumber, JSONText, Moment, Timestamp

#: Queue names as taskcore accepts them (``taskcore.topology``).
QUEUE_PATTERN = r"^(?!.*\.dead$)[A-Za-z0-9_][A-Za-z0-9_.:-]{0,200}$"
QUEUE_ERROR = (
    "invalid queue name: use letters, digits and _ . : - (not starting with . or -, "
    "not ending with .dead)"
)
STATES = [s.value for s in State]
#: Task ids, schedule and rate-limit names in a path: no slash, no NUL.
ID_PATTERN = r"^[^/\x00]{1,200}$"
#: Text for a database query: no NUL (PostgreSQL refuses it).
TEXT_PATTERN = r"^[^\x00]*$"
NO_NUL = "must not contain NUL characters"
#: Longest delay a submission may ask for (the broker's delay cascade holds about 77 days).
MAX_COUNTDOWN = 60 * 86400
MAX_IDS = 1000
#: A rate limit as taskcore parses it (``taskcore.ratelimit``): a count above 0 per unit.
RATE_PATTERN = (
    r"^ *(?:[0-9]*[1-9][0-9]*(?:\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*) */ *"
    r"(?:s|sec|second|m|min|minute|h|hour) *$"
)
RATE_ERROR = "invalid rate limit: use '<count>/<s|m|h>', e.g. '10/m' or '5/s'"


def _nullable_string(**kwargs: Any) -> fields.String:
    return fields.String(allow_none=True, **kwargs)


def _task_id() -> fields.String:
    """A task id in a body: 1 to 200 characters, no NUL (they go to the audit log)."""
    checks = [validate.Length(min=1, max=200), FullMatch(TEXT_PATTERN, error=NO_NUL)]
    return fields.String(validate=checks)


def _filter(max_length: int, **kwargs: Any) -> fields.String:
    """An optional query filter: 1 to ``max_length`` characters, no NUL."""
    checks = [
        validate.Length(min=1, max=max_length),
        FullMatch(TEXT_PATTERN, error=NO_NUL),
    ]
    return fields.String(load_default=None, validate=checks, **kwargs)


# -- errors -----------------------------------------------------------------------


class ErrorBodySchema(Schema):
    message = fields.String(required=True)
    field_errors = fields.Dict(
        keys=fields.String(),
        values=fields.Raw(),
        data_key="fields",
        metadata={"description": "what is wrong, by field"},
    )


class ErrorSchema(Schema):
    """Every error: ``{"error": {"message": ..., "fields": {...}}}``."""

    error = fields.Nested(ErrorBodySchema, required=True)


# -- tasks ------------------------------------------------------------------------


class SubmitTaskSchema(Schema):
    """Body of ``POST /tasks``: which task, its arguments and how to send it."""

    task = fields.String(required=True, validate=validate.Length(min=1, max=200))
    args = fields.List(fields.Raw(allow_none=True), load_default=list)
    kwargs = fields.Dict(
        keys=fields.String(), values=fields.Raw(allow_none=True), load_default=dict
    )
    countdown = JSONNumber(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=0, max=MAX_COUNTDOWN),
        metadata={"description": "seconds to wait before the task runs"},
    )
    queue = _nullable_string(
        load_default=None, validate=FullMatch(QUEUE_PATTERN, error=QUEUE_ERROR)
    )
    priority = JSONInteger(
        load_default=None, allow_none=True, validate=validate.Range(min=0, max=9)
    )
    idempotency_key = _nullable_string(
        load_default=None,
        validate=validate.Length(min=1, max=200),
        metadata={"description": "a second call with the same key is not queued again"},
    )


class TaskRefSchema(Schema):
    """A task that was queued."""

    id = fields.String(required=True)
    task = fields.String(required=True)
    queue = fields.String(required=True)


class TaskErrorSchema(Schema):
    type = _nullable_string()
    message = _nullable_string()
    traceback = _nullable_string()


class ArgumentsMixin(Schema):
    args = fields.List(fields.Raw(), allow_none=True)
    kwargs = fields.Dict(keys=fields.String(), values=fields.Raw(), allow_none=True)
    arguments_truncated = fields.Boolean(
        metadata={"description": "the arguments were too long to keep: see arguments_preview"}
    )
    arguments_preview = _nullable_string()


class TaskEventSchema(Schema):
    state = fields.String(required=True)
    worker = _nullable_string()
    at = Timestamp(allow_none=True)
    data = fields.Dict(keys=fields.String(), values=fields.Raw(), allow_none=True)


class TaskStatusSchema(ArgumentsMixin):
    """A task's state: from Redis while it is kept there, else from the history database."""

    id = fields.String(required=True)
    state = fields.String(required=True, validate=validate.OneOf(STATES))
    source = fields.String(
        validate=validate.OneOf(["redis", "history", "none"]),
        metadata={"description": "where the answer comes from (none: nothing is known)"},
    )
    task = _nullable_string()
    queue = _nullable_string()
    worker = _nullable_string()
    attempts = fields.Integer(allow_none=True)
    result = fields.Raw(allow_none=True)
    error = fields.Nested(TaskErrorSchema, allow_none=True)
    progress = fields.Dict(keys=fields.String(), values=fields.Raw(), allow_none=True)
    runtime = fields.Float(allow_none=True, metadata={"description": "seconds"})
    queue_wait = fields.Float(allow_none=True, metadata={"description": "seconds"})
    retry_in = fields.Float(allow_none=True, metadata={"description": "seconds"})
    started_at = Timestamp(allow_none=True)
    finished_at = Timestamp(allow_none=True)
    updated_at = Timestamp(allow_none=True)
    times = fields.Dict(
        keys=fields.String(),
        values=Timestamp(),
        metadata={"description": "when the task entered each state (from Redis)"},
    )
    events = fields.List(fields.Nested(TaskEventSchema))
    workflow_id = _nullable_string(
        metadata={"description": "the chain, group or chord it belongs to (GET /workflows/<id>)"}
    )


class CancelSchema(Schema):
    """Body of ``POST /tasks/<id>/cancel`` (may be empty)."""

    terminate = JSONBoolean(
        load_default=False, metadata={"description": "also stop it if it is running"}
    )


class CancelResultSchema(Schema):
    id = fields.String(required=True)
    revoked = fields.Boolean(required=True)
    state = fields.String(
        validate=validate.OneOf(STATES),
        metadata={"description": "absent when the app stores no task states"},
    )


# -- history and performance ------------------------------------------------------


class HistoryQuerySchema(Schema):
    """Query of ``GET /history``: filters, page size and the ``after`` cursor."""

    state = fields.String(load_default=None, validate=validate.OneOf(STATES))
    task = _filter(300)
    queue = _filter(200)
    worker = _filter(300)
    since = Moment(load_default=None)
    until = Moment(load_default=None)
    search = _filter(200, metadata={"description": "text in the task id, name, arguments or error"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=1000))
    after = _filter(500, metadata={"description": "the 'next' cursor of the previous page"})


class HistoryRunSchema(ArgumentsMixin):
    id = fields.String(required=True)
    task = _nullable_string()
    queue = _nullable_string()
    state = fields.String(required=True)
    worker = _nullable_string()
    attempts = fields.Integer(allow_none=True)
    result = JSONText(allow_none=True)
    error = fields.Nested(TaskErrorSchema, allow_none=True)
    runtime = fields.Float(allow_none=True)
    queue_wait = fields.Float(allow_none=True)
    started_at = Timestamp(allow_none=True)
    finished_at = Timestamp(allow_none=True)
    updated_at = Timestamp(allow_none=True)
    workflow_id = _nullable_string()


class HistoryPageSchema(Schema):
    runs = fields.List(fields.Nested(HistoryRunSchema), required=True)
    next = _nullable_string(
        required=True, metadata={"description": "pass as 'after' for the next page"}
    )


class WorkflowQuerySchema(Schema):
    """Query of ``GET /workflows``: a kind, page size and the ``after`` cursor."""

    kind = fields.String(load_default=None, validate=validate.OneOf(WORKFLOW_KINDS))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=1000))
    after = _filter(500, metadata={"description": "the 'next' cursor of the previous page"})


class WorkflowSummarySchema(Schema):
    workflow_id = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(WORKFLOW_KINDS))
    state = fields.String(
        required=True,
        metadata={"description": "FAILURE once a task failed, SUCCESS once all succeeded"},
    )
    done = fields.Integer(required=True, metadata={"description": "tasks finished"})
    total = fields.Integer(required=True, metadata={"description": "tasks, a callback included"})
    created_at = Timestamp(required=True)


class WorkflowListedSchema(WorkflowSummarySchema):
    tasks = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "a chain's steps in order; a group's task names, once each"},
    )


class WorkflowPageSchema(Schema):
    workflows = fields.List(fields.Nested(WorkflowListedSchema), required=True)
    next = _nullable_string(
        required=True, metadata={"description": "pass as 'after' for the next page"}
    )


class WorkflowMemberSchema(Schema):
    id = fields.String(required=True)
    task = fields.String(required=True)
    queue = fields.String(required=True)
    state = fields.String(required=True, validate=validate.OneOf(STATES))
    worker = _nullable_string()
    attempts = fields.Integer(allow_none=True)
    runtime = fields.Float(allow_none=True, metadata={"description": "seconds"})
    started_at = Timestamp(allow_none=True)
    finished_at = Timestamp(allow_none=True)
    error = fields.Nested(TaskErrorSchema, allow_none=True)


class WorkflowSchema(WorkflowSummarySchema):
    members = fields.List(
        fields.Nested(WorkflowMemberSchema),
        required=True,
        metadata={"description": "a chain's steps in order; a group's or chord's members"},
    )
    callback = fields.Nested(
        WorkflowMemberSchema, allow_none=True, metadata={"description": "a chord's callback"}
    )


class PerformanceQuerySchema(Schema):
    since = Moment(
        load_default=lambda: datetime.now(UTC) - timedelta(hours=1), metadata={"default": "1h"}
    )
    task = _filter(300)


class PerformanceRowSchema(Schema):
    task = fields.String(required=True)
    count = fields.Integer(required=True)
    failed = fields.Integer(required=True)
    failure_rate = fields.Float(allow_none=True)
    runtime_p50 = fields.Float(allow_none=True)
    runtime_p95 = fields.Float(allow_none=True)
    runtime_p99 = fields.Float(allow_none=True)
    wait_p50 = fields.Float(allow_none=True)
    wait_p95 = fields.Float(allow_none=True)
    wait_p99 = fields.Float(allow_none=True)


class PerformanceSchema(Schema):
    since = Timestamp(required=True)
    tasks = fields.List(fields.Nested(PerformanceRowSchema), required=True)


# -- queues and dead letters ------------------------------------------------------


class QueueSchema(Schema):
    queue = fields.String(required=True)
    ready = fields.Integer(allow_none=True)
    unacked = fields.Integer(allow_none=True)
    consumers = fields.Integer(allow_none=True)
    dead = fields.Integer(allow_none=True)
    in_per_s = fields.Float(allow_none=True)
    out_per_s = fields.Float(allow_none=True)
    failure_rate = fields.Float(allow_none=True)


class QueuesSchema(Schema):
    queues = fields.List(fields.Nested(QueueSchema), required=True)
    at = Timestamp(required=True)


class PurgeResultSchema(Schema):
    queue = fields.String(required=True)
    purged = fields.Integer(required=True)


class DeadLettersQuerySchema(Schema):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=MAX_IDS))


class DeadLetterSchema(ArgumentsMixin):
    id = _nullable_string(required=True)
    task = _nullable_string()
    reason = _nullable_string()
    error = _nullable_string()
    attempts = fields.Integer(allow_none=True)
    dead_at = Timestamp(allow_none=True)
    body = _nullable_string(metadata={"description": "the raw body when it is not JSON"})
    headers = fields.Dict(keys=fields.String(), values=fields.Raw())


class DeadLettersSchema(Schema):
    queue = fields.String(required=True)
    dead_letters = fields.List(fields.Nested(DeadLetterSchema), required=True)


_EVERYTHING = {"required": ["all"], "properties": {"all": {"enum": [True]}}}
_CHOSEN = {"anyOf": [{"required": ["ids"]}, {"required": ["task"]}]}


class ReplaySchema(Schema):
    """Body of ``POST .../dead-letters/replay``: ``ids`` and/or a ``task`` name, or
    ``all: true`` alone."""

    #: The rule of ``_one_choice``, for the OpenAPI document.
    openapi_extra: ClassVar[dict[str, Any]] = {
        "oneOf": [{**_EVERYTHING, "not": _CHOSEN}, {**_CHOSEN, "not": _EVERYTHING}]
    }

    ids = fields.List(
        _task_id(),
        load_default=None,
        allow_none=False,
        validate=validate.Length(min=1, max=MAX_IDS),
    )
    task = fields.String(
        load_default=None,
        allow_none=False,
        validate=[validate.Length(min=1, max=300), FullMatch(TEXT_PATTERN, error=NO_NUL)],
    )
    all = JSONBoolean(load_default=False)

    @validates_schema
    def _one_choice(self, data: dict[str, Any], **kwargs: Any) -> None:
        chosen = data.get("ids") is not None or data.get("task") is not None
        if data.get("all") and chosen:
            raise ValidationError("send either all, or ids and/or task", "all")
        if not data.get("all") and not chosen:
            raise ValidationError("say which to replay: ids, task or all: true", "ids")


class ReplayResultSchema(Schema):
    queue = fields.String(required=True)
    replayed = fields.Integer(required=True)
    left = fields.Integer(required=True, metadata={"description": "dead letters not chosen"})


class DiscardSchema(Schema):
    """Body of ``POST .../dead-letters/discard``."""

    ids = fields.List(
        _task_id(),
        required=True,
        validate=validate.Length(min=1, max=MAX_IDS),
    )


class DiscardResultSchema(Schema):
    queue = fields.String(required=True)
    discarded = fields.Integer(required=True)


# -- workers, schedules, rate limits, health --------------------------------------


class WorkerSchema(Schema):
    hostname = fields.String(required=True)
    pid = fields.Integer(allow_none=True)
    alive = fields.Boolean(required=True)
    queues = fields.List(fields.String())
    concurrency = fields.Integer(allow_none=True)
    running = fields.Integer(allow_none=True)
    held = fields.Integer(allow_none=True)
    held_by_queue = fields.Dict(keys=fields.String(), values=fields.Integer())
    processed = fields.Integer(allow_none=True)
    counts = fields.Dict(
        keys=fields.String(),
        values=fields.Dict(keys=fields.String(), values=fields.Integer()),
        metadata={"description": "tasks finished by queue and state"},
    )
    started = Timestamp(allow_none=True)
    last_heartbeat = Timestamp(allow_none=True)
    uptime = fields.Float(allow_none=True, metadata={"description": "seconds"})


class WorkersSchema(Schema):
    workers = fields.List(fields.Nested(WorkerSchema), required=True)


class ScheduleSchema(Schema):
    name = fields.String(required=True)
    task = fields.String(required=True)
    when = fields.String(required=True)
    tz = fields.String(required=True, metadata={"description": "IANA time zone of its cron"})
    queue = fields.String(required=True)
    paused = fields.Boolean(required=True)
    last_fire = Timestamp(allow_none=True)
    next_fire = Timestamp(allow_none=True)
    next_fire_local = fields.String(
        allow_none=True, metadata={"description": "next fire in its zone, with the UTC offset"}
    )
    missed = fields.String()


class SchedulesSchema(Schema):
    schedules = fields.List(fields.Nested(ScheduleSchema), required=True)


class ScheduleStateSchema(Schema):
    name = fields.String(required=True)
    paused = fields.Boolean(required=True)


class RateLimitsSchema(Schema):
    limits = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={"description": "task name or queue:<name> → rate in force"},
    )


class SetRateLimitSchema(Schema):
    """Body of ``PUT /rate-limits/<name>``."""

    rate = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=50), FullMatch(RATE_PATTERN, error=RATE_ERROR)],
        metadata={"description": "<count>/<s|m|h>, e.g. 10/m", "example": "10/m"},
    )

    @validates("rate")
    def _parses(self, value: str, **kwargs: Any) -> None:
        try:
            parse_rate(value)
        except ConfigurationError as exc:
            raise ValidationError(str(exc)) from None


class RateLimitSchema(Schema):
    name = fields.String(required=True)
    rate = _nullable_string(
        required=True, metadata={"description": "the rate now in force (null: none)"}
    )


class HealthSchema(Schema):
    status = fields.String(required=True)
