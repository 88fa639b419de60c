"""Quizzes: quizzes, questions, submissions, answers and statistics.

Revision ID: 0002_quizzes
Revises: 0001_console_auth
Create Date: 2026-11-23

Matches ``webapp/quizzes/models.py`` (a test compares the two).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_quizzes"
down_revision = "0001_console_auth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quizzes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("slug", sa.String(64), nullable=False, unique=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("pass_mark", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("pass_mark BETWEEN 0 AND 100", name="quizzes_pass_mark"),
    )
    op.create_table(
        "quiz_questions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "quiz_id",
            sa.Integer,
            sa.ForeignKey("quizzes.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("choices", sa.JSON, nullable=True),
        sa.Column("accepted", sa.JSON, nullable=False),
        sa.UniqueConstraint("quiz_id", "position", name="uq_quiz_questions_position"),
        sa.CheckConstraint("kind IN ('choice', 'short')", name="quiz_questions_kind"),
    )
    op.create_table(
        "quiz_submissions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "quiz_id",
            sa.Integer,
            sa.ForeignKey("quizzes.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "user_id",
            sa.Integer,
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("times_queued", sa.Integer, nullable=False),
        sa.Column("task_id", sa.String(200), nullable=True),
        sa.Column("graded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("score", sa.Integer, nullable=True),
        sa.Column("total", sa.Integer, nullable=True),
        sa.Column("grading_runs", sa.Integer, nullable=False),
        sa.UniqueConstraint("user_id", "token", name="uq_quiz_submissions_token"),
        sa.CheckConstraint(
            "status IN ('started', 'pending', 'graded')", name="quiz_submissions_status"
        ),
    )
    op.create_index(
        "ix_quiz_submissions_quiz_status", "quiz_submissions", ["quiz_id", "status", "graded_at"]
    )
    op.create_index(
        "ix_quiz_submissions_user", "quiz_submissions", ["user_id", "quiz_id", "status"]
    )
    op.create_index("ix_quiz_submissions_pending", "quiz_submissions", ["status", "submitted_at"])
    op.create_table(
        "quiz_answers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "submission_id",
            sa.Integer,
            sa.ForeignKey("quiz_submissions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "question_id",
            sa.Integer,
            sa.ForeignKey("quiz_questions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("given", sa.Text, nullable=False),
        sa.Column("correct", sa.Boolean, nullable=True),
        sa.UniqueConstraint("submission_id", "question_id", name="uq_quiz_answers_question"),
    )
    op.create_index("ix_quiz_answers_question_correct", "quiz_answers", ["question_id", "correct"])
    op.create_table(
        "quiz_statistics",
        sa.Column(
            "quiz_id",
            sa.Integer,
            sa.ForeignKey("quizzes.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("quiz_statistics")
    op.drop_table("quiz_answers")
    op.drop_table("quiz_submissions")
    op.drop_table("quiz_questions")
    op.drop_table("quizzes")
