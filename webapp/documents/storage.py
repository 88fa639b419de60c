"""Where uploads and generated PDFs live: ``<storage dir>/uploads`` and ``/results``.

File names are made from the document's id, a UUID the web app creates, and the kind
it accepted (``.txt``, ``.md``, ``.pdf``); the name a user uploaded is never part of a
path (it is stored as text and shown as text). Writes go to a temporary file first and
are renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from .settings import DocumentSettings, human_size

#: Accepted kinds and the extension their stored file gets.
EXTENSIONS = {"text": ".txt", "markdown": ".md", "pdf": ".pdf"}


class StorageFull(Exception):
    """Storing the file would take the directory past its size limit."""


def check_id(document_id: str) -> str:
    """``document_id`` if it is a UUID in canonical form, else ValueError (path safety)."""
    if str(uuid.UUID(document_id)) != document_id:
        raise ValueError(f"not a document id: {document_id!r}")
    return document_id


@dataclass(frozen=True)
class Storage:
    root: Path
    max_bytes: int

    @classmethod
    def from_settings(cls, settings: DocumentSettings) -> Storage:
        return cls(settings.storage_dir, settings.storage_max_bytes)

    def upload_path(self, document_id: str, kind: str) -> Path:
        return self.root / "uploads" / f"{check_id(document_id)}{EXTENSIONS[kind]}"

    def result_path(self, document_id: str) -> Path:
        return self.root / "results" / f"{check_id(document_id)}.pdf"

    def usage(self) -> int:
        """Bytes stored now (uploads, results and anything else under the root)."""
        total = 0
        for directory, _, files in os.walk(self.root):
            for name in files:
                with contextlib.suppress(FileNotFoundError):  # removed while we looked
                    total += os.stat(os.path.join(directory, name)).st_size
        return total

    def check_room(self, size: int) -> None:
        """Raise StorageFull if ``size`` more bytes would pass the limit.

        Concurrent uploads are checked against the same reading, so the limit can be
        passed by at most the files being written at that moment.
        """
        used = self.usage()
        if used + size > self.max_bytes:
            raise StorageFull(
                f"The document store is full: {human_size(used)} of "
                f"{human_size(self.max_bytes)} are in use and this file needs "
                f"{human_size(size)}. Documents are removed after a few days; try again "
                "later or ask an operator to make room."
            )

    def write(self, path: Path, data: bytes) -> None:
        """Write ``data`` to ``path`` atomically (temporary file, then rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def remove(self, document_id: str) -> int:
        """Delete every file of a document; returns how many there were."""
        paths = [self.upload_path(document_id, kind) for kind in EXTENSIONS]
        paths.append(self.result_path(document_id))
        removed = 0
        for path in paths:
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                pass
        return removed

    def stored_ids(self) -> dict[str, float]:
        """Ids of the documents with files here, with their newest file's mtime."""
        found: dict[str, float] = {}
        for sub in ("uploads", "results"):
            directory = self.root / sub
            if not directory.is_dir():
                continue
            for entry in os.scandir(directory):
                stem = entry.name.split(".", 1)[0]
                try:
                    check_id(stem)
                    mtime = entry.stat().st_mtime
                except (ValueError, FileNotFoundError):
                    continue
                found[stem] = max(found.get(stem, 0.0), mtime)
        return found
