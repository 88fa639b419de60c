"""The seeded quizzes, and synthetic graded submissions in bulk (for load and benchmarks).

``seed_quizzes`` is idempotent: a quiz whose slug exists is left as it is (its
submissions refer to its questions). ``add_submissions`` writes N graded submissions
with two set-based statements (no row goes through Python), whatever N is:

1. ``INSERT INTO quiz_submissions ... SELECT`` from a recursive counter n = 1 ... N (a
   CTE both PostgreSQL and SQLite run), plus one abandoned ``started`` attempt per nine;
   each answer is right or wrong by a fixed arithmetic hash of (n, question position)
   (``right_expression``: later questions are harder, learners differ), so the score is
   summed right there;
2. ``INSERT INTO quiz_answers ... SELECT`` the new submissions joined with the quiz's
   questions, the same hash deciding each answer (n is read back from the token).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from ..auth.models import User
from ..db import utcnow
from .models import GRADED, STARTED, Answer, Question, Quiz, Submission

#: The learner the synthetic submissions belong to (cannot sign in: nobody knows its password).
SEED_LEARNER = "quiz-seed-learner"

QUIZZES: list[dict[str, Any]] = [
    {
        "slug": "python-basics",
        "title": "Python basics",
        "description": "Ten minutes on the language the web app and its workers are written in.",
        "pass_mark": 60,
        "questions": [
            {
                "kind": "choice",
                "prompt": "What does len([1, 2, 3]) return?",
                "choices": ["2", "3", "6", "It raises TypeError"],
                "accepted": ["3"],
            },
            {
                "kind": "short",
                "prompt": "Which keyword defines a function?",
                "accepted": ["def"],
            },
            {
                "kind": "choice",
                "prompt": "Which of these types is immutable?",
                "choices": ["list", "dict", "tuple", "set"],
                "accepted": ["tuple"],
            },
            {
                "kind": "short",
                "prompt": "What is the value of 7 // 2?",
                "accepted": ["3", "three"],
            },
            {
                "kind": "choice",
                "prompt": "What does a function return when it has no return statement?",
                "choices": ["0", "False", "None", "An empty string"],
                "accepted": ["None"],
            },
        ],
    },
    {
        "slug": "rabbitmq-fundamentals",
        "title": "RabbitMQ fundamentals",
        "description": "Exchanges, queues and acknowledgements: what taskcore is built on.",
        "pass_mark": 70,
        "questions": [
            {
                "kind": "choice",
                "prompt": "Which exchange type routes a message by an exact routing key?",
                "choices": ["fanout", "direct", "topic", "headers"],
                "accepted": ["direct"],
            },
            {
                "kind": "short",
                "prompt": "Where does a rejected or expired message go, if the queue names one?",
                "accepted": ["dead letter exchange", "a dead letter exchange", "DLX"],
            },
            {
                "kind": "choice",
                "prompt": "When does taskcore acknowledge a message?",
                "choices": [
                    "As soon as it is delivered",
                    "After its outcome is durable",
                    "Before the task starts",
                    "Never",
                ],
                "accepted": ["After its outcome is durable"],
            },
            {
                "kind": "short",
                "prompt": "Which queue argument enables message priorities (name it)?",
                "accepted": ["x-max-priority"],
            },
            {
                "kind": "choice",
                "prompt": "Which queue type is replicated across a cluster?",
                "choices": ["classic", "quorum", "exclusive", "auto-delete"],
                "accepted": ["quorum"],
            },
            {
                "kind": "short",
                "prompt": "Which AMQP method tells the broker a message was handled?",
                "accepted": ["basic.ack", "ack"],
            },
        ],
    },
    {
        "slug": "world-capitals",
        "title": "World capitals",
        "description": "Four capitals, typed or picked.",
        "pass_mark": 50,
        "questions": [
            {
                "kind": "short",
                "prompt": "What is the capital of Australia?",
                "accepted": ["Canberra"],
            },
            {
                "kind": "choice",
                "prompt": "What is the capital of Canada?",
                "choices": ["Toronto", "Vancouver", "Ottawa", "Montreal"],
                "accepted": ["Ottawa"],
            },
            {
                "kind": "short",
                "prompt": "What is the capital of the United States?",
                "accepted": ["Washington, D.C.", "Washington", "Washington DC"],
            },
            {
                "kind": "choice",
                "prompt": "What is the capital of Switzerland?",
                "choices": ["Zurich", "Geneva", "Bern", "Basel"],
                "accepted": ["Bern"],
            },
        ],
    },
]


def seed_quizzes(session: Any, quizzes: list[dict[str, Any]] | None = None) -> list[str]:
    """Create every quiz of ``quizzes`` (default QUIZZES) that does not exist yet (by slug);
    returns the slugs created. The caller commits."""
    quizzes = QUIZZES if quizzes is None else quizzes
    existing = set(session.scalars(sa.select(Quiz.slug)))
    created = []
    for spec in quizzes:
        if spec["slug"] in existing:
            continue
        quiz = Quiz(
            slug=spec["slug"],
            title=spec["title"],
            description=spec.get("description", ""),
            pass_mark=spec.get("pass_mark", 60),
        )
        for position, question in enumerate(spec["questions"], 1):
            quiz.questions.append(
                Question(
                    position=position,
                    kind=question["kind"],
                    prompt=question["prompt"],
                    choices=question.get("choices"),
                    accepted=list(question["accepted"]),
                )
            )
        session.add(quiz)
        created.append(spec["slug"])
    session.flush()
    return created


def seed_learner(session: Any) -> int:
    """The id of the seed learner, made if missing (a viewer with a password nobody knows)."""
    user_id = session.scalar(sa.select(User.id).where(User.name == SEED_LEARNER))
    if user_id is None:
        user = User(
            name=SEED_LEARNER,
            role="viewer",
            password_hash=generate_password_hash(secrets.token_hex(32), method="pbkdf2"),
        )
        session.add(user)
        session.flush()
        user_id = user.id
    return user_id


@dataclass(frozen=True)
class Loaded:
    """What ``add_submissions`` wrote."""

    quiz_id: int
    graded: int
    abandoned: int
    answers: int


def right_expression(n: Any, position: Any) -> sa.ColumnElement[bool]:
    """Whether the synthetic answer to question ``position`` of the ``n``-th submission of a
    batch is right (SQL; ``n`` and ``position`` may be columns or numbers).

    A fixed, well-mixed hash of (n, position) into 0-99 (squaring modulo the prime 10007;
    every intermediate fits a 32-bit integer) is compared with a threshold: the question's
    ease (95 for the first question, 10 less per position, at least 35) plus the learner's
    ability (-30 to +30, a hash of ``n``). So later questions are harder and scores spread
    over the whole range.
    """
    ease = sa.case((position > 7, 35), else_=105 - 10 * position)
    mixed = ((n % 10007) * 7919 + position * 104_729) % 10007
    draw = ((mixed * mixed) % 10007) % 100
    ability = ((n % 61) * 37) % 61 - 30
    return draw < ability + ease


def add_submissions(session: Any, quiz: Quiz, count: int) -> Loaded:
    """Write ``count`` graded submissions (and ``count // 9`` abandoned attempts) of ``quiz``
    with two set-based statements. The caller commits."""
    s = Submission.__table__
    a = Answer.__table__
    q = Question.__table__
    learner = seed_learner(session)
    questions = sorted(quiz.questions, key=lambda question: question.position)
    prefix = f"seed-{secrets.token_hex(4)}-"
    now = utcnow()

    # 1. The submissions, numbered n = 1 ... by a recursive counter; n is kept in the token
    #    and decides each answer, so the score is known here already.
    abandoned = count // 9
    counter = sa.select(sa.literal(1).label("n")).cte("counter", recursive=True)
    counter = counter.union_all(
        sa.select((counter.c.n + 1).label("n")).where(counter.c.n < count + abandoned)
    )
    n = counter.c.n
    is_graded = n <= count
    status = sa.case((is_graded, sa.literal(GRADED)), else_=sa.literal(STARTED))
    stamp = sa.case((is_graded, sa.literal(now, Submission.graded_at.type)), else_=sa.null())
    score = sum(
        (sa.case((right_expression(n, question.position), 1), else_=0) for question in questions),
        start=sa.literal(0),
    )
    columns = {
        "quiz_id": sa.literal(quiz.id),
        "user_id": sa.literal(learner),
        "token": sa.literal(prefix) + sa.cast(n, sa.String),
        "status": status,
        "started_at": sa.literal(now, Submission.started_at.type),
        "submitted_at": stamp,
        "queued_at": stamp,
        "times_queued": sa.case((is_graded, 1), else_=0),
        "graded_at": stamp,
        "score": sa.case((is_graded, score), else_=sa.null()),
        "total": sa.case((is_graded, len(questions)), else_=sa.null()),
        "grading_runs": sa.case((is_graded, 1), else_=0),
    }
    session.execute(
        sa.insert(s).from_select(list(columns), sa.select(*columns.values()).select_from(counter))
    )

    # 2. Every answer of the new graded submissions in one statement: each submission
    #    joined with each question, n read back from the token.
    n_of = sa.cast(sa.func.substr(s.c.token, len(prefix) + 1), sa.Integer)
    right = right_expression(n_of, q.c.position)
    given = sa.case(
        (right, sa.case({qq.id: qq.correct_answer for qq in questions}, value=q.c.id)),
        else_=sa.case({qq.id: _wrong_answer(qq) for qq in questions}, value=q.c.id),
    )
    result = session.execute(
        sa.insert(a).from_select(
            ["submission_id", "question_id", "given", "correct"],
            sa.select(s.c.id, q.c.id, given, right)
            .select_from(s.join(q, q.c.quiz_id == s.c.quiz_id))
            .where(
                s.c.quiz_id == quiz.id,
                s.c.status == GRADED,
                s.c.token.startswith(prefix, autoescape=True),
            ),
        )
    )
    return Loaded(quiz.id, count, abandoned, result.rowcount)


def _wrong_answer(question: Question) -> str:
    if question.choices:
        return next(c for c in question.choices if c not in question.accepted)
    return "I don't know"
