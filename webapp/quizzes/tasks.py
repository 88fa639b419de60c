"""Quizzes tasks (registered on webapp.taskapp.app): grading, statistics, re-driving.

* ``grade_submission`` (queue ``grading``, a priority queue): scores a *pending*
  submission. Sent with an idempotency key derived from the submission id
  (``grading_key``), and safe to run twice anyway: it locks the row and grades only
  while the status is ``pending``; a second run returns ``{"outcome": "graded"}``
  without touching anything.
* ``compute_statistics`` (queue ``statistics``): recomputes a quiz's statistics; always
  requested through ``request_statistics``, which collapses bursts (see there).
* ``redrive_pending`` (queue ``grading``, every minute from ``taskcore beat``): sends
  grading again for pending submissions whose task was never confirmed by the broker
  (it was down when the learner submitted) or was lost.
"""

from __future__ import annotations

import logging
import math
import os
import time
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from taskcore import TaskHandle

from ..db import task_engine, task_session, utcnow
from ..taskapp import HIGH, LOW, app
from . import statistics
from .grading import Key, grade
from .models import GRADED, PENDING, Answer, Question, Submission

log = logging.getLogger(__name__)

#: Seconds of one statistics window: at most one statistics run per quiz per window.
STATS_WINDOW = float(os.environ.get("QUIZZES_STATS_WINDOW", "2"))
#: A pending submission is graded again when its grading was never queued for this
#: long, or was queued this long ago without result.
REDRIVE_UNQUEUED_AFTER = timedelta(seconds=30)
REDRIVE_LOST_AFTER = timedelta(minutes=10)


def grading_key(submission_id: int, times_queued: int) -> str:
    """The idempotency key of the ``times_queued``-th grading task of a submission.

    The first send of a submission is ``quiz-grade:<id>:0``; a re-drive (the broker was
    down, or the task was lost) counts up, so it is not mistaken for the first.
    """
    return f"quiz-grade:{submission_id}:{times_queued}"


def send_grading(submission_id: int, times_queued: int, priority: int = HIGH) -> TaskHandle:
    """Queue the grading of a submission (raises taskcore's PublishError/BrokerUnavailable,
    or a Redis error, when it cannot)."""
    return grade_submission.apply_async(
        (submission_id,),
        priority=priority,
        idempotency_key=grading_key(submission_id, times_queued),
    )


def record_queued(connection: sa.Connection, submission_id: int, handle: TaskHandle) -> None:
    """Note on the submission that a grading task was confirmed by the broker (whatever
    its status now: a fast worker may have graded it already)."""
    s = Submission.__table__
    connection.execute(
        sa.update(s)
        .where(s.c.id == submission_id)
        .values(queued_at=utcnow(), task_id=handle.id, times_queued=s.c.times_queued + 1)
    )


@app.task(queue="grading", priority=HIGH, max_retries=5, autoretry_for=(sa.exc.OperationalError,))
def grade_submission(submission_id: int) -> dict[str, Any]:
    """Grade a pending submission: mark each answer, store the score, then ask for the
    quiz's statistics. Anything else (already graded, unknown) is left alone."""
    with task_session() as session, session.begin():
        submission = session.scalar(
            sa.select(Submission).where(Submission.id == submission_id).with_for_update()
        )
        if submission is None:
            return {"submission": submission_id, "outcome": "missing"}
        quiz_id, status = submission.quiz_id, submission.status
        if status == PENDING:
            questions = session.scalars(
                sa.select(Question).where(Question.quiz_id == quiz_id).order_by(Question.position)
            ).all()
            answers = session.scalars(
                sa.select(Answer).where(Answer.submission_id == submission_id)
            ).all()
            keys = [Key(q.id, q.kind, tuple(q.accepted)) for q in questions]
            result = grade(keys, {answer.question_id: answer.given for answer in answers})
            for answer in answers:
                answer.correct = result.correct.get(answer.question_id, False)
            submission.score, submission.total = result.score, result.total
            submission.status = GRADED
            submission.graded_at = utcnow()
            submission.grading_runs += 1
        score, total = submission.score, submission.total
    if status in (PENDING, GRADED):
        # Also after a run that found it graded: the first run may have failed to ask.
        request_statistics(quiz_id)
    outcome = "graded" if status == PENDING else f"already {status}"
    return {"submission": submission_id, "outcome": outcome, "score": score, "total": total}


def request_statistics(quiz_id: int, now: float | None = None) -> TaskHandle:
    """Ask for quiz ``quiz_id``'s statistics, collapsing bursts into one run per window.

    Time is cut into windows of ``STATS_WINDOW`` seconds (2 s by default; env
    ``QUIZZES_STATS_WINDOW``). Every request in a window sends the *same* idempotency key,
    ``quiz-stats:<quiz>:<window number>``, and a delay that ends with the window; taskcore
    claims the key in Redis, so only the first request of a window is queued and the
    others return its handle. That run starts when the window closes, after every grading
    of the window committed, so it counts them all. A quiz therefore gets at most one
    statistics run per window however many submissions are graded (100,000 gradings over
    an hour: at most 1,800 runs, not 100,000), and its figures are at most about one
    window plus the queue's wait behind the last grading.
    """
    now = time.time() if now is None else now
    window = math.floor(now / STATS_WINDOW)
    countdown = max((window + 1) * STATS_WINDOW - now, 0.0)
    return compute_statistics.apply_async(
        (quiz_id,), countdown=countdown, idempotency_key=f"quiz-stats:{quiz_id}:{window}"
    )


@app.task(
    queue="statistics",
    max_retries=3,
    autoretry_for=(sa.exc.OperationalError,),
    idempotency_window=3600,
)
def compute_statistics(quiz_id: int) -> dict[str, Any]:
    """Recompute and store a quiz's statistics (SQL aggregates; see ``statistics``)."""
    with task_engine().begin() as connection:
        row = statistics.refresh(connection, quiz_id)
    return {"quiz": quiz_id, "graded": row.data["graded"], "ms": round(row.duration_ms, 1)}


@app.task(queue="grading", priority=LOW, max_retries=0)
def redrive_pending(limit: int = 500) -> dict[str, Any]:
    """Send grading again for pending submissions whose task was never queued (for 30 s)
    or was queued 10 minutes ago and has not graded them (lost: e.g. a purged queue).

    A re-drive of a task that was only slow is harmless: the second run finds the
    submission graded and does nothing.
    """
    return redrive(limit=limit)


def redrive(
    limit: int = 500, priority: int = LOW, engine: sa.Engine | None = None
) -> dict[str, Any]:
    """``redrive_pending``'s body (also ``flask quizzes redrive``, on the app's engine)."""
    s = Submission.__table__
    now = utcnow()
    stale = sa.or_(
        sa.and_(s.c.queued_at.is_(None), s.c.submitted_at < now - REDRIVE_UNQUEUED_AFTER),
        s.c.queued_at < now - REDRIVE_LOST_AFTER,
    )
    engine = engine or task_engine()
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(s.c.id, s.c.times_queued)
            .where(s.c.status == PENDING, stale)
            .order_by(s.c.submitted_at)
            .limit(limit)
        ).all()
    sent = 0
    for submission_id, times_queued in rows:
        handle = send_grading(submission_id, times_queued, priority=priority)
        with engine.begin() as connection:
            record_queued(connection, submission_id, handle)
        sent += 1
    if sent:
        log.info("re-drove the grading of %d pending quiz submission(s)", sent)
    return {"redriven": sent}


app.schedule("quizzes-redrive-pending", redrive_pending, every=timedelta(minutes=1))
