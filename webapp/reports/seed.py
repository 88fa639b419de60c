"""Synthetic contracts, the same for a given seed on every backend.

Each field of contract ``i`` is picked by an integer hash of ``i`` and the seed
(``_hash``), computed by PostgreSQL itself in one ``INSERT ... SELECT FROM
generate_series`` (a million rows in seconds), or in Python and inserted in batches
elsewhere (SQLite for ``make run`` without PostgreSQL). Both give the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from .models import Contract

AGENCIES = (
    "Ministry of Health", "Department of Transport", "Ministry of Education",
    "Department of Defence", "City of Northport", "Environment Agency",
    "Ministry of Justice", "Tax and Customs Office", "National Statistics Office",
    "Department of Agriculture", "Coastal Water Board", "Ministry of Culture",
    "Housing Authority", "Public Libraries Service", "Port Authority",
    "Energy Regulator", "Digital Services Agency", "Fire and Rescue Service",
)  # fmt: skip
CATEGORIES = (
    "Construction", "IT services", "Software licences", "Consulting", "Cleaning",
    "Catering", "Medical supplies", "Vehicles", "Energy", "Office supplies",
    "Security", "Training", "Legal services", "Maintenance",
)  # fmt: skip
SUPPLIER_NAMES = (
    "Acme", "Northwind", "Bluebird", "Granite", "Harbor", "Keystone", "Lumen", "Meridian",
    "Oakridge", "Pioneer", "Quartz", "Redwood", "Summit", "Tidewater", "Vertex", "Willow",
    "Atlas", "Beacon", "Cobalt", "Delta", "Evergreen", "Falcon", "Horizon", "Ironclad",
    "Juniper", "Kestrel", "Lighthouse", "Maple", "Nimbus", "Orion", "Pinnacle", "Riverside",
    "Sterling", "Thistle", "Unity", "Vantage", "Westbrook", "Yellowstone", "Zephyr", "Aurora",
)  # fmt: skip
SUPPLIER_KINDS = (
    "Ltd", "Group", "Consulting", "Systems", "Services", "Partners", "Solutions",
    "Engineering", "Supplies", "Logistics", "Facilities", "Technologies",
)  # fmt: skip
ACTIONS = (
    "Supply of", "Maintenance of", "Renovation of", "Framework agreement for",
    "Provision of", "Installation of", "Upgrade of", "Support for", "Delivery of",
    "Inspection of", "Replacement of", "Design of",
)  # fmt: skip
SUBJECTS = (
    "office furniture", "school buildings", "fleet vehicles", "hospital beds",
    "network equipment", "cloud hosting", "payroll software", "street lighting",
    "water pipes", "road surfaces", "laboratory equipment", "security cameras",
    "heating systems", "library books", "fire engines", "solar panels",
    "translation services", "legal advice", "staff training", "canteen services",
    "cleaning services", "data centre cooling", "ambulances", "bridge repairs",
    "printing services", "archive digitisation", "waste collection", "port cranes",
    "electric buses", "customer helpdesk",
)  # fmt: skip
REGIONS = ("North", "South", "East", "West", "Central", "Coastal", "Metro", "Rural")

FIRST_DAY = date(2019, 1, 1)
DAYS = 2557  # 2019-01-01 .. 2025-12-31
PRIME = 2147483647  # 2**31 - 1
# (a, c, d) per field: x = (a*(i + seed*1000003) + c) % P; h = (x*x + d) % P (fits a bigint).
_MIX = {
    "agency": (48271, 11, 7919),
    "category": (69621, 101, 104729),
    "supplier": (16807, 1009, 15485863),
    "title": (39373, 7, 32452843),
    "region": (40692, 13, 49979687),
    "amount": (41358, 17, 67867967),
    "day": (62089911, 19, 86028121),
}


def _hash(field: str, i: int, seed: int) -> int:
    a, c, d = _MIX[field]
    x = (a * (i + seed * 1000003) + c) % PRIME
    return (x * x + d) % PRIME


def _sql_hash(field: str) -> str:
    a, c, d = _MIX[field]
    x = f"(({a}::bigint * (g + :seed * 1000003) + {c}) % {PRIME})"
    return f"(({x} * {x} + {d}) % {PRIME})"


def contract_row(i: int, seed: int = 1) -> dict[str, Any]:
    """Contract number ``i`` (from 1) of ``seed``, as the PostgreSQL path makes it."""
    h = {field: _hash(field, i, seed) for field in _MIX}
    skew = (h["agency"] % 1000) ** 2 * len(AGENCIES) // 1000000  # a few agencies buy most
    supplier = (
        f"{SUPPLIER_NAMES[h['supplier'] % len(SUPPLIER_NAMES)]} "
        f"{SUPPLIER_KINDS[h['supplier'] // len(SUPPLIER_NAMES) % len(SUPPLIER_KINDS)]}"
    )
    title = (
        f"{ACTIONS[h['title'] % len(ACTIONS)]} "
        f"{SUBJECTS[h['title'] // len(ACTIONS) % len(SUBJECTS)]} "
        f"({REGIONS[h['region'] % len(REGIONS)]} region)"
    )
    amount = round(Decimal(500 * 10 ** (4.0 * h["amount"] / PRIME)), 2)
    return {
        "id": i,
        "reference": f"CT-{i:08d}",
        "title": title,
        "agency": AGENCIES[skew],
        "supplier": supplier,
        "category": CATEGORIES[h["category"] % len(CATEGORIES)],
        "amount": amount,
        "signed_on": FIRST_DAY + timedelta(days=h["day"] % DAYS),
    }


_PG_INSERT = f"""
INSERT INTO contracts (id, reference, title, agency, supplier, category, amount, signed_on)
SELECT g,
       'CT-' || lpad(g::text, 8, '0'),
       (CAST(:actions AS text[]))[1 + h_title % {len(ACTIONS)}] || ' '
         || (CAST(:subjects AS text[]))[1 + h_title / {len(ACTIONS)} % {len(SUBJECTS)}]
         || ' (' || (CAST(:regions AS text[]))[1 + h_region % {len(REGIONS)}] || ' region)',
       (CAST(:agencies AS text[]))[1 + (h_agency % 1000) * (h_agency % 1000)
                                       * {len(AGENCIES)} / 1000000],
       (CAST(:names AS text[]))[1 + h_supplier % {len(SUPPLIER_NAMES)}] || ' '
         || (CAST(:kinds AS text[]))[1 + h_supplier / {len(SUPPLIER_NAMES)}
                                         % {len(SUPPLIER_KINDS)}],
       (CAST(:categories AS text[]))[1 + h_category % {len(CATEGORIES)}],
       round((500 * power(10::float8, 4.0::float8 * h_amount / {PRIME}))::numeric, 2),
       DATE '{FIRST_DAY.isoformat()}' + (h_day % {DAYS})::int
