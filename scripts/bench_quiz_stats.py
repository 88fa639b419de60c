"""How long a quiz's statistics take over many submissions, on PostgreSQL.

Makes a schema of its own in ``$DATABASE_URL`` (default: the test database), migrates it,
seeds the quizzes, loads N graded submissions of one quiz with ``flask quizzes seed``'s
set-based loader, then times ``webapp.quizzes.statistics.compute`` (the three aggregate
queries the statistics task runs) several times. The schema is dropped afterwards.

    .venv/bin/python scripts/bench_quiz_stats.py --submissions 100000 --runs 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from taskcore.history import make_engine
from webapp.migrations import WEBAPP
from webapp.quizzes import statistics as quiz_statistics
from webapp.quizzes.models import Quiz
from webapp.quizzes.seed import add_submissions, seed_quizzes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--quiz", default="python-basics")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    options = parser.parse_args()
    if not options.database_url.startswith("postgresql"):
        parser.error("this benchmark is for PostgreSQL")

    schema = f"bench_quiz_{uuid.uuid4().hex[:8]}"
    admin = make_engine(options.database_url)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in options.database_url else "?"
    engine = make_engine(f"{options.database_url}{separator}options=-csearch_path%3D{schema}")
    try:
        WEBAPP.upgrade(engine)
        with Session(engine) as session:
            seed_quizzes(session)
            session.commit()
            quiz = session.scalar(sa.select(Quiz).where(Quiz.slug == options.quiz))
            started = time.perf_counter()
            loaded = add_submissions(session, quiz, options.submissions)
            session.commit()
            load_s = time.perf_counter() - started
            quiz_id = quiz.id
        print(
            f"loaded {loaded.graded:,} graded submissions, {loaded.abandoned:,} abandoned "
            f"attempts, {loaded.answers:,} answers in {load_s:.2f} s"
        )
        timings = []
        for run in range(options.runs + 1):
            with engine.begin() as connection:
                started = time.perf_counter()
                data = quiz_statistics.compute(connection, quiz_id)
                elapsed = (time.perf_counter() - started) * 1000
            if run == 0:
                print(f"first run (no ANALYZE yet): {elapsed:.1f} ms")
                with engine.connect() as connection:
                    autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
                    for table in ("quiz_submissions", "quiz_answers"):  # what autovacuum does
                        autocommit.execute(sa.text(f"VACUUM ANALYZE {table}"))
                continue
            timings.append(elapsed)
        print(
            f"statistics over {data['graded']:,} graded submissions: median "
            f"{statistics.median(timings):.1f} ms, min {min(timings):.1f} ms, "
            f"max {max(timings):.1f} ms ({options.runs} runs after VACUUM ANALYZE)"
        )
        print(f"  runs: {', '.join(f'{t:.1f}' for t in timings)} ms")
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


if __name__ == "__main__":
    main()
