"""In-process teachers: `local` and `hf:` on transformers with our decode engine (`transformers.py`,
`decode_engine.py`, `prefix_cache.py`, `choices.py`), and `vllm:` on vLLM's offline engine (`vllm.py`); both
show tools and read calls and reasoning through `turns.py`."""
