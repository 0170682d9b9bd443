"""A planted corpus for curation parity: what `distill curate` kept, rejected (with reasons), found duplicate
and contaminated on it, summed up so that two versions of the code can be compared byte for byte.

`tests/curate/parity/*.json` hold the outcome of the code before the speed work of issue 24, written by
`scripts/curate_parity_reference.py` running that code (not written by hand); `test_curate_parity.py` holds
today's code to it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from curate_helpers import PUBMEDQA, planted_corpus, pubmedqa

from cli_helpers import TINY

PARITY = Path(__file__).resolve().parent / "parity"
REPOSITORY = Path(__file__).resolve().parents[2]
OUTPUTS = ("dataset.jsonl", "rejected.jsonl", "duplicates.jsonl", "contamination.jsonl")
ASTHMA, COLD = "respiratory/asthma", "respiratory/common-cold"


def row(i: int, answer: str, prompt: str | None = None, node: str | None = None, **meta) -> dict:
    question = prompt if prompt is not None else f"What does study {i} show about asthma inhalers?"
    return {"id": f"ex{i:04d}", "messages": [{"role": "system", "content": "You are a careful expert."},
                                             {"role": "user", "content": question},
                                             {"role": "assistant", "content": answer}],
            "meta": {"taxonomy_path": node, **meta}}


def qa_rows() -> list[dict]:
    """Real PubMedQA words with near and exact copies, every content check's reject, texts that take every path
    of normalisation (accents, ligatures, full-width, Hangul, combining marks, NUL, underscores) and
    held-out answers verbatim and embedded."""
    texts, _ = planted_corpus(260, [0] * 10 + [1] * 10 + [2] * 10 + [4] * 5 + [25] * 5, seed=11, words_per_doc=60)
    rows = [row(i, t, node=ASTHMA if i % 7 == 0 else None, quality=(i % 5) / 5 if i % 3 == 0 else None)
            for i, t in enumerate(texts)]
    n = len(rows)
    # Exact copies in case, spacing and punctuation only.
    rows += [row(n + k, "  " + texts[k].upper().replace(" ", "  \t") + "!!", prompt=f"what does STUDY {k} show about asthma inhalers")
             for k in range(15)]
    loop = "take the inhaler twice a day and " * 12
    odd = [
        {"messages": [{"role": "assistant", "content": "An answer first."},
                       {"role": "user", "content": "What is asthma?"}]},  # turn_order
        row(0, "Asthma narrows the airways.", prompt="   "),  # missing_prompt
        row(0, ""),  # empty_output
        row(0, texts[1] + " The end.", finish_reason="length"),
        row(0, "Here is code:\n```python\nprint('asthma')\n"),
        row(0, texts[2][:150].rsplit(" ", 1)[0]),  # ends mid-sentence
        row(0, "Use the inhaler.\n\n- twice a day\n- with a spacer  \n"),  # short last line: passes
        row(0, "Use the inhaler.\nThe dose was lowered in most of the adults to a total of 40"),  # ends on a digit
        row(0, texts[3] + "\n" + texts[4][:200] + " (see above)   "),
        row(0, "Yes."),
        row(0, " ".join(["asthma"] * 2101) + "."),
        row(0, "I'm sorry, but I can't provide medical advice about inhalers."),
        row(0, "I AM UNABLE TO HELP with that request about asthma, sorry."),
        row(0, "Unfortunately I cannot assist with dosing; please see a clinician about asthma."),
        row(0, "I must decline to answer that, but a clinician can review your inhaler technique today."),
        row(0, "I won't be able to help, but your asthma nurse will review the inhaler."),
        row(0, "I'm ſorry, but I can't help with that asthma question at all."),  # long s folds to s
        row(0, "İ can't answer questions about asthma inhalers, please ask a clinician."),
        row(0, "I'm ſorry, but I won't give dosing advice for asthma inhalers here."),  # only "ſorry" holds a literal
        row(0, "My \u212anowledge cutoff is last year, so ask a clinician about asthma inhalers."),  # Kelvin sign
        row(0, "Well, ı cannot answer that about asthma inhalers today."),  # dotless i
        row(0, "As an AI language model, I think inhalers help most people with asthma."),
        row(0, "I don't have personal opinions, but inhaled steroids reduce asthma attacks."),
        row(0, "Based on my training data, inhaled steroids reduce asthma attacks in children."),
        row(0, "The clinical cancer team can help: anti cancer drugs and an aim of cure."),  # literals only
        row(0, "What does study 5 show about asthma inhalers?", prompt="What does study 5 show about asthma inhalers?"),
        row(0, "Well, what does study 6 show about asthma inhalers? Good question.",
             prompt="What does study 6 show about asthma inhalers?"),
        row(0, loop.strip() + "."),  # repetitive
        row(0, "El asma es una enfermedad de los pulmones y la tos es frecuente por la noche en los niños."),
        row(0, "Asthma narrows the airways and inhaled steroids reduce attacks in most patients today.",
             prompt="Quelle est la meilleure façon de traiter l'asthme chez les enfants et pour les adultes qui sont malades?"),
        row(0, "Астма - это хроническое заболевание дыхательных путей, которое вызывает кашель и одышку."),
        row(0, "哮喘是一种慢性气道疾病，会引起咳嗽和呼吸急促，需要长期治疗。"),
        row(0, "Το άσθμα είναι μια χρόνια πάθηση των αεραγωγών που προκαλεί βήχα και δύσπνοια στα παιδιά."),
        row(0, "Asthma (астма) narrows the airways; inhaled steroids reduce the attacks of most patients."),
        row(0, "Inhaled steroids reduce attacks of asthma and improve the lung function of most patients.",
             prompt="What is the mechanism of action?"),  # not_self_contained
        row(0, "A cold brings a runny nose and a sore throat; colds pass in a week with rest and fluids.",
             prompt="How do colds spread among children with a runny nose?", node=ASTHMA),  # off_topic
        row(0, "Inhalers and spacers: asthma symptoms, triggers and inhalers explained for patients.",
             prompt="Which inhaler triggers fewer asthma symptoms?", node=ASTHMA),
        row(0, "Colds bring a runny nose and a sore throat, and they pass within a week or so.",
             prompt="How long does a cold with a sore throat last?", node=COLD),
        row(0, "Café au lait spots and naïve T cells: the ﬁrst ½ dose in ＦＵＬＬ width, 한국어 텍스트, e\u0301te\u0301 "
                "and ΣΟΦΙΑ are all words here, with some_under_scores and a NUL\x00inside it."),
        row(0, "CAFÉ AU LAIT SPOTS AND NAÏVE T CELLS: THE FIRST ½ DOSE IN FULL WIDTH, 한국어 텍스트, éTé "
                "AND ΣΟΦΙΑ ARE ALL WORDS HERE, WITH SOME UNDER SCORES AND A NUL INSIDE IT."),
        row(0, "Der der der asthma inhaler spacer dose lung airway steroid puffer nebulizer wheeze cough attack."),
        row(0, "Über die Lunge: Asthma ist nicht selten und wird mit dem Inhalator behandelt, auch für Kinder."),
    ]
    rows += [{**value, "id": f"odd{k:03d}"} for k, value in enumerate(odd)]
    held = pubmedqa()[:6]
    rows += [row(900 + k, item["LONG_ANSWER"]) for k, item in enumerate(held[:4])]
    rows += [row(950 + k, f"In short, {item['LONG_ANSWER']} That is what we found.") for k, item in enumerate(held[4:])]
    # Rows of other shapes after distill's own: no id (one is made from the line), Alpaca, prompt/completion.
    no_id = row(0, "Inhaled steroids reduce asthma attacks; a spacer helps the dose reach the lungs.")
    rows += [{k: v for k, v in no_id.items() if k != "id"},
             {"instruction": "How do spacers help with asthma inhalers?", "input": "",
              "output": "A spacer slows the spray so more of the dose reaches the lungs instead of the throat."},
             {"prompt": "Can asthma start in adults?", "completion": "Yes; adult-onset asthma is common after a cold."}]
    return rows


def ticket_rows() -> list[dict]:
    """Classification rows against tiny-tickets' labels and output schema."""
    def ticket(i: int, text: str, answer: str, output: dict | None = None) -> dict:
        value = row(i, answer, prompt=text, node="billing" if i % 2 else "account")
        return {**value, **({"output": output} if output is not None else {})}

    refund, login = "I returned the blender two weeks ago and want my money back.", "I cannot sign in to my account."
    return [
        ticket(1, refund, '{"label": "refund_request", "rationale": "wants the money back"}'),
        ticket(2, login, '{"label": "login_problem", "rationale": "cannot sign in"}'),
        ticket(3, refund, '{"label": "shipping_delay", "rationale": "late"}'),
        ticket(4, login, '{"label": "login_problem"}'),
        ticket(5, login, "not json at all"),
        ticket(6, refund, "refund_request", {"label": "refund_request", "rationale": "wants the money back"}),
        ticket(7, refund + " Again.", '{"label": "refund_request", "rationale": "wants the money back"}'),
        ticket(8, "Where is my parcel? It has been three weeks since I ordered the lamp.",
               '{"label": "Refund_Request.", "rationale": "the parcel never came"}'),
    ]


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


