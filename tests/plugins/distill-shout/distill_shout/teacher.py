"""`echo:<style>`: an in-process teacher that needs no model. It writes a sentence from the prompt's own
words, and shouts back whatever it is asked to say louder."""

from __future__ import annotations

import hashlib

from distill.records import Usage
from distill.teachers.base import GenerationRequest, GenerationResult, Teacher

LOUDER = "Say it louder: "


class EchoTeacher(Teacher):
    batch_size = 8

    def __init__(self, spec: str, model: str, options) -> None:
        self.spec, self.style = spec, model or "plain"

    async def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        return [self.answer(request) for request in requests]

    def answer(self, request: GenerationRequest) -> GenerationResult:
        prompt = request.messages[-1].content
        if prompt.startswith(LOUDER):
            text = prompt[len(LOUDER):].upper().rstrip(".") + "!"
        else:
            digest = hashlib.sha256(f"{prompt}{request.sampling.seed}".encode()).digest()
            topic = prompt.split("about ", 1)[-1].split(":", 1)[0]
            # One sentence in four carries a number, which the plugin's no_digits check turns away.
            count = f" {digest[0] % 9 + 1} times" if digest[1] % 4 == 0 else ""
            text = f"I keep thinking about {topic.lower()}{count}, {self.style} as ever ({digest.hex()[:6]})."
        return GenerationResult(key=request.key, text=text, finish_reason="stop",
                                usage=Usage(prompt_tokens=len(prompt.split()), completion_tokens=len(text.split()),
                                            cost_usd=0.0))
