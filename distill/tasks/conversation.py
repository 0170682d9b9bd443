"""A task whose example is a conversation: a simulated user and the assistant take turns, the assistant calls tools.

Every turn is its own teacher call through the runner's `call(step, request)`: `user` (the simulated user, which
the runner may send to a separate user teacher), `assistant` (with the tools), `tool:<name>` (a simulated tool's
result). The runner answers each from run.db when it was answered before, so a resumed conversation replays its
answered turns for free and pays only for the rest: every request is made from the answers before it, and the
real tools are deterministic functions of their arguments.

What the user templates see, besides what every task template sees (`topic`, `axes`, `seeds`, `item` ...):
`persona` (the value of the `persona_axis` and the axis's description, or None), `seed` (the item's first
seed), `seed_text`, `conversation` (the turns so far as the user saw them: role and content, no tool turns),
`turn` (the number of the user turn to write, from 1), `turns` (how many this item plans) and `end_marker`.
The user's request shows the conversation from the user's side: the user's earlier turns are its own
(`assistant`) turns, the assistant's answers are `user` turns.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.records import Example, ExampleMeta, Message, PlanItem, SamplingParams, ToolCall, Usage
from distill.tasks.engine import Call, Task, compile_task, seed_text
from distill.tasks.parse import Rejected, extract_json, usable_text
from distill.tasks.spec import ConversationSpec, TaskError, TaskSpec
from distill.tasks.templates import Compiled, environment, search_path
from distill.tasks.tool_worker import error_result
from distill.tasks.tools import Tool, ToolBox, compile_tools
from distill.teachers.base import GenerationRequest, GenerationResult
from distill.teachers.registry import TeacherSpec

USER_SYSTEM = (
    "You are role-playing the user in a conversation with an AI assistant, to make realistic training "
    "conversations. Stay in character and write only the user's next message, in the first person, with no "
    "labels, quotes or notes.{% if persona %} Who you are: {{ persona.value }}"
    "{% if persona.description %} ({{ persona.description }}){% endif %}.{% endif %}")
USER_PROMPT = (
    "The conversation is about {{ topic.title }}{% if topic.description %}: {{ topic.description }}{% endif %}."
    "{% if seed_text %}\nA message of the kind such a user writes: {{ seed_text }}{% endif %}\n"
    "Write your first message to the assistant.{% if end_marker %} Later, once the assistant has fully helped "
    "you, reply with only {{ end_marker }}.{% endif %}")
SIMULATED_TOOL = (
    "You are the tool `{name}`, answering a call the way the real tool would. What it does: {description}\n"
    "Its parameters (JSON Schema): {parameters}\n"
    "Reply with only the tool's result as one JSON object, no other text.")
STAND_IN = "Thank you, that answers my question."


@dataclass
class Talk:
    """A conversation task's compiled parts."""

    spec: ConversationSpec
    system: Compiled | None  # the assistant's system prompt
    user_system: Compiled
    user_prompt: Compiled
    tools: ToolBox
    persona_description: str | None


@dataclass
class ConversationTask(Task):
    """A task whose `run` makes a conversation (`TaskSpec.conversation`) instead of a fixed list of steps."""

    talk: Talk | None = None

    @property
    def conversation(self) -> Talk:
        assert self.talk is not None  # set by compile_conversation
        return self.talk

    def close(self) -> None:
        self.conversation.tools.close()

    def check_code(self) -> None:
        self.conversation.tools.check_loadable()

    def stand_in_answer(self, step_name: str) -> str:
        """Every turn's stand-in is plain text: a rehearsal or an estimate never calls a tool."""
        return STAND_IN

    async def run(self, loaded, item: PlanItem, teacher_spec: str, call: Call) -> Example:
        """One plan item's conversation: the example with every turn, or `Rejected` with a reason."""
        talk = self.conversation
        spec = talk.spec
        leaf = loaded.leaf(item.node_path)
        seeds = self.choose_seeds(loaded, item, leaf)
        context = self.item_context(loaded, item, leaf, seeds)
        persona = item.axes.get(spec.persona_axis) if spec.persona_axis else None
        context.update(
            persona={"value": persona, "description": talk.persona_description} if persona else None,
            seed=seeds[0] if seeds else None, seed_text=seed_text(seeds[0]) if seeds else "",
            end_marker=spec.end_marker)
        planned = random.Random(f"turns:{item.id}").randint(spec.turns.min, spec.turns.max)
        context["turns"] = planned
        sampling = self.sampling(loaded, item)
        run = _Run(item, call, sampling, talk)
        if talk.system is not None and (system := talk.system.render(context)):
            run.messages.append(Message(role="system", content=system))
        first_prompt = ""
        stopped = "max_turns"
        for turn in range(1, planned + 1):
            context["turn"], context["conversation"] = turn, run.visible()
            prompt = talk.user_prompt.render(context)
            first_prompt = first_prompt or prompt
            said = await run.user_turn(turn, talk.user_system.render(context), prompt)
            if said is None:
                stopped = "end_marker"
                break
            run.messages.append(Message(role="user", content=said))
            if not await run.assistant_turn(turn):
                stopped = "tool_round_limit"
                break
        meta: dict[str, Any] = {"turns": run.user_turns, "stopped": stopped, "tool_call_count": run.calls}
        if persona:
            meta["persona"] = persona
        if run.simulated:
            meta["simulated_tools"] = sorted(run.simulated)
        return Example(
            id=item.id, messages=run.messages, tools=talk.tools.definitions or None,
            meta=ExampleMeta(
                taxonomy=loaded.name, taxonomy_path=item.node_path, axes=item.axes, seed_ids=[s.id for s in seeds],
                teacher=teacher_spec, prompt_sha256=_sha(first_prompt), sampling=sampling, usage=run.usage,
                plan_item_id=item.id, task=self.name, **meta))


