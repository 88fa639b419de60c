"""marshmallow schemas of the workloads' endpoints: quizzes, documents, orders, reports.

Like ``schemas.py``, these check every request and shape every answer, and the OpenAPI
document is built from them. What a schema cannot say (a quiz's question ids, an upload's
content, a date range in the right order) the views check and refuse with 415 or 422.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from ..orders.models import NOTIFICATION_STATES, STATUSES
from ..reports.models import FORMATS
from .fields import _MONTH_DAY, _YEAR, FullMatch, Timestamp
from .schemas import NO_NUL, TEXT_PATTERN

#: Ids in paths: a quiz submission, an order (PostgreSQL integers), a document (a UUID),
#: an export or a search (32 hex digits).
INTEGER_ID = r"^[0-9]{1,9}$"
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
JOB_ID = r"^[0-9a-f]{32}$"
SLUG = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
#: White space as Python sees it (``str.isspace``, ``str.split``), spelled out: a pattern's
#: ``\s`` means less in JSON Schema (ECMA 262) than in the checks it stands for.
_WS = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
WS, NOT_WS = f"[{_WS}]", rf"[^{_WS}\x00]"
#: Text with something in it besides white space, and no NUL.
FILLED = rf"^[^\x00]*{NOT_WS}[^\x00]*$"
#: A filter's search text: empty, or at least two characters that are not white space.
SEARCH_TEXT = rf"^{WS}*(?:{NOT_WS}{WS}*{NOT_WS}[^\x00]*)?$"
DATE = rf"^{_YEAR}-{_MONTH_DAY}$"
#: As the order form checks them (``webapp.orders.forms``): 8 to 15 digits, + ( ) - . / and
#: spaces; one @, no spaces, a dot in the domain.
PHONE = r"^\+?[ ()./-]*(?:[0-9][ ()./-]*){8,15}$"
EMAIL = rf"^[^@{_WS}\x00]+@[^@{_WS}\x00]+\.[^@.{_WS}\x00]{{2,}}$"


def _text(max_length: int, pattern: str = TEXT_PATTERN, error: str = NO_NUL, **kw: Any) -> Any:
    checks = [validate.Length(max=max_length), FullMatch(pattern, error=error)]
    return fields.String(validate=checks, **kw)


def _link(description: str) -> fields.String:
    return fields.String(metadata={"description": description})


# -- quizzes --------------------------------------------------------------------------


class QuizQuestionSchema(Schema):
    id = fields.Integer(required=True, metadata={"description": "the key of its answer"})
    position = fields.Integer(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(["choice", "short"]))
    prompt = fields.String(required=True)
    choices = fields.List(
        fields.String(),
        allow_none=True,
        metadata={"description": "the options of a choice question (answer with one)"},
    )


class QuizSchema(Schema):
    slug = fields.String(required=True)
    title = fields.String(required=True)
    description = fields.String(required=True)
    pass_mark = fields.Integer(required=True, metadata={"description": "percent"})
    questions = fields.List(fields.Nested(QuizQuestionSchema), required=True)
    submit_url = _link("POST the answers here")
    statistics_url = _link("the quiz's statistics")


class QuizzesSchema(Schema):
    quizzes = fields.List(fields.Nested(QuizSchema), required=True)


class SubmitAnswersSchema(Schema):
    """Body of ``POST /quizzes/<slug>/submissions``."""

    answers = fields.Dict(
        keys=fields.String(),
        values=_text(10_000),
        required=True,
        metadata={"description": "question id -> answer (a choice's text, or a short answer)"},
    )
    token = fields.String(
        load_default=None,
        allow_none=True,
        validate=FullMatch(r"^[A-Za-z0-9_-]{8,64}$", error="8 to 64 of A-Z a-z 0-9 _ -"),
        metadata={
            "description": "idempotency token: sending it again returns the same submission "
            "(and queues grading again if it could not be queued before)"
        },
    )


class SubmissionRefSchema(Schema):
    id = fields.Integer(required=True)
    quiz = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["pending", "graded"]))
    state = fields.String(
        required=True,
        validate=validate.OneOf(["pending", "delayed", "graded"]),
        metadata={"description": "delayed: stored, grading not queued yet"},
    )
    status_url = _link("poll this until state is graded")


class FeedbackSchema(Schema):
    question_id = fields.Integer(required=True)
    position = fields.Integer(required=True)
    prompt = fields.String(required=True)
    given = fields.String(required=True)
    correct = fields.Boolean(required=True)
    correct_answer = fields.String(required=True)


class SubmissionSchema(SubmissionRefSchema):
    """A submission: pending (or delayed), then graded with its score and feedback."""

    quiz_title = fields.String(required=True)
    score = fields.Integer(allow_none=True, metadata={"description": "questions right"})
    total = fields.Integer(allow_none=True)
    percent = fields.Float(allow_none=True)
    passed = fields.Boolean(allow_none=True)
    queued = fields.Boolean(required=True, metadata={"description": "grading was queued"})
    submitted_at = Timestamp(allow_none=True)
    graded_at = Timestamp(allow_none=True)
    feedback = fields.List(
        fields.Nested(FeedbackSchema), metadata={"description": "empty until graded"}
    )


class QuizStatisticsSchema(Schema):
    quiz = fields.String(required=True)
    computed_at = Timestamp(allow_none=True, metadata={"description": "null: never computed"})
    duration_ms = fields.Float(allow_none=True)
    graded_since = fields.Integer(
        required=True, metadata={"description": "submissions graded after computed_at"}
    )
    figures = fields.Dict(
        keys=fields.String(),
        values=fields.Raw(allow_none=True),
        allow_none=True,
        metadata={
            "description": "attempts, submitted, graded, passed, average_score, "
            "completion_rate, pass_rate, distribution (10 buckets), questions, hardest"
        },
    )


# -- documents ------------------------------------------------------------------------


class UploadFormSchema(Schema):
    """The multipart form of ``POST /documents``."""

    file = fields.Raw(
        required=True,
        metadata={
            "type": "string",
            "format": "binary",
            "description": "a .txt, .md or .pdf question paper (UTF-8 text, or a real PDF)",
        },
    )


class DocumentRefSchema(Schema):
    id = fields.String(required=True)
    status = fields.String(required=True)
    status_url = _link("poll this until finished is true")


class DocumentStepSchema(Schema):
    name = fields.String(required=True)
    label = fields.String(required=True)
    state = fields.String(
        required=True, validate=validate.OneOf(["pending", "active", "waiting", "done", "failed"])
    )
    detail = fields.String(required=True)


class DocumentSchema(Schema):
    """Where a document is: its status and steps, progress, the error if it failed."""

    id = fields.String(required=True)
    name = fields.String(required=True, metadata={"description": "the uploaded file's name"})
    kind = fields.String(required=True)
    size = fields.Integer(required=True)
    status = fields.String(
        required=True,
        validate=validate.OneOf(["queued", "delayed", "running", "retrying", "done", "failed"]),
    )
    status_label = fields.String(required=True)
    step = fields.String(allow_none=True)
    steps = fields.List(fields.Nested(DocumentStepSchema), required=True)
    questions_done = fields.Integer(required=True)
    questions_total = fields.Integer(allow_none=True)
    percent = fields.Integer(required=True)
    message = fields.String(required=True)
    error = fields.String(allow_none=True)
    failed_step = fields.String(allow_none=True)
    attempt = fields.Integer(required=True)
    run = fields.Integer(required=True)
    finished = fields.Boolean(required=True)
    created_at = Timestamp(allow_none=True)
    finished_at = Timestamp(allow_none=True)
    pdf_url = fields.String(allow_none=True, metadata={"description": "set once done"})


# -- orders ---------------------------------------------------------------------------


class Money(fields.Decimal):
    """An amount as a JSON number, kept to two decimal places (as the order form does)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class AmountRange(validate.Validator):
    """0.01 to 99,999,999.99, compared as decimals (the document gives the bounds as
    numbers, which ``validate.Range`` over Decimals would write as strings)."""

    error = "The amount must be between 0.01 and 99,999,999.99."

    def __call__(self, value: Decimal) -> Decimal:
        if not Decimal("0.01") <= value <= Decimal("99999999.99"):
            raise ValidationError(self.error)
        return value


