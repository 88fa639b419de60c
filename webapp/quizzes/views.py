"""Quizzes pages: the list, taking a quiz, a submission's result, a quiz's statistics.

Submitting never waits for grading: the answers are stored (status ``pending``), a
grading task is queued and the browser is sent to the result page, which polls
``/quizzes/submissions/<id>/status`` and swaps the score in when it is there.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from ..auth.access import requires
from ..db import db, utcnow
from ..errors import error_response, json_error
from . import quizzes
from .models import GRADED, PENDING, STARTED, Question, Quiz, QuizStatistics, Submission
from .statistics import BUCKETS
from .submit import (
    can_grade_now,
    check_answers,
    find_attempt,
    graded_since,
    open_attempt,
    queue_grading,
    state,
    store_answers,
)

log = logging.getLogger(__name__)

#: The histogram's buckets: 0-9%, 10-19%, ... 90-100% (a perfect score is in the last).
BUCKET_LABELS = [f"{10 * i}-{10 * i + 9 if i < BUCKETS - 1 else 100}%" for i in range(BUCKETS)]


@quizzes.errorhandler(sa.exc.OperationalError)
def _database_unavailable(exc: Exception) -> Response:
    log.warning("quizzes: the database cannot be reached: %s", exc)
    return error_response(503, "The database cannot be reached right now. Try again shortly.")


def _learner_id() -> int:
    """The signed-in person's user id (a quiz is taken by a person, not an API token)."""
    if not current_user.is_authenticated:
        abort(403, description="Quizzes are taken by people signed in, not with an API token.")
    return int(current_user.id)


def _quiz_or_404(slug: str) -> Quiz:
    quiz = db.session.scalar(sa.select(Quiz).where(Quiz.slug == slug))
    if quiz is None:
        abort(404, description=f"There is no quiz called {slug!r}. Pick one from the list.")
    return quiz


def _own_submission_or_404(submission_id: int) -> Submission:
    submission = db.session.get(Submission, submission_id)
    if submission is None or submission.user_id != _learner_id():
        # Someone else's submission is answered exactly like one that does not exist.
        abort(404, description=f"You have no quiz submission number {submission_id}.")
    return submission


@quizzes.get("")
@requires("viewer")
def index() -> Any:
    """Every quiz with its number of questions, and the learner's recent results."""
    question_count = sa.func.count(Question.id).label("questions")
    rows = db.session.execute(
        sa.select(Quiz, question_count)
        .outerjoin(Question, Question.quiz_id == Quiz.id)
        .group_by(Quiz.id)
        .order_by(Quiz.title)
    ).all()
    recent: list[Submission] = []
    if current_user.is_authenticated:
        recent = list(
            db.session.scalars(
                sa.select(Submission)
                .where(Submission.user_id == current_user.id, Submission.status != STARTED)
                .order_by(Submission.submitted_at.desc(), Submission.id.desc())
                .limit(10)
            )
        )
    return render_template("quizzes/index.html", rows=rows, recent=recent)


@quizzes.get("/<slug>")
@requires("viewer")
def take(slug: str) -> Any:
    """The quiz's form, carrying the attempt's one-time token."""
    quiz = _quiz_or_404(slug)
    attempt = open_attempt(quiz, _learner_id())
    return render_template("quizzes/take.html", quiz=quiz, token=attempt.token, answers={})


