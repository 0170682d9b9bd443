"""HTTP API teachers: what every provider shares (`base.py`, `limits.py`, `cost.py`), and a folder per provider
with its teacher and its batch adapter."""
