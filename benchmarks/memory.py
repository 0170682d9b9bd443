"""Peak memory and CPU seconds of a benchmark's process tree, sampled cheaply so the sampling does not disturb
what it measures.

Each sample reads /proc/PID/statm (resident pages: one short line) and /proc/PID/stat (CPU times) of this process
and its descendants, about once a second. The old sampler read smaps (PSS) of every process every 0.5 s: on a
Ray tree that cost more CPU than some of the work measured (issue 24). RSS counts a page shared by two processes
of the tree twice, so the peak is an upper bound; where that matters (forked workers), say so beside the figure.
`python benchmarks/memory.py` prints what one sample costs with each method on this machine.
"""

from __future__ import annotations

import os
import threading
import time

import psutil

PAGE = os.sysconf("SC_PAGE_SIZE")


def tree(root: psutil.Process) -> list[psutil.Process]:
    return [root, *root.children(recursive=True)]


def rss_bytes(pid: int) -> int:
    """Resident bytes of one process from /proc/PID/statm (its second field, in pages)."""
    with open(f"/proc/{pid}/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * PAGE


class PeakMemory:
    """Peak of the summed RSS of this process and its descendants, and their CPU seconds (user + system, each
    process's last sample). CPU seconds per record measure the work when other jobs share the machine; wall
    time does not."""

    def __init__(self, interval: float = 1.0) -> None:
        self.root, self.peak, self.interval = psutil.Process(), 0, interval
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    @property
    def cpu_s(self) -> float:
        return sum(self.cpu.values())

    def sample(self) -> None:
        total = 0
        for proc in tree(self.root):
            try:
                total += rss_bytes(proc.pid)
                times = proc.cpu_times()
                self.cpu[proc.pid] = times.user + times.system
            except (psutil.NoSuchProcess, psutil.AccessDenied, FileNotFoundError, ProcessLookupError):
                pass  # it ended between the listing and the read
        self.peak = max(self.peak, total)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.thread.join()
        self.sample()  # the last moment counts too


def _smaps_sample(root: psutil.Process) -> int:
    """The old method, for the comparison below: PSS from smaps of every process."""
    return sum(proc.memory_full_info().pss for proc in tree(root))


def main() -> None:
    import statistics
    import subprocess
    import sys

    # A tree like a measured one: a few Python children holding some memory.
    children = [subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(200 << 20); time.sleep(60)"])
                for _ in range(4)]
    time.sleep(2)
    memory = PeakMemory()
    try:
        for name, fn in (("statm + stat (now)", memory.sample), ("smaps PSS (before)",
                                                                  lambda: _smaps_sample(memory.root))):
            costs = []
            for _ in range(30):
                start = time.process_time()
                fn()
                costs.append(time.process_time() - start)
            print(f"{name}: {statistics.median(costs) * 1000:.2f} ms of CPU a sample over {len(tree(memory.root))} "
                  f"processes (median of 30)")
    finally:
        for child in children:
            child.kill()


if __name__ == "__main__":
    main()
