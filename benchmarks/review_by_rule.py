"""Review a run's queue through the review server's HTTP API on a stated rule, printing each item with its passage
so a person can read what was decided (the measured document recipe, benchmarks/README.md).

    distill review RUN --serve --port 8766 --reviewer NAME      # prints "review at http://127.0.0.1:8766/?token=..."
    python benchmarks/review_by_rule.py RUN 'http://127.0.0.1:8766/?token=...'

The rule: accept an item when its answer keeps to its passage (curation's lexical `faithful` check, with an answer
that says something) and its question does not lean on the passage (the `closed_book` check); otherwise reject it
as "wrong" (unfaithful) or "format" (a leaning question), with the check's words as the note. The rule is the
checks again, so it can only find what they find: it is a scripted reviewer, not a person, and says so in every
decision's note. An item without a passage (a leaf no document is about) is accepted: the checks do not apply,
and the printout is there to read it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from distill.curate.faithfulness import leaning_phrase, passage_text, unsupported  # noqa: E402
from distill.records import Example  # noqa: E402


def main() -> None:
    run, url = Path(sys.argv[1]), sys.argv[2]
    parts = urlsplit(url)
    token = parse_qs(parts.query)["token"][0]
    client = httpx.Client(base_url=f"{parts.scheme}://{parts.netloc}", timeout=30,
                          headers={"X-Distill": "1", "Authorization": f"Bearer {token}"})
    passages = json.loads((run / "documents.json").read_text(encoding="utf-8")).get("passages") or {}
    examples = {e.id: e for e in (Example.model_validate_json(line)
                                  for line in (run / "dataset.jsonl").read_text(encoding="utf-8").splitlines())}
    queue = client.get("/api/queue").raise_for_status().json()
    for item in queue["items"]:
        if not item["todo"]:
            continue
        example = examples[item["id"]]
        question = next(m.content for m in example.messages if m.role == "user")
        passage = passage_text(example, passages)
        why = None
        reason = "wrong"
        if passage is not None:
            why = unsupported(example.response, passage, question) or \
                (None if example.response.strip() else "the answer is empty")
            if why is None and (lean := leaning_phrase(question)):
                why, reason = f"the question leans on the passage: {lean!r}", "format"
        verdict = "accept" if why is None else "reject"
        note = "scripted reviewer (benchmarks/review_by_rule.py)" + (f": {why}" if why else "")
        body = {"item_id": item["id"], "verdict": verdict, "note": note, **({"reasons": [reason]} if why else {})}
        client.post("/api/decide", json=body).raise_for_status()
        print(f"--- {verdict} {item['leaf']} {note}\nQ: {question}\nA: {example.response}\n"
              f"passage: {' '.join((passage or '(none: the teacher answered from its own knowledge)').split())}\n")
    gate = client.get("/api/queue").raise_for_status().json()
    print(json.dumps({"gate": gate["gate"], "figures": gate["figures"]}, indent=1))


if __name__ == "__main__":
    main()
