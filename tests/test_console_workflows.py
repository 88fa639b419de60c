"""The console's workflow pages (the list, one workflow, the task page's link to it)
through Flask's test client, on history rows written as the recorder writes them."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from taskcore.history import write_events
from taskcore.workflows import workflow_event

from .webapp_helpers import close_web_app, log_in, make_console_app

ADD, MUL, TALLY = "webapp.tasks.add", "webapp.tasks.mul", "webapp.tasks.tally"
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
NONE = "\N{EN DASH}"  # what a cell shows for a number not known yet


@pytest.fixture
def console_app(database_url: str, task_env: dict[str, str]) -> Iterator[Flask]:
    """The console on this test's services with vera, a viewer."""
    app = make_console_app(database_url, task_env, vera="viewer")
    yield app
    close_web_app(app)


@pytest.fixture
def vera(console_app: Flask) -> FlaskClient:
    """A client signed in as vera."""
    client = console_app.test_client()
    assert log_in(client, "vera").status_code == 302
    return client


def record(app: Flask, *events: dict[str, Any]) -> None:
    """Write history rows as the recorder does."""
    write_events(app.extensions["taskcore_ops"].engine, list(events))


def shape(
    workflow_id: str, kind: str, tasks: list[str], at: float, callback: str | None = None
) -> dict[str, Any]:
    """The event that records a workflow: members ``<id>-0``, ``<id>-1``…, callback ``<id>-cb``."""
    members = [
        {"id": f"{workflow_id}-{i}", "task": t, "queue": "flow"} for i, t in enumerate(tasks)
    ]
    body = {"id": f"{workflow_id}-cb", "task": callback, "queue": "flow"} if callback else None
    return {**workflow_event(workflow_id, kind, members, body), "at": at}


def ran(task_id: str, state: str, at: float, **fields: Any) -> dict[str, Any]:
    """A worker's event for one member (its workflow is the id before the last ``-``)."""
    workflow_id = task_id.rpartition("-")[0]
    return {"task_id": task_id, "state": state, "at": at, "workflow_id": workflow_id, **fields}


@dataclass
class Row:
    cells: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)


