"""The passage an example was made from, as the review shows it beside the answer, and the original file its
link opens. Both come from what the run recorded when it was made (documents.json, distill/documents/
provenance.py): the passage's text from the record, never from the folder, which may have changed since; the
original only from the folder the record names, only a file the record names, and only while its bytes still
have the sha256 recorded. A request names a file by its recorded name, looked up in the record: nothing a request
says is ever joined to a folder.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from distill.curate.faithfulness import source_of
from distill.documents.provenance import DocumentFile, DocumentsRecord
from distill.errors import DistillError
from distill.records import Example, Message
from distill.review.support import Span, supporting_spans
from distill.rundir import DOCUMENTS, RunDir

ROUTE = "/documents/"
# What a browser may do with an original: a user's HTML page runs no script and reaches nothing, in an origin of
# its own (sandbox), so it can never act on the review with the reviewer's cookie. A PDF opens in the browser's
# viewer, which a sandbox would block; the viewer runs none of the page's script in the review's origin.
SANDBOX = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"
MEDIA = {"pdf": "application/pdf", "html": "text/html; charset=utf-8", "markdown": "text/plain; charset=utf-8",
         "text": "text/plain; charset=utf-8"}


class SourcePassage(BaseModel):
    """What the review shows beside an answer made from a passage."""

    id: str
    file: str
    page: int | None = None
    headings: list[str] = []
    text: str | None = None  # as the run recorded it; None where documents.json does not hold it
    spans: list[Span] = []  # the sentences of `text` that support the answer
    href: str | None = None  # the review's route to the original (with #page=N for a PDF); None: not recorded


class Unavailable(Exception):
    """The original cannot be served: `status` and the reviewer's one line."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Original:
    """A document's bytes as they were when the run read them (checked against the recorded sha256)."""

    name: str
    content: bytes
    media_type: str
    policy: str | None  # the Content-Security-Policy it is served with; None: the review's own is left off


class RecordedDocuments:
    """A run's documents.json, read once: the passages' texts and the files it may serve."""

    def __init__(self, record: DocumentsRecord | None):
        self.record = record
        self.files: dict[str, DocumentFile] = {f.file: f for f in record.files} if record else {}

    @classmethod
    def of(cls, directory: Path) -> RecordedDocuments:
        """The record in the run folder `directory`; an empty one for a run made without `--documents`."""
        data = RunDir(directory).read_documents()
        if data is None:
            return cls(None)
        try:
            return cls(DocumentsRecord.model_validate(data))
        except ValidationError as err:
            raise DistillError(f"{DOCUMENTS} is damaged ({err.errors()[0]['msg']}); run `distill generate "
                               "--documents DIR` on this folder again to write it",
                               path=Path(directory) / DOCUMENTS) from None

    def passage(self, example: Example, messages: list[Message]) -> SourcePassage | None:
        """The passage `example` was made from, with the sentences that support its answer (the last assistant
        turn of `messages`, the item as it stands); None for an example not made from a passage."""
        source = source_of(example)
        if source is None:
            return None
        identifier, file, page = str(source.get("id", "")), str(source.get("file", "")), source.get("page")
        text = self.record.passages.get(identifier) if self.record else None
        answer = next((m.content for m in reversed(messages) if m.role == "assistant" and m.content), "")
        href = None
        if file in self.files:
            href = ROUTE + quote(file) + (f"#page={page}" if isinstance(page, int) else "")
        return SourcePassage(id=identifier, file=file, page=page if isinstance(page, int) else None,
                             headings=[str(h) for h in source.get("headings") or []], text=text,
                             spans=supporting_spans(answer, text) if text else [], href=href)

    def original(self, name: str) -> Original:
        """The recorded file named `name`, as the run read it; `Unavailable` if it is not a file of the record,
        or is gone or changed since."""
        recorded = self.files.get(name)
        if recorded is None or self.record is None:
            raise Unavailable(404, f"{_quoted(name)} is not a document this run was generated from "
                                   f"({DOCUMENTS} names {len(self.files)} files)")
        folder = Path(self.record.folder).resolve()
        path = (folder / recorded.file).resolve()
        kept = "the passage the review shows is the text the run read, kept in documents.json"
        try:
            if not path.is_relative_to(folder):  # a link put in its place since, leading out of the folder
                raise OSError
            content = path.read_bytes()
        except OSError:
            raise Unavailable(410, f"{recorded.file} is gone since the run: it is no longer a file in {folder}; "
                                   f"{kept}") from None
        if hashlib.sha256(content).hexdigest() != recorded.sha256:
            raise Unavailable(409, f"{recorded.file} has changed since the run: its sha256 is no longer the one "
                                   f"recorded in {DOCUMENTS}, so its pages may say something else now; {kept}")
        media = MEDIA.get(recorded.format) or mimetypes.guess_type(recorded.file)[0] or "application/octet-stream"
        return Original(name=recorded.file, content=content, media_type=media,
                        policy=None if recorded.format == "pdf" else SANDBOX)


def _quoted(value: str, limit: int = 60) -> str:
    """A name from a request, cut: a message never echoes a whole request back."""
    return repr(value if len(value) <= limit else value[:limit] + "…")
