"""The workloads over /api/v1: quizzes graded by a real worker, documents answered and
typeset, orders and their notifications, report exports and searches; who sees what,
refusals, and a broker that is down (nothing lost)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from webapp.db import db
from webapp.documents.models import Document
from webapp.quizzes.models import Question, Quiz, Submission
from webapp.reports.models import ReportExport
from webapp.reports.seed import seed_contracts

from .webapp_helpers import (
    add_token,
    add_user,
    close_web_app,
    csrf_token_from,
    log_in,
    make_web_app,
    wait_until,
)

pytest_plugins = ["tests.webapp_fixtures"]

NO_BROKER = "amqp://guest:guest@127.0.0.1:1/"
PAPER = "1. What is 2 + 3?\n2. What is the capital of France?\n"
GOOD_ORDER = {
    "customer_name": "Ada Lovelace",
    "phone": "+44 20 7946 0958",
    "email": "ada@example.com",
    "items": "2 notebooks, 1 pen",
    "amount": 19.9,
}
#: python-basics answers by position: right, right, wrong, right, wrong (3 of 5).
PYTHON_ANSWERS = {1: "3", 2: "  DEF! ", 3: "list", 4: "Three.", 5: "0"}


class Api:
    """Calls /api/v1 with a bearer token, or with a signed-in client (and its CSRF token)."""

    def __init__(self, client: FlaskClient, token: str | None = None, csrf: str = "") -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"} if token else {"X-CSRFToken": csrf}

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.call("POST", path, **kwargs)


def error_of(response: Any) -> dict[str, Any]:
    body = response.get_json()
    assert set(body) == {"error"}, body
    return body["error"]


def build(database_url: str, task_env: dict[str, str], tmp_path: Path, **config: Any) -> Flask:
    """The web app on this test's services, ada and bob, the quizzes, a few contracts."""
    taskcore = {k: v for k, v in task_env.items() if k.startswith("TASKCORE_")}
    settings = {**taskcore, "STORAGE_DIR": str(tmp_path / "storage")}
    settings |= {"DOCUMENTS_MAX_UPLOAD_BYTES": 4096, **config}
    app = make_web_app(database_url, **settings)
    add_user(app, "ada")
    add_user(app, "bob")
    assert app.test_cli_runner().invoke(args=["quizzes", "seed"]).exit_code == 0
    with app.app_context():
        seed_contracts(db.engine, 1500, seed=3)
    return app


@pytest.fixture
def export_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "exports"
    monkeypatch.setenv("WEBAPP_EXPORT_DIR", str(path))
    return path


@pytest.fixture
def app(
    database_url: str, task_env: dict[str, str], tmp_path: Path, export_dir: Path
) -> Iterator[Flask]:
    built = build(database_url, task_env, tmp_path)
    yield built
    close_web_app(built)


def person(app: Flask, name: str) -> Api:
    """A signed-in user, sending the page's CSRF token as the API asks of sessions."""
    client = app.test_client()
    assert log_in(client, name).status_code == 302
    return Api(client, csrf=csrf_token_from(client.get("/orders").get_data(as_text=True)))


def machine(app: Flask, name: str, role: str = "viewer") -> Api:
    return Api(app.test_client(), token=add_token(app, name, role))


def python_answers(app: Flask) -> dict[str, str]:
    with app.app_context():
        quiz = db.session.scalar(sa.select(Quiz).where(Quiz.slug == "python-basics"))
        return {str(q.id): PYTHON_ANSWERS[q.position] for q in quiz.questions}


# -- quizzes --------------------------------------------------------------------------


