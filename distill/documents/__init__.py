"""A folder of the user's own documents (PDF, Word, HTML, Markdown, plain text) as a source of knowledge: read
(`read.py`, one module a format), cut into chunks by the documents' own structure (`chunk.py`), attached to the
taxonomy's leaves (`attach.py`) and reported per leaf (`report.py`). docs/documents.md says how to use it."""
