"""Queues and their dead letters: depths and rates, purge, list, replay, discard."""

from __future__ import annotations

from typing import Any

from flask import current_app

from taskcore.topology import check_queue_name

from ..auth.access import audit
from . import api, present
from .endpoint import endpoint
from .errors import NotFound
from .schemas import (
    QUEUE_PATTERN,
    DeadLettersQuerySchema,
    DeadLettersSchema,
    DiscardResultSchema,
    DiscardSchema,
    PurgeResultSchema,
    QueuesSchema,
    ReplayResultSchema,
    ReplaySchema,
)

QUEUE = {"name": QUEUE_PATTERN}


def _ops() -> Any:
    return current_app.extensions["taskcore_ops"]


def _work_queue(name: str) -> str:
    """``name`` if it can be a work queue; taskcore's own queues (delays, events) are not."""
    check_queue_name(name)  # ConfigurationError: a 400
    if name.startswith(f"{current_app.extensions['taskcore'].settings.namespace}."):
        raise NotFound(f"no work queue named {name!r}: that is one of taskcore's own queues")
    return name


@api.get("/queues")
@endpoint("Every queue's depth and rates", tag="queues", response=QueuesSchema, errors=(503,))
def queues() -> Any:
    """Per queue: ready and unacknowledged messages, consumers, dead letters, tasks/s out
    and failure rate since the workers' previous heartbeats."""
    reading = _ops().status()
    return {"queues": reading["queues"], "at": reading["at"]}


@api.post("/queues/<name>/purge")
@endpoint(
    "Remove every ready message of a queue",
    tag="queues",
    role="operator",
    response=PurgeResultSchema,
    errors=(404, 503),
    path_patterns=QUEUE,
)
def purge_queue(name: str) -> Any:
    """Messages being worked on (unacknowledged) are not touched."""
    purged = _ops().purge(_work_queue(name))
    audit("queue.purge", name, f"{purged} messages")
    return {"queue": name, "purged": purged}


@api.get("/queues/<name>/dead-letters")
@endpoint(
    "A queue's dead letters, oldest first",
    tag="queues",
    query=DeadLettersQuerySchema,
    response=DeadLettersSchema,
    errors=(404, 503),
    path_patterns=QUEUE,
)
def dead_letters(name: str, query: dict[str, Any]) -> Any:
    """Read without removing them: why each died, its error, attempts and arguments."""
    rows = _ops().dead_letters(_work_queue(name), limit=query["limit"])
    return {"queue": name, "dead_letters": [present.dead_letter(row) for row in rows]}


@api.post("/queues/<name>/dead-letters/replay")
@endpoint(
    "Send dead letters back to their queue",
    tag="queues",
    role="operator",
    body=ReplaySchema,
    response=ReplayResultSchema,
    errors=(404, 503),
    path_patterns=QUEUE,
)
def replay_dead_letters(name: str, body: dict[str, Any]) -> Any:
    """Those with the given ``ids``, of one ``task``, or ``all``, with attempts reset.
    Each leaves the dead-letter queue only once its copy is confirmed in the work queue."""
    replayed, left = _ops().replay(_work_queue(name), task=body["task"], ids=body["ids"])
    chosen = "all" if body["all"] else _describe(body["ids"], body["task"])
    audit("dead_letters.replay", name, f"{replayed} replayed ({chosen})")
    return {"queue": name, "replayed": replayed, "left": left}


@api.post("/queues/<name>/dead-letters/discard")
@endpoint(
    "Delete chosen dead letters",
    tag="queues",
    role="operator",
    body=DiscardSchema,
    response=DiscardResultSchema,
    errors=(404, 503),
    path_patterns=QUEUE,
)
def discard_dead_letters(name: str, body: dict[str, Any]) -> Any:
    """Only the dead letters whose task ids are listed; the others stay in order."""
    discarded = _ops().discard(_work_queue(name), body["ids"])
    audit("dead_letters.discard", name, f"{discarded} discarded ({_describe(body['ids'], None)})")
    return {"queue": name, "discarded": discarded}


def _describe(ids: list[str] | None, task: str | None, most: int = 10) -> str:
    """A short audit detail: the task name and the first few ids."""
    parts = [f"task {task}"] if task else []
    if ids:
        shown = ", ".join(ids[:most])
        parts.append(f"ids {shown}" + (f" and {len(ids) - most} more" if len(ids) > most else ""))
    return "; ".join(parts)
