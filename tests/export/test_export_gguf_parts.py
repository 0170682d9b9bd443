"""The GGUF writer's parts and the Ollama Modelfile, without writing a model: fast."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from distill.errors import DistillError
from distill.export.gguf_writer import interleave_rope, pre_tokenizer_name, token_table, write_gguf
from distill.export.modelfile import (
    CHATML_GO_TEMPLATE,
    CHATML_TOOLS_GO_TEMPLATE,
    PROBES,
    TOOL_PROBES,
    chatml_equivalent,
    chatml_tools_equivalent,
    render_chatml,
    render_chatml_tools,
    write_modelfile,
)
from distill.export.verify import compare_logits
from distill.tool_calls import chat_for_template

BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}


@pytest.mark.slow
def test_rope_rows_are_reordered_exactly_as_transformers_gguf_loader_undoes_them():
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    heads, head_dim, hidden = 3, 8, 5
    weight = np.arange(heads * head_dim * hidden, dtype=np.float32).reshape(heads * head_dim, hidden)
    interleaved = interleave_rope(weight, heads)
    assert not np.array_equal(interleaved, weight)
    # Within a head, row i (first half) and row i + d/2 (second half) become neighbours 2i and 2i + 1.
    assert np.array_equal(interleaved[0], weight[0]) and np.array_equal(interleaved[1], weight[head_dim // 2])
    back = LlamaTensorProcessor()._reverse_permute_weights(interleaved, heads, heads)
    assert np.array_equal(back, weight)


@pytest.mark.parametrize("pre_tokenizer, name", [
    (BYTE_LEVEL, "gpt-2"),
    ({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, BYTE_LEVEL]}, "smollm"),
])
def test_pre_tokenizer_names_are_llama_cpp_s(pre_tokenizer, name):
    assert pre_tokenizer_name(pre_tokenizer) == name


def test_an_unknown_pre_tokenizer_is_refused():
    with pytest.raises(DistillError, match="convert_hf_to_gguf"):
        pre_tokenizer_name({"type": "Metaspace", "replacement": "_"})


def test_token_table_marks_special_tokens_control_and_pads_missing_ids():
    spec = {"model": {"vocab": {"<s>": 0, "a": 1, "b": 2}},
            "added_tokens": [{"id": 0, "content": "<s>", "special": True}, {"id": 3, "content": "<think>",
                                                                             "special": False}]}
    tokens, types = token_table(spec, vocab_size=6)
    assert tokens == ["<s>", "a", "b", "<think>", "[PAD4]", "[PAD5]"]
    assert types == [3, 1, 1, 4, 5, 5]  # CONTROL, NORMAL, NORMAL, USER_DEFINED, UNUSED, UNUSED


def test_other_architectures_get_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["Qwen2ForCausalLM"]}))
    with pytest.raises(DistillError, match="architecture Qwen2ForCausalLM is not supported.*convert_hf_to_gguf"):
        write_gguf(tmp_path, tmp_path / "x.gguf", "f16")
    with pytest.raises(DistillError, match="no config.json"):
        write_gguf(tmp_path / "missing", tmp_path / "x.gguf", "f16")
    with pytest.raises(DistillError, match="must be one of f16, q8_0"):
        write_gguf(tmp_path, tmp_path / "x.gguf", "q4_0")
    assert not list(tmp_path.glob("*.gguf*"))


def test_compare_logits_measures_what_it_says():
    import torch

    reference = [torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])]
    assert compare_logits(reference, reference) == (0.0, 0.0, 1.0, 2)
    shifted = [torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 1.5]])]
    max_diff, kl, top1, positions = compare_logits(reference, shifted)
    assert max_diff == 1.5 and top1 == 0.5 and positions == 2 and kl > 0.1


# --- the Modelfile ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokenizer():
    from distill.models import load_tokenizer

    return load_tokenizer("local")


@pytest.mark.slow
def test_smollm2_template_is_chatml_and_gets_the_go_template(tokenizer, tmp_path):
    # SmolLM2's ChatML renders no tools itself: it learns the <tool_call> convention, and its Modelfile says so.
    assert chatml_equivalent(tokenizer) and chatml_tools_equivalent(tokenizer)
    written = write_modelfile(tmp_path, "toy-q8_0.gguf", tokenizer, ["<|im_end|>"], "You are a careful expert.")
    text = written.path.read_text()
    assert "FROM ./toy-q8_0.gguf\n" in text and f'TEMPLATE """{CHATML_TOOLS_GO_TEMPLATE}"""' in text
    assert "{{ range $k, $t := $.Tools }}" in text and "{{ .Function.Arguments }}" in text and "<tool_response>" in text
    assert 'SYSTEM """You are a careful expert."""' in text and 'PARAMETER stop "<|im_end|>"' in text


def test_a_template_that_renders_tools_itself_gets_the_plain_chatml_template(tokenizer, tmp_path):
    native = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    native.chat_template = tokenizer.chat_template + "{# reads tools and tool_calls #}"  # as Qwen's would
    assert chatml_equivalent(native) and not chatml_tools_equivalent(native)
    text = write_modelfile(tmp_path, "x.gguf", native, ["<|im_end|>"], None).path.read_text()
    assert f'TEMPLATE """{CHATML_GO_TEMPLATE}"""' in text


def test_a_template_with_no_go_translation_gets_no_template_line(tokenizer, tmp_path):
    other = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    other.chat_template = ("{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}")
    assert not chatml_equivalent(other)
    text = write_modelfile(tmp_path, "x.gguf", other, ["</s>"], None).path.read_text()
    assert "TEMPLATE" not in text.replace("# No TEMPLATE", "") and "SYSTEM" not in text


GO_RENDERER = """package main