class OrderBodySchema(Schema):
    """Body of ``POST /orders``: the order form's fields."""

    customer_name = _text(120, FILLED, "enter the customer's name", required=True)
    phone = _text(
        40,
        PHONE,
        "use digits, spaces and + ( ) - only, with 8 to 15 digits, e.g. +44 20 7946 0958",
        required=True,
    )
    email = _text(254, EMAIL, "that is not an e-mail address (name@example.com)", required=True)
    items = _text(2000, FILLED, "list what was ordered", required=True)
    amount = Money(
        places=2,
        required=True,
        validate=AmountRange(),
        metadata={"minimum": 0.01, "maximum": 99999999.99, "example": 19.9},
    )


class NotificationSchema(Schema):
    id = fields.Integer(required=True)
    order_id = fields.Integer(required=True)
    channel = fields.String(required=True, validate=validate.OneOf(["sms", "email"]))
    recipient = fields.String(required=True)
    subject = fields.String(required=True)
    body = fields.String(required=True)
    state = fields.String(required=True, validate=validate.OneOf(list(NOTIFICATION_STATES)))
    queued = fields.Boolean(
        required=True, metadata={"description": "a send task holds it (false: waits to be queued)"}
    )
    attempts = fields.Integer(required=True)
    redrives = fields.Integer(required=True)
    last_error = fields.String(allow_none=True)
    next_retry_at = Timestamp(allow_none=True)
    sent_at = Timestamp(allow_none=True)
    created_at = Timestamp(required=True)
    updated_at = Timestamp(required=True)