def test_a_quiz_submitted_over_the_api_is_graded(app: Flask, start_webapp_worker: Any) -> None:
    start_webapp_worker("grading", "statistics", env={"QUIZZES_STATS_WINDOW": "0.2"})
    ada, bob, bot = person(app, "ada"), person(app, "bob"), machine(app, "bot")
    listed = bot.get("/quizzes").get_json()["quizzes"]
    python = next(q for q in listed if q["slug"] == "python-basics")
    assert len(python["questions"]) == 5 and "accepted" not in str(python)
    answers = python_answers(app)

    body = {"answers": answers, "token": "attempt-0001"}
    sent = ada.post("/quizzes/python-basics/submissions", json=body)
    assert sent.status_code == 202, sent.get_json()
    ref = sent.get_json()
    assert ref["status_url"] == f"/api/v1/quizzes/submissions/{ref['id']}"

    def graded() -> Any:
        status = ada.get(f"/quizzes/submissions/{ref['id']}").get_json()
        return status if status["state"] == "graded" else None

    result = wait_until(graded, timeout=20, what="graded")
    assert (result["score"], result["total"], result["percent"]) == (3, 5, 60.0)
    assert result["passed"] is True and result["queued"] is True
    assert [f["correct"] for f in result["feedback"]] == [True, True, False, True, False]
    again = ada.post("/quizzes/python-basics/submissions", json=body)
    assert again.status_code == 202 and again.get_json()["id"] == ref["id"]
    with app.app_context():
        assert db.session.get(Submission, ref["id"]).grading_runs == 1

    # Only one's own; a token has no submissions; the checks of the page, by question.
    assert bob.get(f"/quizzes/submissions/{ref['id']}").status_code == 404
    refused = bot.post("/quizzes/python-basics/submissions", json={"answers": answers})
    assert refused.status_code == 401 and "signed in" in error_of(refused)["message"]
    first = min(answers, key=int)
    partial = {k: v for k, v in answers.items() if k != first} | {"999999": "x"}
    bad = ada.post("/quizzes/python-basics/submissions", json={"answers": partial})
    assert bad.status_code == 422
    assert error_of(bad)["fields"]["answers"] == {
        first: ["Answer this question."],
        "999999": ["Not a question of this quiz."],
    }
    assert ada.post("/quizzes/nope/submissions", json={"answers": {}}).status_code == 404
    assert ada.post("/quizzes/python-basics/submissions", json={}).status_code == 400

    def computed() -> Any:
        stats = bot.get("/quizzes/python-basics/statistics").get_json()
        return stats if stats["figures"] and stats["figures"]["graded"] == 1 else None

    stats = wait_until(computed, timeout=10, what="statistics")
    assert stats["figures"]["passed"] == 1 and stats["computed_at"].endswith("Z")


# -- documents ------------------------------------------------------------------------


def upload(api: Api, name: str, data: bytes) -> Any:
    return api.post(
        "/documents", data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data"
    )


def test_a_document_uploaded_over_the_api_is_answered(
    app: Flask, tmp_path: Path, start_webapp_worker: Any
) -> None:
    start_webapp_worker("documents", env={"WEBAPP_STORAGE_DIR": str(tmp_path / "storage")})
    bot, other, ops = machine(app, "bot"), machine(app, "other"), machine(app, "ops", "operator")
    sent = upload(bot, "paper.txt", PAPER.encode())
    assert sent.status_code == 202, sent.get_json()
    ref = sent.get_json()

    def finished() -> Any:
        status = bot.get(f"/documents/{ref['id']}").get_json()
        return status if status["finished"] else None

    status = wait_until(finished, timeout=20, what="document finished")
    assert status["status"] == "done" and status["questions_total"] == 2
    assert status["percent"] == 100 and status["name"] == "paper.txt"
    pdf = bot.get(status["pdf_url"].removeprefix("/api/v1"))
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert (
        pdf.data.startswith(b"%PDF-") and "paper-answers.pdf" in pdf.headers["Content-Disposition"]
    )
    pdf.close()
    # Another token does not see it; an operator does.
    assert other.get(f"/documents/{ref['id']}").status_code == 404
    assert other.get(f"/documents/{ref['id']}/pdf").status_code == 404
    assert ops.get(f"/documents/{ref['id']}").status_code == 200

    # The page's checks and messages, with the right status codes; nothing stored.
    for name, data, code, says in [
        ("paper.exe", b"1. What?", 415, "only plain text (.txt), Markdown (.md) and PDF"),
        ("fake.pdf", b"not a pdf", 415, "does not start with the PDF signature"),
        ("latin1.txt", "1. Où?".encode("latin-1"), 415, "is not UTF-8 text"),
        ("empty.txt", b"  \n", 400, "is empty"),
        ("big.txt", b"1. What?\n" * 600, 413, "uploads may be at most 4 KiB"),
        ("huge.txt", b"x" * 200_000, 413, "uploads may be at most 4 KiB"),
    ]:
        response = upload(bot, name, data)
        assert response.status_code == code, (name, response.get_json())
        assert says in error_of(response)["message"], name
    missing = bot.post("/documents", data={}, content_type="multipart/form-data")
    assert missing.status_code == 400 and "Choose a file" in error_of(missing)["message"]
    assert bot.get("/documents/not-a-uuid").status_code == 400
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Document)) == 1


