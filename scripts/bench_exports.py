"""Peak memory of a contracts export: streamed (what the worker runs) against a naive baseline.

Each export runs in a fresh child process (``python scripts/bench_exports.py --child ...``)
doing exactly what the export task does (``webapp.reports.exports.write_export``: a
server-side cursor, ``csv`` or XlsxWriter's ``constant_memory`` mode), or the naive
baseline (``write_export_naive``: fetch every row, then write; XlsxWriter in memory).
The parent waits for the child with ``os.wait4`` and reads that child's own peak RSS
(``ru_maxrss``), so runs never mix. An ``idle`` child (the same imports, no export)
shows what the interpreter and the libraries take by themselves.

The contracts come from ``webapp.reports.seed`` in a PostgreSQL schema per size
(``bench_reports_<rows>``), made once and reused (``--fresh`` makes them again)::

    .venv/bin/python scripts/bench_exports.py                  # 200k and 1M rows, 3 runs
    .venv/bin/python scripts/bench_exports.py --sizes 200000 --runs 5 --formats csv

Prints a markdown table of medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def schema_url(base: str, rows: int) -> str:
    # public stays on the path: pg_trgm's operator class lives there.
    return f"{base}?options=-csearch_path%3Dbench_reports_{rows},public"


def prepare(base: str, rows: int, fresh: bool) -> None:
    """The schema ``bench_reports_<rows>`` with exactly ``rows`` seeded contracts."""
    import sqlalchemy as sa

    from taskcore.history import make_engine
    from webapp.reports.models import Contract
    from webapp.reports.seed import seed_contracts

    schema = f"bench_reports_{rows}"
    admin = make_engine(base)
    with admin.begin() as connection:
        if fresh:
            connection.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        connection.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
    admin.dispose()
    engine = make_engine(schema_url(base, rows))
    try:
        Contract.__table__.create(engine, checkfirst=True)
        with engine.connect() as connection:
            present = connection.execute(sa.text("SELECT count(*) FROM contracts")).scalar()
        if present != rows:
            started = time.monotonic()
            seed_contracts(engine, rows, replace=True)
            took = time.monotonic() - started
            print(f"seeded {rows:,} contracts in {took:.1f}s", file=sys.stderr)
    finally:
        engine.dispose()


def child(mode: str, fmt: str, url: str, out: str) -> None:
    """Run one export here and print what it did (the parent measures this process)."""
    from taskcore.history import make_engine
    from webapp.reports.exports import write_export, write_export_naive

    engine = make_engine(url)
    started = time.monotonic()
    if mode == "idle":
        result = {"rows": 0}
    else:
        run = write_export if mode == "streamed" else write_export_naive
        done = run(engine, Path(out), fmt, {})
        result = {"rows": done.rows, "bytes": done.size_bytes}
    engine.dispose()
    result["seconds"] = time.monotonic() - started
    print(json.dumps(result))


def measure(mode: str, fmt: str, url: str) -> dict[str, float]:
    """One child run: its peak RSS (MiB), time and rows."""
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / f"export.{fmt}")
        process = subprocess.Popen(
            [sys.executable, __file__, "--child", mode, fmt, url, out],
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        assert process.stdout is not None
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise SystemExit(f"child {mode} {fmt} failed ({process.returncode})")
    result = json.loads(output)
    result["peak_mib"] = usage.ru_maxrss / 1024  # Linux: kilobytes
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="200000,1000000")
    parser.add_argument("--formats", default="csv,xlsx")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--fresh", action="store_true", help="seed the schemas again")
    parser.add_argument("--child", nargs=4, metavar=("MODE", "FORMAT", "URL", "OUT"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    formats = args.formats.split(",")
    idle = statistics.median(
        measure("idle", "csv", schema_url(args.database_url, sizes[0]))["peak_mib"]
        for _ in range(args.runs)
    )
    lines = [
        f"Peak RSS of one export process, median of {args.runs} runs "
        f"(an idle process with the same imports: {idle:.0f} MiB).",
        "",
        "| rows | format | streamed peak MiB | naive peak MiB | naive / streamed "
        "| above idle: streamed | above idle: naive | streamed s | naive s |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rows in sizes:
        prepare(args.database_url, rows, args.fresh)
        url = schema_url(args.database_url, rows)
        for fmt in formats:
            found: dict[str, list[dict[str, float]]] = {"streamed": [], "naive": []}
            for _ in range(args.runs):
                for mode in found:  # interleaved, so that drift hits both alike
                    result = measure(mode, fmt, url)
                    if result["rows"] != rows:
                        raise SystemExit(f"{mode} {fmt} wrote {result['rows']} rows, not {rows}")
                    found[mode].append(result)
                    print(f"{rows} {fmt} {mode}: {result}", file=sys.stderr)
            peak = {m: statistics.median(r["peak_mib"] for r in found[m]) for m in found}
            secs = {m: statistics.median(r["seconds"] for r in found[m]) for m in found}
            lines.append(
                f"| {rows:,} | {fmt.upper()} | {peak['streamed']:.0f} | {peak['naive']:.0f} "
                f"| {peak['naive'] / peak['streamed']:.1f}x "
                f"| {peak['streamed'] - idle:.0f} | {peak['naive'] - idle:.0f} "
                f"| {secs['streamed']:.1f} | {secs['naive']:.1f} |"
            )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
