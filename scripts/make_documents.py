"""Write the shipped example documents (a fictional clinic's protocols) and the odd files the tests read.

    python scripts/make_documents.py

documents/clinic-protocols/ gets a PDF (several pages, bookmarks, a table), a Word file (headings, a table), an
HTML page, a Markdown file and a plain-text note; tests/fixtures/documents/ gets the files reading must refuse
one line at a time: a PDF with a scanned page (an image, no text layer), an encrypted PDF and a broken one.
Every word is ours and every person and place fictional. The output is deterministic (fixed creation dates,
no random ids), so re-running the script leaves git with nothing to commit. Needs fpdf2, python-docx and pypdf
(`pip install 'distill[documents]' fpdf2`).
"""

from __future__ import annotations

import io
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import docx
from fpdf import FPDF
from PIL import Image
from pypdf import PdfReader, PdfWriter

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "documents" / "clinic-protocols"
FIXTURES = ROOT / "tests" / "fixtures" / "documents"
WHEN = datetime(2026, 1, 5, tzinfo=timezone.utc)

# The sentence the tests follow from the PDF's page 3 to the leaf it is about (medication storage).
PLANTED = ("The vaccine refrigerator log at Harbour Lane is countersigned every Friday by the duty pharmacist, "
           "who initials the lowest and highest reading of the week.")

PDF_PAGES: list[tuple[str, list[str]]] = [
    ("Hand hygiene and infection control", [
        "Every member of staff cleans their hands before and after each patient contact, after touching a "
        "patient's surroundings, after removing gloves and before any aseptic procedure. Alcohol hand rub is "
        "used for at least twenty seconds; soap and water for at least forty seconds when hands are visibly "
        "soiled or after caring for a patient with diarrhoea.",
        "Nails are kept short and free of varnish. Wrist watches and rings with stones are removed before "
        "clinical work begins. Sleeves are rolled above the elbow in clinical rooms.",
        "Spillages of blood or body fluid are covered with chlorine granules for two minutes, then collected "
        "with disposable towels into an orange clinical waste bag. The spill kit lives in the cupboard beside "
        "treatment room two.",
    ]),
    ("Telephone triage", [
        "Calls are answered by the reception team, who ask three questions before booking: is the caller "
        "breathing normally, is there chest pain, and is there sudden weakness of the face or an arm. A yes "
        "to any of them means the caller is told to ring the emergency number at once.",
        "All other same-day requests go onto the triage list. The duty nurse calls back within one hour, "
        "in the order of the urgency flag set by reception: red, then amber, then green.",
        "Children under one year old with a fever are always flagged red. Every triage call is written up "
        "in the record with the advice given and the safety-netting words used.",
    ]),
    ("Medication storage", [
        "Vaccines and insulin are stored in the two pharmacy refrigerators in the treatment corridor. The "
        "refrigerators are never used for food, specimens or drinks, and the doors are kept locked.",
        "The current, lowest and highest temperatures are read and written in the log at the start of "
        "every session. " + PLANTED,
        "TABLE",
        "If a reading falls outside the range, the stock is quarantined in the refrigerator, labelled do "
        "not use, and the practice manager is told the same day.",
    ]),
    ("Needlestick injury", [
        "After a needlestick or a splash of blood into the eyes or mouth, the wound is encouraged to bleed "
        "gently under running water, washed with soap, and covered. Eyes and mouth are rinsed with plenty of "
        "water. The wound is never scrubbed or sucked.",
        "The injured person tells the duty doctor straight away and goes to the occupational health service "
        "or the emergency department within one hour, taking the details of the source patient if known.",
        "The incident is recorded on the clinic's incident form before the end of the shift.",
    ]),
    ("Waste and sharps", [
        "Sharps bins are assembled with the lid clicked shut on all sides and labelled with the date and "
        "the room. A bin is closed when it is three quarters full and never later than three months after "
        "it was opened.",
        "Closed bins are kept in the locked clinical waste store until collection on Tuesdays.",
    ]),
]

