"""Shared test set-up: nothing is fetched from the network, slow tests are marked `slow`, and the fixtures
tests in several folders use (a Ray cluster, a trained adapter). Fixtures used in one folder are in its conftest."""

import os
import signal

import pytest

from train_helpers import fast_config, make_run

# A shell without job control starts a background job with SIGINT ignored, and an ignored signal survives exec:
# the Ctrl-C tests (in this process and in the `distill` processes they start) would see no interrupt at all.
# A handler of our own is reset at exec, so this one line gives every child the default Ctrl-C too.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# These load the model, train or start Ray: seconds to minutes each. `pytest -m "not slow"` is the fast lane.
SLOW_MARKERS = ("model", "train", "ray", "vllm")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items):
    for item in items:
        if any(item.get_closest_marker(name) for name in SLOW_MARKERS):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster (2 CPUs) for the whole session: starting one takes ~9 s (30 s under load).

    Skipped, with the reason, where Ray is not installed (`bash scripts/setup.sh --tests` installs it)."""
    pytest.importorskip("ray.data", reason="Ray is not installed: bash scripts/setup.sh --tests adds ray[data]")
    from distill.executors.ray_cluster import ensure_ray

    ray = ensure_ray(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(run_dir, TrainResult) of one real LoRA run, shared by the save/reload/merge/eval tests of a module.

    One per module, not per session: a merge records itself in the adapter's manifest, so a module that merges
    would change what the next one reads."""
    from distill.train.sft import train

    run_dir = make_run(tmp_path_factory.mktemp("run"), stats={"taxonomy": "toy", "teacher": "local",
                                                              "review": {"queued": 32, "reviewed": 32, "accepted": 30,
                                                                         "rejected": 2, "top_reasons": {"wrong": 2}}})
    result = train(run_dir, fast_config(), progress=False)
    return run_dir, result
