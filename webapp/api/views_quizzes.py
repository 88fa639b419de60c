"""Quizzes: the list, submitting answers (graded in the background), a submission's
score and feedback, a quiz's statistics.

A quiz is taken by a person: submitting and reading submissions need a signed-in
session (with its CSRF token in ``X-CSRFToken`` to submit); a bearer token gets a 401
there (the pages refuse tokens too). The list and the statistics take tokens too.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import url_for
from flask_login import current_user

from ..auth.access import bearer_header_present
from ..db import db
from ..quizzes import submit as submitting
from ..quizzes.models import GRADED, PENDING, STARTED, Quiz, QuizStatistics, Submission
from . import api
from .endpoint import Refused, endpoint, error_reply
from .errors import Conflict, NotFound
from .schemas_workloads import (
    INTEGER_ID,
    SLUG,
    QuizStatisticsSchema,
    QuizzesSchema,
    SubmissionRefSchema,
    SubmissionSchema,
    SubmitAnswersSchema,
)

TAG = "quizzes"
PEOPLE_ONLY = "Quizzes are taken by people signed in, not with an API token."


class NeedsPerson(Exception):
    """A bearer token calling what only a signed-in person may do (401: the token is not
    a credential this endpoint takes; a 403 would mark it operator-only in the document)."""


def _learner_id() -> int:
    if not current_user.is_authenticated or bearer_header_present():
        raise NeedsPerson(PEOPLE_ONLY)
    return int(current_user.id)


@api.errorhandler(NeedsPerson)
def _needs_person(exc: NeedsPerson) -> Any:
    reply = error_reply(401, f"{exc} Sign in and call it with the session (and X-CSRFToken).")
    reply.headers["WWW-Authenticate"] = 'Bearer realm="taskcore"'
    return reply


def _quiz(slug: str) -> Quiz:
    quiz = db.session.scalar(sa.select(Quiz).where(Quiz.slug == slug))
    if quiz is None:
        raise NotFound(f"There is no quiz called {slug!r}.")
    return quiz


def _status_url(submission_id: int) -> str:
    return url_for("api_v1.quiz_submission", submission_id=str(submission_id))


def _ref(submission: Submission, quiz: Quiz) -> dict[str, Any]:
    return {
        "id": submission.id,
        "quiz": quiz.slug,
        "status": submission.status,
        "state": submitting.state(submission),
        "status_url": _status_url(submission.id),
    }


@api.get("/quizzes")
@endpoint("Every quiz with its questions", tag=TAG, response=QuizzesSchema, errors=(503,))
def list_quizzes() -> Any:
    """Questions come with their ids (the keys of the answers) and a choice question's
    options; never with the accepted answers."""
    found = db.session.scalars(sa.select(Quiz).order_by(Quiz.title)).all()
    return {
        "quizzes": [
            {
                "slug": quiz.slug,
                "title": quiz.title,
                "description": quiz.description,
                "pass_mark": quiz.pass_mark,
                "questions": [
                    {
                        "id": q.id,
                        "position": q.position,
                        "kind": q.kind,
                        "prompt": q.prompt,
                        "choices": q.choices,
                    }
                    for q in quiz.questions
                ],
                "submit_url": url_for("api_v1.submit_quiz", slug=quiz.slug),
                "statistics_url": url_for("api_v1.quiz_statistics", slug=quiz.slug),
            }
            for quiz in found
        ]
    }


@api.post("/quizzes/<slug>/submissions")
@endpoint(
    "Submit answers to a quiz (graded in the background)",
    tag=TAG,
    body=SubmitAnswersSchema,
    response=SubmissionRefSchema,
    status=202,
    errors=(404, 409, 422, 503),
    path_patterns={"slug": SLUG},
)
def submit_quiz(slug: str, body: dict[str, Any]) -> Any:
    """Every question needs an answer (a choice question one of its options, at most 500
    characters): otherwise 422, by question id, and nothing is stored. The answers are
    stored, then grading is queued: 202 with the submission's status URL. With a
    ``token``, sending the same body again returns the same submission (grading nothing
    twice). Broker down: 503, but the answers are kept and graded once it is back (send
    the same token again to queue grading at once)."""
    quiz = _quiz(slug)
    user_id = _learner_id()
    token = body["token"]
    attempt = submitting.find_attempt(user_id, token) if token else None
    if attempt is not None and attempt.quiz_id != quiz.id:
        raise Conflict("that token was used for a submission to another quiz")
    if attempt is not None and attempt.status != STARTED:
        if attempt.status == PENDING and attempt.queued_at is None:  # broker was down
            return _queue(attempt, quiz, attempt.times_queued)
        return _ref(attempt, quiz)
    known = {str(q.id): q.id for q in quiz.questions}
    answers = {known[k]: v.strip() for k, v in body["answers"].items() if k in known}
    errors = {k: ["Not a question of this quiz."] for k in body["answers"] if k not in known}
    errors |= {str(qid): [text] for qid, text in submitting.check_answers(quiz, answers).items()}
    if errors:
        count = len(errors)
        raise Refused(
            422,
            f"{count} answer{'s' if count > 1 else ''} to correct: nothing was submitted",
            {"answers": errors},
        )
    if attempt is None:
        attempt = submitting.new_attempt(quiz, user_id, token)
    if not submitting.store_answers(attempt, answers):  # a concurrent call got there first
        db.session.refresh(attempt)
        return _ref(attempt, quiz)
    return _queue(attempt, quiz, 0)


def _queue(attempt: Submission, quiz: Quiz, times_queued: int) -> Any:
    problem = submitting.queue_grading(attempt.id, times_queued)
    db.session.refresh(attempt)
    if problem is None:
        return _ref(attempt, quiz)
    reply = error_reply(
        503,
        f"the task queue is unavailable: {problem}. The answers are stored (submission "
        f"{attempt.id}) and will be graded once it is back.",
    )
    reply.headers["Location"] = _status_url(attempt.id)
    return reply


@api.get("/quizzes/submissions/<submission_id>")
@endpoint(
    "A submission of yours: pending, then its score and feedback",
    tag=TAG,
    response=SubmissionSchema,
    errors=(404, 503),
    path_patterns={"submission_id": INTEGER_ID},
)
def quiz_submission(submission_id: str) -> Any:
    """Only your own submissions: anyone else's is a 404, like one that does not exist."""
    submission = db.session.get(Submission, int(submission_id))
    if submission is None or submission.user_id != _learner_id():
        raise NotFound(f"You have no quiz submission number {submission_id}.")
    quiz = submission.quiz
    if submission.status == STARTED:
        raise NotFound(f"Submission {submission_id} has no answers yet.")
    feedback = []
    if submission.status == GRADED:
        given = {answer.question_id: answer for answer in submission.answers}
        for question in quiz.questions:
            answer = given.get(question.id)
            feedback.append(
                {
                    "question_id": question.id,
                    "position": question.position,
                    "prompt": question.prompt,
                    "given": answer.given if answer else "",
                    "correct": bool(answer and answer.correct),
                    "correct_answer": question.correct_answer,
                }
            )
    status = submission.as_status()
    graded = submission.status == GRADED and status["score"] is not None and status["total"]
    return {
        **_ref(submission, quiz),
        "quiz_title": quiz.title,
        **{k: status[k] for k in ("score", "total", "percent", "queued")},
        "passed": (submission.score * 100 >= quiz.pass_mark * submission.total) if graded else None,
        "submitted_at": submission.submitted_at,
        "graded_at": submission.graded_at,
        "feedback": feedback,
    }


@api.get("/quizzes/<slug>/statistics")
@endpoint(
    "A quiz's latest statistics",
    tag=TAG,
    response=QuizStatisticsSchema,
    errors=(404, 503),
    path_patterns={"slug": SLUG},
)
def quiz_statistics(slug: str) -> Any:
    """As last computed (after each grading, at most once per window), with how many
    submissions were graded since; ``figures`` is null before the first computation."""
    quiz = _quiz(slug)
    stats = db.session.get(QuizStatistics, quiz.id)
    return {
        "quiz": quiz.slug,
        "computed_at": stats.computed_at if stats else None,
        "duration_ms": stats.duration_ms if stats else None,
        "graded_since": submitting.graded_since(quiz, stats),
        "figures": stats.data if stats else None,
    }
