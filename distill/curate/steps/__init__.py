"""Curation's steps, one module per kind: the checks, the text they compare, dedup, decontamination, the judged
checks. `base.py` says what a step is; `curate/pipeline.py` puts them in their one order."""