class OrderSchema(Schema):
    id = fields.Integer(required=True)
    customer_name = fields.String(required=True)
    phone = fields.String(required=True)
    email = fields.String(required=True)
    items = fields.String(required=True)
    amount = fields.String(required=True, metadata={"description": "decimal, e.g. 19.90"})
    status = fields.String(required=True, validate=validate.OneOf(list(STATUSES)))
    next_statuses = fields.List(fields.String(), required=True)
    created_at = Timestamp(required=True)
    updated_at = Timestamp(required=True)
    notifications = fields.List(fields.Nested(NotificationSchema), required=True)
    warning = fields.String(
        allow_none=True,
        metadata={"description": "set when notifications could not be queued (they go later)"},
    )


class StatusChangeSchema(Schema):
    """Body of ``POST /orders/<id>/status``."""

    status = fields.String(required=True, validate=validate.OneOf(list(STATUSES)))


class NotificationsQuerySchema(Schema):
    state = fields.String(load_default=None, validate=validate.OneOf(list(NOTIFICATION_STATES)))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=1000))
    after = fields.String(
        load_default=None,
        validate=FullMatch(INTEGER_ID, error="the 'next' of the previous page"),
        metadata={"description": "the 'next' cursor of the previous page"},
    )


class NotificationsPageSchema(Schema):
    notifications = fields.List(fields.Nested(NotificationSchema), required=True)
    counts = fields.Dict(
        keys=fields.String(), values=fields.Integer(), required=True,
        metadata={"description": "notifications by state"},
    )  # fmt: skip
    next = fields.String(
        required=True, allow_none=True, metadata={"description": "pass as 'after'"}
    )


# -- reports --------------------------------------------------------------------------


