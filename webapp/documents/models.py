"""Documents: an uploaded question paper, its processing state, its questions and answers.

The web side creates a ``Document`` (its id is a new UUID, and the processing task's id
too); the task (``webapp.documents.tasks``) moves it through its steps and writes the
``DocumentQuestion`` rows. Migration: ``0003_documents``.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..db import UTCDateTime, db, utcnow

#: Where a document is: waiting for a worker, not sent (broker down), being processed,
#: waiting for a retry (answer service down), finished, or failed for good.
STATUSES = ("queued", "delayed", "running", "retrying", "done", "failed")
#: States in which a task is (or should be) on its way: the page keeps polling.
IN_FLIGHT = ("queued", "running", "retrying")
#: States from which the user may send the work again.
RESTARTABLE = ("delayed", "failed")
#: The processing steps, in order, with the labels the page shows.
STEPS = (
    ("parse", "Find the questions"),
    ("answer", "Answer each question"),
    ("typeset", "Typeset the PDF"),
)
STEP_LABELS = dict(STEPS)
KINDS = ("text", "markdown", "pdf")


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


class Document(db.Model):  # type: ignore[name-defined,misc]
    """One uploaded question paper and where its processing is."""

    __tablename__ = "documents"
    __table_args__ = (
        sa.CheckConstraint(f"status IN ({_in(STATUSES)})", name="documents_status"),
        sa.CheckConstraint(f"kind IN ({_in(KINDS)})", name="documents_kind"),
        sa.Index("ix_documents_owner_created", "owner", "created_at"),
        sa.Index("ix_documents_created_at", "created_at"),
    )

    #: A UUID made by the web app; the processing task's id is the same.
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    #: Who uploaded it (``Identity.actor``: a user's name, or ``token:<name>``).
    owner: Mapped[str] = mapped_column(sa.String(100))
    #: The uploaded file's name, as text only (never part of a path).
    original_name: Mapped[str] = mapped_column(sa.String(255))
    kind: Mapped[str] = mapped_column(sa.String(16))
    size: Mapped[int] = mapped_column(sa.Integer)
    status: Mapped[str] = mapped_column(sa.String(16), default="queued")
    #: The step running now, or the last one reached.
    step: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
    #: How many times the work was sent (1 at upload, +1 per restart); the task is given
    #: this number and does nothing if the document has been sent again since.
    run: Mapped[int] = mapped_column(sa.Integer, default=1)
    #: The taskcore attempt within this run (1, then 2 after the first automatic retry).
    attempt: Mapped[int] = mapped_column(sa.Integer, default=0)
    questions_total: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    questions_done: Mapped[int] = mapped_column(sa.Integer, default=0)
    answerer: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    #: What went wrong (failed, delayed, or the last error before a retry).
    error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    failed_step: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
    result_size: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    @property
    def in_flight(self) -> bool:
        return self.status in IN_FLIGHT

    @property
    def restartable(self) -> bool:
        return self.status in RESTARTABLE


class DocumentQuestion(db.Model):  # type: ignore[name-defined,misc]
    """A question found in a document, and its answer once the answer step reached it."""

    __tablename__ = "document_questions"
    __table_args__ = (
        sa.UniqueConstraint("document_id", "position", name="uq_document_questions_position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("documents.id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(sa.Integer)
    label: Mapped[str] = mapped_column(sa.String(32))
    text: Mapped[str] = mapped_column(sa.Text)
    answer: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