FROM (
  SELECT g, {", ".join(f"{_sql_hash(field)} AS h_{field}" for field in _MIX)}
  FROM generate_series(CAST(:start AS bigint), CAST(:stop AS bigint)) AS g
) AS hashed
"""


def seed_contracts(
    engine: sa.Engine,
    rows: int,
    *,
    seed: int = 1,
    replace: bool = False,
    echo: Callable[[str], None] = lambda line: None,
    batch: int = 100_000,
) -> int:
    """Fill ``contracts`` with ``rows`` synthetic contracts; returns how many were inserted.

    A table that already holds contracts is left alone (0) unless ``replace``, which
    empties it first: seeding twice does not duplicate anything.
    """
    if rows < 0:
        raise ValueError("rows must be >= 0")
    table = Contract.__table__
    with engine.begin() as connection:
        present = connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
        if present and not replace:
            echo(f"contracts already holds {present:,} rows: left alone (--replace to reseed)")
            return 0
        if present:
            if connection.dialect.name == "postgresql":
                connection.execute(sa.text("TRUNCATE contracts"))
            else:
                connection.execute(table.delete())
            echo(f"deleted {present:,} contracts")
    postgres = engine.dialect.name == "postgresql"
    step = batch if postgres else 5_000
    done = 0
    for start in range(1, rows + 1, step):
        stop = min(start + step - 1, rows)
        with engine.begin() as connection:
            if postgres:
                connection.execute(sa.text(_PG_INSERT), _pg_params(start, stop, seed))
            else:
                connection.execute(
                    table.insert(), [contract_row(i, seed) for i in range(start, stop + 1)]
                )
        done = stop
        if done % 100_000 == 0 or done == rows:
            echo(f"{done:,} / {rows:,} contracts")
    if postgres:
        with engine.begin() as connection:
            connection.execute(sa.text("ANALYZE contracts"))
    return rows


def _pg_params(start: int, stop: int, seed: int) -> dict[str, Any]:
    return {
        "start": start,
        "stop": stop,
        "seed": seed,
        "actions": list(ACTIONS),
        "subjects": list(SUBJECTS),
        "regions": list(REGIONS),
        "agencies": list(AGENCIES),
        "names": list(SUPPLIER_NAMES),
        "kinds": list(SUPPLIER_KINDS),
        "categories": list(CATEGORIES),
    }


def iter_rows(rows: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """The rows ``seed_contracts`` makes, one by one (tests compare with them)."""
    for i in range(1, rows + 1):
        yield contract_row(i, seed)