class _Tables(HTMLParser):
    """The body rows of each table of a page (by the table's id, "" without one)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[Row]] = {}
        self._rows: list[Row] | None = None
        self._row: Row | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table":
            self._rows = self.tables.setdefault(found.get("id") or "", [])
        elif tag == "tr" and self._rows is not None:
            self._row = Row()
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "a" and self._row is not None:
            self._row.links.append(found.get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row.cells.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._rows is not None and self._row is not None:
            if self._row.cells:
                self._rows.append(self._row)
            self._row = None
        elif tag == "table":
            self._rows = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def tables(html: str) -> dict[str, list[Row]]:
    parser = _Tables()
    parser.feed(html)
    return parser.tables


def page(client: FlaskClient, url: str, status: int = 200) -> str:
    response = client.get(url)
    html = response.get_data(as_text=True)
    assert response.status_code == status, (url, response.status_code, html[:2000])
    return html


def older_link(html: str) -> str | None:
    found = re.search(r'href="([^"]*)">Older →', html)
    return found.group(1).replace("&amp;", "&") if found else None


# -- the list ------------------------------------------------------------------------------


def test_the_list_shows_each_workflow_as_one_row_newest_first(console_app: Flask, vera) -> None:
    now = time.time()
    record(
        console_app,
        shape("chain1", "chain", [ADD, MUL, ADD], at=now - 30),
        shape("group1", "group", [ADD, ADD], at=now - 20),
        shape("chord1", "chord", [ADD, ADD, ADD], at=now - 10, callback=TALLY),
        ran("chain1-0", "SUCCESS", now - 29),
        ran("chain1-1", "STARTED", now - 28),
        ran("group1-0", "SUCCESS", now - 19),
        ran("group1-1", "SUCCESS", now - 19),
        ran("chord1-0", "SUCCESS", now - 9),
        ran("chord1-1", "FAILURE", now - 9),
    )
    html = page(vera, "/workflows")
    rows = tables(html)[""]
    assert [r.cells[:4] for r in rows] == [
        ["chord1", "chord", "FAILURE", "2 / 4"],
        ["group1", "group", "SUCCESS", "2 / 2"],
        ["chain1", "chain", "STARTED", "1 / 3"],
    ]
    assert [r.cells[4] for r in rows] == [f"{ADD}, {TALLY}", ADD, f"{ADD} → {MUL} → {ADD}"]
    assert [r.links for r in rows] == [
        ["/workflows/chord1"],
        ["/workflows/group1"],
        ["/workflows/chain1"],
    ]
    assert all(r.cells[5].endswith("ago") for r in rows)
    assert 'href="/workflows" class="current" aria-current="page">Workflows</a>' in html
    assert older_link(html) is None


def test_a_long_id_is_shown_short_with_the_whole_id_on_hover(console_app: Flask, vera) -> None:
    workflow_id = "0123456789abcdef" * 2
    record(console_app, shape(workflow_id, "group", [ADD], at=time.time()))
    html = page(vera, "/workflows")
    (row,) = tables(html)[""]
    assert row.cells[0] == "01234567" and row.links == [f"/workflows/{workflow_id}"]
    assert f'title="{workflow_id}"' in html


def test_the_list_filters_by_kind_and_flashes_what_it_cannot_use(console_app: Flask, vera) -> None:
    now = time.time()
    record(
        console_app,
        shape("c", "chain", [ADD], at=now - 2),
        shape("g", "group", [ADD], at=now - 1),
        shape("h", "chord", [ADD], at=now, callback=TALLY),
    )
    groups = page(vera, "/workflows?kind=group")
    assert [r.cells[0] for r in tables(groups)[""]] == ["g"]
    assert '<option value="group" selected>' in groups
    unknown = page(vera, "/workflows?kind=pipeline")
    assert "Unknown kind &#39;pipeline&#39;: showing every kind." in unknown
    assert "flash-warning" in unknown
    assert [r.cells[0] for r in tables(unknown)[""]] == ["h", "g", "c"]
    edited = page(vera, "/workflows?kind=chain&after=garbage")
    assert "malformed history cursor" in edited and "showing the first page" in edited
    assert [r.cells[0] for r in tables(edited)[""]] == ["c"]


def test_the_list_pages_fifty_at_a_time_keeping_the_filter(console_app: Flask, vera) -> None:
    now = time.time()
    record(
        console_app,
        *[shape(f"w{i:02}", "chain", [ADD], at=now - 100 + i) for i in range(53)],
        shape("other", "group", [ADD], at=now - 200),
    )
    first = page(vera, "/workflows?kind=chain")
    assert [r.cells[0] for r in tables(first)[""]] == [f"w{i:02}" for i in range(52, 2, -1)]
    assert "← Newest" not in first
    link = older_link(first)
    assert link is not None
    query = parse_qs(urlsplit(link).query)
    assert query["kind"] == ["chain"] and query["after"]
    second = page(vera, link)
    assert [r.cells[0] for r in tables(second)[""]] == ["w02", "w01", "w00"]
    assert older_link(second) is None
    assert 'href="/workflows?kind=chain">← Newest' in second


def test_an_empty_list_says_what_a_workflow_is(vera) -> None:
    html = page(vera, "/workflows")
    assert "<table" not in html
    assert "No workflows yet." in html
    assert "chain(a.s(), b.s())" in html and "chord(group, callback)" in html
    assert "No chords yet." in page(vera, "/workflows?kind=chord")


def test_both_pages_need_a_sign_in(console_app: Flask) -> None:
    record(console_app, shape("c", "chain", [ADD], at=time.time()))
    client = console_app.test_client()
    for url in ("/workflows", "/workflows/c"):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"], url


# -- one workflow --------------------------------------------------------------------------


def test_a_chain_page_shows_its_steps_in_order_and_stops_refreshing_when_done(
    console_app: Flask, vera
) -> None:
    now = time.time()
    record(
        console_app,
        shape("chainA", "chain", [ADD, MUL, ADD], at=now - 10),
        ran("chainA-0", "SUCCESS", now - 9, task=ADD, queue="flow", worker="w1@box",
            attempts=1, runtime=0.25),
        ran("chainA-1", "STARTED", now - 8, task=MUL, queue="flow", worker="w2@box", attempts=1),
    )  # fmt: skip
    html = page(vera, "/workflows/chainA")
    assert re.search(r"<h1>Chain <span[^>]*>chainA</span></h1>", html)
    assert '<span id="workflow-state"><span class="badge state-started">STARTED</span>' in html
    assert '<progress id="workflow-progress" max="3" value="1">' in html
    assert '<span id="workflow-done">1 / 3</span>' in html
    assert '<span id="workflow-position">step 2 of 3</span>' in html
    live = re.search(r"<div data-live=\"workflow\"[^>]*>", html).group(0)
    assert 'data-live-every="1000"' in live and "data-live-done" not in live
    steps = tables(html)["workflow-members"]
    assert [r.cells for r in steps] == [
        ["1", ADD, "SUCCESS", "flow", "w1@box", "1", "250 ms", ""],
        ["2", MUL, "STARTED", "flow", "w2@box", "1", "", ""],
        ["3", ADD, "PENDING", "flow", "", NONE, "", ""],
    ]
    assert [r.links for r in steps] == [
        ["/tasks/chainA-0"],
        ["/tasks/chainA-1"],
        ["/tasks/chainA-2"],
    ]
    assert "workflow-callback" not in html

    record(
        console_app,
        ran("chainA-1", "SUCCESS", now - 7, runtime=1.5),
        ran("chainA-2", "SUCCESS", now - 6, runtime=0.1),
    )
    done = page(vera, "/workflows/chainA")
    assert re.search(r"<div data-live=\"workflow\"[^>]*data-live-done", done)
    assert '<progress id="workflow-progress" max="3" value="3">' in done
    assert '<span id="workflow-position">all 3 steps done</span>' in done
    assert [r.cells[2] for r in tables(done)["workflow-members"]] == ["SUCCESS"] * 3


def test_a_failed_chain_shows_the_step_that_failed_and_why(console_app: Flask, vera) -> None:
    now = time.time()
    stopped = {"type": "taskcore.ChainStopped", "message": "step 2 failed", "traceback": ""}
    record(
        console_app,
        shape("chainF", "chain", [ADD, MUL, ADD], at=now - 10),
        ran("chainF-0", "SUCCESS", now - 9),
        ran("chainF-1", "DEAD", now - 8, attempts=3,
            error={"type": "builtins.ValueError", "message": "no good", "traceback": "tb"}),
        ran("chainF-2", "FAILURE", now - 8, error=stopped),
    )  # fmt: skip
    html = page(vera, "/workflows/chainF")
    assert 'state-failure">FAILURE</span>' in html
    assert '<span id="workflow-position">stopped at step 2 of 3</span>' in html
    steps = tables(html)["workflow-members"]
    assert [(r.cells[2], r.cells[5], r.cells[7]) for r in steps] == [
        ("SUCCESS", "0", ""),
        ("DEAD", "3", "builtins.ValueError: no good"),
        ("FAILURE", "0", "taskcore.ChainStopped: step 2 failed"),
    ]
    assert re.search(r"<div data-live=\"workflow\"[^>]*data-live-done", html)


def test_a_chord_page_shows_its_callback_below_the_members(console_app: Flask, vera) -> None:
    now = time.time()
    record(
        console_app,
        shape("chordA", "chord", [ADD, ADD], at=now - 5, callback=TALLY),
        ran("chordA-0", "SUCCESS", now - 4),
        ran("chordA-1", "SUCCESS", now - 4),
    )
    html = page(vera, "/workflows/chordA")
    assert re.search(r"<h1>Chord <span[^>]*>chordA</span></h1>", html)
    assert "workflow-position" not in html  # only a chain has steps
    assert '<progress id="workflow-progress" max="3" value="2">' in html
    found = tables(html)
    assert [(r.cells[0], r.cells[1], r.cells[2]) for r in found["workflow-members"]] == [
        ("1", ADD, "SUCCESS"),
        ("2", ADD, "SUCCESS"),
    ]
    ((callback),) = found["workflow-callback"]
    assert callback.cells[1:3] == [TALLY, "PENDING"] and callback.links == ["/tasks/chordA-cb"]
    assert html.index('id="workflow-members"') < html.index("<h2>Callback</h2>")
    assert "Runs once when every member has finished" in html


def test_an_unknown_workflow_is_a_404_that_says_when_workflows_appear(vera) -> None:
    html = page(vera, "/workflows/nope", status=404)
    assert "No workflow &#39;nope&#39; in the history" in html
    assert "once the history recorder has written them" in html
    assert '<main class="page">' in html  # the console's own page


@pytest.mark.parametrize(
    "value", [IMG, "9" * 25, "x" * 3000, "../日本語\\%25_", "a\x00b", " ", "%"]
)
def test_hostile_ids_and_parameters_never_make_a_500(vera, value: str) -> None:
    escaped = quote(value, safe="")
    for url in (
        f"/workflows/{escaped}",
        f"/workflows?kind={escaped}&after={escaped}",
        f"/workflows?after={escaped}",
    ):
        response = vera.get(url)
        html = response.get_data(as_text=True)
        assert response.status_code < 500, (url[:100], response.status_code)
        assert "<img src=x" not in html, url[:100]
    long = vera.get(f"/workflows?kind={'k' * 3000}").get_data(as_text=True)
    assert "Unknown kind &#39;kkkkk" in long and "k" * 100 not in long


def test_a_cursor_naming_a_nul_is_refused_like_any_edited_cursor(vera) -> None:
    raw = json.dumps(["2026-01-01T00:00:00+00:00", "a\x00b"]).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    for page in ("/workflows", "/tasks"):
        response = vera.get(f"{page}?after={cursor}")
        assert response.status_code == 200, (page, response.status_code)
        assert "showing the first page" in response.get_data(as_text=True)


# -- markup and the task page --------------------------------------------------------------


def test_markup_in_task_names_and_errors_is_shown_escaped(console_app: Flask, vera) -> None:
    now = time.time()
    record(
        console_app,
        shape("evil", "chain", [SCRIPT, IMG, f"tasks.{SCRIPT}"], at=now),
        ran("evil-0", "FAILURE", now, error={"type": SCRIPT, "message": IMG, "traceback": ""}),
    )
    for url in ("/workflows", "/workflows/evil", "/tasks/evil-0"):
        html = page(vera, url)
        assert "<script>alert" not in html and "<img src=x" not in html, url
    listed = page(vera, "/workflows")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; → &#34;&gt;&lt;img src=x" in listed
    detail = page(vera, "/workflows/evil")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;</span>: &#34;&gt;&lt;img" in detail
    assert "tasks.<wbr>&lt;script&gt;alert(1)&lt;/script&gt;</a>" in detail


def test_the_task_page_says_which_workflow_the_task_is_part_of(console_app: Flask, vera) -> None:
    now = time.time()
    record(
        console_app,
        shape("chainT", "chain", [ADD, MUL, ADD], at=now - 5),
        shape("groupT", "group", [ADD, ADD], at=now - 5),
        shape("chordT", "chord", [ADD], at=now - 5, callback=TALLY),
        ran("chainT-1", "SUCCESS", now - 4, task=MUL),
        ran("groupT-1", "SUCCESS", now - 4, task=ADD),
        ran("chordT-cb", "SUCCESS", now - 4, task=TALLY),
        ran("lost-0", "SUCCESS", now - 4, task=ADD),  # a workflow the history never got
        {"task_id": "alone", "state": "SUCCESS", "at": now - 4, "task": ADD},
    )
    expected = {
        "chainT-1": ("Step 2 of 3 of chain chainT", "/workflows/chainT"),
        "groupT-1": ("Part of a group groupT", "/workflows/groupT"),
        "chordT-cb": ("Part of a chord chordT: its callback", "/workflows/chordT"),
        "lost-0": (
            "Part of workflow lost (the history has not recorded it yet)",
            "/workflows/lost",
        ),
    }
    for task_id, (line, href) in expected.items():
        html = page(vera, f"/tasks/{task_id}")
        found = re.search(r'<p class="part-of" id="task-workflow">(.*?)</p>', html, re.S)
        assert found, (task_id, html)
        assert " ".join(re.sub(r"<[^>]+>", "", found.group(1)).split()).startswith(line)
        assert f'<a href="{href}">' in found.group(1)
    assert "task-workflow" not in page(vera, "/tasks/alone")
