"""Shared test set-up: nothing is fetched from the network, and model tests share one loaded teacher."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_runtest_setup(item):
    """`needs_data` tests read ../shared/data/heldout: skipped where it is absent, failed where the
    environment says it must be there (DISTILL_REQUIRE_DATA=1, set by .ci/run)."""
    if item.get_closest_marker("needs_data") is None:
        return
    import pytest
    from test_curate_helpers import PUBMEDQA

    if PUBMEDQA.exists():
        return
    if os.environ.get("DISTILL_REQUIRE_DATA") == "1":
        pytest.fail(f"DISTILL_REQUIRE_DATA=1 and the held-out data is missing ({PUBMEDQA.parent}): "
                    "this test reads it; put the data there", pytrace=False)
    pytest.skip(f"{PUBMEDQA.parent} is not available (DISTILL_REQUIRE_DATA=1 turns this skip into a failure)")
