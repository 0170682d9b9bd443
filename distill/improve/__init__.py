"""`distill improve`: rounds of generate -> curate -> train -> eval, each steered by the last round's eval and
review (more data where the student is weak, preference pairs from its own mistakes)."""
