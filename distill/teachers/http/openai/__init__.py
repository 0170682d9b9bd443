"""`openai:` teachers: OpenAI and OpenAI-compatible servers, online (`teacher.py`) and as batch jobs (`batch.py`)."""
