"""The human review: a sampled queue, decisions in run.db, a web page and a terminal mode, feedback into
the data and a statistical gate that training respects.

    queue.py      which items to read (stratified by leaf, a risk slice first; risk.py, neighbours.py)
    ledger.py     the review's tables in run.db (append-only); state.py resolves them per item
    population.py a folder's review as loaded: its state and the items it judges
    feedback.py   verdicts applied to the data, the figures for stats.json
    calibration.py each automated check against the reviewers (precision, recall, a threshold)
    gate.py       may this data train? (intervals.py, agreement.py)
    server.py     the web page (static/), tui.py the terminal, commands.py the CLI
    interchange.py Argilla / datasets exports

A rejected leaf is asked again by generate/regenerate.py: it runs generation, which comes after the review.
"""
