"""Read an uploaded paper's text, and typeset questions with their answers as a PDF.

Writing uses fpdf2 with a Unicode TrueType font (``WEBAPP_DOCUMENTS_FONT``, DejaVu Sans
when installed); without one it falls back to Helvetica, which covers Latin-1 only, and
characters beyond that are replaced. Reading an uploaded PDF uses pypdf.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from fpdf import FPDF

#: (label, question, answer) for each question, in order.
Answered = tuple[str, str, str]


class UnreadableDocument(ValueError):
    """The upload's text cannot be read (a broken or encrypted PDF, bad UTF-8)."""


def read_text(data: bytes, kind: str) -> str:
    """The text of an upload: UTF-8 for text and Markdown, extracted for a PDF."""
    if kind != "pdf":
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise UnreadableDocument(f"the file is not UTF-8 text ({exc.reason})") from exc
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnreadableDocument("the PDF is encrypted: upload one without a password")
        text = "\n".join(page.extract_text() or "" for page in reader.pages)
    except UnreadableDocument:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise UnreadableDocument(f"the PDF cannot be read ({type(exc).__name__}: {exc})") from exc
    if not text.strip():
        raise UnreadableDocument(
            "the PDF has no text to read (a scanned paper? run it through OCR first)"
        )
    return text


class _AnswersPdf(FPDF):
    def __init__(self, title: str, family: str) -> None:
        super().__init__(format="A4")
        self.document_title = title
        self.family = family

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font(self.family, size=8)
        self.set_text_color(110, 110, 110)
        self.cell(0, 10, f"Page {self.page_no()} of {{nb}}", align="C")


_ASCII_PUNCTUATION = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
     "\u2026": "..."}
)  # fmt: skip


def _latin1(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_ASCII_PUNCTUATION)
    return text.encode("latin-1", "replace").decode("latin-1")


def render_answers(
    title: str,
    answered: Sequence[Answered],
    *,
    answerer: str,
    created: datetime,
    font: Path | None = None,
) -> bytes:
    """A PDF: the title, a line of facts, then each question in bold and its answer."""
    family = "Helvetica"
    clean = _latin1
    unicode_font = font is not None and font.exists()
    if unicode_font:
        family = "DocFont"
        clean = str  # type: ignore[assignment]
    pdf = _AnswersPdf(clean(title), family)
    if unicode_font:
        assert font is not None
        pdf.add_font(family, "", str(font))
        bold = font.with_name(font.stem + "-Bold" + font.suffix)
        pdf.add_font(family, "B", str(bold if bold.exists() else font))
    pdf.set_title(clean(title))
    pdf.set_creator("taskcore documents")
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_margins(20, 20, 20)
    pdf.add_page()
    pdf.set_font(family, "B", 18)
    pdf.multi_cell(0, 9, clean(title), align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, size=9)
    pdf.set_text_color(110, 110, 110)
    facts = (
        f"{len(answered)} question{'s' if len(answered) != 1 else ''} · answered by the "
        f"{answerer} answerer · uploaded {created:%Y-%m-%d %H:%M} UTC"
    )
    pdf.multi_cell(0, 5, clean(facts), align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    for label, question, answer in answered:
        if pdf.get_y() > pdf.page_break_trigger - 25:  # keep a question with its answer
            pdf.add_page()
        pdf.set_text_color(20, 20, 20)
        pdf.set_font(family, "B", 11)
        pdf.multi_cell(
            0, 6, clean(f"{label}. {question}"), align="L", new_x="LMARGIN", new_y="NEXT"
        )
        pdf.ln(1)
        pdf.set_font(family, size=11)
        pdf.set_text_color(50, 50, 50)
        pdf.multi_cell(0, 6, clean(answer), align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(5)
    return bytes(pdf.output())
