"""Uploads under hostile use: file names that try to leave the store or to fool the eye,
files that are not what their name says, bodies past the size limits.

Bodies are built by hand where a browser (or an attacker) sends bytes that Werkzeug's
test client would not write: a raw NUL in a file name, backslashes, RFC 5987 names.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from webapp.db import db
from webapp.documents.models import Document

from .test_console_hostile import IMG, check_markup
from .webapp_helpers import add_user, close_web_app, csrf_token_from, log_in, make_web_app

LIMIT = 4096
TOO_LARGE = "The file is too large: uploads may be at most 4 KiB."
ACCEPTED = "only plain text (.txt), Markdown (.md) and PDF (.pdf) files are accepted"
PAPER = b"1. What is 2 + 2?\n"
BOUNDARY = "----hostile-boundary"


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    """Deep inside tmp_path, so that a name climbing out of it would land in tmp_path."""
    return tmp_path / "deep" / "er" / "storage"


@pytest.fixture
def uploads_app(database_url: str, task_env: dict[str, str], storage: Path) -> Iterator[Flask]:
    settings = {k: v for k, v in task_env.items() if k.startswith("TASKCORE_")}
    app = make_web_app(
        database_url, **settings, STORAGE_DIR=str(storage), DOCUMENTS_MAX_UPLOAD_BYTES=LIMIT
    )
    add_user(app, "ada", "viewer")
    yield app
    close_web_app(app)


@pytest.fixture
def client(uploads_app: Flask) -> FlaskClient:
    client = uploads_app.test_client()
    assert log_in(client, "ada").status_code == 302
    return client


def multipart(token: str, disposition: bytes, data: bytes) -> tuple[bytes, str]:
    """A form with the CSRF token and one file part whose Content-Disposition parameters
    (after ``name="file";``) are ``disposition``, byte for byte."""
    boundary = BOUNDARY.encode()
    body = b"".join(
        [
            b"--" + boundary + b"\r\n",
            b'Content-Disposition: form-data; name="csrf_token"\r\n\r\n',
            token.encode() + b"\r\n",
            b"--" + boundary + b"\r\n",
            b'Content-Disposition: form-data; name="file"; ' + disposition + b"\r\n",
            b"Content-Type: application/octet-stream\r\n\r\n",
            data + b"\r\n",
            b"--" + boundary + b"--\r\n",
        ]
    )
    return body, f"multipart/form-data; boundary={BOUNDARY}"


def upload_raw(client: FlaskClient, disposition: bytes, data: bytes = PAPER) -> Any:
    token = csrf_token_from(client.get("/documents").get_data(as_text=True))
    body, content_type = multipart(token, disposition, data)
    return client.post("/documents", data=body, content_type=content_type)


def upload(client: FlaskClient, name: str, data: bytes) -> Any:
    """As a browser sends it: the name in quotes, a quote in it as %22."""
    quoted = name.replace("\\", "\\\\").replace('"', "%22")
    return upload_raw(client, f'filename="{quoted}"'.encode(), data)


def stored(app: Flask, tmp_path: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """(id, name) of every Document row, and every file under tmp_path (relative)."""
    with app.app_context():
        rows = [
            tuple(r) for r in db.session.execute(sa.select(Document.id, Document.original_name))
        ]
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    return rows, files


def page_error(response: Any) -> str:
    """The upload form's error message, as text."""
    found = re.search(r'id="upload-error"[^>]*>(.*?)</p>', response.get_data(as_text=True), re.S)
    assert found is not None, response.get_data(as_text=True)
    return found.group(1).replace("&#34;", '"').replace("&#39;", "'").replace("&amp;", "&")


#: (Content-Disposition parameters as sent, the name the document is stored and shown as)
NAMES = [
    (b'filename="../../etc/passwd.txt"', "passwd.txt"),
    (b'filename="/etc/passwd.txt"', "passwd.txt"),
    (b'filename="..\\\\..\\\\windows\\\\win.txt"', "win.txt"),  # ..\..\windows\win.txt
    (b'filename="C:\\\\Users\\\\me\\\\paper.txt"', "paper.txt"),
    (b"filename*=UTF-8''..%2F..%2F..%2Fescape.md", "escape.md"),
    # A NUL (PostgreSQL text cannot hold one: it was a 500) and other control characters.
    (b'filename="a\x00b.txt"', "ab.txt"),
    (b"filename*=UTF-8''nul%00.txt", "nul.txt"),
    (b'filename="a\x1b[31mred.txt"', "a[31mred.txt"),
    (b'filename="tab\tbed.md"', "tabbed.md"),
    # A right-to-left override shows "exe.txt" backwards: "invoice\u202etxt.exe" reads as
    # "invoiceexe.txt"; it is left out, the name then says what it is.
    (b"filename*=UTF-8''invoice%E2%80%AEdm.txt", "invoicedm.txt"),
    ('filename="Prüfung 日本語.md"'.encode(), "Prüfung 日本語.md"),
    (b"filename*=UTF-8''e%CC%81t%C3%A9.txt", "\u00e9t\u00e9.txt"),  # NFC
    (b'filename="' + b"a" * 300 + b'.txt"', "a" * 251 + ".txt"),  # the extension is kept
    # A browser sends a quote in a name as %22 (Werkzeug reads it back as a quote).
    (b'filename="%22><img src=x onerror=alert(1)>.md"', IMG + ".md"),
]


