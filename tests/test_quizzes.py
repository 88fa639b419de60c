"""Quizzes: grading (pure), submit -> pending -> graded with a real worker, double submits,
statistics against hand-computed and independently computed numbers, the seed command,
migrations, and a broker that is down when a learner submits."""

from __future__ import annotations

import re
import statistics as pystats
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from taskcore import State
from taskcore.history import make_engine
from webapp.auth.models import User
from webapp.db import db, utcnow
from webapp.migrations import WEBAPP
from webapp.quizzes import grading, statistics, tasks
from webapp.quizzes.models import Answer, Question, Quiz, QuizStatistics, Submission
from webapp.quizzes.seed import seed_quizzes

from .webapp_helpers import add_user, close_web_app, csrf_token_from, log_in, make_web_app

pytest_plugins = ["tests.webapp_fixtures"]

_TOKEN = re.compile(r'name="token" value="([^"]+)"')
_SUBMISSION = re.compile(r"/quizzes/submissions/(\d+)$")


# -- grading (pure) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Dead-Letter  Exchange! ", "deadletterexchange"),
        ("x-max-priority", "xmaxpriority"),
        ("WASHINGTON, D.C.", "washingtondc"),
        ("Straße", "strasse"),
        ("\uff44\uff45\uff46", "def"),  # full-width letters (NFKC)
        ("¿Qué?", "qué"),
        ("", ""),
    ],
)
def test_normalize_ignores_case_spaces_and_punctuation(text: str, expected: str) -> None:
    assert grading.normalize(text) == expected


def test_short_answers_match_any_accepted_answer_normalized() -> None:
    key = grading.Key(1, "short", ("Washington, D.C.", "Washington"))
    assert grading.is_correct(key, "washington dc")
    assert grading.is_correct(key, " WASHINGTON ")
    assert not grading.is_correct(key, "Washington state")
    assert not grading.is_correct(key, "")
    assert not grading.is_correct(key, "   ")
    assert not grading.is_correct(key, "?!")  # only punctuation: nothing left to compare
    assert not grading.is_correct(key, None)


def test_choices_must_be_exactly_the_correct_one() -> None:
    key = grading.Key(2, "choice", ("tuple",))
    assert grading.is_correct(key, "tuple")
    assert not grading.is_correct(key, "Tuple")
    assert not grading.is_correct(key, "list")
    with pytest.raises(ValueError, match="unknown question kind"):
        grading.is_correct(grading.Key(3, "essay", ("x",)), "x")


def test_grade_scores_every_question_and_counts_unanswered_as_wrong() -> None:
    keys = [
        grading.Key(1, "choice", ("3",)),
        grading.Key(2, "short", ("def",)),
        grading.Key(3, "short", ("three", "3")),
    ]
    result = grading.grade(keys, {1: "3", 2: " DEF. "})
    assert result.correct == {1: True, 2: True, 3: False}
    assert (result.score, result.total) == (2, 3)
    assert result.percent == pytest.approx(66.667, abs=0.001)
    assert grading.grade([], {}).percent == 0.0


def test_pass_mark_buckets_and_missing_answers() -> None:
    assert grading.passed(3, 5, 60) and not grading.passed(2, 5, 60)
    assert grading.passed(1, 2, 50) and not grading.passed(0, 0, 0)
    assert [grading.bucket(s, 5) for s in range(6)] == [0, 2, 4, 6, 8, 9]
    assert grading.bucket(1, 3) == 3 and grading.bucket(2, 3) == 6
    with pytest.raises(ValueError):
        grading.bucket(0, 0)
    assert grading.missing([1, 2, 3], {1: "a", 2: "  "}) == [2, 3]


# -- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
def quiz_app(database_url: str, task_env: dict[str, str]) -> Iterator[Flask]:
    """The web app on this test's vhost, Redis namespace and schema, seeded, with ada and bob."""
    settings = {key: value for key, value in task_env.items() if key.startswith("TASKCORE_")}
    app = make_web_app(database_url, **settings)
    add_user(app, "ada")
    add_user(app, "bob")
    assert app.test_cli_runner().invoke(args=["quizzes", "seed"]).exit_code == 0
    yield app
    close_web_app(app)


