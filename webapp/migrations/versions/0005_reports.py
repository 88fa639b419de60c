"""Contracts, exports and background searches.

Revision ID: 0005_reports
Revises: 0004_orders
Create Date: 2026-11-23

Matches ``webapp/reports/models.py`` (``tests/test_reports.py`` compares them). On
PostgreSQL the title and supplier indexes are GIN trigram indexes (``ILIKE '%text%'``
without a table scan): pg_trgm goes into ``public`` if it is not there yet, and the
operator class is named with the extension's schema (the search path may hold only an
application's own schema). Where the extension cannot be made, and on SQLite, they are
plain indexes of the same names, and a search scans the table.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

from taskcore.history import trigram_schema

revision = "0005_reports"
down_revision = "0004_orders"
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)
TRIGRAM_COLUMNS = ("title", "supplier")


def upgrade() -> None:
    op.create_table(
        "contracts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("reference", sa.String(24), nullable=False, unique=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("agency", sa.String(100), nullable=False),
        sa.Column("supplier", sa.String(120), nullable=False),
        sa.Column("category", sa.String(60), nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.Column("signed_on", sa.Date, nullable=False),
    )
    op.create_index("ix_contracts_agency_signed_on", "contracts", ["agency", "signed_on"])
    op.create_index("ix_contracts_category_signed_on", "contracts", ["category", "signed_on"])
    op.create_index("ix_contracts_signed_on", "contracts", ["signed_on"])
    schema = _trigram_schema(op.get_bind())
    for column in TRIGRAM_COLUMNS:
        name = f"ix_contracts_{column}_trgm"
        if schema is None:
            op.create_index(name, "contracts", [column])
        else:
            op.execute(
                f"CREATE INDEX {name} ON contracts USING gin ({column} {schema}.gin_trgm_ops)"
            )
    op.create_table(
        "report_exports",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("filters", sa.JSON, nullable=False),
        sa.Column("filter_hash", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("total_rows", sa.Integer, nullable=True),
        sa.Column("row_count", sa.Integer, nullable=True),
        sa.Column("file_name", sa.String(200), nullable=True),
        sa.Column("size_bytes", sa.BigInteger, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed')", name="report_exports_status"
        ),
        sa.CheckConstraint("format IN ('csv', 'xlsx')", name="report_exports_format"),
    )
    op.create_index("ix_report_exports_created_at", "report_exports", ["created_at"])


def downgrade() -> None:
    # pg_trgm stays: it lives in public, where other schemas may use it.
    op.drop_table("report_exports")
    op.drop_table("contracts")


def _trigram_schema(bind: sa.Connection) -> str | None:
    """pg_trgm's schema (made in ``public`` if allowed); None on SQLite or without it."""
    if bind.dialect.name != "postgresql":
        return None
    schema = trigram_schema(bind)
    if schema is None:
        log.warning(
            "pg_trgm is not available (ask an administrator to CREATE EXTENSION pg_trgm): "
            "contract searches will scan the table"
        )
    return schema
