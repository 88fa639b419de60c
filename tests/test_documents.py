"""The documents workload: the parser, the answerers, and the whole flow with a real worker
(upload → progress → PDF, bad uploads, failure and retry, the HTTP answerer's backoff,
the broker down at upload, the cleanup task), on the test's RabbitMQ vhost, Redis
namespace and PostgreSQL schema."""

from __future__ import annotations

import io
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from pypdf import PdfReader

from taskcore.history import make_engine
from taskcore.states import State
from webapp.db import db, utcnow
from webapp.documents.answerers import (
    AnswerServiceError,
    AnswerServiceUnavailable,
    HttpAnswerer,
    OfflineAnswerer,
    evaluate,
    keywords,
)
from webapp.documents.models import Document, DocumentQuestion
from webapp.documents.parsing import NoQuestionsFound, extract_questions
from webapp.documents.settings import DocumentSettings, SettingsError
from webapp.documents.storage import Storage
from webapp.migrations import WEBAPP

from .webapp_helpers import add_user, close_web_app, csrf_token_from, log_in, make_web_app

pytest_plugins = ["tests.webapp_fixtures"]

PAPER = """# Science quiz

Answer every question.

1. What is 2 + 2?
2) Define photosynthesis.
Q3: Explain the causes of erosion
   along river banks.
"""

# -- the parser -----------------------------------------------------------------------------


def texts(text: str) -> list[str]:
    return [q.text for q in extract_questions(text)]


def test_numbered_questions_in_every_style() -> None:
    questions = extract_questions(PAPER)
    assert [(q.position, q.label) for q in questions] == [(1, "Q1"), (2, "Q2"), (3, "Q3")]
    assert [q.text for q in questions] == [
        "What is 2 + 2?",
        "Define photosynthesis.",
        "Explain the causes of erosion along river banks.",
    ]
    assert texts("Question 7: Why?\nquestion 8) How?\nQ 9. When?") == ["Why?", "How?", "When?"]


def test_a_paragraph_ends_a_question_and_decimals_do_not_start_one() -> None:
    text = "1. What is 1.5 times 2?\n\nShow your working.\n2. Name a prime.\n1.5 kg is heavy"
    assert texts(text) == ["What is 1.5 times 2?", "Name a prime. 1.5 kg is heavy"]


def test_markdown_headings_and_list_items() -> None:
    text = "# Title\n\n## Question 1\nWhat is osmosis?\n\n## 2. Why is the sky blue?\n\n### Why?\n"
    assert texts(text) == ["What is osmosis?", "Why is the sky blue?", "Why?"]
    bullets = "- What is an atom?\n- Explain inflation\n  in economics\n"
    assert texts(bullets) == ["What is an atom?", "Explain inflation in economics"]


def test_list_items_under_a_numbered_question_are_its_choices() -> None:
    text = "1. Which is a gas?\n   - a) iron\n   - b) oxygen\n2. Which is a metal?\n"
    assert texts(text) == ["Which is a gas? a) iron b) oxygen", "Which is a metal?"]


def test_unnumbered_paragraphs_that_ask_something() -> None:
    assert texts("Some notes.\n\nWhat is a cell?\n\nMore notes.") == ["What is a cell?"]


def test_no_questions_is_a_clear_error() -> None:
    for text in ("", "Just some notes.\nNothing to answer.", "# A title only\n"):
        with pytest.raises(NoQuestionsFound, match="no questions found: number them"):
            extract_questions(text)


# -- the answerers --------------------------------------------------------------------------


def test_the_offline_answerer_is_deterministic() -> None:
    answerer = OfflineAnswerer()
    assert answerer.answer("What is 2 + 2?") == "2 + 2 = 4"
    assert answerer.answer("Compute (3 + 4) * 5.") == "(3 + 4) * 5 = 35"
    assert answerer.answer("What is 12 divided by 5?") == "12 / 5 = 2.4"
    assert answerer.answer("What is 7 times 6?") == "7 * 6 = 42"
    assert answerer.answer("What is 1/0?") == "1/0 cannot be worked out: division by zero."
    assert answerer.answer("Define photosynthesis.").startswith("Photosynthesis is the process")
    assert answerer.answer("What is a prime number?").startswith("A prime number is")
    outline = answerer.answer("Explain the causes of erosion along river banks.")
    assert outline.startswith("Outline: an answer covers causes, erosion, along and river.")
    assert outline == answerer.answer("Explain the causes of erosion along river banks.")
    assert keywords("Why do volcanoes erupt, and why do volcanoes sleep?") == [
        "volcanoes",
        "erupt",
        "sleep",
    ]


