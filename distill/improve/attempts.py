"""The student's attempts at TRAINING prompts (never held-out ones), each judged against the teacher's answer.

The student answers exactly as `distill eval` asks it (greedy, the same chat rendering, tool calls parsed), and
the verdict reuses eval's metrics: the label for classification, schema validity for a typed output, the tool
calls at a tool-calling turn, token-F1 at or above `QA_PASS` for open answers.
"""

from __future__ import annotations

from pathlib import Path

from distill.evaluate import metrics as m
from distill.evaluate.generate import generate, load_student
from distill.evaluate.report import gold_label, task_of
from distill.evaluate.tool_scores import call_turns, score_call, turn_prompt
from distill.improve.records import Attempt
from distill.records import Example, Message
from distill.tool_calls import chat_for_template, parse_turn, split_reasoning, template_renders_tools

# Token-F1 against the teacher's answer at or above this passes an open answer: a chosen line, not a measured one
# (half the answer's words shared with the teacher's), kept apart so a later calibration can move it.
QA_PASS = 0.5


def answered_turn(example: Example) -> int:
    """The assistant turn an attempt answers: the first tool-calling turn where the reference calls tools (what
    the student most often gets wrong in a conversation), else the last assistant turn (eval's answer)."""
    turns = call_turns(example)
    if turns:
        return turns[0]
    return max(i for i, msg in enumerate(example.messages) if msg.role == "assistant")


def judge(example: Example, turn: int, text: str, labels: list[str]) -> tuple[bool, str | None, dict[str, float]]:
    """(passed, reason, scores) for the student's `text` at the reference's turn `turn`."""
    reference = example.messages[turn]
    if reference.tool_calls:
        call = score_call(text, reference.tool_calls, example.tools)
        scores = {"valid_call": float(call.valid), "right_tool": float(call.right_tool),
                  "arguments_equal": float(call.arguments_equal)}
        reason = None if call.arguments_equal else "invalid_call" if not call.valid else \
            "wrong_tool" if not call.right_tool else "wrong_arguments"
        return reason is None, reason, scores
    task = task_of(example)
    if task == "classification":
        gold, predicted = gold_label(example), m.extract_label(text, labels)
        valid = m.schema_valid(text, example.output, {"label": labels}) if example.output else True
        if predicted != gold:
            return False, "label_mismatch", {"label_match": 0.0, "schema_valid": float(valid)}
        return True, None, {"label_match": 1.0, "schema_valid": float(valid)}
    if example.output and not m.schema_valid(text, example.output):
        return False, "schema_invalid", {"schema_valid": 0.0}
    f1 = m.token_f1(text, reference.content or "")
    return f1 >= QA_PASS, None if f1 >= QA_PASS else "low_overlap", {"token_f1": round(f1, 4)}


def student_attempts(adapter: Path, examples: list[Example], max_new_tokens: int = 128,
                     batch_size: int = 8) -> list[Attempt]:
    """The student at `adapter` answers each example's turn (`answered_turn`); each answer judged (`judge`)."""
    if not examples:
        return []
    model, tokenizer, manifest = load_student(Path(adapter))
    renders, reasoning = template_renders_tools(manifest.chat_template), bool(manifest.config.get("reasoning"))
    turns = [answered_turn(e) for e in examples]
    prompts = [turn_prompt(e, t, renders, reasoning) if e.messages[t].tool_calls
               else chat_for_template(e.messages[:t], e.tools, renders, reasoning=reasoning)
               for e, t in zip(examples, turns)]
    answers = generate(model, tokenizer, manifest, [chat for chat, _ in prompts], max_new_tokens=max_new_tokens,
                       batch_size=batch_size, tools=[tools for _, tools in prompts])
    labels = sorted({gold_label(e) for e in examples if task_of(e) == "classification"} - {m.NO_LABEL})
    attempts = []
    for example, turn, answer in zip(examples, turns, answers):
        text = split_reasoning(answer.text)[1]
        passed, reason, scores = judge(example, turn, text, labels)
        parsed = parse_turn(text)
        attempts.append(Attempt(
            example_id=example.id, leaf=example.meta.taxonomy_path or "(none)", task=task_of(example), turn=turn,
            prompt=example.messages[:turn], tools=example.tools, reference=example.messages[turn],
            answer=Message(role="assistant", content=parsed.content, tool_calls=parsed.tool_calls or None),
            passed=passed, reason=reason, scores=scores))
    return attempts