@pytest.fixture
def grading_worker(start_webapp_worker: Any) -> Any:
    return start_webapp_worker("grading", "statistics", env={"QUIZZES_STATS_WINDOW": "0.5"})


def signed_in(app: Flask, name: str) -> FlaskClient:
    client = app.test_client()
    assert log_in(client, name).status_code == 302
    return client


def questions_of(app: Flask, slug: str) -> list[Question]:
    with app.app_context():
        quiz = db.session.scalar(sa.select(Quiz).where(Quiz.slug == slug))
        assert quiz is not None
        questions = list(quiz.questions)
        for question in questions:
            db.session.expunge(question)
        return questions


def open_form(client: FlaskClient, slug: str) -> dict[str, str]:
    """GET the quiz; the hidden fields of its form (csrf_token, token)."""
    page = client.get(f"/quizzes/{slug}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    token = _TOKEN.search(html)
    assert token is not None
    return {"csrf_token": csrf_token_from(html), "token": token.group(1)}


PYTHON_ANSWERS = {  # by position: right, right (punctuation, case), wrong, right, wrong
    1: "3",
    2: "  DEF! ",
    3: "list",
    4: "Three.",
    5: "0",
}


def answers_form(questions: list[Question], by_position: dict[int, str]) -> dict[str, str]:
    return {f"q{q.id}": by_position[q.position] for q in questions if q.position in by_position}


def submission_id_of(response: Any) -> int:
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    found = _SUBMISSION.search(response.headers["Location"])
    assert found is not None, response.headers["Location"]
    return int(found.group(1))


def wait_graded(client: FlaskClient, submission_id: int, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(f"/quizzes/submissions/{submission_id}/status").get_json()
        if status["state"] == "graded":
            return status
        assert time.monotonic() < deadline, f"not graded in {timeout}s: {status}"
        time.sleep(0.1)


def submission(app: Flask, submission_id: int) -> Submission:
    with app.app_context():
        row = db.session.get(Submission, submission_id)
        assert row is not None
        db.session.expunge(row)
        return row


def stored_statistics(app: Flask, quiz_id: int) -> QuizStatistics | None:
    with app.app_context():
        row = db.session.get(QuizStatistics, quiz_id)
        if row is not None:
            db.session.expunge(row)
        return row


# -- the flow in-process (taskcore.testing: no worker, nothing sent to RabbitMQ) -----------


def test_in_process_the_submission_is_graded_before_the_view_answers(
    quiz_app: Flask, taskcore_in_process: Any, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)  # the tasks' own engine
    task_app = quiz_app.extensions["taskcore"]
    calls = taskcore_in_process(task_app)
    client = signed_in(quiz_app, "ada")
    questions = questions_of(quiz_app, "python-basics")
    form = open_form(client, "python-basics")
    response = client.post(
        "/quizzes/python-basics", data={**form, **answers_form(questions, PYTHON_ANSWERS)}
    )
    submission_id = submission_id_of(response)

    status = client.get(f"/quizzes/submissions/{submission_id}/status").get_json()
    assert (status["state"], status["score"], status["total"]) == ("graded", 3, 5)
    # The grading ran, then the statistics it asked for (their window's wait skipped).
    grading, stats_run = calls
    assert (grading.task, grading.state) == (tasks.grade_submission.name, State.SUCCESS)
    assert (stats_run.task, stats_run.state) == (tasks.compute_statistics.name, State.SUCCESS)
    assert grading.result == {
        "submission": submission_id,
        "outcome": "graded",
        "score": 3,
        "total": 5,
    }
    assert 0 <= stats_run.delay <= tasks.STATS_WINDOW
    row = submission(quiz_app, submission_id)
    assert (row.task_id, row.times_queued, row.grading_runs) == (grading.id, 1, 1)
    assert task_app.result(row.task_id).get(timeout=0) == grading.result
    stats = stored_statistics(quiz_app, row.quiz_id)
    assert stats is not None and stats.data["graded"] == 1
    assert stats.data["average_score"] == 60.0


# -- the flow with a real worker -----------------------------------------------------------


def test_submit_is_pending_then_graded_with_feedback_and_statistics(
    quiz_app: Flask, start_webapp_worker: Any
) -> None:
    client = signed_in(quiz_app, "ada")
    questions = questions_of(quiz_app, "python-basics")
    form = open_form(client, "python-basics")
    assert open_form(client, "python-basics")["token"] == form["token"]  # a reload reuses it

    started = time.monotonic()
    response = client.post(
        "/quizzes/python-basics", data={**form, **answers_form(questions, PYTHON_ANSWERS)}
    )
    # Answers with no worker running: grading is queued, not awaited (a generous bound:
    # a view that waited for the grade would hang for its whole timeout).
    assert time.monotonic() - started < 5.0
    submission_id = submission_id_of(response)

    # No worker yet: stored as pending, its grading queued, the page shows it is processing.
    row = submission(quiz_app, submission_id)
    assert (row.status, row.times_queued, row.grading_runs) == ("pending", 1, 0)
    assert row.queued_at is not None and row.task_id
    page = client.get(f"/quizzes/submissions/{submission_id}").get_data(as_text=True)
    assert "Grading your answers" in page and 'data-quiz-state="pending"' in page
    assert "Grade now" not in page  # queued moments ago
    status = client.get(f"/quizzes/submissions/{submission_id}/status").get_json()
    assert status["state"] == "pending" and status["score"] is None

    worker = start_webapp_worker("grading", "statistics", env={"QUIZZES_STATS_WINDOW": "0.5"})
    status = wait_graded(client, submission_id)
    assert (status["score"], status["total"], status["percent"]) == (3, 5, 60.0)

    page = client.get(f"/quizzes/submissions/{submission_id}").get_data(as_text=True)
    assert 'data-quiz-state="graded"' in page and 'id="quiz-score">3/5<' in page
    assert 'state-success">passed<' in page and "Pass mark 60%" in page
    feedback = re.findall(r'<li class="(right|wrong)">', page)
    assert feedback == ["right", "right", "wrong", "right", "wrong"]
    compact = re.sub(r">\s+<", "><", page)
    assert "<dt>Your answer</dt><dd>list</dd><dt>Correct answer</dt><dd>tuple</dd>" in compact
    assert "<dd>0</dd>" in page and "<dd>None</dd>" in page

    with quiz_app.app_context():
        marks = dict(
            db.session.execute(
                sa.select(Question.position, Answer.correct)
                .join(Answer, Answer.question_id == Question.id)
                .where(Answer.submission_id == submission_id)
            ).all()
        )
    assert marks == {1: True, 2: True, 3: False, 4: True, 5: False}
    handle = quiz_app.extensions["taskcore"].result(submission(quiz_app, submission_id).task_id)
    assert handle.get(timeout=5) == {
        "submission": submission_id,
        "outcome": "graded",
        "score": 3,
        "total": 5,
    }

    # The grading asked for the quiz's statistics; the worker computed them.
    deadline = time.monotonic() + 10
    while (stats := stored_statistics(quiz_app, row.quiz_id)) is None:
        assert time.monotonic() < deadline, worker.output
        time.sleep(0.1)
    assert stats.data["graded"] == 1 and stats.data["average_score"] == 60.0
    assert stats.data["distribution"] == [0, 0, 0, 0, 0, 0, 1, 0, 0, 0]
    page = client.get("/quizzes/python-basics/statistics").get_data(as_text=True)
    assert '<svg class="chart quiz-chart"' in page and 'id="stat-average">60.0%<' in page
    assert "Completion rate" in page and "up to date" in page

    listing = client.get("/quizzes").get_data(as_text=True)
    assert "5 questions" in listing and "6 questions" in listing and "3/5 (60%)" in listing


def test_the_same_form_twice_is_one_submission_graded_once(
    quiz_app: Flask, grading_worker: Any, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    questions = questions_of(quiz_app, "world-capitals")
    answers = answers_form(questions, {1: "canberra", 2: "Ottawa", 3: "Washington DC", 4: "Bern"})
    # Two tabs of the same learner: the same open attempt, so the same one-time token.
    tabs = [signed_in(quiz_app, "ada"), signed_in(quiz_app, "ada")]
    forms = [open_form(tab, "world-capitals") for tab in tabs]
    assert forms[0]["token"] == forms[1]["token"]

    barrier = threading.Barrier(2)
    responses: list[Any] = [None, None]

    def post(i: int) -> None:
        barrier.wait()
        responses[i] = tabs[i].post("/quizzes/world-capitals", data={**forms[i], **answers})

    threads = [threading.Thread(target=post, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    first, second = (submission_id_of(r) for r in responses)
    assert first == second
    # Later: the back button and submit again.
    again = tabs[0].post("/quizzes/world-capitals", data={**forms[0], **answers})
    assert submission_id_of(again) == first
    assert "already submitted" in tabs[0].get(again.headers["Location"]).get_data(as_text=True)

    assert wait_graded(tabs[0], first)["score"] == 4
    with quiz_app.app_context():
        rows = db.session.execute(
            sa.select(Submission.status, Submission.grading_runs, Submission.times_queued)
            .join(User, User.id == Submission.user_id)
            .where(User.name == "ada")
        ).all()
    assert rows == [("graded", 1, 1)]  # one submission, one task sent, graded once
    task_app = quiz_app.extensions["taskcore"]
    outcome = task_app.result(submission(quiz_app, first).task_id).get(timeout=5)
    assert outcome["outcome"] == "graded"

    # The task itself is safe to run twice: a second run finds it graded and changes nothing.
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert tasks.grade_submission(first)["outcome"] == "already graded"
    # And sending it again with the same idempotency key is not queued at all.
    handle = tasks.send_grading(first, 0)
    assert handle.id == submission(quiz_app, first).task_id
    assert submission(quiz_app, first).grading_runs == 1

    # A new visit after submitting gets a fresh form (a new attempt, a new token).
    assert open_form(tabs[0], "world-capitals")["token"] != forms[0]["token"]


def test_errors_a_learner_can_act_on(quiz_app: Flask) -> None:
    ada, bob = signed_in(quiz_app, "ada"), signed_in(quiz_app, "bob")
    missing = ada.get("/quizzes/no-such-quiz")
    assert missing.status_code == 404
    assert "There is no quiz called" in missing.get_data(as_text=True)

    questions = questions_of(quiz_app, "python-basics")
    form = open_form(ada, "python-basics")
    partial = answers_form(questions, {1: "3", 2: "def", 3: "not an option"})
    incomplete = ada.post("/quizzes/python-basics", data={**form, **partial})
    assert incomplete.status_code == 400
    page = incomplete.get_data(as_text=True)
    assert "3 questions still need an answer. Nothing was submitted yet" in page
    assert page.count("Answer this question.") == 2 and "Pick one of the options." in page
    assert f'value="{form["token"]}"' in page and 'value="def"' in page  # typed answers kept
    with quiz_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Answer)) == 0

    # Not a form we gave: nothing stored, a fresh form.
    forged = ada.post("/quizzes/python-basics", data={**form, "token": "forged"})
    assert forged.status_code == 303 and forged.headers["Location"].endswith("/python-basics")

    # A submission of someone else: answered as if it did not exist.
    complete = answers_form(questions, PYTHON_ANSWERS)
    submission_id = submission_id_of(ada.post("/quizzes/python-basics", data={**form, **complete}))
    assert bob.get(f"/quizzes/submissions/{submission_id}").status_code == 404
    status = bob.get(f"/quizzes/submissions/{submission_id}/status")
    assert status.status_code == 404 and "error" in status.get_json()
    bobs_csrf = csrf_token_from(bob.get("/quizzes/python-basics").get_data(as_text=True))
    grade = bob.post(f"/quizzes/submissions/{submission_id}/grade", data={"csrf_token": bobs_csrf})
    assert grade.status_code == 404
    assert ada.get(f"/quizzes/submissions/{submission_id}").status_code == 200
    assert quiz_app.test_client().get("/quizzes").status_code == 302  # sign in first
    assert ada.get("/quizzes/no-such-quiz/statistics").status_code == 404
    stats_page = ada.get("/quizzes/python-basics/statistics").get_data(as_text=True)
    assert "No statistics yet" in stats_page


def test_broker_down_keeps_the_submission_and_grading_catches_up(
    database_url: str, task_env: dict[str, str], start_webapp_worker: Any
) -> None:
    settings = {key: value for key, value in task_env.items() if key.startswith("TASKCORE_")}
    down = make_web_app(
        database_url, **{**settings, "TASKCORE_BROKER_URL": "amqp://guest:guest@127.0.0.1:1/"}
    )
    try:
        add_user(down, "ada")
        assert down.test_cli_runner().invoke(args=["quizzes", "seed"]).exit_code == 0
        client = signed_in(down, "ada")
        questions = questions_of(down, "world-capitals")
        ids = []
        for answers in ({1: "Sydney", 2: "Ottawa", 3: "washington", 4: "Bern"}, {1: "x"}):
            form = open_form(client, "world-capitals")
            full = {1: "x", 2: "Ottawa", 3: "x", 4: "Zurich", **answers}
            started = time.monotonic()
            response = client.post(
                "/quizzes/world-capitals", data={**form, **answers_form(questions, full)}
            )
            assert time.monotonic() - started < 10
            ids.append(submission_id_of(response))
        page = client.get(f"/quizzes/submissions/{ids[0]}")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert "grading is delayed" in html and "Grading is delayed" in html
        assert 'data-quiz-state="delayed"' in html and "Grade now" in html
        for submission_id in ids:
            row = submission(down, submission_id)
            assert (row.status, row.queued_at, row.times_queued) == ("pending", None, 0)
        assert client.get(f"/quizzes/submissions/{ids[0]}/status").get_json()["state"] == (
            "delayed"
        )
    finally:
        close_web_app(down)

    up = make_web_app(database_url, **settings)
    try:
        start_webapp_worker("grading", "statistics", env={"QUIZZES_STATS_WINDOW": "0.5"})
        client = signed_in(up, "ada")
        # The learner presses "Grade now" on the first ...
        page = client.get(f"/quizzes/submissions/{ids[0]}").get_data(as_text=True)
        grade_now = client.post(
            f"/quizzes/submissions/{ids[0]}/grade", data={"csrf_token": csrf_token_from(page)}
        )
        assert grade_now.status_code == 303
        assert wait_graded(client, ids[0])["score"] == 3
        # ... and the periodic re-drive picks up the other, never queued for 30 s.
        with up.app_context():
            db.session.execute(
                sa.update(Submission)
                .where(Submission.id == ids[1])
                .values(submitted_at=utcnow() - timedelta(minutes=1))
            )
            db.session.commit()
            assert tasks.redrive(engine=db.engine) == {"redriven": 1}
            assert tasks.redrive(engine=db.engine) == {"redriven": 0}  # queued now
        assert wait_graded(client, ids[1])["score"] == 1
        assert [submission(up, i).grading_runs for i in ids] == [1, 1]
    finally:
        close_web_app(up)


# -- statistics ----------------------------------------------------------------------------

TINY = {
    "slug": "tiny",
    "title": "Tiny",
    "pass_mark": 50,
    "questions": [{"kind": "short", "prompt": f"Q{i}", "accepted": [f"a{i}"]} for i in range(1, 5)],
}


def load_tiny(session: Session) -> int:
    """Four graded submissions (4/4, 2/4, 1/4, 0/4), one pending, one started."""
    seed_quizzes(session, [TINY])
    quiz = session.scalar(sa.select(Quiz).where(Quiz.slug == "tiny"))
    user = User(name="tiny-learner", role="viewer", password_hash="x")
    session.add(user)
    session.flush()
    right_questions = [{1, 2, 3, 4}, {1, 2}, {1}, set(), None, None]
    for n, right in enumerate(right_questions):
        status = "graded" if n < 4 else ("pending" if n == 4 else "started")
        row = Submission(quiz_id=quiz.id, user_id=user.id, token=f"t{n}", status=status)
        if status != "started":
            row.submitted_at = utcnow()
            for q in quiz.questions:
                correct = None if right is None else q.position in right
                row.answers.append(Answer(question_id=q.id, given="?", correct=correct))
        if status == "graded":
            row.score, row.total, row.graded_at = len(right), 4, utcnow()
        session.add(row)
    session.commit()
    return quiz.id


def check_tiny(data: dict[str, Any], question_ids: dict[int, int]) -> None:
    """The hand-computed figures of load_tiny's submissions."""
    assert data["attempts"] == 6 and data["submitted"] == 5 and data["graded"] == 4
    assert data["passed"] == 2  # 100 % and exactly the pass mark, 50 %
    assert data["average_score"] == pytest.approx((100 + 50 + 25 + 0) / 4)
    assert data["completion_rate"] == pytest.approx(4 / 6)
    assert data["pass_rate"] == pytest.approx(0.5)
    assert data["distribution"] == [1, 0, 1, 0, 0, 1, 0, 0, 0, 1]
    shares = {item["position"]: item["share_correct"] for item in data["questions"]}
    assert shares == {1: 0.75, 2: 0.5, 3: 0.25, 4: 0.25}
    assert data["hardest"] == [question_ids[3], question_ids[4], question_ids[2]]


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_statistics_match_hand_computed_numbers(
    backend: str, database_url: str, tmp_path: Path
) -> None:
    url = database_url if backend == "postgresql" else f"sqlite:///{tmp_path / 'q.sqlite3'}"
    engine = make_engine(url)
    try:
        WEBAPP.upgrade(engine)
        with Session(engine) as session:
            quiz_id = load_tiny(session)
            ids = dict(session.execute(sa.select(Question.position, Question.id)).all())
        with engine.begin() as connection:
            check_tiny(statistics.compute(connection, quiz_id), ids)
            statistics.refresh(connection, quiz_id)
            statistics.refresh(connection, quiz_id)  # replaces the row
        with Session(engine) as session:
            (stored,) = session.scalars(sa.select(QuizStatistics)).all()
            check_tiny(stored.data, ids)
            assert stored.duration_ms > 0 and stored.computed_at <= utcnow()
            assert statistics.compute(session.connection(), 999)["average_score"] is None
    finally:
        engine.dispose()


def expected_statistics(connection: sa.Connection, quiz_id: int) -> dict[str, Any]:
    """The figures computed independently in Python from every row of the quiz."""
    pass_mark = connection.execute(sa.text(f"SELECT pass_mark FROM quizzes WHERE id={quiz_id}"))
    pass_mark = pass_mark.scalar_one()
    rows = connection.execute(
        sa.text(f"SELECT status, score, total FROM quiz_submissions WHERE quiz_id={quiz_id}")
    ).all()
    graded = [(score, total) for status, score, total in rows if status == "graded"]
    answers = connection.execute(
        sa.text(
            "SELECT q.position, a.correct FROM quiz_answers a JOIN quiz_questions q"
            f" ON q.id = a.question_id WHERE q.quiz_id = {quiz_id} AND a.correct IS NOT NULL"
        )
    ).all()
    by_question: dict[int, list[bool]] = {}
    for position, correct in answers:
        by_question.setdefault(position, []).append(bool(correct))
    histogram = [0] * 10
    for score, total in graded:
        histogram[min(int(10 * score / total), 9)] += 1
    return {
        "attempts": len(rows),
        "graded": len(graded),
        "average_score": pystats.fmean(100 * s / t for s, t in graded),
        "pass_rate": sum(100 * s / t >= pass_mark for s, t in graded) / len(graded),
        "completion_rate": len(graded) / len(rows),
        "distribution": histogram,
        "shares": {p: sum(v) / len(v) for p, v in by_question.items()},
    }


def compare(data: dict[str, Any], expected: dict[str, Any]) -> None:
    for name in ("attempts", "graded", "distribution"):
        assert data[name] == expected[name], name
    for name in ("average_score", "pass_rate", "completion_rate"):
        assert data[name] == pytest.approx(expected[name]), name
    shares = {item["position"]: item["share_correct"] for item in data["questions"]}
    assert shares == pytest.approx(expected["shares"])
    ordered = sorted(expected["shares"], key=lambda p: (expected["shares"][p], p))[:3]
    positions = {item["id"]: item["position"] for item in data["questions"]}
    assert [positions[i] for i in data["hardest"]] == ordered


def test_seed_command_is_idempotent_and_its_submissions_give_the_right_statistics(
    quiz_app: Flask,
) -> None:
    runner = quiz_app.test_cli_runner()
    again = runner.invoke(args=["quizzes", "seed"])
    assert again.exit_code == 0 and "exist already" in again.output
    with quiz_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Quiz)) == 3

    started = time.monotonic()
    loaded = runner.invoke(args=["quizzes", "seed", "--submissions", "2000", "--quiz", "tiny"])
    assert loaded.exit_code == 2 and "no quiz 'tiny'" in loaded.output
    loaded = runner.invoke(
        args=["quizzes", "seed", "--submissions", "2000", "--quiz", "rabbitmq-fundamentals"]
    )
    assert loaded.exit_code == 0, loaded.output
    assert time.monotonic() - started < 15
    assert "2,000 graded submissions, 222 abandoned attempts and 12,000 answers" in loaded.output
    assert "statistics over 2,000 graded submissions computed in" in loaded.output

    with quiz_app.app_context():
        quiz_id = db.session.scalar(sa.select(Quiz.id).where(Quiz.slug == "rabbitmq-fundamentals"))
        data = db.session.get(QuizStatistics, quiz_id).data
        expected = expected_statistics(db.session.connection(), quiz_id)
        # Scores were summed in SQL: they agree with the answers row by row.
        mismatched = db.session.scalar(
            sa.text(
                "SELECT count(*) FROM quiz_submissions s WHERE s.status = 'graded' AND s.score <>"
                " (SELECT count(*) FROM quiz_answers a WHERE a.submission_id = s.id AND a.correct)"
            )
        )
        assert mismatched == 0
        others = db.session.scalar(
            sa.select(sa.func.count()).select_from(Submission).where(Submission.quiz_id != quiz_id)
        )
        assert others == 0
    compare(data, expected)
    assert 0 < data["pass_rate"] < 1 and len(set(data["distribution"])) > 3  # a spread


def test_seed_and_statistics_on_sqlite(tmp_path: Path) -> None:
    """`make run`'s database: the same set-based seed and the same SQL statistics."""
    app = make_web_app(f"sqlite:///{tmp_path / 'webapp.sqlite3'}")
    try:
        result = app.test_cli_runner().invoke(args=["quizzes", "seed", "--submissions", "300"])
        assert result.exit_code == 0, result.output
        assert result.output.count("statistics over 300 graded submissions") == 3
        with app.app_context():
            for quiz_id in db.session.scalars(sa.select(Quiz.id)):
                data = db.session.get(QuizStatistics, quiz_id).data
                compare(data, expected_statistics(db.session.connection(), quiz_id))
    finally:
        close_web_app(app)


def test_statistics_requests_collapse_into_one_run_per_window(
    quiz_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks, "STATS_WINDOW", 60.0)
    now = 6_000_030.0  # 30 s into a 60 s window
    handles = [tasks.request_statistics(7, now=now + i * 0.25) for i in range(40)]
    assert len({h.id for h in handles}) == 1  # one message for the burst
    task_app = quiz_app.extensions["taskcore"]
    assert task_app.status(handles[0].id).state == State.PENDING  # delayed to the window's end
    later = tasks.request_statistics(7, now=now + 60)  # the next window: a new run
    assert later.id != handles[0].id
    other_quiz = tasks.request_statistics(8, now=now)
    assert other_quiz.id != handles[0].id


# -- schema --------------------------------------------------------------------------------


def test_models_and_migrations_agree(database_url: str, tmp_path: Path) -> None:
    for url in (database_url, f"sqlite:///{tmp_path / 'm.sqlite3'}"):
        engine = make_engine(url)
        try:
            WEBAPP.upgrade(engine)
            assert WEBAPP.differences(engine) == []
            tables = set(sa.inspect(engine).get_table_names())
            assert {"quizzes", "quiz_questions", "quiz_submissions", "quiz_answers"} <= tables
            WEBAPP.downgrade(engine, "0001_console_auth")
            assert "quiz_submissions" not in set(sa.inspect(engine).get_table_names())
            WEBAPP.upgrade(engine)
            assert WEBAPP.differences(engine) == []
        finally:
            engine.dispose()
