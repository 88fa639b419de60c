"""Quizzes, their questions, learners' submissions and answers, and per-quiz statistics.

A submission is one *attempt*: its row is made when a learner opens the quiz (status
``started``, with a one-time ``token`` the form carries), becomes ``pending`` when the
form is posted (answers stored, grading queued) and ``graded`` when the grading task has
scored it. The unique ``(user_id, token)`` pair is what makes a second POST of the same
form find the first submission instead of making another.

The tables are made by ``webapp/migrations/versions/0002_quizzes.py``; keep the two in
step (``tests/test_quizzes.py`` compares them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import UTCDateTime, db, utcnow

Kind = Literal["choice", "short"]
KINDS: tuple[Kind, ...] = ("choice", "short")
STARTED, PENDING, GRADED = "started", "pending", "graded"
STATUSES = (STARTED, PENDING, GRADED)


class Quiz(db.Model):  # type: ignore[name-defined,misc]
    """A quiz: a title, its questions in order, and the pass mark (percent)."""

    __tablename__ = "quizzes"
    __table_args__ = (sa.CheckConstraint("pass_mark BETWEEN 0 AND 100", name="quizzes_pass_mark"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(64), unique=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    pass_mark: Mapped[int] = mapped_column(sa.Integer, default=60)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    questions: Mapped[list[Question]] = relationship(
        back_populates="quiz", order_by="Question.position", lazy="selectin"
    )

    def __repr__(self) -> str:
        return f"<Quiz {self.slug}>"


class Question(db.Model):  # type: ignore[name-defined,misc]
    """A multiple-choice (``choices`` and one correct choice in ``accepted``) or a
    short-answer question (``accepted``: every answer counted right)."""

    __tablename__ = "quiz_questions"
    __table_args__ = (
        sa.UniqueConstraint("quiz_id", "position", name="uq_quiz_questions_position"),
        sa.CheckConstraint("kind IN ('choice', 'short')", name="quiz_questions_kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    quiz_id: Mapped[int] = mapped_column(sa.ForeignKey("quizzes.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(sa.Integer)
    kind: Mapped[str] = mapped_column(sa.String(16))
    prompt: Mapped[str] = mapped_column(sa.Text)
    #: The options shown for a multiple-choice question; None for a short answer.
    choices: Mapped[list[str] | None] = mapped_column(sa.JSON, default=None)
    #: The correct choice (one item), or every accepted short answer.
    accepted: Mapped[list[str]] = mapped_column(sa.JSON)

    quiz: Mapped[Quiz] = relationship(back_populates="questions")

    @property
    def correct_answer(self) -> str:
        """What the feedback shows as the right answer."""
        return self.accepted[0]

    def __repr__(self) -> str:
        return f"<Question {self.quiz_id}#{self.position} {self.kind}>"


class Submission(db.Model):  # type: ignore[name-defined,misc]
    """One learner's attempt at a quiz: started → pending → graded."""

    __tablename__ = "quiz_submissions"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "token", name="uq_quiz_submissions_token"),
        sa.CheckConstraint(
            "status IN ('started', 'pending', 'graded')", name="quiz_submissions_status"
        ),
        # The statistics' aggregates and the "graded since" count read by quiz and status.
        sa.Index("ix_quiz_submissions_quiz_status", "quiz_id", "status", "graded_at"),
        # A learner's recent results; the open attempt of a quiz.
        sa.Index("ix_quiz_submissions_user", "user_id", "quiz_id", "status"),
        # Re-driving pending submissions whose grading was never queued or was lost.
        sa.Index("ix_quiz_submissions_pending", "status", "submitted_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    quiz_id: Mapped[int] = mapped_column(sa.ForeignKey("quizzes.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    #: The one-time token of the form this attempt was shown with.
    token: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(16), default=STARTED)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    #: When the broker last confirmed a grading task for it (None: never, e.g. broker down).
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    #: How many grading tasks were sent for it (the first, then re-drives).
    times_queued: Mapped[int] = mapped_column(sa.Integer, default=0)
    #: The last grading task's id (its state is in Redis, its run in the history).
    task_id: Mapped[str | None] = mapped_column(sa.String(200), default=None)
    graded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    #: Questions answered right, and the number of questions, once graded.
    score: Mapped[int | None] = mapped_column(sa.Integer, default=None)
    total: Mapped[int | None] = mapped_column(sa.Integer, default=None)
    #: How many times a grading task actually graded it (must stay 1).
    grading_runs: Mapped[int] = mapped_column(sa.Integer, default=0)

    quiz: Mapped[Quiz] = relationship()
    answers: Mapped[list[Answer]] = relationship(back_populates="submission", lazy="selectin")

    @property
    def percent(self) -> float | None:
        """The score in percent (None until graded)."""
        if self.score is None or not self.total:
            return None
        return 100.0 * self.score / self.total

    def as_status(self) -> dict[str, Any]:
        """What the result page polls for."""
        percent = self.percent
        return {
            "id": self.id,
            "status": self.status,
            "score": self.score,
            "total": self.total,
            "percent": None if percent is None else round(percent, 1),
            "queued": self.queued_at is not None,
        }

    def __repr__(self) -> str:
        return f"<Submission {self.id} {self.status}>"


class Answer(db.Model):  # type: ignore[name-defined,misc]
    """What a learner answered to one question; ``correct`` is set by grading."""

    __tablename__ = "quiz_answers"
    __table_args__ = (
        sa.UniqueConstraint("submission_id", "question_id", name="uq_quiz_answers_question"),
        # The hardest questions: share correct per question, read from this index alone.
        sa.Index("ix_quiz_answers_question_correct", "question_id", "correct"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(
        sa.ForeignKey("quiz_submissions.id", ondelete="CASCADE")
    )
    question_id: Mapped[int] = mapped_column(sa.ForeignKey("quiz_questions.id", ondelete="CASCADE"))
    given: Mapped[str] = mapped_column(sa.Text)
    correct: Mapped[bool | None] = mapped_column(sa.Boolean, default=None)

    submission: Mapped[Submission] = relationship(back_populates="answers")
    question: Mapped[Question] = relationship()


class QuizStatistics(db.Model):  # type: ignore[name-defined,misc]
    """The latest statistics of a quiz (``webapp.quizzes.statistics`` computes them)."""

    __tablename__ = "quiz_statistics"

    quiz_id: Mapped[int] = mapped_column(
        sa.ForeignKey("quizzes.id", ondelete="CASCADE"), primary_key=True
    )
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: How long the computation's queries took, in milliseconds.
    duration_ms: Mapped[float] = mapped_column(sa.Float)
    #: The figures (see ``statistics.compute``).
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