def test_arithmetic_is_evaluated_safely() -> None:
    assert evaluate("2 ** 10 - 24 / 4") == 1018
    for bad in ("__import__('os')", "9 ** 9 ** 9", "[1, 2]", "a + 1"):
        with pytest.raises(ValueError):
            evaluate(bad)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBAPP_STORAGE_DIR", "/srv/docs")
    monkeypatch.setenv("WEBAPP_DOCUMENTS_ANSWERER", "http")
    monkeypatch.setenv("WEBAPP_DOCUMENTS_MAX_AGE_DAYS", "0.5")
    settings = DocumentSettings.load()
    assert (settings.storage_dir, settings.answerer, settings.max_age_days) == (
        Path("/srv/docs"),
        "http",
        0.5,
    )
    assert DocumentSettings.load({"STORAGE_DIR": "/elsewhere"}).storage_dir == Path("/elsewhere")
    monkeypatch.setenv("WEBAPP_DOCUMENTS_ANSWERER", "oracle")
    with pytest.raises(SettingsError, match="use one of offline, http"):
        DocumentSettings.load()


# -- a local answer service ---------------------------------------------------------------


class AnswerService:
    """A tiny HTTP answer service in a thread: the first ``fail`` calls answer 503, the
    next ``slow`` calls take ``delay`` seconds; the rest answer at once."""

    def __init__(self, fail: int = 0, slow: int = 0, delay: float = 0.0) -> None:
        self.fail, self.slow, self.delay = fail, slow, delay
        self.calls: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with service.lock:
                    service.calls.append((time.monotonic(), body["question"]))
                    number = len(service.calls)
                if number <= service.fail:
                    self.send_response(503)
                    self.end_headers()
                    return
                if number <= service.fail + service.slow:
                    time.sleep(service.delay)
                reply = json.dumps({"answer": f"remote answer to: {body['question']}"}).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    pass  # the client gave up waiting

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/answer"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def answer_service() -> Iterator[Callable[..., AnswerService]]:
    started: list[AnswerService] = []

    def start(**kwargs: Any) -> AnswerService:
        service = AnswerService(**kwargs)
        started.append(service)
        return service

    yield start
    for service in started:
        service.close()


def test_the_http_answerer_times_out_and_classifies_errors(
    answer_service: Callable[..., AnswerService],
) -> None:
    service = answer_service(fail=1, slow=1, delay=1.0)
    answerer = HttpAnswerer(service.url, timeout=0.3)
    with pytest.raises(AnswerServiceUnavailable, match="answered HTTP 503"):
        answerer.answer("one?")
    with pytest.raises(AnswerServiceUnavailable, match=r"did not reply within 0\.3 s"):
        answerer.answer("two?")
    assert answerer.answer("three?") == "remote answer to: three?"
    answerer.close()
    with pytest.raises(AnswerServiceError, match="needs WEBAPP_DOCUMENTS_ANSWERER_URL"):
        HttpAnswerer("", timeout=1)


# -- the web flow with a real worker ------------------------------------------------------


@pytest.fixture
def storage_dir(tmp_path: Path) -> Path:
    return tmp_path / "storage"


def documents_app(
    database_url: str, task_env: dict[str, str], storage_dir: Path, **config: Any
) -> Flask:
    taskcore = {k: v for k, v in task_env.items() if k.startswith("TASKCORE_")}
    app = make_web_app(database_url, **taskcore, STORAGE_DIR=str(storage_dir), **config)
    add_user(app, "ada")
    add_user(app, "bob")
    return app


@pytest.fixture
def docs_app(database_url: str, task_env: dict[str, str], storage_dir: Path) -> Iterator[Flask]:
    """The web app on this test's services, storage in tmp_path, uploads of at most 4 KiB
    and a store of at most 512 KiB."""
    app = documents_app(
        database_url,
        task_env,
        storage_dir,
        DOCUMENTS_MAX_UPLOAD_BYTES=4096,
        STORAGE_MAX_BYTES=512 * 1024,
    )
    yield app
    close_web_app(app)