import (
	"encoding/json"
	"os"
	"text/template"
)

type Message struct{ Role, Content string }

func main() {
	var in struct {
		Template string
		Messages []Message
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		panic(err)
	}
	t := template.Must(template.New("m").Parse(in.Template))
	if err := t.Execute(os.Stdout, map[string]any{"Messages": in.Messages}); err != nil {
		panic(err)
	}
}
"""


def test_go_template_renders_as_the_jinja_template(tokenizer, tmp_path):
    """Go's own text/template (what Ollama runs) renders the Modelfile template as the model's Jinja template.

    Go comes from `scripts/setup.sh --tests` (golang-go); without it this fails rather than skips."""
    source = tmp_path / "render.go"
    source.write_text(GO_RENDERER)
    env = {"HOME": str(tmp_path), "GOCACHE": str(tmp_path / "cache"), "GOPATH": str(tmp_path / "go"),
           "PATH": "/usr/bin:/bin:/usr/local/go/bin", "GO111MODULE": "off"}
    binary = tmp_path / "render"
    subprocess.run(["go", "build", "-o", str(binary), str(source)], check=True, env=env, timeout=300)
    conversations = PROBES + [[{"role": "system", "content": "Answer in JSON: {\"label\": ...}"},
                               {"role": "user", "content": "I love it <3 & more"}]]
    for messages in conversations:
        payload = json.dumps({"Template": CHATML_GO_TEMPLATE,
                              "Messages": [{"Role": m["role"], "Content": m["content"]} for m in messages]})
        go = subprocess.run([str(binary)], input=payload, capture_output=True, text=True, check=True, timeout=60)
        expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert go.stdout == expected == render_chatml(messages)


# Ollama's api types as its templates see them: a tool and a call's arguments print as (compact) JSON.
OLLAMA_RENDERER = """package main

import (
	"encoding/json"
	"os"
	"text/template"
)

type Function struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Parameters  json.RawMessage `json:"parameters"`
}
type Tool struct {
	Type     string   `json:"type"`
	Function Function `json:"function"`
}

func (t Tool) String() string { b, _ := json.Marshal(t); return string(b) }

type Arguments map[string]any

func (a Arguments) String() string { b, _ := json.Marshal(a); return string(b) }

type CallFunction struct {
	Name      string    `json:"name"`
	Arguments Arguments `json:"arguments"`
}
type ToolCall struct {
	Function CallFunction `json:"function"`
}
type Message struct {
	Role      string     `json:"role"`
	Content   string     `json:"content"`
	ToolCalls []ToolCall `json:"tool_calls"`
}

func main() {
	var in struct {
		Template string    `json:"template"`
		Messages []Message `json:"messages"`
		Tools    []Tool    `json:"tools"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		panic(err)
	}
	t := template.Must(template.New("m").Parse(in.Template))
	data := map[string]any{"Messages": in.Messages}
	if len(in.Tools) > 0 {
		data["Tools"] = in.Tools
	}
	if err := t.Execute(os.Stdout, data); err != nil {
		panic(err)
	}
}
"""


def compact(value) -> str:
    """JSON as Go's encoding/json writes it: no spaces, map keys sorted (a tool's struct fields keep their order)."""
    if isinstance(value, dict) and "function" not in value:
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return json.dumps(value, separators=(",", ":"))


def test_go_tool_template_renders_as_training_does(tokenizer, tmp_path):
    """Go's text/template over Ollama-shaped data renders the tool template as training rendered the conversation
    (up to Ollama's compact JSON), and plain conversations exactly as the Jinja template."""
    source = tmp_path / "render.go"
    source.write_text(OLLAMA_RENDERER)
    env = {"HOME": str(tmp_path), "GOCACHE": str(tmp_path / "cache"), "GOPATH": str(tmp_path / "go"),
           "PATH": "/usr/bin:/bin:/usr/local/go/bin", "GO111MODULE": "off"}
    binary = tmp_path / "render"
    subprocess.run(["go", "build", "-o", str(binary), str(source)], check=True, env=env, timeout=300)

    def go(messages: list[dict], tools) -> str:
        payload = json.dumps({"template": CHATML_TOOLS_GO_TEMPLATE, "messages": messages, "tools": tools or []})
        return subprocess.run([str(binary)], input=payload, capture_output=True, text=True, check=True,
                              timeout=60).stdout

    for plain in PROBES:
        assert go(plain, None) == tokenizer.apply_chat_template(plain, tokenize=False, add_generation_prompt=True)
    for messages, tools in TOOL_PROBES:
        rows = [m.model_dump() for m in messages]
        assert go(rows, tools) == render_chatml_tools(messages, tools, dumps=compact)
        chat, _ = chat_for_template(messages, tools, renders_tools=False)
        trained = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        assert trained == render_chatml_tools(messages, tools)
