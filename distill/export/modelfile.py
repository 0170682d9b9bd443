"""An Ollama `Modelfile` for an exported GGUF: the chat template in Ollama's Go-template syntax, the stop token,
and the system prompt the student was trained with.

A Jinja chat template cannot be translated to Go in general. The ChatML family (SmolLM2, Qwen and many more:
`<|im_start|>role\\ncontent<|im_end|>\\n` per turn) can, and `chatml_equivalent` proves it for a given template
by rendering probe conversations with the real Jinja template and with `render_chatml` (the Python twin of the
Go template written here) and comparing them. Other templates get a Modelfile without TEMPLATE, and the caller
is told: Ollama then falls back to the template stored in the GGUF, which it matches against its known ones.

A ChatML student whose template does not render tools itself learned tool calling in the `<tool_call>` convention
(`distill.tool_calls`): its TEMPLATE then writes Ollama's `.Tools` into the system turn, each of `.ToolCalls` as a
`<tool_call>` block and each `tool` turn as a user turn in `<tool_response>`, as training rendered them, and Ollama
reads the model's calls back from the blocks. `render_chatml_tools` is its Python twin, compared with what training
renders (`chatml_tools_equivalent`). One difference is Ollama's and cannot be templated: it writes the JSON of tools
and arguments compact (`{"a":1}`) where training wrote Python's spacing (`{"a": 1}`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from distill.errors import DistillError
from distill.owned import OwnedFolder
from distill.records import Message, ToolCall, ToolFunction
from distill.tool_calls import SYSTEM_TOOLS, chat_for_template, template_renders_tools

# Ollama gives every message, the SYSTEM prompt included, in .Messages (collate keeps system turns there).
CHATML_GO_TEMPLATE = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
    "{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n"
)
# The tool-calling twin: `{{ . }}` of a tool and `{{ .Function.Arguments }}` print JSON in Ollama.
_GO_TOOLS = SYSTEM_TOOLS.format(tools="{{ range $k, $t := $.Tools }}{{ if $k }}\n{{ end }}{{ $t }}{{ end }}")
CHATML_TOOLS_GO_TEMPLATE = (
    "{{- if and .Tools (not (and .Messages (eq (index .Messages 0).Role \"system\"))) }}<|im_start|>system\n"
    + _GO_TOOLS + "<|im_end|>\n{{ end }}"
    "{{- range $i, $m := .Messages }}"
    "{{- if eq .Role \"tool\" }}<|im_start|>user\n<tool_response>\n{{ .Content }}\n</tool_response><|im_end|>\n"
    "{{ else }}<|im_start|>{{ .Role }}\n{{ .Content }}"
    "{{- if .ToolCalls }}{{ if .Content }}\n{{ end }}{{ range $j, $c := .ToolCalls }}{{ if $j }}\n{{ end }}"
    "<tool_call>\n{\"name\": \"{{ .Function.Name }}\", \"arguments\": {{ .Function.Arguments }}}\n</tool_call>"
    "{{ end }}{{ end }}"
    "{{- if and $.Tools (eq $i 0) (eq .Role \"system\") }}\n\n" + _GO_TOOLS + "{{ end }}<|im_end|>\n"
    "{{ end }}{{ end }}<|im_start|>assistant\n"
)
PROBES = [
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"},
     {"role": "user", "content": "Q2\nwith a second line"}],
]


_PROBE_TOOL = {"type": "function", "function": {"name": "lookup", "description": "Look a word up.",
               "parameters": {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]}}}
_PROBE_CALLS = [ToolCall(id="c1", function=ToolFunction(name="lookup", arguments={"word": "tide"})),
                ToolCall(id="c2", function=ToolFunction(name="lookup", arguments={"word": "ebb"}))]
TOOL_PROBES: list[tuple[list[Message], list[dict] | None]] = [
    ([Message(role="system", content="S"), Message(role="user", content="Q"),
      Message(role="assistant", content="", tool_calls=_PROBE_CALLS),
      Message(role="tool", content='{"meaning": "sea"}', tool_call_id="c1", name="lookup"),
      Message(role="tool", content='{"meaning": "out"}', tool_call_id="c2", name="lookup"),
      Message(role="assistant", content="Both words.", tool_calls=None), Message(role="user", content="Again?")],
     [_PROBE_TOOL]),
    ([Message(role="user", content="Q"), Message(role="assistant", content="Let me look.",
                                                 tool_calls=_PROBE_CALLS[:1])],
     [_PROBE_TOOL]),
]


class Modelfile(BaseModel):
    path: Path
    template: str | None  # the Go template written, None when the chat template has no known translation
    stop: list[str]


def render_chatml(messages: list[dict]) -> str:
    """What CHATML_GO_TEMPLATE renders for these messages (generation prompt included)."""
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return turns + "<|im_start|>assistant\n"


def python_json(value) -> str:
    """JSON as training writes it into the text (`distill.tool_calls`)."""
    return json.dumps(value, ensure_ascii=False)


def render_chatml_tools(messages: list[Message], tools: list[dict] | None,
                        dumps: Callable[[object], str] = python_json) -> str:
    """What CHATML_TOOLS_GO_TEMPLATE renders (generation prompt included), its JSON written by `dumps`
    (Python's spacing by default, as training writes it)."""
    system = SYSTEM_TOOLS.format(tools="\n".join(dumps(tool) for tool in tools or []))
    text = f"<|im_start|>system\n{system}<|im_end|>\n" if tools and messages[0].role != "system" else ""
    for i, m in enumerate(messages):
        if m.role == "tool":
            text += f"<|im_start|>user\n<tool_response>\n{m.content}\n</tool_response><|im_end|>\n"
            continue
        calls = [f'<tool_call>\n{{"name": "{c.function.name}", "arguments": {dumps(c.function.arguments)}}}'
                 "\n</tool_call>" for c in m.tool_calls or []]
        body = m.content + ("\n" if m.content and calls else "") + "\n".join(calls)
        tail = f"\n\n{system}" if tools and i == 0 and m.role == "system" else ""
        text += f"<|im_start|>{m.role}\n{body}{tail}<|im_end|>\n"
    return text + "<|im_start|>assistant\n"


def chatml_tools_equivalent(tokenizer) -> bool:
    """Whether training renders every tool probe (`chat_for_template`, the student's template) exactly as the
    tool-calling Go template would: the student learned the `<tool_call>` convention in ChatML."""
    if template_renders_tools(tokenizer.chat_template) or not chatml_equivalent(tokenizer):
        return False
    for messages, tools in TOOL_PROBES:
        chat, native = chat_for_template(messages, tools, renders_tools=False)
        rendered = tokenizer.apply_chat_template(chat, tools=native, tokenize=False, add_generation_prompt=True)
        if rendered != render_chatml_tools(messages, tools):
            return False
    return True


def chatml_equivalent(tokenizer) -> bool:
    """Whether the tokenizer's chat template renders every probe exactly as the ChatML Go template would."""
    try:
        return all(tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) == render_chatml(p)
                   for p in PROBES)
    except Exception:  # a template that refuses the probes (e.g. no system role) is not ChatML
        return False