# -- orders ---------------------------------------------------------------------------


def test_orders_over_the_api(app: Flask) -> None:
    bot, ada = machine(app, "bot"), person(app, "ada")
    made = bot.post("/orders", json=GOOD_ORDER)
    assert made.status_code == 201, made.get_json()
    order = made.get_json()
    assert (order["phone"], order["amount"], order["status"]) == (
        "+442079460958",
        "19.90",
        "placed",
    )
    assert order["warning"] is None and order["next_statuses"] == ["paid", "cancelled"]
    assert sorted(n["channel"] for n in order["notifications"]) == ["email", "sms"]
    assert all(n["state"] == "queued" and n["queued"] for n in order["notifications"])

    paid = ada.post(f"/orders/{order['id']}/status", json={"status": "paid"})
    assert paid.status_code == 200 and paid.get_json()["status"] == "paid"
    assert len(paid.get_json()["notifications"]) == 4
    wrong = bot.post(f"/orders/{order['id']}/status", json={"status": "delivered"})
    assert wrong.status_code == 409
    assert error_of(wrong)["message"] == (
        f"Order #{order['id']} is paid: it can move to shipped or cancelled."
    )
    assert bot.post(f"/orders/{order['id']}/status", json={"status": "lost"}).status_code == 400
    assert bot.get("/orders/99999").status_code == 404
    assert bot.get(f"/orders/{order['id']}").get_json()["status"] == "paid"

    bad = bot.post("/orders", json={**GOOD_ORDER, "phone": "12", "email": "ada", "amount": 0})
    assert bad.status_code == 400
    assert set(error_of(bad)["fields"]) == {"phone", "email", "amount"}
    assert bot.post("/orders", json={**GOOD_ORDER, "amount": "19.90"}).status_code == 400

    seen, after = [], ""
    for _ in range(5):
        page = bot.get(f"/orders/notifications?state=queued&limit=3{after}").get_json()
        seen += [n["id"] for n in page["notifications"]]
        if page["next"] is None:
            break
        after = f"&after={page['next']}"
    assert len(seen) == 4 and seen == sorted(seen, reverse=True)
    assert page["counts"]["queued"] == 4
    assert bot.get("/orders/notifications?state=lost").status_code == 400


# -- reports --------------------------------------------------------------------------


def test_exports_and_searches_over_the_api(
    app: Flask, start_webapp_worker: Any, export_dir: Path
) -> None:
    bot = machine(app, "bot")
    body = {"format": "csv", "filters": {"category": "Construction"}}
    first, second = bot.post("/reports/exports", json=body), bot.post("/reports/exports", json=body)
    assert first.status_code == second.status_code == 202
    assert first.get_json()["new"] is True and second.get_json() == {
        **first.get_json(),
        "new": False,
    }
    export_id = first.get_json()["id"]
    waiting = bot.get(f"/reports/exports/{export_id}").get_json()
    assert waiting["phase"] == "waiting" and waiting["file_url"] is None
    assert bot.get(f"/reports/exports/{export_id}/file").status_code == 409
    searched = bot.post("/reports/searches", json={"filters": {"text": "road"}})
    assert searched.status_code == 202
    search_id = searched.get_json()["id"]
    assert bot.get(f"/reports/searches/{search_id}").get_json()["pending"] is True

    start_webapp_worker("reports", env={"WEBAPP_EXPORT_DIR": str(export_dir)})

    def done() -> Any:
        export = bot.get(f"/reports/exports/{export_id}").get_json()
        return export if export["phase"] == "done" else None

    export = wait_until(done, timeout=20, what="export done")
    with app.app_context():
        expected = db.session.get(ReportExport, export_id).row_count
    assert export["row_count"] == expected > 0 and export["description"] == "category Construction"
    file = bot.get(f"/reports/exports/{export_id}/file")
    assert file.status_code == 200 and file.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(file.get_data(as_text=True))))
    assert rows[0][0] == "Reference" and len(rows) == expected + 1
    file.close()

    def found() -> Any:
        page = bot.get(f"/reports/searches/{search_id}?page=2").get_json()
        return page if not page["pending"] else None

    page = wait_until(found, timeout=20, what="search done")
    assert page["total"] > 0 and page["page"] == min(2, page["pages"])
    assert all("road" in (c["title"] + c["supplier"]).lower() for c in page["contracts"])

    reversed_dates = {"date_from": "2024-01-01", "date_to": "2023-01-01"}
    bad = bot.post("/reports/searches", json={"filters": reversed_dates})
    assert bad.status_code == 422
    assert error_of(bad)["fields"] == {
        "filters": {"date_to": ["The end date is before the start date."]}
    }
    assert bot.post("/reports/exports", json={"format": "pdf"}).status_code == 400
    assert bot.get(f"/reports/exports/{'0' * 32}").status_code == 404
    assert bot.get(f"/reports/searches/{'0' * 32}").status_code == 404


