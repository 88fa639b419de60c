"""Orders and their notifications (outbox).

Revision ID: 0004_orders
Revises: 0003_documents
Create Date: 2026-11-23
"""

from __future__ import annotations

revision = "0004_orders"
down_revision = "0003_documents"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