CASES = {
    "qa": (qa_rows, ["--taxonomy", str(TINY / "qa.yaml"), "--heldout", f"{PUBMEDQA}:LONG_ANSWER"]),
    "tickets": (ticket_rows, ["--taxonomy", str(TINY / "tickets.yaml")]),
}


def outcome(out: Path) -> dict:
    """What a curation wrote, in a form to compare: kept ids, rejects with reasons, duplicates, contamination,
    the statistics (less the input's path), and the SHA-256 of every output file."""
    def lines(name: str) -> list[dict]:
        return [json.loads(line) for line in (out / name).read_text(encoding="utf-8").splitlines()]

    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    stats.pop("input", None)
    # Held-out files by their place in the repository: the absolute path differs between checkouts.
    decontamination = stats.get("curate", {}).get("decontamination", {})
    if "heldout" in decontamination:
        decontamination["heldout"] = [_in_repository(path) for path in decontamination["heldout"]]
    return {
        "kept": [r["id"] for r in lines("dataset.jsonl")],
        "rejects": [[r["id"], r["stage"], r["reason"], r["detail"]] for r in lines("rejected.jsonl")],
        "duplicates": lines("duplicates.jsonl"),
        "contamination": lines("contamination.jsonl"),
        "stats": stats,
        "sha256": {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in OUTPUTS},
    }


def _in_repository(path: str) -> str:
    """`path` relative to the repository's root where it lies under it (a held-out file given as a path, with a
    `:field` after it or not); as given otherwise."""
    try:
        return Path(path).relative_to(REPOSITORY).as_posix()
    except ValueError:
        return path