# -- a broker that is down ------------------------------------------------------------


def test_broker_down_is_a_503_and_nothing_is_lost(
    database_url: str, task_env: dict[str, str], tmp_path: Path, export_dir: Path
) -> None:
    down = build(
        database_url,
        {**task_env, "TASKCORE_BROKER_URL": NO_BROKER},
        tmp_path,
        TASKCORE_CONNECT_TIMEOUT=1,
    )
    try:
        ada, bot = person(down, "ada"), machine(down, "bot")
        body = {"answers": python_answers(down), "token": "offline-0001"}
        quiz = ada.post("/quizzes/python-basics/submissions", json=body)
        assert quiz.status_code == 503
        message = error_of(quiz)["message"]
        assert (
            message.startswith("the task queue is unavailable: ")
            and "answers are stored" in message
        )
        assert "guest:guest" not in message
        status = ada.get(quiz.headers["Location"].removeprefix("/api/v1")).get_json()
        assert status["state"] == "delayed" and status["status"] == "pending"
        assert ada.post("/quizzes/python-basics/submissions", json=body).status_code == 503

        document = upload(bot, "paper.txt", PAPER.encode())
        assert document.status_code == 503
        assert error_of(document)["message"].startswith("the task queue is unavailable")
        kept = bot.get(document.headers["Location"].removeprefix("/api/v1")).get_json()
        assert kept["status"] == "delayed"
        assert bot.get(f"/documents/{kept['id']}/pdf").status_code == 409

        export = bot.post("/reports/exports", json={"format": "csv"})
        assert export.status_code == 503
        assert error_of(export)["message"].startswith("the task queue is unavailable: ")

        order = bot.post("/orders", json=GOOD_ORDER)  # stored: a 503 would invite a duplicate
        assert order.status_code == 201 and "could not be queued" in order.get_json()["warning"]
        assert not any(n["queued"] for n in order.get_json()["notifications"])

        with down.app_context():
            submission = db.session.scalar(
                sa.select(Submission).where(Submission.token == "offline-0001")
            )
            assert submission.status == "pending" and len(submission.answers) == 5
            assert db.session.scalar(sa.select(sa.func.count()).select_from(ReportExport)) == 0
        assert (
            tmp_path / "storage" / "uploads" / f"{kept['id']}.txt"
        ).read_bytes() == PAPER.encode()
    finally:
        close_web_app(down)


def test_the_workloads_are_in_the_document(app: Flask) -> None:
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    paths = document["paths"]
    for path in [
        "/api/v1/quizzes",
        "/api/v1/quizzes/{slug}/submissions",
        "/api/v1/quizzes/submissions/{submission_id}",
        "/api/v1/quizzes/{slug}/statistics",
        "/api/v1/documents",
        "/api/v1/documents/{document_id}",
        "/api/v1/documents/{document_id}/pdf",
        "/api/v1/orders",
        "/api/v1/orders/{order_id}",
        "/api/v1/orders/{order_id}/status",
        "/api/v1/orders/notifications",
        "/api/v1/reports/exports",
        "/api/v1/reports/exports/{export_id}",
        "/api/v1/reports/exports/{export_id}/file",
        "/api/v1/reports/searches",
        "/api/v1/reports/searches/{search_id}",
    ]:
        assert path in paths, path
    upload_body = paths["/api/v1/documents"]["post"]["requestBody"]["content"]
    assert set(upload_body) == {"multipart/form-data"}
    pdf = paths["/api/v1/documents/{document_id}/pdf"]["get"]["responses"]["200"]["content"]
    assert set(pdf) == {"application/pdf"}
    assert paths["/api/v1/orders"]["post"]["responses"].keys() >= {"201", "400", "401"}
    with app.app_context():  # the question ids the answers are keyed by are listed
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Question)) > 0