class FilterSchema(Schema):
    """The contract filter of every report (missing or null: any)."""

    agency = _text(100, load_default=None, allow_none=True)
    category = _text(100, load_default=None, allow_none=True)
    date_from = fields.String(
        load_default=None, allow_none=True, validate=FullMatch(DATE, error="use YYYY-MM-DD")
    )
    date_to = fields.String(
        load_default=None,
        allow_none=True,
        validate=FullMatch(DATE, error="use YYYY-MM-DD"),
        metadata={"description": "not before date_from (422 otherwise)"},
    )
    text = _text(
        100,
        SEARCH_TEXT,
        "type at least 2 characters to search",
        load_default=None,
        allow_none=True,
        metadata={"description": "in the title or the supplier, any case"},
    )


class ExportBodySchema(Schema):
    """Body of ``POST /reports/exports``."""

    format = fields.String(required=True, validate=validate.OneOf(list(FORMATS)))
    filters = fields.Nested(FilterSchema, load_default=dict)


class SearchBodySchema(Schema):
    """Body of ``POST /reports/searches``."""

    filters = fields.Nested(FilterSchema, load_default=dict)


class JobRefSchema(Schema):
    id = fields.String(required=True)
    new = fields.Boolean(
        required=True,
        metadata={"description": "false: the same job was already queued or running"},
    )
    status_url = _link("follow the job here")


class ProgressSchema(Schema):
    current = fields.Integer(required=True)
    total = fields.Integer(allow_none=True)
    percent = fields.Integer(allow_none=True)
    message = fields.String()


class BacklogSchema(Schema):
    ready = fields.Integer(allow_none=True)
    consumers = fields.Integer(allow_none=True)


class JobFieldsMixin(Schema):
    phase = fields.String(
        required=True, validate=validate.OneOf(["waiting", "running", "done", "failed"])
    )
    state = fields.String(required=True, metadata={"description": "the task's state"})
    progress = fields.Nested(ProgressSchema, allow_none=True)
    queue = fields.Nested(
        BacklogSchema, allow_none=True, metadata={"description": "the backlog while waiting"}
    )
    error = fields.String(allow_none=True)


class ExportSchema(JobFieldsMixin):
    id = fields.String(required=True)
    format = fields.String(required=True)
    filters = fields.Dict(keys=fields.String(), values=fields.String(allow_none=True))
    description = fields.String(required=True)
    status = fields.String(required=True)
    total_rows = fields.Integer(allow_none=True)
    row_count = fields.Integer(allow_none=True)
    size_bytes = fields.Integer(allow_none=True)
    created_by = fields.String(required=True)
    created_at = Timestamp(required=True)
    finished_at = Timestamp(allow_none=True)
    file_url = fields.String(allow_none=True, metadata={"description": "set once done"})


class SearchQuerySchema(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))


class ContractSchema(Schema):
    id = fields.Integer(required=True)
    reference = fields.String(required=True)
    title = fields.String(required=True)
    agency = fields.String(required=True)
    supplier = fields.String(required=True)
    category = fields.String(required=True)
    amount = fields.String(required=True, metadata={"description": "decimal"})
    signed_on = fields.String(required=True, metadata={"description": "YYYY-MM-DD"})


class SearchPageSchema(Schema):
    """A search: pending with its job while it runs, then its results, 50 a page."""

    id = fields.String(required=True)
    filters = fields.Dict(keys=fields.String(), values=fields.String(allow_none=True))
    description = fields.String(required=True)
    pending = fields.Boolean(required=True)
    job = fields.Nested(JobFieldsMixin, allow_none=True)
    total = fields.Integer(allow_none=True, metadata={"description": "contracts that match"})
    stored = fields.Integer(allow_none=True, metadata={"description": "results kept (pages)"})
    computed_at = fields.String(allow_none=True)
    page = fields.Integer(required=True)
    pages = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    contracts = fields.List(fields.Nested(ContractSchema), required=True)