def write_modelfile(folder: Path, gguf_name: str, tokenizer, stop: list[str], system_prompt: str | None) -> Modelfile:
    """FOLDER/Modelfile pointing at FOLDER/GGUF_NAME; `ollama create NAME -f FOLDER/Modelfile` builds it."""
    template = (CHATML_TOOLS_GO_TEMPLATE if chatml_tools_equivalent(tokenizer)
                else CHATML_GO_TEMPLATE if chatml_equivalent(tokenizer) else None)
    lines = ["# Written by `distill export-model`. Build and run it with:",
             "#   ollama create NAME -f Modelfile && ollama run NAME", f"FROM ./{gguf_name}"]
    if template:
        lines.append(f'TEMPLATE """{_triple_quoted(template)}"""')
    else:
        lines.append("# No TEMPLATE: this chat template has no known Go translation; Ollama uses the GGUF's own.")
    if system_prompt:
        lines.append(f'SYSTEM """{_triple_quoted(system_prompt)}"""')
    lines += [f'PARAMETER stop "{_quoted(token)}"' for token in stop]
    path = OwnedFolder.in_place(folder, "model-export", option="--out").write_text("Modelfile", "\n".join(lines) + "\n")
    return Modelfile(path=path, template=template, stop=stop)


def _triple_quoted(text: str) -> str:
    if '"""' in text:
        raise DistillError('the system prompt or template contains """, which an Ollama Modelfile cannot quote')
    return text


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
