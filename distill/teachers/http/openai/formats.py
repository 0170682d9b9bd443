"""OpenAI structured output: the modes a request can ask in, best first, and a server's refusal of one.

Shared by the online teacher and its batch adapter: a refusal met in either steps the teacher's mode
forward for every later request.
"""

from __future__ import annotations

# Structured output, best first; a server that rejects one gets the next (llama.cpp lacks json_schema).
JSON_MODES = ("json_schema", "json_object", "prompt")


def about_format(message: str) -> bool:
    """Whether an HTTP 400/422 message is the server refusing the structured-output format."""
    lowered = message.lower()
    return any(word in lowered for word in ("response_format", "json_schema", "json_object", "grammar"))