def test_file_names_never_leave_the_store_and_are_shown_escaped(
    client: FlaskClient, uploads_app: Flask, tmp_path: Path
) -> None:
    passwd = Path("/etc/passwd").stat()
    expected = {}
    for disposition, name in NAMES:
        response = upload_raw(client, disposition)
        assert response.status_code == 302, (disposition, response.get_data(as_text=True))
        expected[response.headers["Location"].rsplit("/", 1)[1]] = name
        shown = client.get(response.headers["Location"])
        assert shown.status_code == 200
        check_markup(shown.get_data(as_text=True), where=repr(disposition))
    rows, files = stored(uploads_app, tmp_path)
    assert dict(rows) == expected
    # Every file is the store's own, named by the document's id: nothing anywhere else.
    assert files == sorted(
        f"deep/er/storage/uploads/{document_id}{Path(name).suffix}"
        for document_id, name in expected.items()
    )
    assert Path("/etc/passwd").stat().st_mtime == passwd.st_mtime
    listing = client.get("/documents").get_data(as_text=True)
    check_markup(listing, IMG, where="/documents")
    assert "Prüfung 日本語.md" in listing and "\u202e" not in listing and "\x1b" not in listing


PE_HEADER = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48
ZIP_HEADER = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\xdf\xa4\xd2lZ\x01\x00\x00"
NOT_WHAT_THEY_SAY = [
    ("setup.exe", PE_HEADER, ACCEPTED),
    ("paper.txt.exe", PAPER, ACCEPTED),
    ("README", PAPER, ACCEPTED),
    ("photo.PNG", b"\x89PNG\r\n\x1a\n", ACCEPTED),
    ("setup.txt", PE_HEADER, "“setup.txt” is not UTF-8 text: byte 0x90 at position 2"),
    ("report.md", ZIP_HEADER, "“report.md” is not UTF-8 text"),
    ("page.PDF", b"<html><script>alert(1)</script></html>", "“page.PDF” is not a PDF file"),
    ("nul.md", b"1. Why?\x00\n", "“nul.md” is not a text file: it contains NUL bytes"),
]


#: Names with nothing usable left once cleaned (no extension, however long).
NOTHING_LEFT = [
    (b'filename="../../.."', "“..” cannot be processed"),
    (b'filename="\x00\x01"', "“document” cannot be processed"),
    (b'filename="a' + b"b" * 300 + b'"', ACCEPTED),
]


def test_files_that_are_not_what_they_say_are_refused_with_a_message(
    client: FlaskClient, uploads_app: Flask, tmp_path: Path
) -> None:
    refused = [(upload(client, name, data), message) for name, data, message in NOT_WHAT_THEY_SAY]
    refused += [(upload_raw(client, disposition), message) for disposition, message in NOTHING_LEFT]
    for response, message in refused:
        assert response.status_code == 415, message
        assert '<main class="page">' in response.get_data(as_text=True)
        assert message in page_error(response), (message, page_error(response))
    assert stored(uploads_app, tmp_path) == ([], [])


def test_bodies_past_the_limits_get_a_page_and_store_nothing(
    client: FlaskClient, uploads_app: Flask, tmp_path: Path
) -> None:
    at_limit = PAPER + b"x" * (LIMIT - len(PAPER))
    assert upload(client, "full.txt", at_limit).status_code == 302
    (kept,), _ = stored(uploads_app, tmp_path)
    for data in (at_limit + b"x", b"x" * 200_000):  # checked by the view; before the form
        response = upload(client, "big.txt", data)
        assert response.status_code == 413
        assert page_error(response) == TOO_LARGE
        assert '<main class="page">' in response.get_data(as_text=True)
    rows, files = stored(uploads_app, tmp_path)
    assert rows == [kept] and len(files) == 1

    # Other forms: a body past the form limit (1 MiB) or with too many parts gets the
    # console's 413 page (they were werkzeug's bare page, or read whole into memory).
    token = csrf_token_from(client.get("/orders").get_data(as_text=True))
    for data, content_type in [
        ({"csrf_token": token, "customer_name": "x" * (1024 * 1024 + 1)}, None),
        ({"csrf_token": token, **{f"f{i}": "x" for i in range(1200)}}, "multipart/form-data"),
    ]:
        response = client.post("/orders", data=data, content_type=content_type)
        assert response.status_code == 413
        html = response.get_data(as_text=True)
        assert '<main class="page">' in html and "Too large" in html
    signed_out = uploads_app.test_client()
    big = signed_out.post("/login", data={"name": "x" * (2 * 1024 * 1024)})
    assert big.status_code == 413 and "a form may send at most 1,024 KiB" in big.get_data(
        as_text=True
    )
    with uploads_app.app_context():
        assert db.session.scalar(sa.text("SELECT count(*) FROM orders")) == 0
    assert uuid.UUID(kept[0])
