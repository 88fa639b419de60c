"""Contracts (the large table the reports read) and the exports made from them.

The tables are made by ``webapp/migrations/versions/0005_reports.py``; keep the two in
step (``tests/test_reports.py`` compares them). Searches and aggregates keep their
results in Redis (with an expiry), not here.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..db import UTCDateTime, db, utcnow

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
EXPORT_STATUSES = (QUEUED, RUNNING, DONE, FAILED)
FORMATS = ("csv", "xlsx")

#: Trigram indexes (PostgreSQL with pg_trgm) for ``ILIKE '%text%'`` on title and supplier.
#: Declared here so models and migrations agree; on PostgreSQL the migration makes them
#: GIN indexes with pg_trgm's operator class, and plain indexes where pg_trgm is missing.
TRIGRAM_COLUMNS = ("title", "supplier")


class Contract(db.Model):  # type: ignore[name-defined,misc]
    """A public contract: who bought what from whom, when, for how much."""

    __tablename__ = "contracts"
    __table_args__ = (
        sa.Index("ix_contracts_agency_signed_on", "agency", "signed_on"),
        sa.Index("ix_contracts_category_signed_on", "category", "signed_on"),
        sa.Index("ix_contracts_signed_on", "signed_on"),
        *(
            sa.Index(
                f"ix_contracts_{column}_trgm",
                column,
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
            )
            for column in TRIGRAM_COLUMNS
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(sa.String(24), unique=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    agency: Mapped[str] = mapped_column(sa.String(100))
    supplier: Mapped[str] = mapped_column(sa.String(120))
    category: Mapped[str] = mapped_column(sa.String(60))
    amount: Mapped[Decimal] = mapped_column(sa.Numeric(14, 2))
    signed_on: Mapped[date] = mapped_column(sa.Date)


class ReportExport(db.Model):  # type: ignore[name-defined,misc]
    """One export of the contracts matching a filter; its id is the export task's id."""

    __tablename__ = "report_exports"
    __table_args__ = (
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed')", name="report_exports_status"
        ),
        sa.CheckConstraint("format IN ('csv', 'xlsx')", name="report_exports_format"),
        sa.Index("ix_report_exports_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    format: Mapped[str] = mapped_column(sa.String(8))
    filters: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    filter_hash: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(16), default=QUEUED)
    total_rows: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    row_count: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    file_name: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    size_bytes: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    created_by: Mapped[str] = mapped_column(sa.String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


def upsert_export(
    connection: sa.Connection, values: dict[str, Any], update: tuple[str, ...]
) -> None:
    """Insert an export row, or update ``update`` columns of the one with its id.

    The view and the export task may each come first (a fast export can finish
    before the request that sent it has written its row), so both upsert.
    """
    table = ReportExport.__table__
    dialect = connection.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - the web app runs on PostgreSQL or SQLite
        raise RuntimeError(f"upsert_export: unsupported database {dialect}")
    statement = insert(table).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.id], set_={name: statement.excluded[name] for name in update}
    )
    connection.execute(statement)