@quizzes.post("/<slug>")
@requires("viewer")
def submit(slug: str) -> Any:
    """Store the answers as a pending submission, queue its grading, go to its result.

    The form's token names the attempt: posting the same form again (a double click, a
    reload, back and submit) finds that submission and goes to it, grading nothing twice.
    """
    quiz = _quiz_or_404(slug)
    user_id = _learner_id()
    token = request.form.get("token", "")
    attempt = find_attempt(user_id, token)
    if attempt is None or attempt.quiz_id != quiz.id:
        flash("That form was not one we gave you, so nothing was saved. Here is a fresh one.")
        return redirect(url_for(".take", slug=slug), 303)
    if attempt.status != STARTED:
        flash("You had already submitted this form: here is that submission.", "info")
        return redirect(url_for(".result", submission_id=attempt.id), 303)

    answers = {q.id: request.form.get(f"q{q.id}", "").strip() for q in quiz.questions}
    errors = check_answers(quiz, answers)
    if errors:
        count = len(errors)
        message = (
            f"{count} question{'s' if count > 1 else ''} still need{'' if count > 1 else 's'} "
            "an answer. Nothing was submitted yet: complete the form and submit again."
        )
        page = render_template(
            "quizzes/take.html",
            quiz=quiz,
            token=token,
            answers=answers,
            errors=errors,
            form_error=message,
        )
        return page, 400

    if not store_answers(attempt, answers):  # a concurrent POST of the same form got there first
        return redirect(url_for(".result", submission_id=attempt.id), 303)
    if queue_grading(attempt.id, times_queued=0) is not None:
        flash(
            "Your answers are saved, but grading is delayed: the task queue cannot be "
            "reached right now. They will be graded as soon as it is back.",
            "warning",
        )
    return redirect(url_for(".result", submission_id=attempt.id), 303)


@quizzes.get("/submissions/<int:submission_id>")
@requires("viewer")
def result(submission_id: int) -> Any:
    """A processing indicator while pending (the page polls), then score and feedback."""
    submission = _own_submission_or_404(submission_id)
    if submission.status == STARTED:
        return redirect(url_for(".take", slug=submission.quiz.slug))
    feedback = []
    if submission.status == GRADED:
        given = {answer.question_id: answer for answer in submission.answers}
        for question in submission.quiz.questions:
            answer = given.get(question.id)
            feedback.append(
                {
                    "question": question,
                    "given": answer.given if answer else "",
                    "correct": bool(answer and answer.correct),
                }
            )
    return render_template(
        "quizzes/result.html",
        submission=submission,
        quiz=submission.quiz,
        feedback=feedback,
        passed=(
            submission.status == GRADED
            and submission.score is not None
            and submission.total is not None
            and submission.score * 100 >= submission.quiz.pass_mark * submission.total
        ),
        can_grade_now=can_grade_now(submission),
        state=state(submission),
    )


@quizzes.get("/submissions/<int:submission_id>/status")
@requires("viewer")
def submission_status(submission_id: int) -> Any:
    """The small JSON the result page polls: ``{"state": "pending"|"delayed"|"graded", ...}``
    (errors are JSON too, whatever the request accepts)."""
    submission = db.session.get(Submission, submission_id)
    if submission is None or submission.user_id != _learner_id():
        return json_error(404, f"You have no quiz submission number {submission_id}.")
    response = jsonify({**submission.as_status(), "state": state(submission)})
    response.headers["Cache-Control"] = "no-store"
    return response


@quizzes.post("/submissions/<int:submission_id>/grade")
@requires("viewer")
def grade_now(submission_id: int) -> Response:
    """Queue grading again for a pending submission whose task was not queued or lost."""
    submission = _own_submission_or_404(submission_id)
    target = redirect(url_for(".result", submission_id=submission_id), 303)
    if submission.status != PENDING:
        flash("This submission is already graded.", "info")
        return target
    if not can_grade_now(submission):
        flash("Grading was queued moments ago: the score will appear here shortly.", "info")
        return target
    if queue_grading(submission.id, times_queued=submission.times_queued) is None:
        flash("Grading queued: the score will appear here shortly.", "success")
    else:
        flash("The task queue still cannot be reached: grading stays delayed.", "warning")
    return target


@quizzes.get("/<slug>/statistics")
@requires("viewer")
def statistics(slug: str) -> Any:
    """The latest statistics of a quiz and how fresh they are."""
    quiz = _quiz_or_404(slug)
    stats = db.session.get(QuizStatistics, quiz.id)
    data = stats.data if stats is not None else None
    questions = {q.id: q for q in quiz.questions}
    hardest = [] if data is None else [questions[i] for i in data["hardest"] if i in questions]
    shares = {} if data is None else {item["id"]: item for item in data["questions"]}
    return render_template(
        "quizzes/statistics.html",
        quiz=quiz,
        stats=stats,
        data=data,
        hardest=hardest,
        shares=shares,
        graded_since=graded_since(quiz, stats),
        bucket_labels=BUCKET_LABELS,
        now=utcnow(),
    )
