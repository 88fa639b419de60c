"""``flask --app webapp quizzes ...``: seed the quizzes, load submissions, statistics, re-drive."""

from __future__ import annotations

import time

import click
import sqlalchemy as sa

from ..db import db
from . import quizzes, statistics
from .models import Quiz
from .seed import add_submissions, seed_quizzes


def _quizzes(slug: str | None) -> list[Quiz]:
    query = sa.select(Quiz).order_by(Quiz.id)
    if slug is not None:
        query = query.where(Quiz.slug == slug)
    found = list(db.session.scalars(query))
    if slug is not None and not found:
        known = ", ".join(db.session.scalars(sa.select(Quiz.slug).order_by(Quiz.slug)))
        raise click.BadParameter(
            f"no quiz {slug!r} (there are: {known or 'none'})", param_hint="--quiz"
        )
    return found


@quizzes.cli.command("seed")
@click.option(
    "--submissions",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Also write this many graded submissions per quiz (set-based, for load and benchmarks).",
)
@click.option("--quiz", "slug", default=None, help="Only this quiz (a slug) gets submissions.")
def seed_command(submissions: int, slug: str | None) -> None:
    """Create the seeded quizzes (those missing; idempotent), then optionally submissions,
    and compute the statistics of every quiz that got some."""
    created = seed_quizzes(db.session)
    db.session.commit()
    if created:
        click.echo(f"created quiz(zes): {', '.join(created)}")
    else:
        click.echo("the seeded quizzes exist already")
    if not submissions:
        return
    for quiz in _quizzes(slug):
        started = time.perf_counter()
        loaded = add_submissions(db.session, quiz, submissions)
        db.session.commit()
        elapsed = time.perf_counter() - started
        click.echo(
            f"{quiz.slug}: {loaded.graded:,} graded submissions, {loaded.abandoned:,} abandoned "
            f"attempts and {loaded.answers:,} answers written in {elapsed:.2f} s"
        )
        _refresh(quiz)


def _refresh(quiz: Quiz) -> None:
    with db.engine.begin() as connection:
        row = statistics.refresh(connection, quiz.id)
    data = row.data
    average = "-" if data["average_score"] is None else f"{data['average_score']:.1f}%"
    click.echo(
        f"{quiz.slug}: statistics over {data['graded']:,} graded submissions computed in "
        f"{row.duration_ms:.0f} ms (average {average})"
    )


@quizzes.cli.command("statistics")
@click.option("--quiz", "slug", default=None, help="Only this quiz (a slug).")
def statistics_command(slug: str | None) -> None:
    """Compute and store the statistics now (the worker does it after grading)."""
    for quiz in _quizzes(slug):
        _refresh(quiz)


@quizzes.cli.command("redrive")
@click.option("--limit", type=click.IntRange(min=1), default=500, show_default=True)
def redrive_command(limit: int) -> None:
    """Queue grading again for pending submissions never queued (30 s) or lost (10 min)."""
    from taskcore import PublishError

    from .tasks import redrive

    try:
        outcome = redrive(limit=limit, engine=db.engine)
    except PublishError as exc:
        raise click.ClickException(f"the broker cannot be reached: {exc}") from exc
    click.echo(f"re-queued the grading of {outcome['redriven']} pending submission(s)")
