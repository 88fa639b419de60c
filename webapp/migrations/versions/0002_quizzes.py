"""Quizzes: quizzes, questions, submissions, answers and statistics.

Revision ID: 0002_quizzes
Revises: 0001_console_auth
Create Date: 2026-11-23
"""

from __future__ import annotations

revision = "0002_quizzes"
down_revision = "0001_console_auth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
