"""An example distill plugin: a teacher, a task and a check, each an entry point (see pyproject.toml)."""