FRIDGE_TABLE = [
    ("Item", "Range (C)", "Action outside range"),
    ("Vaccines", "2 to 8", "Quarantine, call the manufacturer"),
    ("Insulin (unopened)", "2 to 8", "Quarantine, ask the pharmacist"),
    ("Room stock", "below 25", "Move to the cool store"),
]

WORD: list[tuple[int, str]] = [
    (1, "Staff handbook"),
    (2, "Opening hours"),
    (0, "The clinic opens from eight in the morning to half past six in the evening on weekdays, and from "
        "nine until noon on Saturdays. The doors are locked fifteen minutes after the last booked patient."),
    (2, "Chaperones"),
    (0, "Every patient is offered a chaperone for an intimate examination. The offer, and whether it was "
        "accepted, is written in the record with the chaperone's name."),
    (2, "On-call rota"),
    (3, "Weekday cover"),
    (0, "One doctor is on call for the whole session and takes the urgent visits and the triage list."),
    (-1, "TABLE"),
    (3, "Weekend cover"),
    (0, "At weekends the clinic's phone line is diverted to the regional out-of-hours service after noon."),
    (2, "Lone working"),
    (0, "Staff working alone after hours sign the lone-working sheet at reception and text the duty manager "
        "when they leave the building."),
]

ROTA = [("Day", "Doctor", "Nurse"), ("Monday", "Dr Aveling", "Nurse Brandt"),
        ("Wednesday", "Dr Castell", "Nurse Duarte"), ("Friday", "Dr Aveling", "Nurse Esposito")]

HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Patient information - Harbour Lane Family Clinic</title>
<style>body { font-family: sans-serif; }</style><script>var tracking = "not part of the text";</script></head>
<body><nav><a href="/">Home</a> <a href="/contact">Contact</a></nav>
<main>
<h1>Patient information</h1>
<h2>Before your blood test</h2>
<p>For a fasting blood test, do not eat for ten hours before your appointment. You may drink plain water,
and you should take your usual medicines unless the clinic has told you otherwise.</p>
<p>Bring a list of the medicines you take, including anything bought from a pharmacy.</p>
<h2>Cancelling an appointment</h2>
<p>Please cancel at least twenty-four hours before your appointment, by phone or through the online
booking page, so that another patient can have the slot.</p>
<h2>Repeat prescriptions</h2>
<ul><li>Order repeat prescriptions online or with the form at reception.</li>
<li>Allow two working days before collecting from your pharmacy.</li></ul>
</main>
<footer>Harbour Lane Family Clinic is a fictional clinic.</footer>
</body></html>
"""

MARKDOWN = """# Emergency procedures

## Anaphylaxis

Anaphylaxis is treated with intramuscular adrenaline into the outer thigh: 500 micrograms for adults
and children over twelve. The dose is repeated after five minutes if there is no improvement.

Call the emergency number, lay the patient flat with the legs raised, or sitting up if breathing is hard.
The anaphylaxis box is kept on the top shelf of the resuscitation trolley.

## Fire evacuation

On hearing the continuous alarm, staff lead patients out through the nearest exit to the assembly point
in the car park beside the pharmacy. Nobody uses the lift.

| Role | Task |
|---|---|
| Receptionist | Takes the day list and the visitors' book |
| Duty nurse | Checks the treatment rooms and toilets |
| Duty doctor | Reports to the fire service on arrival |

## Power cut

If the power fails for more than thirty minutes, the vaccine refrigerators stay closed and their
temperatures are read every hour with the battery thermometer.
"""

TEXT = """Harbour Lane Family Clinic: visitors

Visitors sign in at reception and wear a visitor badge while in the building.

