"""Fixtures the review tests share."""

import pytest

from review_helpers import SERVER_IDS, make_dataset, queue_ids


@pytest.fixture
def run_dir(tmp_path):
    """A curated run of two leaves, six items each, all twelve queued for review (SERVER_IDS)."""
    directory = make_dataset(tmp_path / "run", per_leaf=6)
    queue_ids(directory, SERVER_IDS)
    return directory
