"""Documents: uploaded question papers and their processing.

Revision ID: 0003_documents
Revises: 0002_quizzes
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_documents"
down_revision = "0002_quizzes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner", sa.String(100), nullable=False),
        sa.Column("original_name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("step", sa.String(16), nullable=True),
        sa.Column("run", sa.Integer, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("questions_total", sa.Integer, nullable=True),
        sa.Column("questions_done", sa.Integer, nullable=False),
        sa.Column("answerer", sa.String(32), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("failed_step", sa.String(16), nullable=True),
        sa.Column("result_size", sa.Integer, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'delayed', 'running', 'retrying', 'done', 'failed')",
            name="documents_status",
        ),
        sa.CheckConstraint("kind IN ('text', 'markdown', 'pdf')", name="documents_kind"),
    )
    op.create_index("ix_documents_owner_created", "documents", ["owner", "created_at"])
    op.create_index("ix_documents_created_at", "documents", ["created_at"])
    op.create_table(
        "document_questions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "document_id",
            sa.String(36),
            sa.ForeignKey("documents.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("label", sa.String(32), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("answer", sa.Text, nullable=True),
        sa.UniqueConstraint("document_id", "position", name="uq_document_questions_position"),
    )


def downgrade() -> None:
    op.drop_table("document_questions")
    op.drop_index("ix_documents_created_at", table_name="documents")
    op.drop_index("ix_documents_owner_created", table_name="documents")
    op.drop_table("documents")
