"""Teachers: the models that write the data, one protocol and many backends.

- `base.py` the protocol, `registry.py` specs -> backends (entry points, distill's own in `builtin.py`),
  `stack.py` the one place the wrappers are put around a backend's teacher;
- `wrappers/`: what goes around any teacher: the response cache, provider batch jobs, a sender process;
- `http/`: HTTP API teachers: their shared base, limits and prices, and one folder per provider
  (`openai/`, `anthropic/`) with its teacher and its batch adapter;
- `local/`: in-process models: transformers on our decode engine (with its prefix cache and choice
  constraints), and vLLM.
"""
