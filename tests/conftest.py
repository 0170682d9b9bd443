"""Shared test set-up: nothing is fetched from the network, and model tests share one loaded teacher."""

import os
import signal

import pytest

# A shell without job control starts a background job with SIGINT ignored, and an ignored signal survives exec:
# the Ctrl-C tests (in this process and in the `distill` processes they start) would see no interrupt at all.
# A handler of our own is reset at exec, so this one line gives every child the default Ctrl-C too.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster (2 CPUs) for the whole session: starting one takes ~9 s (30 s under load).

    Skipped, with the reason, where Ray is not installed (`bash scripts/setup.sh --tests` installs it)."""
    pytest.importorskip("ray.data", reason="Ray is not installed: bash scripts/setup.sh --tests adds ray[data]")
    from distill.executors.ray_cluster import ensure_ray

    ray = ensure_ray(num_cpus=2)
    yield ray
    ray.shutdown()