class _Run:
    """One conversation under way: its turns, and the teacher calls that add them."""

    def __init__(self, item: PlanItem, call: Call, sampling: SamplingParams, talk: Talk):
        self.item, self.call, self.sampling, self.talk = item, call, sampling, talk
        self.messages: list[Message] = []
        self.usage: Usage | None = None
        self.user_turns = 0
        self.calls = 0
        self.simulated: set[str] = set()

    async def ask(self, step: str, key: str, messages: list[Message], tools: list[dict] | None = None) \
            -> GenerationResult:
        request = GenerationRequest(key=f"{self.item.id}:{key}", messages=messages, sampling=self.sampling,
                                    tools=tools)
        result = await self.call(step, request)
        self.usage = result.usage if self.usage is None else self.usage + result.usage
        return result

    def visible(self) -> list[dict[str, str]]:
        """The turns a user sees: theirs and the assistant's answers (no system prompt, calls or tool results)."""
        return [{"role": m.role, "content": m.content} for m in self.messages
                if m.role == "user" or (m.role == "assistant" and not m.tool_calls and m.content)]

    async def user_turn(self, turn: int, system: str, prompt: str) -> str | None:
        """The simulated user's next message; None when it wrote the end marker (after its first turn)."""
        flipped = [Message(role="assistant" if m["role"] == "user" else "user", content=m["content"])
                   for m in self.visible()]
        messages = [Message(role="system", content=system), Message(role="user", content=prompt), *flipped]
        text = _turn_text(await self.ask("user", f"user:{turn}", messages), "user")
        marker = self.talk.spec.end_marker
        if marker and marker in text:
            text = text.replace(marker, "").strip()
            if turn > 1:
                return None
            if not text:
                raise Rejected("empty_output", "user: the simulated user ended the conversation before it began", text)
        self.user_turns += 1
        return text

    async def assistant_turn(self, turn: int) -> bool:
        """The assistant's answer to the last user turn, with its tool rounds; False when it still called tools
        after `max_tool_rounds` (the conversation stops there, kept for curation to reject as a loop)."""
        tools = self.talk.tools
        limit = self.talk.spec.max_tool_rounds
        for round_ in range(limit + 1):
            result = await self.ask("assistant", f"assistant:{turn}.{round_}", list(self.messages),
                                    tools.definitions or None)
            calls = [c if c.id else c.model_copy(update={"id": f"call_{turn}_{round_}_{n}"})
                     for n, c in enumerate(result.tool_calls or [])]
            if not calls:
                text = _turn_text(result, "assistant")
                self.messages.append(Message(role="assistant", content=text, reasoning=result.reasoning))
                return True
            self.messages.append(Message(role="assistant", content=(result.text or "").strip(), tool_calls=calls,
                                         reasoning=result.reasoning))
            self.calls += len(calls)
            for number, tool_call in enumerate(calls):
                if round_ == limit:  # answered so every call has its result, but not run: the loop ends here
                    content = error_result("tool_round_limit", f"more than {limit} rounds of tool calls for one "
                                           "user turn; the conversation stops here")
                else:
                    content = await self.answer(tool_call, f"{turn}.{round_}.{number}")
                self.messages.append(Message(role="tool", content=content, tool_call_id=tool_call.id,
                                             name=tool_call.function.name))
        return False

    async def answer(self, call: ToolCall, where: str) -> str:
        """A call's result: the real tool's, a teacher's for a simulated tool, or why it was not run."""
        checked = self.talk.tools.check(call)
        if checked.problem is not None or checked.tool is None:
            return checked.problem or ""
        tool = checked.tool
        if tool.ref is not None:
            result = await self.talk.tools.run(tool, checked.arguments)
        else:
            self.simulated.add(tool.name)
            result = await self.simulate(tool, checked.arguments, where)
        return cut_result(result, self.talk.spec.max_tool_result_chars)

    async def simulate(self, tool: Tool, arguments: dict[str, Any], where: str) -> str:
        system = SIMULATED_TOOL.format(name=tool.name, description=tool.spec.description,
                                       parameters=json.dumps(tool.spec.parameters, ensure_ascii=False))
        call = json.dumps({"name": tool.name, "arguments": arguments}, ensure_ascii=False)
        result = await self.ask(f"tool:{tool.name}", f"tool:{tool.name}:{where}",
                                [Message(role="system", content=system), Message(role="user", content=call)])
        text = usable_text(result, f"tool:{tool.name}")
        try:
            value, _ = extract_json(text)
        except Rejected:
            return text  # kept as the teacher wrote it: the assistant reads it as the tool's answer
        return json.dumps(value, ensure_ascii=False)


