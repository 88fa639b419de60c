"""schemathesis against /api/v1/openapi.json: every operation, generated input, no 5xx.

Every operation of the document goes through schemathesis's three phases (the document's
examples; its coverage cases: boundaries, missing and wrongly typed fields, undeclared
methods; random fuzzing), with valid and invalid input, and all of its default checks:
never a 5xx; every answer's status, content type, headers and body as documented; valid
input accepted, invalid input refused. An operator token calls everything; the quiz
operations that only a signed-in person may call run again with a session.

Path parameters (and a task name) are drawn half of the time from things that exist (an
order, a document, an export, a search, a submission, schedules, rate limits, queues),
so that answers about real items are checked too, not only 404s.

``API_FUZZ_EXAMPLES`` sets how many random examples each operation gets (default 6;
a long drill: ``API_FUZZ_EXAMPLES=2000 .venv/bin/pytest tests/test_api_fuzz.py``).
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from schemathesis.pytest.lazy import get_all_tests

from taskcore.history import create_schema
from webapp.db import db
from webapp.reports.seed import seed_contracts

from .conftest import REDIS_URL
from .webapp_helpers import (
    add_token,
    add_user,
    close_web_app,
    csrf_token_from,
    log_in,
    make_web_app,
)

#: Random examples per operation (on top of the document's examples and the coverage
#: cases); the default keeps this file under a minute on a busy two-core machine.
FUZZ_EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "6"))

#: Operations whose valid input may still be refused for a rule the document cannot
#: state: a task's arguments that fit its signature (400 otherwise); a well-formed but
#: unknown history or workflows cursor; an upload's content (a .txt, .md or real PDF:
#: 415 otherwise); a report filter's date range in order (422 otherwise); a quiz's
#: answers keyed by its own question ids (422 otherwise).
CONTENT_RULES = (
    "/api/v1/tasks",
    "/api/v1/history",
    "/api/v1/workflows",
    "/api/v1/documents",
    "/api/v1/reports/exports",
    "/api/v1/reports/searches",
    "/api/v1/quizzes/{slug}/submissions",
)
PAPER = b"1. What is 2 + 3?\n2. What is the capital of France?\n"
ORDER = {
    "customer_name": "Ada Lovelace",
    "phone": "+44 20 7946 0958",
    "email": "ada@example.com",
    "items": "2 notebooks, 1 pen",
    "amount": 19.9,
}


@pytest.fixture
def app(
    database_url: str,
    task_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Flask]:
    """The web app on this test's vhost, Redis namespace and PostgreSQL schema, its
    uploads and exports under tmp_path, with the quizzes and a few contracts."""
    monkeypatch.setenv("WEBAPP_EXPORT_DIR", str(tmp_path / "exports"))
    taskcore = {k: v for k, v in task_env.items() if k.startswith("TASKCORE_")}
    built = make_web_app(
        database_url,
        **taskcore,
        STORAGE_DIR=str(tmp_path / "storage"),
        DOCUMENTS_MAX_UPLOAD_BYTES=4096,
    )
    create_schema(built.extensions["taskcore_ops"].engine)
    assert built.test_cli_runner().invoke(args=["quizzes", "seed"]).exit_code == 0
    with built.app_context():
        seed_contracts(db.engine, 60, seed=5)
    yield built
    close_web_app(built)


def call(client: FlaskClient, method: str, path: str, headers: dict[str, str], **kw: Any) -> Any:
    """One API call that must succeed; its JSON answer."""
    response = client.open(f"/api/v1{path}", method=method, headers=headers, **kw)
    assert response.status_code < 300, (path, response.status_code, response.get_data())
    return response.get_json()


def existing_items(app: Flask, token: str) -> dict[str, list[Any]]:
    """Make one of each kind of item through the API; their ids and names by parameter."""
    client, auth = app.test_client(), {"Authorization": f"Bearer {token}"}
    order = call(client, "POST", "/orders", auth, json=ORDER)
    paper = {"file": (io.BytesIO(PAPER), "paper.txt")}
    document = call(client, "POST", "/documents", auth, data=paper)
    export = call(client, "POST", "/reports/exports", auth, json={"format": "csv"})
    search = call(client, "POST", "/reports/searches", auth, json={})
    task = call(client, "POST", "/tasks", auth, json={"task": "webapp.tasks.add", "args": [1, 2]})
    quizzes = call(client, "GET", "/quizzes", auth)["quizzes"]
    return {
        "order_id": [str(order["id"])],
        "document_id": [document["id"]],
        "export_id": [export["id"]],
        "search_id": [search["id"]],
        "task_id": [task["id"]],
        "task": ["webapp.tasks.add"],
        "slug": [quiz["slug"] for quiz in quizzes],
        "name": [
            *(row["name"] for row in call(client, "GET", "/schedules", auth)["schedules"]),
            *call(client, "GET", "/rate-limits", auth)["limits"],
            "default",
            "sms",
        ],
    }


def fuzz_config(items: dict[str, list[Any]], **settings: Any) -> schemathesis.Config:
    """All phases, valid and invalid input, every default check; path parameters (and
    the body's task name) half of the time from ``items``."""
    where = {name: "body" if name == "task" else "path" for name in items}
    return schemathesis.Config.from_dict(
        {
            "generation": {"mode": "all", "max-examples": FUZZ_EXAMPLES},
            # Routing refuses every undeclared method alike: three of them per path will
            # do (each must be a 405 with Allow), and keep the run short.
            "phases": {"coverage": {"unexpected-methods": ["delete", "patch", "trace"]}},
            "dictionaries": {name: {"values": values} for name, values in items.items()},
            "parameters": {
                f"{where[name]}.{name}": {"dictionary": name, "probability": 0.5} for name in items
            },
            "operations": [
                {
                    "include-path": path,
                    "checks": {"positive_data_acceptance": {"enabled": False}},
                }
                for path in CONTENT_RULES
            ],
            **settings,
        }
    )


def run_schemathesis(app: Flask, config: schemathesis.Config, path_regex: str = "") -> int:
    """Run the document's operations (those whose path matches ``path_regex``) through
    schemathesis; fail with every operation's failures at once. How many ran."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=config)

    @settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def answers_as_documented(case: Any) -> None:
        case.call_and_validate()

    failures: list[str] = []
    ran = 0
    for result in get_all_tests(
        schema=schema, test_func=answers_as_documented, settings=None, given_kwargs=None
    ):
        operation, test = result.ok()  # an operation schemathesis cannot read fails here
        if not re.search(path_regex, operation.path):
            continue
        ran += 1
        try:
            test()
        except (Exception, BaseExceptionGroup) as exc:  # reported below, with the others
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    return ran


def test_every_operation_answers_as_documented(app: Flask) -> None:
    """Every operation, with an operator token."""
    token = add_token(app, "fuzz", "operator")
    items = existing_items(app, token)
    config = fuzz_config(items, auth={"openapi": {"bearer": {"bearer": token}}})
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    assert run_schemathesis(app, config) == sum(len(ops) for ops in document["paths"].values())


def test_quizzes_answer_a_person_as_documented(app: Flask) -> None:
    """The quiz operations with a signed-in person's session (and its CSRF token), one
    of the person's submissions among the ids."""
    add_user(app, "ada")
    client = app.test_client()
    assert log_in(client, "ada").status_code == 302
    session = {
        "Cookie": f"session={client.get_cookie('session').value}",
        "X-CSRFToken": csrf_token_from(client.get("/orders").get_data(as_text=True)),
    }
    quiz = call(client, "GET", "/quizzes", session)["quizzes"][0]
    answers = {str(q["id"]): (q["choices"] or ["an answer"])[0] for q in quiz["questions"]}
    path = f"/quizzes/{quiz['slug']}/submissions"
    submission = call(client, "POST", path, session, json={"answers": answers})
    items = {"slug": [quiz["slug"]], "submission_id": [str(submission["id"])]}
    assert run_schemathesis(app, fuzz_config(items, headers=session), "^/api/v1/quizzes") == 4


# -- hostile bodies schemathesis does not send ------------------------------------------

NO_BROKER = "amqp://guest:guest@127.0.0.1:1/"


@pytest.fixture
def offline_app(database_url: str, namespace: str) -> Iterator[Flask]:
    """The web app with no broker: every call below is refused before anything is sent."""
    built = make_web_app(
        database_url,
        TASKCORE_BROKER_URL=NO_BROKER,
        TASKCORE_REDIS_URL=REDIS_URL,
        TASKCORE_NAMESPACE=namespace,
    )
    yield built
    close_web_app(built)


#: (path, JSON body, what the 400 says): all POSTs with an operator token.
HOSTILE = [
    ("/tasks", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("/tasks", '{"task": ' + "[" * 400 + "]" * 400 + "}", "not a valid string"),
    (
        "/tasks",
        '{"task": "webapp.tasks.add", "args": [1, 2], "idempotency_key": "\\ud800"}',
        "surrogate",
    ),
    ("/orders", json.dumps({**ORDER, "customer_name": "Ada \ud800"}), "surrogate"),
    ("/tasks", '{"task": "webapp.tasks.add", "priority": true}', "priority"),
    ("/tasks", '{"task": "webapp.tasks.add", "priority": 5.5}', "priority"),
    ("/tasks", '{"task": "webapp.tasks.add", "countdown": "5"}', "countdown"),
    ("/tasks/t1/cancel", '{"terminate": 1}', "terminate"),
    ("/tasks/t1/cancel", '{"terminate": "yes"}', "terminate"),
    ("/queues/default/dead-letters/replay", '{"all": 1}', "all"),
    ("/queues/default/dead-letters/discard", '{"ids": ["a\\u0000b"]}', "NUL"),
    ("/queues/default/dead-letters/replay", '{"task": "t\\u0000"}', "NUL"),
]


def test_hostile_bodies_get_a_400_that_says_why(offline_app: Flask) -> None:
    token = add_token(offline_app, "hostile", "operator")
    client, auth = offline_app.test_client(), {"Authorization": f"Bearer {token}"}
    for path, body, says in HOSTILE:
        response = client.post(
            f"/api/v1{path}", data=body, content_type="application/json", headers=auth
        )
        answer = response.get_json()
        assert response.status_code == 400, (path, body[:80], answer)
        assert set(answer) == {"error"}, answer
        assert says.lower() in str(answer["error"]).lower(), (path, body[:80], answer)


def test_a_method_a_path_does_not_take_is_a_405_with_allow(offline_app: Flask) -> None:
    token = add_token(offline_app, "hostile", "operator")
    client, auth = offline_app.test_client(), {"Authorization": f"Bearer {token}"}
    for method, path, allowed in [
        ("DELETE", "/tasks", {"POST", "OPTIONS"}),
        ("POST", "/health", {"GET", "HEAD", "OPTIONS"}),
        ("PATCH", "/rate-limits/x", {"PUT", "DELETE", "OPTIONS"}),
    ]:
        response = client.open(f"/api/v1{path}", method=method, headers=auth)
        assert response.status_code == 405
        assert set(response.headers["Allow"].split(", ")) == allowed, (path, response.headers)
        assert set(response.get_json()) == {"error"}
