"""Starting or joining a Ray cluster, once per process.

With `RAY_ADDRESS` set (a head node's `HOST:6379`, or what `ray job submit` sets for its driver) the
run joins that cluster; without it, `ray.init` starts a one-machine cluster for the run and stops it
at exit. Measured on a 2-core machine: `import ray` 1.1 s, a local start 8.7 s.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from distill.errors import DistillError

INSTALL_HINT = "pip install 'distill[ray]' (or bash scripts/setup.sh --tests)"


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401  (the extra is ray[data]: pyarrow, pandas)
    except ModuleNotFoundError as exc:
        raise DistillError(f"--executor ray needs the package {exc.name!r}; {INSTALL_HINT}",
                           page="docs/getting-started.md#extras") from None
    return ray


def ensure_ray(address: str | None = None, num_cpus: int | None = None):
    """The `ray` module, connected: to `address` or `RAY_ADDRESS` when given, else to a new local cluster.

    A process that is already connected (a test session, a notebook, a job's driver) stays as it is."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False} if address is None else {}
    if address is None and num_cpus:
        kwargs["num_cpus"] = num_cpus
    try:
        ray.init(address=address, configure_logging=False, **kwargs)
    except ConnectionError as exc:
        raise DistillError(f"cannot join the Ray cluster at {address}: {exc}; start it with `ray start --head` "
                           "or unset RAY_ADDRESS to run on this machine alone") from None
    _quiet_progress(ray)
    return ray


def _quiet_progress(ray) -> None:
    # Ray Data's progress bars go to stderr; without a terminal they are a line a second in logs. Its
    # INFO lines (an execution plan per dataset) would bury the command's own output.
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "Progress bars disabled"
    context = ray.data.DataContext.get_current()
    if not sys.stderr.isatty():
        context.enable_progress_bars = False