@pytest.fixture
def client(docs_app: Flask) -> FlaskClient:
    client = docs_app.test_client()
    log_in(client, "ada")
    return client


def worker_env(storage_dir: Path, **extra: str) -> dict[str, str]:
    return {"WEBAPP_STORAGE_DIR": str(storage_dir), **extra}


def upload(client: FlaskClient, name: str, data: bytes) -> Any:
    token = csrf_token_from(client.get("/documents").get_data(as_text=True))
    return client.post(
        "/documents",
        data={"csrf_token": token, "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def document_id_of(response: Any) -> str:
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"].rsplit("/", 1)[-1]


def wait_for(
    client: FlaskClient, document_id: str, statuses: tuple[str, ...], timeout: float = 20
) -> list[dict[str, Any]]:
    """Poll the JSON endpoint until the status is one of ``statuses``; every reading."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress = client.get(f"/documents/{document_id}/status").get_json()
        seen.append(progress)
        if progress["status"] in statuses:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"still {seen[-1]['status']} after {timeout}s: {seen[-1]}")


def pdf_text(data: bytes) -> str:
    """The PDF's text with runs of whitespace (line breaks too) as single spaces."""
    reader = PdfReader(io.BytesIO(data))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


def test_upload_progress_and_pdf(
    client: FlaskClient, docs_app: Flask, storage_dir: Path, start_webapp_worker: Any
) -> None:
    start_webapp_worker(
        "documents", env=worker_env(storage_dir, WEBAPP_DOCUMENTS_STEP_DELAY="0.25")
    )
    document_id = document_id_of(upload(client, "science quiz.md", PAPER.encode()))
    assert str(uuid.UUID(document_id)) == document_id
    page = client.get(f"/documents/{document_id}").get_data(as_text=True)
    assert "science quiz.md" in page and 'id="document-bar"' in page

    seen = wait_for(client, document_id, ("done", "failed"))
    final = seen[-1]
    assert final["status"] == "done", final
    assert final["percent"] == 100 and final["questions_total"] == 3
    assert [s["state"] for s in final["steps"]] == ["done", "done", "done"]
    # Progress was seen step by step, with "n of m" while answering.
    answering = [p for p in seen if p["step"] == "answer" and p["status"] == "running"]
    assert answering, [(p["status"], p["step"]) for p in seen]
    assert any(0 < p["percent"] < 100 for p in answering)
    assert any(p["message"].startswith("Answering question ") for p in answering)
    assert {s["detail"] for p in answering for s in p["steps"]} & {"1 of 3", "2 of 3"}
    # taskcore has the same job under the document's id, with its progress.
    status = docs_app.extensions["taskcore"].status(document_id)
    assert status.state == State.SUCCESS and status.result["outcome"] == "done"
    assert status.progress == {"current": 5, "total": 5, "message": "done"}

    download = client.get(f"/documents/{document_id}/download")
    assert download.status_code == 200
    assert download.mimetype == "application/pdf"
    assert "filename=science_quiz-answers.pdf" in download.headers["Content-Disposition"]
    text = pdf_text(download.data)
    assert "Answers: science quiz.md" in text
    for expected in (
        "Q1. What is 2 + 2?",
        "2 + 2 = 4",
        "Q2. Define photosynthesis.",
        "Photosynthesis is the process",
        "Q3. Explain the causes of erosion along river banks.",
        "Outline: an answer covers causes, erosion",
        "Page 1 of 1",
    ):
        assert expected in text, (expected, text)
    page = client.get(f"/documents/{document_id}").get_data(as_text=True)
    assert "Download the PDF" in page and "2 + 2 = 4" in page
    listing = client.get("/documents").get_data(as_text=True)
    assert "science quiz.md" in listing and "Done" in listing

    # Someone else's document does not exist for them.
    other = docs_app.test_client()
    log_in(other, "bob")
    assert other.get(f"/documents/{document_id}").status_code == 404
    assert other.get(f"/documents/{document_id}/download").status_code == 404
    assert "science quiz.md" not in other.get("/documents").get_data(as_text=True)

    # A PDF paper: its text is read with pypdf.
    pdf_id = document_id_of(upload(client, "paper.pdf", make_pdf("1. What is 3 + 4?", "2. Why?")))
    assert wait_for(client, pdf_id, ("done", "failed"))[-1]["status"] == "done"
    text = pdf_text(client.get(f"/documents/{pdf_id}/download").data)
    assert "Q1. What is 3 + 4? 3 + 4 = 7" in text and "Q2. Why?" in text

    # A paper without questions fails at the parse step with the parser's message.
    bad_id = document_id_of(upload(client, "notes.txt", b"Just notes.\nNothing to answer.\n"))
    final = wait_for(client, bad_id, ("done", "failed"))[-1]
    assert final["status"] == "failed" and final["failed_step"] == "parse"
    assert final["error"].startswith("No questions found: number them")
    page = client.get(f"/documents/{bad_id}").get_data(as_text=True)
    assert "Failed at “Find the questions”: No questions found" in page
    assert "Try again" in page
    assert client.get(f"/documents/{bad_id}/download").status_code == 404


def make_pdf(*lines: str) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    for line in lines:
        pdf.cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def test_text_is_read_from_pdfs_and_unreadable_ones_are_named() -> None:
    from webapp.documents.typesetting import UnreadableDocument, read_text

    text = read_text(make_pdf("Exam", "1. What is 3 + 4?", "Q2: Define osmosis."), "pdf")
    assert texts(text) == ["What is 3 + 4?", "Define osmosis."]
    with pytest.raises(UnreadableDocument, match="the PDF cannot be read"):
        read_text(b"%PDF-1.4 and then nothing", "pdf")
    with pytest.raises(UnreadableDocument, match="the PDF has no text to read"):
        read_text(make_pdf(), "pdf")


def stored(docs_app: Flask, storage_dir: Path) -> tuple[int, list[Path]]:
    with docs_app.app_context():
        rows = db.session.scalar(sa.select(sa.func.count()).select_from(Document))
    files = [p for p in storage_dir.rglob("*") if p.is_file()] if storage_dir.exists() else []
    return rows, files


TOO_LARGE = "The file is too large: uploads may be at most 4 KiB."
BAD_UPLOADS = [
    ("big.txt", b"1. Why?\n" + b"x" * 5000, 413, TOO_LARGE),  # checked by the view
    ("huge.txt", b"x" * 200_000, 413, TOO_LARGE),  # refused before the form is read
    ("paper.docx", b"1. Why?", 415,
     "only plain text (.txt), Markdown (.md) and PDF (.pdf) files are accepted"),
    ("paper.pdf", b"1. Why is this not a PDF?", 415, "“paper.pdf” is not a PDF file"),
    ("latin1.txt", "1. Qu'est-ce qu'un été?".encode("latin-1"), 415,
     "“latin1.txt” is not UTF-8 text: byte 0xe9 at position 19"),
    ("binary.md", b"1. a\x00b", 415, "it contains NUL bytes"),
    ("empty.txt", b"  \n", 400, "“empty.txt” is empty."),
]  # fmt: skip


def test_bad_uploads_are_refused_and_nothing_is_stored(
    client: FlaskClient, docs_app: Flask, storage_dir: Path
) -> None:
    for name, data, status, message in BAD_UPLOADS:
        response = upload(client, name, data)
        assert response.status_code == status, name
        page = response.get_data(as_text=True)
        assert message in page.replace("&#39;", "'"), name
        assert 'id="upload-error"' in page
        assert stored(docs_app, storage_dir) == (0, [])


def test_a_full_store_refuses_uploads(
    client: FlaskClient, docs_app: Flask, storage_dir: Path
) -> None:
    (storage_dir / "uploads").mkdir(parents=True)
    (storage_dir / "uploads" / "filler").write_bytes(b"x" * (511 * 1024))
    response = upload(client, "paper.txt", b"1. Why?\n" * 200)
    assert response.status_code == 507
    assert "The document store is full: 511 KiB of 512 KiB are in use" in response.get_data(
        as_text=True
    )
    assert stored(docs_app, storage_dir)[0] == 0


def test_an_upload_without_csrf_token_is_refused(client: FlaskClient) -> None:
    response = client.post(
        "/documents",
        data={"file": (io.BytesIO(b"1. Why?"), "a.txt")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert "The form could not be checked" in response.get_data(as_text=True)


def test_a_failed_answer_step_shows_the_step_and_a_retry_succeeds(
    client: FlaskClient,
    storage_dir: Path,
    start_webapp_worker: Any,
    answer_service: Callable[..., AnswerService],
) -> None:
    service = answer_service(fail=2)  # attempt 1 and its one retry both get a 503
    env = worker_env(
        storage_dir,
        WEBAPP_DOCUMENTS_ANSWERER="http",
        WEBAPP_DOCUMENTS_ANSWERER_URL=service.url,
        WEBAPP_DOCUMENTS_RETRIES="1",
        WEBAPP_DOCUMENTS_RETRY_BACKOFF="0.2",
    )
    start_webapp_worker("documents", env=env)
    document_id = document_id_of(upload(client, "two.txt", b"1. What is 2 + 2?\n2. Why?\n"))
    final = wait_for(client, document_id, ("done", "failed"))[-1]
    assert final["status"] == "failed" and final["failed_step"] == "answer", final
    assert final["error"] == (
        "question 1 of 2: the answer service answered HTTP 503 (gave up after 1 retries)"
    )
    assert [s["state"] for s in final["steps"]] == ["done", "failed", "pending"]
    page = client.get(f"/documents/{document_id}").get_data(as_text=True)
    assert "Failed at “Answer each question”: question 1 of 2: the answer service" in page
    assert len(service.calls) == 2

    token = csrf_token_from(page)
    assert client.post(f"/documents/{document_id}/retry").status_code == 400  # no token
    response = client.post(f"/documents/{document_id}/retry", data={"csrf_token": token})
    assert response.status_code == 302
    final = wait_for(client, document_id, ("done", "failed"))[-1]
    assert final["status"] == "done" and final["run"] == 2 and final["error"] is None
    text = pdf_text(client.get(f"/documents/{document_id}/download").data)
    assert "remote answer to: What is 2 + 2?" in text and "remote answer to: Why?" in text
    # Retrying something that is done does nothing.
    client.post(f"/documents/{document_id}/retry", data={"csrf_token": token})
    assert client.get(f"/documents/{document_id}/status").get_json()["run"] == 2


def test_the_http_answerer_is_retried_with_backoff(
    client: FlaskClient,
    docs_app: Flask,
    storage_dir: Path,
    start_webapp_worker: Any,
    answer_service: Callable[..., AnswerService],
) -> None:
    service = answer_service(fail=1, slow=2, delay=1.0)  # 503, then two timeouts, then fine
    env = worker_env(
        storage_dir,
        WEBAPP_DOCUMENTS_ANSWERER="http",
        WEBAPP_DOCUMENTS_ANSWERER_URL=service.url,
        WEBAPP_DOCUMENTS_ANSWERER_TIMEOUT="0.3",
        WEBAPP_DOCUMENTS_RETRIES="4",
        WEBAPP_DOCUMENTS_RETRY_BACKOFF="0.4",
    )
    start_webapp_worker("documents", env=env)
    document_id = document_id_of(upload(client, "one.md", b"- What is the answer?\n"))
    seen = wait_for(client, document_id, ("done", "failed"))
    assert seen[-1]["status"] == "done", seen[-1]
    retrying = [p for p in seen if p["status"] == "retrying"]
    assert retrying and "(retry 1 of 4 in up to 0.4 s)" in retrying[0]["error"]
    assert any("did not reply within 0.3 s" in (p["error"] or "") for p in retrying)
    # Four calls: each retry waited longer than the one before it (backoff 0.4 s doubling,
    # jittered into its upper half: at least 0.2, 0.4, 0.8 s after the failed call ended).
    starts = [at for at, _ in service.calls]
    assert len(starts) == 4
    assert starts[1] - starts[0] >= 0.2
    assert starts[2] - starts[1] >= 0.3 + 0.4
    assert starts[3] - starts[2] >= 0.3 + 0.8
    status = docs_app.extensions["taskcore"].status(document_id)
    assert status.state == State.SUCCESS and status.attempts == 4


def test_broker_down_at_upload_keeps_the_document_and_it_can_be_started(
    database_url: str,
    task_env: dict[str, str],
    storage_dir: Path,
    start_webapp_worker: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from webapp.documents.tasks import send_delayed_documents

    down = documents_app(
        database_url,
        {**task_env, "TASKCORE_BROKER_URL": "amqp://guest:guest@127.0.0.1:1/"},
        storage_dir,
        TASKCORE_CONNECT_TIMEOUT=1,
    )
    try:
        client = down.test_client()
        log_in(client, "ada")
        response = upload(client, "paper.txt", PAPER.encode())
        document_id = document_id_of(response)
        page = client.get(f"/documents/{document_id}").get_data(as_text=True)
        second_id = document_id_of(upload(client, "second.txt", b"1. What is 5 - 3?\n"))
    finally:
        close_web_app(down)
    assert "processing is delayed" in page and "Processing is delayed: the task queue" in page
    assert "Start processing" in page
    assert (storage_dir / "uploads" / f"{document_id}.txt").read_bytes() == PAPER.encode()

    up = make_web_app(
        database_url,
        **{k: v for k, v in task_env.items() if k.startswith("TASKCORE_")},
        STORAGE_DIR=str(storage_dir),
    )
    try:
        start_webapp_worker("documents", env=worker_env(storage_dir))
        client = up.test_client()
        log_in(client, "ada")
        token = csrf_token_from(client.get(f"/documents/{document_id}").get_data(as_text=True))
        client.post(f"/documents/{document_id}/retry", data={"csrf_token": token})
        assert wait_for(client, document_id, ("done", "failed"))[-1]["status"] == "done"
        # The other one is sent by the periodic re-send (run here in this process).
        monkeypatch.setenv("DATABASE_URL", database_url)
        assert send_delayed_documents() == 1
        assert wait_for(client, second_id, ("done", "failed"))[-1]["status"] == "done"
        assert send_delayed_documents() == 0
    finally:
        close_web_app(up)


def test_cleanup_removes_old_documents_and_their_files(
    docs_app: Flask, database_url: str, storage_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from webapp.documents.tasks import remove_old_documents
    from webapp.taskapp import app as task_app

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("WEBAPP_STORAGE_DIR", str(storage_dir))
    monkeypatch.setenv("WEBAPP_DOCUMENTS_MAX_AGE_DAYS", "7")
    storage = Storage(storage_dir, 10**9)
    old, new, busy, orphan = (str(uuid.uuid4()) for _ in range(4))
    long_ago = utcnow() - timedelta(days=8)
    with docs_app.app_context():
        for document_id, created, status, updated in (
            (old, long_ago, "done", long_ago),
            (new, utcnow(), "done", utcnow()),
            (busy, long_ago, "running", utcnow()),  # old, but a worker is on it now
        ):
            db.session.add(
                Document(
                    id=document_id, owner="ada", original_name="p.txt", kind="text", size=3,
                    status=status, created_at=created, updated_at=updated,
                )
            )  # fmt: skip
            db.session.flush()
            db.session.add(
                DocumentQuestion(document_id=document_id, position=1, label="Q1", text="Why?")
            )
            storage.write(storage.upload_path(document_id, "text"), b"1. Why?")
            storage.write(storage.result_path(document_id), b"%PDF-")
        db.session.commit()
    storage.write(storage.upload_path(orphan, "pdf"), b"%PDF-")  # a file without a row
    os.utime(storage.upload_path(orphan, "pdf"), (long_ago.timestamp(), long_ago.timestamp()))

    assert remove_old_documents() == {"documents": 1, "files": 3}
    with docs_app.app_context():
        assert set(db.session.scalars(sa.select(Document.id))) == {new, busy}
        assert db.session.scalar(sa.select(sa.func.count()).select_from(DocumentQuestion)) == 2
    assert sorted(storage.stored_ids()) == sorted([new, busy])
    assert remove_old_documents() == {"documents": 0, "files": 0}
    schedule = task_app.schedules["documents-cleanup"]
    assert schedule.task == "webapp.documents.tasks.remove_old_documents"


def test_the_documents_tables_match_their_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        WEBAPP.upgrade(engine)
        mine = {"documents", "document_questions"}
        assert mine <= set(sa.inspect(engine).get_table_names())
        assert [d for d in WEBAPP.differences(engine) if "document" in repr(d)] == []
        WEBAPP.downgrade(engine, "0002_quizzes")
        assert not mine & set(sa.inspect(engine).get_table_names())
        WEBAPP.upgrade(engine)
        assert [d for d in WEBAPP.differences(engine) if "document" in repr(d)] == []
    finally:
        engine.dispose()
