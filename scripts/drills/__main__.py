"""``python -m scripts.drills [--short] [NAME ...]``: run fault drills and print each report."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import click

from . import connection_cuts, kill_workers, kill_workflows, poison
from .report import Report
from .service_drills import SERVICE_DRILLS

#: Drill name -> run(short) -> Report. Order: cheapest first.
DRILLS: dict[str, Callable[[bool], Report]] = {
    "poison": poison.run,
    "cuts": connection_cuts.run,
    "kill": kill_workers.run,
    "kill-workflows": kill_workflows.run,
    **SERVICE_DRILLS,
}


@click.command()
@click.option("--short", is_flag=True, help="The small sizes the test suite runs.")
@click.argument("names", nargs=-1, type=click.Choice(sorted(DRILLS)))
def main(short: bool, names: tuple[str, ...]) -> None:
    """Run the fault drills (all of them unless NAMES are given); exit 1 if any fails."""
    failed = []
    started = time.monotonic()
    for name in names or DRILLS:
        click.echo(f"== {name}", err=True)
        try:
            click.echo(str(DRILLS[name](short)))
        except Exception as exc:  # report every drill, then fail
            failed.append(name)
            click.echo(f"{name}: FAILED: {exc}")
    click.echo(
        f"{len(names or DRILLS) - len(failed)} drill(s) passed in "
        f"{time.monotonic() - started:.0f} s" + (f"; failed: {failed}" if failed else "")
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
