"""Reading speed per format on the shipped documents (documents/clinic-protocols/), and text fidelity.

Pages a second: a PDF's pages are its own; the other formats have none, so a page there is 3,000 characters of
extracted text (about one printed page of this prose). Each figure is the median of 3 timings, each timing
reading the file `--rounds` times. Fidelity: the share of the sentences the script wrote
(scripts/make_documents.py) found whole in the extracted text, spaces and line breaks aside. For the PDF, pypdf
(what distill uses) is compared with pdfplumber (where installed). The shipped files are small, so a file's
fixed cost (opening a Word package) weighs on them; each is also read enlarged `--times` times (its pages or its
body repeated: 40 times by default), which gives the rate on a document of a realistic size. Run from the
repository root:

    .venv/bin/python benchmarks/bench_documents.py [--rounds 20] [--times 40]
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import make_documents  # noqa: E402

from distill.documents.read import read_document  # noqa: E402

FOLDER = ROOT / "documents" / "clinic-protocols"
CHARS_PER_PAGE = 3000


def sentences() -> list[str]:
    """Every sentence the example documents hold, as written by the script."""
    texts = [p for _, paragraphs in make_documents.PDF_PAGES for p in paragraphs if p != "TABLE"]
    texts += [text for level, text in make_documents.WORD if level == 0]
    texts += [re.sub(r"<[^>]+>", " ", make_documents.HTML), make_documents.MARKDOWN, make_documents.TEXT]
    found = [s.strip() for text in texts for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split()))]
    return [s for s in found if len(s) > 30 and "|" not in s and "{" not in s]


def squash(text: str) -> str:
    return " ".join(text.split())


def fidelity(text: str, wanted: list[str]) -> tuple[int, int]:
    """(sentences of the file found whole, sentences of the file): a sentence belongs to the file when its
    first five words are in the text."""
    flat = squash(text)
    own = [s for s in wanted if " ".join(s.split()[:5]) in flat]
    return sum(s in flat for s in own), len(own)


def timed(read: Callable[[], object], rounds: int) -> float:
    """Median seconds of one read, over 3 timings of `rounds` reads."""
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(rounds):
            read()
        runs.append((time.perf_counter() - start) / rounds)
    return statistics.median(runs)


def pdfplumber_text(path: Path) -> tuple[str, int]:
    import pdfplumber

    with pdfplumber.open(path) as pdf:
        return "\n".join(page.extract_text() or "" for page in pdf.pages), len(pdf.pages)


def enlarged(path: Path, times: int, folder: Path) -> Path:
    """`path` with its content repeated `times` times, written into `folder` under the same name."""
    out = folder / path.name
    if path.suffix == ".pdf":
        from pypdf import PdfReader, PdfWriter

        writer = PdfWriter()
        for _ in range(times):
            writer.append(PdfReader(path))
        with out.open("wb") as handle:
            writer.write(handle)
    elif path.suffix == ".docx":
        import docx

        document = docx.Document(str(path))
        body = document.element.body
        parts = [child for child in body if not child.tag.endswith("}sectPr")]
        for _ in range(times - 1):
            for part in parts:
                body.insert(len(body) - 1, copy.deepcopy(part))  # before the section properties, which end a body
        document.save(str(out))
    elif path.suffix == ".html":
        text = path.read_text(encoding="utf-8")
        head, _, rest = text.partition("<main>")
        main, _, tail = rest.partition("</main>")
        out.write_text(head + "<main>" + main * times + "</main>" + tail, encoding="utf-8")
    else:
        out.write_text("\n\n".join([path.read_text(encoding="utf-8")] * times), encoding="utf-8")
    return out


def measure(path: Path, rounds: int, wanted: list[str]) -> tuple[str, float, float, str]:
    """(reader, pages, pages a second, sentences whole) for distill's reader on `path`."""
    document = read_document(path, path.name)
    pages = document.pages or max(len(document.text) / CHARS_PER_PAGE, 1e-9)
    seconds = timed(lambda: read_document(path, path.name), rounds)
    found, total = fidelity(document.text, wanted)
    reader = {"pdf": "pypdf", "docx": "python-docx", "html": "bs4", "markdown": "markdown-it"}.get(
        document.format, "plain")
    return reader, pages, pages / seconds, f"{found}/{total}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--times", type=int, default=40)
    args = parser.parse_args()
    wanted = sentences()
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs; medians of 3 x {args.rounds} reads")
    print(f"{'file':28} {'reader':12} {'pages':>7} {'pages/s':>9} {'sentences whole':>16}")
    with tempfile.TemporaryDirectory() as scratch:
        for path in sorted(FOLDER.iterdir()):
            for label, source, rounds in (("", path, args.rounds),
                                          (f" x{args.times}", enlarged(path, args.times, Path(scratch)),
                                           max(args.rounds // 10, 1))):
                reader, pages, rate, whole = measure(source, rounds, wanted)
                print(f"{path.name + label:28} {reader:12} {pages:7.2f} {rate:9.1f} {whole:>16}")
                if path.suffix == ".pdf":
                    try:
                        text, count = pdfplumber_text(source)
                    except ModuleNotFoundError:
                        print(f"{'':28} pdfplumber   not installed (pip install pdfplumber)")
                        continue
                    seconds = timed(lambda source=source: pdfplumber_text(source), rounds)
                    found, total = fidelity(text, wanted)
                    print(f"{'':28} {'pdfplumber':12} {count:7.2f} {count / seconds:9.1f} {found:>9}/{total}")


if __name__ == "__main__":
    main()
