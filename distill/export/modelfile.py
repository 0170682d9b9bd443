"""An Ollama `Modelfile` for an exported GGUF: the chat template in Ollama's Go-template syntax, the stop token,
and the system prompt the student was trained with.

A Jinja chat template cannot be translated to Go in general. The ChatML family (SmolLM2, Qwen and many more:
`<|im_start|>role\\ncontent<|im_end|>\\n` per turn) can, and `chatml_equivalent` proves it for a given template
by rendering probe conversations with the real Jinja template and with `render_chatml` (the Python twin of the
Go template written here) and comparing them. Other templates get a Modelfile without TEMPLATE, and the caller
is told: Ollama then falls back to the template stored in the GGUF, which it matches against its known ones.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from distill.errors import DistillError
from distill.owned import OwnedFolder

# Ollama gives every message, the SYSTEM prompt included, in .Messages (collate keeps system turns there).
CHATML_GO_TEMPLATE = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
    "{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n"
)
PROBES = [
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"},
     {"role": "user", "content": "Q2\nwith a second line"}],
]


class Modelfile(BaseModel):
    path: Path
    template: str | None  # the Go template written, None when the chat template has no known translation
    stop: list[str]


def render_chatml(messages: list[dict]) -> str:
    """What CHATML_GO_TEMPLATE renders for these messages (generation prompt included)."""
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return turns + "<|im_start|>assistant\n"


def chatml_equivalent(tokenizer) -> bool:
    """Whether the tokenizer's chat template renders every probe exactly as the ChatML Go template would."""
    try:
        return all(tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) == render_chatml(p)
                   for p in PROBES)
    except Exception:  # a template that refuses the probes (e.g. no system role) is not ChatML
        return False


def write_modelfile(folder: Path, gguf_name: str, tokenizer, stop: list[str], system_prompt: str | None) -> Modelfile:
    """FOLDER/Modelfile pointing at FOLDER/GGUF_NAME; `ollama create NAME -f FOLDER/Modelfile` builds it."""
    template = CHATML_GO_TEMPLATE if chatml_equivalent(tokenizer) else None
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
