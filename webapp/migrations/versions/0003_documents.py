"""Documents: uploaded question papers and their processing.

Revision ID: 0003_documents
Revises: 0002_quizzes
Create Date: 2026-11-23
"""

from __future__ import annotations

revision = "0003_documents"
down_revision = "0002_quizzes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