def cut_result(text: str, limit: int) -> str:
    """`text` within `limit` characters, ending with how much was cut (the assistant and a reviewer see that the
    result was longer, and the teacher is not billed for the rest on every later turn)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]} ... [cut: {len(text) - limit} more characters (max_tool_result_chars)]"


def _turn_text(result: GenerationResult, step: str) -> str:
    """A turn's text: `usable_text` less its refusal pattern, since in a conversation "I cannot ..." is often what
    the person says (an agent declining what the policy forbids, a customer who cannot remember), not the teacher
    refusing the task. A refusal the backend reports (finish reason) still rejects."""
    if result.finish_reason in ("length", "content_filter", "refusal") or not (result.text or "").strip():
        return usable_text(result, step)  # raises with the reason
    return (result.text or "").strip()


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def compile_conversation(spec: TaskSpec, task_dir: Path | None, taxonomy_file: Path | None,
                         labels: dict[str, str] | None, generation: Any, locate=None, *,
                         code_root: Path | None = None, code: bool = True,
                         axes: dict[str, Any] | None = None) -> ConversationTask:
    """A conversation task bound to a taxonomy: what `compile_task` compiles for every task (seeds, checks), its
    templates, its tools (checked without running them) and its persona axis (one of the taxonomy's `axes`)."""
    conversation = spec.conversation
    assert conversation is not None
    base = compile_task(spec, task_dir, taxonomy_file, labels, generation, locate, code_root=code_root, code=code)
    taxonomy_dir = taxonomy_file.resolve().parent if taxonomy_file is not None else None
    env = environment(search_path(task_dir, taxonomy_dir))
    where = locate or (lambda loc: "task." + ".".join(map(str, loc)))

    def template(source: Any, loc: tuple) -> Compiled:
        return Compiled(env, source, loc, where(loc))

    at = ("conversation",)
    description = None
    if conversation.persona_axis is not None:
        known = axes or {}
        if conversation.persona_axis not in known:
            raise TaskError((*at, "persona_axis"), f"no axis {conversation.persona_axis!r} in the taxonomy's "
                            f"axes ({', '.join(known) or 'none'}); name the axis whose values are the personas")
        description = known[conversation.persona_axis].description
    if conversation.user_teacher is not None:
        try:
            TeacherSpec.parse(conversation.user_teacher).check()
        except Exception as exc:  # an unknown backend (DistillError) or a malformed spec (ValidationError)
            raise TaskError((*at, "user_teacher"), str(exc).splitlines()[0]) from None
    system = conversation.system if conversation.system is not None else "{{ system_prompt }}"
    talk = Talk(
        spec=conversation,
        system=template(system, (*at, "system")),
        user_system=template(conversation.user.system or USER_SYSTEM, (*at, "user", "system")),
        user_prompt=template(conversation.user.prompt or USER_PROMPT, (*at, "user", "prompt")),
        tools=compile_tools(conversation, task_dir or taxonomy_dir, code_root, where),
        persona_description=description)
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(Task) if f.init}
    return ConversationTask(**fields, talk=talk)
