"""Generation: plan the taxonomy, ask the teacher, store every answer, export the run (runner.py)."""
