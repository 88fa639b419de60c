"""A quiz's statistics, computed by the database in two aggregate queries.

No submission or answer row is ever loaded into Python: the queries return the
submissions' counts and sums per (status, score bucket), at most a dozen rows, and one
row per question. They are SQLAlchemy Core
expressions that run the same on PostgreSQL (tests, production) and SQLite (``make run``):
``count(*) FILTER (WHERE ...)`` (SQLite 3.30+) and integer floor division for the 10 %
buckets (both backends divide integers as integers).

Definitions (the statistics page repeats them):

* **attempts**: submissions of the quiz in any status: each time a learner opened the
  quiz and was given a fresh form (reopening an unfinished one reuses it).
* **completion rate**: graded submissions / attempts.
* **average score**: mean of ``100 * score / total`` over graded submissions.
* **pass rate**: graded submissions with ``score * 100 >= pass_mark * total`` / graded.
* **hardest questions**: the three with the lowest share of right answers among graded
  answers (ties: the earlier question first).
* **distribution**: graded submissions per 10 % bucket, ``floor(10 * score / total)``,
  a perfect score in the top bucket (90-100 %).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..db import utcnow
from .models import GRADED, STARTED, Answer, Question, Quiz, QuizStatistics, Submission

BUCKETS = 10
HARDEST = 3


def bucket_expression(score: Any, total: Any) -> sa.ColumnElement[int]:
    """The 0-9 bucket of ``score`` out of ``total`` as SQL (integer floor division)."""
    return sa.case((score >= total, BUCKETS - 1), else_=(score * BUCKETS) // total)


def compute(connection: sa.Connection, quiz_id: int) -> dict[str, Any]:
    """The statistics of quiz ``quiz_id``, as a JSON-ready dict (see the module's doc).

    Two queries, each one pass over its table: the submissions grouped by status and
    score bucket (at most a dozen groups, whose counts and sums are added up here), and
    the graded answers grouped by question.
    """
    s = Submission.__table__
    a = Answer.__table__
    q = Question.__table__
    pass_mark = (
        sa.select(Quiz.__table__.c.pass_mark)
        .where(Quiz.__table__.c.id == quiz_id)
        .scalar_subquery()
    )
    graded = sa.and_(s.c.status == GRADED, s.c.total > 0)
    bucket = sa.case((graded, bucket_expression(s.c.score, s.c.total))).label("bucket")
    groups = connection.execute(
        sa.select(
            s.c.status,
            bucket,
            sa.func.count().label("count"),
            sa.func.count().filter(s.c.score * 100 >= pass_mark * s.c.total).label("passed"),
            sa.func.sum(sa.cast(s.c.score, sa.Float) * 100.0 / s.c.total).label("percent_sum"),
            sa.func.max(s.c.graded_at).label("last_graded_at"),
        )
        .where(s.c.quiz_id == quiz_id)
        .group_by(s.c.status, bucket)
    ).all()

    per_answer = (
        sa.select(
            a.c.question_id,
            sa.func.count().label("answered"),
            sa.func.count().filter(a.c.correct.is_(True)).label("right"),
        )
        .where(
            a.c.question_id.in_(sa.select(q.c.id).where(q.c.quiz_id == quiz_id)),
            a.c.correct.is_not(None),
        )
        .group_by(a.c.question_id)
        .subquery()
    )
    questions = connection.execute(
        sa.select(
            q.c.id,
            q.c.position,
            q.c.prompt,
            sa.func.coalesce(per_answer.c.answered, 0).label("answered"),
            sa.func.coalesce(per_answer.c.right, 0).label("right"),
        )
        .select_from(q.outerjoin(per_answer, per_answer.c.question_id == q.c.id))
        .where(q.c.quiz_id == quiz_id)
        .order_by(q.c.position)
    ).all()

    graded_groups = [g for g in groups if g.bucket is not None]
    attempts = sum(g.count for g in groups)
    graded_count = sum(g.count for g in graded_groups)
    passed = sum(g.passed for g in graded_groups)
    percent_sum = sum(float(g.percent_sum or 0) for g in graded_groups)
    histogram = [0] * BUCKETS
    for g in graded_groups:
        histogram[g.bucket] += g.count
    stamps = [g.last_graded_at for g in graded_groups if g.last_graded_at is not None]
    last: datetime | None = max(stamps) if stamps else None

    per_question = [
        {
            "id": row.id,
            "position": row.position,
            "prompt": row.prompt,
            "answered": row.answered,
            "right": row.right,
            "share_correct": (row.right / row.answered) if row.answered else None,
        }
        for row in questions
    ]
    hardest = sorted(
        (item for item in per_question if item["answered"]),
        key=lambda item: (item["share_correct"], item["position"]),
    )[:HARDEST]
    return {
        "attempts": attempts,
        "submitted": sum(g.count for g in groups if g.status != STARTED),
        "graded": graded_count,
        "passed": passed,
        "average_score": percent_sum / graded_count if graded_count else None,
        "completion_rate": graded_count / attempts if attempts else None,
        "pass_rate": passed / graded_count if graded_count else None,
        "distribution": histogram,
        "questions": per_question,
        "hardest": [item["id"] for item in hardest],
        "last_graded_at": last.isoformat() if last else None,
    }


def refresh(connection: sa.Connection, quiz_id: int) -> QuizStatistics:
    """Compute quiz ``quiz_id``'s statistics and store them (one row per quiz, replaced).

    ``connection`` should be in a transaction; the caller commits.
    """
    started = time.perf_counter()
    data = compute(connection, quiz_id)
    duration_ms = (time.perf_counter() - started) * 1000.0
    values = {"computed_at": utcnow(), "duration_ms": duration_ms, "data": data}
    table = QuizStatistics.__table__
    updated = connection.execute(
        sa.update(table).where(table.c.quiz_id == quiz_id).values(**values)
    )
    if updated.rowcount == 0:
        dialect = connection.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:  # pragma: no cover - the web app runs on PostgreSQL or SQLite
            raise RuntimeError(f"unsupported database {dialect}")
        statement = insert(table).values(quiz_id=quiz_id, **values)
        connection.execute(
            statement.on_conflict_do_update(index_elements=[table.c.quiz_id], set_=values)
        )
    return QuizStatistics(quiz_id=quiz_id, **values)
