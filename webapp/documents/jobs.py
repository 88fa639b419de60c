"""Sending a document's processing task: at upload, on restart, and from the periodic re-send.

The task id is always the document's id. A document that failed is sent again *with the
same id*: taskcore runs a message whose id already ran and failed (a worker skips only
revoked ids, and redeliveries of tasks that succeeded), and the stored state, which still
says FAILURE with the old error and progress, is set back to PENDING first. Each send
carries the document's ``run`` number, so an old message (say, replayed from
``documents.dead``) cannot run over a newer one.
"""

from __future__ import annotations

import logging

import redis
import sqlalchemy as sa
from sqlalchemy.orm import Session

from taskcore.errors import PublishError
from taskcore.states import State

from ..db import utcnow
from .models import RESTARTABLE, Document

log = logging.getLogger(__name__)

DELAYED = (
    "Processing is delayed: the task queue could not be reached ({error}). "
    "The document is stored; start it again below, or wait: it is re-sent every few minutes."
)


def send(document_id: str, run: int) -> str | None:
    """Queue the processing of a document; the reason if the broker cannot take it."""
    from .tasks import process_document

    try:
        process_document.apply_async((document_id, run), task_id=document_id)
    except PublishError as exc:
        log.warning("document %s not sent: %s", document_id, exc)
        return str(exc)
    return None


def send_or_delay(session: Session, document_id: str, run: int) -> str:
    """Send, or mark the document ``delayed`` with the reason; returns the status."""
    problem = send(document_id, run)
    if problem is None:
        return "queued"
    session.execute(
        sa.update(Document)
        .where(Document.id == document_id, Document.run == run, Document.status == "queued")
        .values(status="delayed", error=DELAYED.format(error=problem), updated_at=utcnow())
    )
    session.commit()
    return "delayed"


def _forget_old_state(document_id: str) -> None:
    from ..taskapp import app

    try:
        app.results.set_state(document_id, State.PENDING, error=None, progress=None, result=None)
    except redis.RedisError as exc:  # the worker overwrites it when it starts anyway
        log.warning("could not reset the state of %s: %s", document_id, exc)


def restart(session: Session, document_id: str, statuses: tuple[str, ...] = RESTARTABLE) -> str:
    """Send a failed or delayed document again: ``"sent"``, ``"delayed"`` (broker still
    down) or ``"busy"`` (not in one of ``statuses``: already sent, running or done)."""
    run = session.execute(
        sa.update(Document)
        .where(Document.id == document_id, Document.status.in_(statuses))
        .values(
            status="queued",
            run=Document.run + 1,
            attempt=0,
            error=None,
            failed_step=None,
            finished_at=None,
            updated_at=utcnow(),
        )
        .returning(Document.run)
    ).scalar()
    session.commit()
    if run is None:
        return "busy"
    _forget_old_state(document_id)
    return "sent" if send_or_delay(session, document_id, run) == "queued" else "delayed"
