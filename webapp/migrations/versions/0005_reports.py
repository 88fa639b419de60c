"""Contracts, exports and background searches.

Revision ID: 0005_reports
Revises: 0004_orders
Create Date: 2026-11-23
"""

from __future__ import annotations

revision = "0005_reports"
down_revision = "0004_orders"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
