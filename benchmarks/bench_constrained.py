"""What holding greedy decoding to a schema costs a token on the embedded SmolLM2-135M (`distill eval --constrained`).

Eight ticket prompts, one batch, 64 new tokens, one torch thread; three ways: free, llguidance through distill's
own logits processor (the label set and a free-text rationale), and distill's choice trie (the label alone: it
only enumerates finite answers). xgrammar is timed too where it is installed (`pip install --no-deps xgrammar
apache-tvm-ffi`: its triton dependency is of no use on CPU). Prints ms a decode step, the constraint's own ms a
token (timed inside its processor), and how many answers are a JSON object with a label of the set.
"""

from __future__ import annotations

import json
import time

LABELS = ["refund_request", "billing_error", "login_problem", "account_change", "shipping_delay",
          "damaged_or_wrong_item", "bug_report", "how_to_question", "feature_request", "cancellation"]
SCHEMA = {"type": "object", "properties": {"label": {"type": "string", "enum": LABELS},
                                           "rationale": {"type": "string"}},
          "required": ["label", "rationale"], "additionalProperties": False}
TICKETS = ["My package is two weeks late", "I was charged twice for my order", "I can't log in to the app",
           "How do I change my address?", "The lamp arrived broken", "Please cancel my Plus membership",
           "The app crashes when I open the cart", "Can you add a dark mode?"]


class Timed:
    """A logits processor's own time, per call."""

    def __init__(self, inner):
        self.inner, self.seconds, self.calls = inner, 0.0, 0

    def __call__(self, input_ids, scores):
        started = time.perf_counter()
        out = self.inner(input_ids, scores)
        self.seconds += time.perf_counter() - started
        self.calls += 1
        return out


def main() -> None:
    import torch
    from transformers import AutoTokenizer
    from transformers.generation.logits_process import PrefixConstrainedLogitsProcessor

    from distill.evaluate.constrain import SchemaMask, compile_schemas
    from distill.models import load_causal_lm, resolve_model
    from distill.teachers.local.choices import ChoiceTrie, finite_outputs

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("local"))
    model = load_causal_lm("local", dtype=torch.float32).eval()
    system = ("Classify the ticket into one of: " + ", ".join(LABELS)
              + '. Answer with only a JSON object {"label": ..., "rationale": ...}.')
    prompts = [tokenizer.apply_chat_template([{"role": "system", "content": system}, {"role": "user", "content": t}],
                                             tokenize=False, add_generation_prompt=True) for t in TICKETS]
    tokenizer.padding_side = "left"
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    stop, vocab, rows = tokenizer.convert_tokens_to_ids("<|im_end|>"), model.config.vocab_size, len(TICKETS)
    start = encoded["input_ids"].shape[1]

    def run(name: str, make) -> None:
        processor = Timed(make()) if make else None
        started = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**encoded, max_new_tokens=64, do_sample=False, eos_token_id=stop,
                                 pad_token_id=tokenizer.pad_token_id, logits_processor=[processor] if processor else [])
        steps = out.shape[1] - start
        texts = [tokenizer.decode(row[start:], skip_special_tokens=True) for row in out]
        valid = sum(_label_of(text) in LABELS for text in texts)
        cost = processor.seconds / processor.calls * 1000 / rows if processor else 0.0
        print(f"{name:30s} {(time.perf_counter() - started) * 1000 / steps:7.1f} ms a step (batch {rows}, {steps} "
              f"steps), constraint {cost:5.2f} ms a token, {valid}/{rows} labels in the set", flush=True)

    run("free", None)
    grammars = compile_schemas(tokenizer, vocab, stop, [SCHEMA] * rows)
    run("llguidance label + rationale", lambda: SchemaMask(tokenizer, vocab, stop, grammars))
    outputs = finite_outputs({"type": "object", "properties": {"label": {"enum": LABELS}}, "required": ["label"]})
    trie = ChoiceTrie([tokenizer.encode(text, add_special_tokens=False) for text in outputs or []], stop)
    run("choice trie, label only", lambda: PrefixConstrainedLogitsProcessor(
        lambda batch, ids: trie.allowed(ids[start:].tolist()), 1))
    try:
        import xgrammar
        import xgrammar.contrib.hf
    except ImportError:
        print("xgrammar: not installed, not timed")
        return
    info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab, stop_token_ids=[stop])
    compiled = xgrammar.GrammarCompiler(info).compile_json_schema(json.dumps(SCHEMA))
    run("xgrammar label + rationale", lambda: xgrammar.contrib.hf.LogitsProcessor(compiled))


def _label_of(text: str) -> str | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value.get("label") if isinstance(value, dict) else None


if __name__ == "__main__":
    main()
