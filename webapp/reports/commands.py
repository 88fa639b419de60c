"""``flask --app webapp reports seed``: fill the contracts table with synthetic data."""

from __future__ import annotations

import time

import click
from flask import current_app

from ..db import db
from . import reports
from .seed import seed_contracts


@reports.cli.command("seed")
@click.option(
    "--rows",
    type=click.IntRange(min=0),
    default=None,
    help="How many contracts (default 200,000 on PostgreSQL, 20,000 on SQLite).",
)
@click.option("--seed", "seed", type=click.IntRange(0, 1_000_000), default=1, show_default=True,
              help="The random seed: the same seed gives the same contracts.")  # fmt: skip
@click.option("--replace", is_flag=True, help="Delete the contracts there are first.")
def seed_command(rows: int | None, seed: int, replace: bool) -> None:
    """Fill the contracts table with synthetic contracts (deterministic for a seed).

    A table that already holds contracts is left alone unless --replace.
    """
    with current_app.app_context():
        engine = db.engine
        if rows is None:
            rows = 200_000 if engine.dialect.name == "postgresql" else 20_000
        started = time.monotonic()
        try:
            made = seed_contracts(engine, rows, seed=seed, replace=replace, echo=click.echo)
        finally:
            engine.dispose()
    if made:
        click.echo(f"seeded {made:,} contracts in {time.monotonic() - started:.1f}s")
