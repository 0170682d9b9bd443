"""`anthropic:` teachers: Claude, online (`teacher.py`) and as Message Batches (`batch.py`)."""
