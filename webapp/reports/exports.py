"""Write the contracts matching a filter to CSV or XLSX, streamed, in flat memory.

Rows come from a server-side cursor (``stream_results`` with ``yield_per``: PostgreSQL
hands them over ``CHUNK`` at a time) and go straight to the file: the stdlib ``csv``
writer, or XlsxWriter in ``constant_memory`` mode (each row is flushed to a temporary
file once the next begins). Nothing holds more than one chunk, whatever the size.
The file is written as ``<name>.part`` and renamed when complete, so a download never
sees half a file.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .filters import conditions
from .models import Contract

CHUNK = 2_000
#: One XLSX sheet holds at most 1,048,576 rows; the header takes one.
XLSX_SHEET_ROWS = 1_048_575
HEADER = ("Reference", "Signed on", "Agency", "Category", "Supplier", "Title", "Amount")
COLUMNS = ("reference", "signed_on", "agency", "category", "supplier", "title", "amount")

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ExportResult:
    path: Path
    rows: int
    size_bytes: int


def export_query(filters: Mapping[str, Any]) -> sa.Select[Any]:
    """The rows of an export, in a stable order (date, then id)."""
    table = Contract.__table__
    return (
        sa.select(*(table.c[name] for name in COLUMNS))
        .where(*conditions(filters))
        .order_by(table.c.signed_on, table.c.id)
    )


def count_rows(connection: sa.Connection, filters: Mapping[str, Any]) -> int:
    """How many contracts match ``filters``."""
    table = Contract.__table__
    query = sa.select(sa.func.count()).select_from(table).where(*conditions(filters))
    return connection.execute(query).scalar_one()


def file_name(export_id: str, fmt: str) -> str:
    """``contracts-<id>.csv``: the export's file in the export directory."""
    return f"contracts-{export_id}.{fmt}"


def write_export(
    engine: sa.Engine,
    path: Path,
    fmt: str,
    filters: Mapping[str, Any],
    *,
    progress: Progress = lambda done, total: None,
    check: Callable[[], None] = lambda: None,
) -> ExportResult:
    """Write the contracts matching ``filters`` to ``path`` as ``fmt`` (csv or xlsx).

    ``progress(done, total)`` is called after every chunk; ``check()`` too (a task
    passes ``current_task.check`` so that revoking it stops the export).
    """
    if fmt not in ("csv", "xlsx"):
        raise ValueError(f"unknown export format {fmt!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    try:
        with engine.connect() as connection:
            total = count_rows(connection, filters)
            progress(0, total)
            result = connection.execution_options(stream_results=True, yield_per=CHUNK).execute(
                export_query(filters)
            )
            writer = _write_csv if fmt == "csv" else _write_xlsx
            rows = writer(partial, result, lambda done: (check(), progress(done, total)))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return ExportResult(path, rows, path.stat().st_size)


def _write_csv(path: Path, result: sa.CursorResult[Any], tick: Callable[[int], None]) -> int:
    done = 0
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for chunk in result.partitions():
            writer.writerows(chunk)
            done += len(chunk)
            tick(done)
    return done


def _write_xlsx(path: Path, result: sa.CursorResult[Any], tick: Callable[[int], None]) -> int:
    from xlsxwriter import Workbook

    workbook = Workbook(str(path), {"constant_memory": True})
    try:
        bold = workbook.add_format({"bold": True})
        day = workbook.add_format({"num_format": "yyyy-mm-dd"})
        money = workbook.add_format({"num_format": "#,##0.00"})
        sheet = None
        row = XLSX_SHEET_ROWS  # start a sheet at the first row
        done = 0
        for chunk in result.partitions():
            for reference, signed_on, agency, category, supplier, title, amount in chunk:
                if row >= XLSX_SHEET_ROWS:
                    sheet = workbook.add_worksheet(f"Contracts {len(workbook.worksheets()) + 1}")
                    sheet.set_column(0, 0, 12)
                    sheet.set_column(1, 1, 11)
                    sheet.set_column(2, 4, 26)
                    sheet.set_column(5, 5, 50)
                    sheet.set_column(6, 6, 14)
                    sheet.write_row(0, 0, HEADER, bold)
                    row = 0
                row += 1
                assert sheet is not None
                sheet.write_string(row, 0, reference)
                sheet.write_datetime(row, 1, _as_datetime(signed_on), day)
                sheet.write_string(row, 2, agency)
                sheet.write_string(row, 3, category)
                sheet.write_string(row, 4, supplier)
                sheet.write_string(row, 5, title)
                sheet.write_number(row, 6, float(amount), money)
            done += len(chunk)
            tick(done)
        if sheet is None:  # nothing matched: still a valid workbook with the header
            sheet = workbook.add_worksheet("Contracts 1")
            sheet.write_row(0, 0, HEADER, bold)
    finally:
        workbook.close()
    return done


def _as_datetime(value: date) -> Any:
    from datetime import datetime

    return datetime(value.year, value.month, value.day)


def write_export_naive(
    engine: sa.Engine, path: Path, fmt: str, filters: Mapping[str, Any]
) -> ExportResult:
    """The baseline the benchmark compares with: load every row, then write them all
    (XlsxWriter in its default in-memory mode). Do not use it for real exports."""
    with engine.connect() as connection:
        rows = connection.execute(export_query(filters)).all()
    if fmt == "csv":
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(HEADER)
        writer.writerows(rows)
        path.write_text(buffer.getvalue(), encoding="utf-8")
    else:
        from xlsxwriter import Workbook

        workbook = Workbook(str(path))
        sheet = workbook.add_worksheet("Contracts 1")
        sheet.write_row(0, 0, HEADER)
        for index, (reference, signed_on, *rest, amount) in enumerate(rows, 1):
            sheet.write_row(index, 0, (reference, _as_datetime(signed_on), *rest, float(amount)))
        workbook.close()
    return ExportResult(path, len(rows), path.stat().st_size)
