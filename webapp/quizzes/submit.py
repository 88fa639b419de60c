"""Taking a quiz, shared by the pages and the JSON API: open an attempt, check answers,
store them, queue grading, and say where a submission is.

An attempt (a ``Submission`` row in status ``started``) carries a one-time token; the
answers are stored against it in one transaction that moves it to ``pending`` (only
once, whatever the number of concurrent posts), and only then is grading sent. A broker
or Redis that is down leaves the submission pending and unqueued: ``redrive_pending``
(or "Grade now") sends it later, so nothing a learner answered is lost.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from datetime import timedelta

import redis
import sqlalchemy as sa

from taskcore import PublishError

from ..db import db, utcnow
from .grading import missing
from .models import GRADED, PENDING, STARTED, Answer, Quiz, QuizStatistics, Submission
from .tasks import record_queued, send_grading

log = logging.getLogger(__name__)

#: "Grade now" is offered when grading was not queued, or was queued this long ago.
GRADE_NOW_AFTER = timedelta(seconds=60)
#: Longest answer kept, in characters.
MAX_ANSWER = 500


def open_attempt(quiz: Quiz, user_id: int) -> Submission:
    """The learner's unfinished attempt at ``quiz`` (reloading the form reuses it), or a new
    one with a fresh one-time token."""
    attempt = db.session.scalar(
        sa.select(Submission)
        .where(
            Submission.user_id == user_id,
            Submission.quiz_id == quiz.id,
            Submission.status == STARTED,
        )
        .order_by(Submission.id.desc())
        .limit(1)
    )
    if attempt is None:
        attempt = new_attempt(quiz, user_id)
    return attempt


def new_attempt(quiz: Quiz, user_id: int, token: str | None = None) -> Submission:
    """A new attempt at ``quiz`` with ``token`` (a fresh one if None); committed."""
    attempt = Submission(quiz_id=quiz.id, user_id=user_id, token=token or secrets.token_urlsafe(24))
    db.session.add(attempt)
    db.session.commit()
    return attempt


def find_attempt(user_id: int, token: str) -> Submission | None:
    """The learner's submission made with ``token`` (of any quiz), or None."""
    return db.session.scalar(
        sa.select(Submission).where(Submission.user_id == user_id, Submission.token == token)
    )


def check_answers(quiz: Quiz, answers: Mapping[int, str]) -> dict[int, str]:
    """What is wrong with ``answers`` (question id -> text, stripped), by question id."""
    errors: dict[int, str] = {}
    for question_id in missing([q.id for q in quiz.questions], answers):
        errors[question_id] = "Answer this question."
    for question in quiz.questions:
        given = answers.get(question.id, "")
        if question.kind == "choice" and given and given not in (question.choices or []):
            errors[question.id] = "Pick one of the options."
        if len(given) > MAX_ANSWER:
            errors[question.id] = f"Keep the answer under {MAX_ANSWER} characters."
    return errors


def store_answers(attempt: Submission, answers: Mapping[int, str]) -> bool:
    """Store checked ``answers`` and make the attempt ``pending``, in one commit; False
    (nothing stored) if it was no longer ``started`` (a concurrent post got there first)."""
    s = Submission.__table__
    claimed = db.session.execute(
        sa.update(s)
        .where(s.c.id == attempt.id, s.c.status == STARTED)
        .values(status=PENDING, submitted_at=utcnow())
    )
    if claimed.rowcount != 1:
        db.session.rollback()
        return False
    db.session.execute(
        sa.insert(Answer.__table__),
        [
            {"submission_id": attempt.id, "question_id": qid, "given": given}
            for qid, given in answers.items()
        ],
    )
    db.session.commit()  # stored for good before anything is sent
    return True


def queue_grading(submission_id: int, times_queued: int) -> str | None:
    """Send the grading task and note it; the reason (logged) when the broker or Redis
    cannot be reached, None when it was queued."""
    try:
        handle = send_grading(submission_id, times_queued)
    except (PublishError, redis.RedisError) as exc:
        log.warning("grading of quiz submission %s not queued: %s", submission_id, exc)
        return str(exc) or type(exc).__name__
    record_queued(db.session.connection(), submission_id, handle)
    db.session.commit()
    return None


def can_grade_now(submission: Submission) -> bool:
    """Whether grading may be sent again: pending, and never queued or queued long ago."""
    return submission.status == PENDING and (
        submission.queued_at is None or utcnow() - submission.queued_at > GRADE_NOW_AFTER
    )


def state(submission: Submission) -> str:
    """Where a submission is, in one word: started, pending, delayed (grading not queued)
    or graded."""
    if submission.status == PENDING:
        return "pending" if submission.queued_at is not None else "delayed"
    return submission.status


def graded_since(quiz: Quiz, stats: QuizStatistics | None) -> int:
    """How many submissions of ``quiz`` were graded after its statistics were computed."""
    if stats is None:
        return 0
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Submission)
        .where(
            Submission.quiz_id == quiz.id,
            Submission.status == GRADED,
            Submission.graded_at > stats.computed_at,
        )
    )