Contractors are accompanied in clinical areas at all times.
"""


def write_pdf(path: Path, pages: list[tuple[str, list[str]]], *, scanned_after: int | None = None) -> None:
    """One page a section, each with a bookmark (the PDF's outline is its headings); `scanned_after`: a page
    holding only an image, as a scanner makes it, after that page."""
    pdf = FPDF()
    pdf.set_creation_date(WHEN)
    pdf.set_title("Clinical protocols - Harbour Lane Family Clinic")
    pdf.set_author("Harbour Lane Family Clinic (fictional)")
    for number, (title, paragraphs) in enumerate(pages, start=1):
        pdf.add_page()
        pdf.start_section(title, level=0)
        pdf.set_font("Helvetica", "B", 16)
        pdf.multi_cell(0, 10, title)
        pdf.ln(2)
        pdf.set_font("Helvetica", size=11)
        for paragraph in paragraphs:
            if paragraph == "TABLE":
                with pdf.table(col_widths=(50, 40, 90)) as table:
                    for row in FRIDGE_TABLE:
                        cells = table.row()
                        for cell in row:
                            cells.cell(cell)
            else:
                pdf.multi_cell(0, 6, paragraph)
            pdf.ln(4)
        if number == scanned_after:
            pdf.add_page()
            pdf.image(_scan(), x=10, y=10, w=190)
    pdf.output(str(path))


def _scan() -> Image.Image:
    """A grey page with dark bars, the look of a scan: pixels only, no text."""
    image = Image.new("L", (400, 560), 235)
    for row in range(40, 520, 30):
        image.paste(60, (30, row, 370 - (row * 7) % 90, row + 8))
    return image


def write_docx(path: Path) -> None:
    document = docx.Document()
    document.core_properties.created = WHEN.replace(tzinfo=None)
    document.core_properties.modified = WHEN.replace(tzinfo=None)
    document.core_properties.author = "Harbour Lane Family Clinic (fictional)"
    for level, text in WORD:
        if level > 0:
            document.add_heading(text, level=level)
        elif level == 0:
            document.add_paragraph(text)
        else:
            table = document.add_table(rows=len(ROTA), cols=len(ROTA[0]))
            for r, row in enumerate(ROTA):
                for c, cell in enumerate(row):
                    table.cell(r, c).text = cell
    buffer = io.BytesIO()
    document.save(buffer)
    path.write_bytes(_fixed_zip(buffer.getvalue()))


def _fixed_zip(data: bytes) -> bytes:
    """The same zip with every member's time fixed: python-docx stamps the time of saving, so git would see a
    new file on every run."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            info.date_time = (2026, 1, 5, 0, 0, 0)
            target.writestr(info, source.read(info.filename))
    return out.getvalue()


def write_encrypted(source: Path, path: Path) -> None:
    """`source` behind a user password (RC4, which pypdf writes without the cryptography package)."""
    writer = PdfWriter(clone_from=PdfReader(source))
    writer.encrypt(user_password="harbour", owner_password="lane", algorithm="RC4-128")
    writer._ID = None  # noqa: SLF001 - a random file id would change the file on every run
    with path.open("wb") as out:
        writer.write(out)


def main() -> None:
    SHIPPED.mkdir(parents=True, exist_ok=True)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    write_pdf(SHIPPED / "protocols.pdf", PDF_PAGES)
    write_docx(SHIPPED / "staff-handbook.docx")
    (SHIPPED / "patient-information.html").write_text(HTML, encoding="utf-8")
    (SHIPPED / "emergency-procedures.md").write_text(MARKDOWN, encoding="utf-8")
    (SHIPPED / "visitors.txt").write_text(TEXT, encoding="utf-8")
    write_pdf(FIXTURES / "scanned.pdf", PDF_PAGES[:2], scanned_after=1)
    write_encrypted(FIXTURES / "scanned.pdf", FIXTURES / "encrypted.pdf")
    whole = (SHIPPED / "protocols.pdf").read_bytes()
    (FIXTURES / "broken.pdf").write_bytes(whole[: len(whole) // 3])  # a download cut short
    (FIXTURES / "broken.docx").write_bytes(b"PK\x03\x04 not really a zip archive")
    for path in sorted([*SHIPPED.iterdir(), *FIXTURES.iterdir()]):
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
