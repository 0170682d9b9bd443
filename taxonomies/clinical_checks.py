"""A custom curation check for taxonomies/clinical-extraction.yaml (its task names it in `checks:`).

A check is a plain function: it gets the example (`distill.records.Example`: `messages`, `output`,
`meta`) and returns None when it passes, or a string saying what is wrong (the reject's reason code is
then the function's name). Packaged for reuse, the same function becomes a `distill.checks` plugin.
"""

import re


def drug_names_in_note(example):
    """Every extracted medication must be named in the note: the student must not learn to invent drugs."""
    note = " ".join(re.findall(r"[a-z0-9]+", example.prompt.lower()))
    for medication in (example.output or {}).get("medications", []):
        name = " ".join(re.findall(r"[a-z0-9]+", str(medication.get("name", "")).lower()))
        if name and f" {name} " not in f" {note} ":
            return f"{medication.get('name')!r} is not in the note"
    return None
