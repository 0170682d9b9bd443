"""The measured tool-calling recipe (issue 21): `bench_recipe.py` on a support-agent config, with the loopback
support agent of the tests as the teacher (an OpenAI-compatible server over the shipped order-system fixture that
calls the right tool with the right arguments, and a simulated customer; deterministic, no API key).

    HF_HUB_OFFLINE=1 nice -n 5 python benchmarks/bench_tool_recipe.py configs/support-agent-cpu.yaml

It sets OPENAI_BASE_URL to the loopback server for the run, so the config's `openai:` teacher talks to it; every
other option is bench_recipe.py's (--per-leaf, --limit, --out). Prints base vs student on the held-out
conversations' tool-call turns (valid call, right tool, arguments equal) with 95% intervals, and each stage's time.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "benchmarks")]

import bench_recipe  # noqa: E402

from fakeapi import FakeAPI, Faults  # noqa: E402
from fakeapi.support import support_agent, support_user  # noqa: E402


def main() -> None:
    with FakeAPI(Faults(agent=support_agent, user=support_user)) as api:
        os.environ["OPENAI_BASE_URL"] = api.url + "/v1"
        os.environ.setdefault("OPENAI_API_KEY", "sk-loopback")
        bench_recipe.main()
        print(f"teacher requests answered by the loopback support agent: {api.total_paid()}")


if __name__ == "__main__":
    main()
