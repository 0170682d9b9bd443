"""Break promises on purpose and check that the tests notice: a small mutation test of the test suite.

Each mutation replaces one short snippet of the code (which must occur exactly once: if the code changed
under it, the mutation is stale and says so) and runs the tests named for it; they must fail. The file
is restored afterwards whatever happens (a failure, Ctrl-C, SIGTERM), and a copy of the original is kept
beside it (`FILE.mutate-orig`) until then, so even a kill -9 is undone by the next run of this script.

    python scripts/mutate.py            # every mutation
    python scripts/mutate.py --quick    # the ones cheap enough for CI (no model training)
    python scripts/mutate.py --list     # names only
    python scripts/mutate.py NAME ...   # these (a name, or a prefix of one)
    python scripts/mutate.py --baseline # first check that the named tests pass on the unbroken code

Exit code 0 when every mutation was caught, 1 when one was not (or was stale, or its tests errored).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKUP = ".mutate-orig"


@dataclass(frozen=True)
class Mutation:
    name: str  # the promise the break violates
    path: str  # relative to the repository root
    original: str  # occurs exactly once in the file
    replacement: str
    tests: tuple[str, ...]  # pytest node ids; at least one must fail
    quick: bool = True  # in --quick (False: trains a model, a minute or more each)


MUTATIONS = [
    # Crash safety: a second run, the commit window, answers looked up in run.db.
    Mutation("a second `distill run` on a folder in use is refused",
             "distill/run.py", "with run_dir.lock():", "with __import__('contextlib').nullcontext():",
             ("tests/cli/test_cli_runs.py::test_a_second_distill_run_is_refused_while_the_first_holds_the_folder",)),
    Mutation("a second `distill generate` on a folder in use is refused",
             "distill/generate/runner.py", "with run_dir.lock(), run_dir.store_errors():",
             "with run_dir.store_errors():",
             ("tests/cli/test_cli_runs.py::test_a_second_run_on_the_same_directory_stops_at_once_and_nothing_is_paid_twice",)),
    Mutation("kill -9 loses at most the last 20 ms of answers",
             "distill/commits.py", "COMMIT_WINDOW_S = 0.02", "COMMIT_WINDOW_S = 2.0",
             ("tests/teachers/test_api_openai.py::test_kill_9_and_resume_never_pays_twice",)),
    Mutation("kill -9 loses at most the last 20 ms of answers (sender process)",
             "distill/commits.py", "COMMIT_WINDOW_S = 0.02", "COMMIT_WINDOW_S = 2.0",
             ("tests/teachers/test_api_sender.py::test_kill_9_takes_the_sender_with_the_run_and_resume_never_pays_twice",)),
    Mutation("an answer in the shared response cache is not paid for again",
             "distill/teachers/wrappers/cache.py", "hit = self.cache.get(fingerprint)", "hit = None",
             ("tests/teachers/test_api_openai.py::test_cache_is_shared_across_runs_and_an_edited_node_misses_alone",)),
    Mutation("an answer stored in run.db is never asked again",
             "distill/generate/runner.py", "stored = store.find_call(fingerprint)", "stored = None",
             ("tests/teachers/test_api_openai.py::test_kill_9_and_resume_never_pays_twice",)),
    Mutation("an answer stored in run.db is never asked again (after Ctrl-C)",
             "distill/generate/runner.py", "stored = store.find_call(fingerprint)", "stored = None",
             ("tests/cli/test_cli_runs.py::test_ctrl_c_exits_130_with_the_resume_hint_and_the_same_command_resumes[ctrl-c]",)),
    Mutation("an answer stored in run.db is never asked again (notebook interrupt)",
             "distill/generate/runner.py", "stored = store.find_call(fingerprint)", "stored = None",
             ("tests/api/test_api.py::test_the_interrupt_button_stops_a_run_in_a_notebook_and_it_resumes",)),
    Mutation("an answer stored in run.db is never asked again (local teacher, kill -9)",
             "distill/generate/runner.py", "stored = store.find_call(fingerprint)", "stored = None",
             ("tests/generate/test_generate.py::test_killed_run_resumes_without_asking_again",)),
    Mutation("an answer stored in run.db is never asked again (sender process)",
             "distill/generate/runner.py", "stored = store.find_call(fingerprint)", "stored = None",
             ("tests/teachers/test_api_sender.py::test_kill_9_takes_the_sender_with_the_run_and_resume_never_pays_twice",)),
    # Training and its data.
    Mutation("training never sees the eval split",
             "distill/train/sft.py", "train_dataset=data.build_dataset(train_examples, tokenizer, config.reasoning),",
             "train_dataset=data.build_dataset(train_examples + eval_examples, tokenizer, config.reasoning),",
             ("tests/train/test_train_sft.py::test_adapter_manifest_and_card_are_written",), quick=False),
    Mutation("training never sees the eval split (the split read back)",
             "distill/train/data.py", "return usable, held_out", "return usable + held_out, held_out",
             ("tests/train/test_train_sft.py::test_adapter_manifest_and_card_are_written",), quick=False),
    Mutation("QLoRA loads the base in nf4",
             "distill/train/sft.py", 'bnb_4bit_quant_type="nf4"', 'bnb_4bit_quant_type="fp4"',
             ("tests/train/test_train_sft.py::test_qlora_loads_the_base_in_nf4_with_double_quantisation",), quick=False),
    Mutation("QLoRA double-quantises the base",
             "distill/train/sft.py", "bnb_4bit_use_double_quant=True", "bnb_4bit_use_double_quant=False",
             ("tests/train/test_train_sft.py::test_qlora_loads_the_base_in_nf4_with_double_quantisation",), quick=False),
    # Evaluation and review.
    Mutation("bootstrap intervals have the width of the data's spread",
             "distill/evaluate/metrics.py", "low=samples[int(0.025 * (resamples - 1))], "
             "high=samples[int(0.975 * (resamples - 1))]", "low=full, high=full",
             ("tests/evaluate/test_eval_metrics.py::test_bootstrap_interval_of_a_mean_matches_its_standard_error",)),
    Mutation("the review gate counts rejects, not edits",
             "distill/review/gate.py", "rejected=outcome == REJECT,", "rejected=outcome in (REJECT, EDIT),",
             ("tests/review/test_review_gate.py::test_edits_fix_items_and_do_not_count_against_the_gate",)),
    Mutation("a card one reviewer opened is not handed to another (server)",
             "distill/review/session.py", "return claim is not None and claim[0] != reviewer and",
             "return False and",
             ("tests/review/test_review_server.py::test_a_card_one_reviewer_opened_is_not_handed_to_another",)),
    Mutation("a card one reviewer opened is not handed to another (page)",
             "distill/review/static/review.js",
             "for (let j = from + 1; j < view.length; j++) if (view[j].todo && !view[j].claimed) return j;\n"
             "    for (let j = 0; j <= from && j < view.length; j++) if (view[j].todo && !view[j].claimed) return j;",
             "for (let j = from + 1; j < view.length; j++) if (view[j].todo) return j;\n"
             "    for (let j = 0; j <= from && j < view.length; j++) if (view[j].todo) return j;",
             ("tests/review/test_review_browser.py::test_a_second_reviewers_page_skips_the_cards_another_has_open",)),
    Mutation("an edit of the answer keeps the question as it was (page)",
             "distill/review/static/review.js", "(edits.has(i) ? Object.assign({}, m, {content: edits.get(i)}) : m)",
             "(edits.has(i) ? Object.assign({}, m, {content: [...edits.values()].pop()}) : m)",
             ("tests/review/test_review_browser.py::test_keyboard_accept_reject_edit_undo_skip",)),
    # Curation and generation.
    Mutation("an n-gram common in the held-out set is a stem, not contamination",
             "distill/curate/decontaminate.py", "stem = (index.items_with[where] >= config.heldout_common_items) | ",
             "stem = ",
             ("tests/curate/test_curate_decontam.py::test_a_preamble_many_heldout_items_share_is_a_stem_a_shared_passage_is_not",)),
    Mutation("an n-gram in many generated items is a stem, not contamination",
             "distill/curate/decontaminate.py", " | (docs_per_ngram[where] >= common_generated)", "",
             ("tests/curate/test_curate_decontam.py::test_ngram_common_across_the_generated_set_is_a_stem",)),
    Mutation("a step that runs only in this process is refused on Ray, in its own words",
             "distill/executors/ray.py", "if refusals := curation.local_only():", "if refusals := []:",
             ("tests/curate/test_curate_judge.py::test_judged_checks_are_refused_on_ray_in_their_own_words_before_anything_runs",)),
    Mutation("the budget reserves each request's worst case while it is in flight",
             "distill/generate/budget.py", "        self.in_flight += worst_usd\n", "",
             ("tests/teachers/test_api_openai.py::test_requests_in_flight_hold_their_worst_case_against_the_cap",
              "tests/teachers/test_api_openai.py::test_budget_is_a_hard_cap")),
    Mutation("the budget counts a request's own worst case before sending it",
             "distill/generate/budget.py", "self.held - taken + worst_usd > self.cap", "self.held - taken > self.cap",
             ("tests/teachers/test_api_openai.py::test_requests_in_flight_hold_their_worst_case_against_the_cap",
              "tests/test_run.py::test_the_generate_section_takes_what_distill_generate_takes")),
    Mutation("the plan is the same in every process for a seed",
             "distill/taxonomy/plan.py", 'random.Random(f"{seed}:{leaf_path}:{name}")',
             'random.Random(hash(f"{seed}:{leaf_path}:{name}"))',
             ("tests/taxonomy/test_plan.py::test_plan_is_the_same_in_another_process",)),
    # Safety (issue 19): nothing the user owns is replaced, no code or file a data file names, no secret written.
    Mutation("an output folder of another kind (the run folder itself) is never written into",
             "distill/owned.py", "if record.kind != kind and record.kind not in hosts:", "if False:",
             ("tests/test_owned_outputs.py::test_review_export_pointed_at_the_run_or_the_current_folder_keeps_run_db_and_every_decision",)),
    Mutation("a folder's record of distill's files cannot name a file outside it",
             "distill/owned.py", 'return all(part not in ("", ".", "..") for part in parts) and name.rstrip("/") != MANIFEST',
             "return True",
             ("tests/test_owned_outputs.py::test_a_hostile_record_cannot_point_outside_the_folder",)),
    Mutation("a user's run.lock is not emptied", "distill/rundir.py", "if not _ours(os.pread(fd, 4096, 0)):",
             "if False:", ("tests/test_run_consistency.py::test_a_users_own_run_lock_is_neither_truncated_nor_followed",)),
    Mutation("templates render in Jinja's sandbox", "distill/tasks/templates.py", "env = Sandbox(loader=",
             "env = jinja2.Environment(loader=",
             ("tests/cli/test_code_safety.py::test_the_sandbox_refuses_internals_a_template_computes_at_render_time",)),
    Mutation("a taxonomy's Python is not imported by validate, show or a dry run", "distill/taxonomy/load.py",
             "code: bool = False) -> LoadedTaxonomy:", "code: bool = True) -> LoadedTaxonomy:",
             ("tests/cli/test_code_safety.py::test_a_custom_check_is_read_not_run_by_validate_show_and_dry_run_and_imported_by_generate_and_curate",)),
    Mutation("a taxonomy reads only files under its project", "distill/taxonomy/paths.py",
             "if not path.is_relative_to(root):", "if False:",
             ("tests/taxonomy/test_taxonomy_paths.py::test_a_path_leaving_the_project_or_hidden_is_refused_before_it_is_read",)),
    Mutation("a key in a URL is never written or shown", "distill/redact.py",
             "return _URL.sub(lambda found: redact_url(found.group()), text)", "return text",
             ("tests/test_secrets.py::test_the_lock_message_masks_a_key_an_older_run_wrote_into_run_lock",)),
    Mutation("--timeout is a deadline for the whole response", "distill/teachers/http/base.py",
             "by_deadline(send, self.settings.timeout_s)", "send",
             ("tests/cli/test_hangs.py::test_a_server_trickling_its_answer_fails_the_request_at_the_timeout[openai]",)),
    Mutation("a review request body past its limit is refused as it arrives", "distill/review/server.py",
             "MAX_BODY_BYTES = 2 * 1024 * 1024", "MAX_BODY_BYTES = 2 * 1024 * 1024 * 1024",
             ("tests/review/test_review_server_faults.py::test_a_body_past_the_limit_is_refused_before_it_is_read",)),
    Mutation("a split follows its dataset: examples generated after it are not left out", "distill/curate/split.py",
             'if digest is None or recorded.get("source_sha256") == digest:', "if True:",
             ("tests/test_run_consistency.py::test_examples_generated_after_the_split_reach_the_export_and_held_out_ones_stay_held_out",)),
    Mutation("nothing is written into a run.db its integrity check finds damaged", "distill/store.py",
             "check_integrity(self.db, self.path)", "pass",
             ("tests/test_run_consistency.py::test_nothing_is_written_into_a_run_db_the_integrity_check_finds_damaged",)),
    # Issue 20: one owner of the run folder.
    Mutation("the review rebuilds the split with the other files", "distill/review/feedback.py",
             "    _review_split(run_dir, review)\n    return figures", "    return figures",
             ("tests/test_rundir.py::test_the_review_rebuilds_the_split_with_the_other_files",)),
    Mutation("a user's file named like one side of the split stops it before either side is written",
             "distill/rundir.py", "        folder.check_all(SPLIT)\n        folder.write_jsonl(TRAIN, train)\n        folder.write_jsonl(EVAL",
             "        folder.write_jsonl(TRAIN, train)\n        folder.write_jsonl(EVAL",
             ("tests/test_rundir.py::test_a_run_dirs_files_go_through_its_ownership_record",)),
    # Your documents: a file that cannot be read is one line, chunks keep their limits, pins stay in the project,
    # and an example made from a passage says where the passage came from.
    Mutation("an encrypted PDF is one line saying so", "distill/documents/pdf.py",
             'if reader.is_encrypted and not reader.decrypt(""):', "if False:",
             ("tests/documents/test_reading.py::test_a_file_that_cannot_be_read_is_one_line_and_the_others_go_on",)),
    Mutation("a scanned page is one line and its PDF goes on", "distill/documents/pdf.py",
             'notes.append(f"page {number}: {NO_TEXT}")', "pass",
             ("tests/documents/test_reading.py::test_a_file_that_cannot_be_read_is_one_line_and_the_others_go_on",)),
    Mutation("a chunk keeps to the size limit", "distill/documents/chunk.py", "while end - start > max_chars:",
             "while False:", ("tests/documents/test_reading.py::test_chunks_keep_to_the_size_limit_and_cut_between_sentences",)),
    Mutation("a chunk's headings come from the PDF's outline", "distill/documents/pdf.py",
             "headings = _outline(reader, reader.outline, 1)", "headings = {}",
             ("tests/documents/test_reading.py::test_every_format_is_read_with_its_pages_headings_and_tables",)),
    Mutation("a chunk goes to the leaf it is most about", "distill/documents/attach.py",
             "best = max(candidates, key=lambda row: scores[row][column])", "best = candidates[0]",
             ("tests/documents/test_attaching.py::test_a_sentence_planted_on_a_pdf_page_lands_in_its_leaf_with_its_page",)),
    Mutation("a pinned file's chunks go to its node", "distill/documents/attach.py",
             "pinning = [node for node, pin in pins if path == pin or path.is_relative_to(pin)]", "pinning = []",
             ("tests/documents/test_attaching.py::test_a_pin_puts_a_files_chunks_under_its_node",)),
    Mutation("a taxonomy's pin stays under its project", "distill/taxonomy/load.py",
             'path = _named_path(file, value, data, (*loc, "documents", index))',
             "path = (file.parent / value).resolve()",
             ("tests/documents/test_attaching.py::test_a_pin_outside_the_project_or_missing_is_one_line",)),
    Mutation("an example made from a passage records its provenance", "distill/tasks/engine.py",
             'extra["source"] = {k: v for k, v in context["passage"].items() if k != "text"}', "pass",
             ("tests/documents/test_generating.py::test_a_planted_sentence_reaches_its_leafs_prompts_and_the_example_points_at_its_page",)),
    Mutation("an open-book task keeps the passage in the student's prompt", "distill/tasks/engine.py",
             '            context["context"] = context["passage"]["text"]', "            pass",
             ("tests/documents/test_generating.py::test_a_task_that_reads_context_keeps_the_passage_in_the_students_prompt",)),
    # Teachers' tool calls: sent and read in each backend's own form.
    Mutation("anthropic: the results of one assistant turn go back in one user turn",
             "distill/teachers/http/anthropic/teacher.py",
             'if out and out[-1]["role"] == role and (message.role == "tool" or isinstance(out[-1]["content"], list)):',
             "if False:",
             ("tests/teachers/test_api_tool_calls_anthropic.py::"
              "test_a_conversation_with_calls_and_their_results_is_sent_in_anthropics_wire_form",)),
    Mutation("anthropic: a tool_use block of the request's own tools is a call, not the answer's JSON",
             "distill/teachers/http/anthropic/teacher.py", 'if kind == "tool_use" and block.get("name") == TOOL:',
             'if kind == "tool_use":',
             ("tests/teachers/test_api_tool_calls_anthropic.py::"
              "test_the_tools_are_sent_natively_and_a_call_comes_back_with_its_input_as_arguments",)),
    # Conversations: invalid calls never run, checks reject them, training learns assistant turns only, eval's rules.
    Mutation("a call the tool's schema refuses is not run", "distill/tasks/conversation.py",
             "if checked.problem is not None or checked.tool is None:", "if checked.tool is None:",
             ("tests/generate/test_conversations.py::test_unknown_tools_and_invalid_arguments_are_recorded_not_run",)),
    Mutation("a call to a tool the example does not declare is a reject", "distill/curate/conversation.py",
             "        if call.function.name not in tools:", "        if False:",
             ("tests/curate/test_curate_conversations.py::test_each_fault_fails_its_own_check_with_the_turn_and_tool",)),
    Mutation("a call's arguments are checked against its tool's schema", "distill/curate/conversation.py",
             "            validator.validate(args)", "            pass",
             ("tests/curate/test_curate_conversations.py::test_each_fault_fails_its_own_check_with_the_turn_and_tool",)),
    Mutation("a conversation trains on its assistant turns and nothing else", "distill/train/data.py",
             "labels += ids if learned else [IGNORE] * len(ids)", "labels += ids",
             ("tests/train/test_train_conversations.py::test_a_conversation_is_trained_on_every_assistant_turn_and_its_tool_calls",)),
    Mutation("eval's right tool compares the called names with the reference's", "distill/evaluate/tool_scores.py",
             "right_tool = [c.function.name for c in calls] == [c.function.name for c in reference]",
             "right_tool = bool(calls)",
             ("tests/evaluate/test_eval_tool_calls.py::test_a_call_is_scored_by_every_rule",)),
    Mutation("in-process teachers read <tool_call> blocks as calls", "distill/teachers/local/turns.py",
             "return Answer(turn.content, turn.tool_calls or None, turn.reasoning)", "return Answer(text, None, None)",
             ("tests/teachers/test_local_teacher_tools.py::"
              "test_a_tool_call_in_the_models_text_becomes_a_call_and_its_think_block_the_reasoning",)),
    # Improve in rounds: a leaf the student masters gets nothing new. Your documents: an answer its passage does
    # not support is a reject.
    Mutation("a leaf the student masters gets no new items", "distill/improve/plan.py",
             "is_mastered = score is not None and score.low >= mastered", "is_mastered = False",
             ("tests/improve/test_improve_plan.py::test_a_weak_leaf_gains_and_a_mastered_one_gets_nothing",)),
    Mutation("an answer its passage does not support is rejected as unfaithful", "distill/curate/checks.py",
             "why = unsupported(example.response, passage, question=example.prompt)", "why = None",
             ("tests/documents/test_grounded_curation.py::"
              "test_an_answer_its_passage_does_not_support_is_rejected_and_a_faithful_one_kept",)),
]


@dataclass
class Outcome:
    mutation: Mutation
    verdict: str  # caught | NOT CAUGHT | STALE (n found) | ERROR (pytest exit n)
    seconds: float

    @property
    def ok(self) -> bool:
        return self.verdict == "caught"


class Stop(Exception):
    """SIGTERM or SIGHUP: unwind like Ctrl-C, so the file is restored."""


def _stop(signum, frame):
    raise Stop(signal.Signals(signum).name)


def restore_leftovers(mutations: list[Mutation]) -> None:
    """A run killed outright (-9) left a mutated file and its original beside it: put the original back."""
    for path in sorted({ROOT / m.path for m in mutations}):
        backup = path.with_name(path.name + BACKUP)
        if backup.exists():
            os.replace(backup, path)
            print(f"restored {path.relative_to(ROOT)} left mutated by an interrupted run", file=sys.stderr)


def pytest(tests: tuple[str, ...], timeout_s: float) -> int:
    # No bytecode written: a mutated module's .pyc with the same size and mtime second as the restored
    # source would otherwise be taken for it by later runs.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
    # A session of its own, so that stopping it also stops the `distill` processes its tests started.
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return -1
    finally:
        _kill_group(proc)  # also after a normal end: a failed test may have left a process running


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group pytest leads: it and whatever its tests left running
    except ProcessLookupError:
        pass
    proc.wait()


def apply_and_test(mutation: Mutation, timeout_s: float) -> Outcome:
    started = time.monotonic()
    path = ROOT / mutation.path
    text = path.read_text(encoding="utf-8")
    found = text.count(mutation.original)
    if found != 1:
        return Outcome(mutation, f"STALE ({found} found)", 0.0)
    backup = path.with_name(path.name + BACKUP)
    shutil.copy2(path, backup)  # kept until the original is back (see restore_leftovers)
    try:
        path.write_text(text.replace(mutation.original, mutation.replacement), encoding="utf-8")
        code = pytest(mutation.tests, timeout_s)
    finally:
        os.replace(backup, path)  # the original bytes and mtime, so its cached bytecode is valid again
    seconds = time.monotonic() - started
    if code == 1:
        return Outcome(mutation, "caught", seconds)
    if code == 0:
        return Outcome(mutation, "NOT CAUGHT", seconds)
    return Outcome(mutation, "TIMEOUT" if code == -1 else f"ERROR (pytest exit {code})", seconds)


def select(names: list[str], quick: bool) -> list[Mutation]:
    chosen = [m for m in MUTATIONS if not quick or m.quick]
    if names:
        chosen = [m for m in chosen if any(m.name.startswith(name) for name in names)]
        if not chosen:
            sys.exit(f"no mutation named {' or '.join(map(repr, names))}; --list shows them")
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="mutations to run (a name or its beginning); default: all")
    parser.add_argument("--quick", action="store_true", help="only the mutations cheap enough for CI")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--baseline", action="store_true", help="check the named tests pass unbroken first")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for one mutation's tests")
    args = parser.parse_args()
    chosen = select(args.names, args.quick)
    if args.list:
        for m in chosen:
            print(f"{'quick' if m.quick else 'slow '}  {m.name}  ({m.path})")
        return 0
    # Ctrl-C as KeyboardInterrupt even where a shell started this with SIGINT ignored (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)
    restore_leftovers(MUTATIONS)
    if args.baseline:
        for tests in dict.fromkeys(m.tests for m in chosen):
            code = pytest(tests, args.timeout)
            if code != 0:
                print(f"baseline: {' '.join(tests)} fails (exit {code}) on the unbroken code", file=sys.stderr)
                return 1
    outcomes = []
    started = time.monotonic()
    try:
        for mutation in chosen:
            outcome = apply_and_test(mutation, args.timeout)
            outcomes.append(outcome)
            print(f"{outcome.verdict:<12} {outcome.seconds:6.1f} s  {mutation.name}", flush=True)
    except (KeyboardInterrupt, Stop) as exc:
        print(f"stopped ({exc or 'Ctrl-C'}); every file is restored", file=sys.stderr)
        return 130
    missed = [o for o in outcomes if not o.ok]
    print(f"{len(outcomes) - len(missed)} of {len(outcomes)} mutations caught in {time.monotonic() - started:.0f} s")
    for o in missed:
        print(f"  {o.verdict}: {o.mutation.name} ({o.mutation.path}); tests: {' '.join(o.mutation.tests)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
