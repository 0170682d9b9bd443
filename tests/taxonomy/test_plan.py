"""The plan: quotas, per-axis balance, determinism, ids that only their own node moves, and bounded work."""

import json
import math
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from cli_helpers import ROOT as REPO
from distill.errors import DistillError
from distill.taxonomy import build_plan, leaf_quotas, limit_plan, load_taxonomy
from distill.taxonomy.plan import MAX_PLAN_ITEMS, items_in_prefix


@pytest.fixture(scope="module")
def medical():
    return load_taxonomy(REPO / "taxonomies" / "medical.yaml")


@pytest.fixture
def medical_copy(tmp_path) -> Path:
    """A writable medical taxonomy (its seeds are found through ../seeds, so copy them too)."""
    shutil.copytree(REPO / "taxonomies", tmp_path / "taxonomies")
    shutil.copytree(REPO / "seeds", tmp_path / "seeds")
    return tmp_path / "taxonomies" / "medical.yaml"


def test_every_leaf_gets_its_quota(medical):
    plan = build_plan(medical)
    per_leaf = Counter(item.node_path for item in plan)
    assert per_leaf == leaf_quotas(medical)
    assert set(per_leaf) == {leaf.path for leaf in medical.leaves}
    assert len({item.id for item in plan}) == len(plan)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_axes_are_balanced_by_weight_within_each_leaf_and_overall(medical, seed):
    plan = build_plan(medical, seed=seed)
    quotas = leaf_quotas(medical)
    for name, axis in medical.taxonomy.crossed_axes().items():
        total_weight = sum(axis.values.values())
        for leaf, quota in quotas.items():
            counts = Counter(i.axes[name] for i in plan if i.node_path == leaf)
            for value, weight in axis.values.items():
                assert abs(counts[value] - quota * weight / total_weight) < 1, (leaf, name, value)  # within one
        # Each leaf rounds on its own (independently of the others), so the plan's error is a sum of
        # independent roundings in (-1, 1) with a spread of at most sqrt(leaves) / 2.
        overall = Counter(i.axes[name] for i in plan)
        for value, weight in axis.values.items():
            expected = len(plan) * weight / total_weight
            assert abs(overall[value] - expected) <= 2 * math.sqrt(len(quotas)), (name, value, overall[value], expected)


def test_rounding_is_unbiased_where_quotas_are_smaller_than_the_values(medical_copy):
    # One item a leaf and weights 1:2:1: rounding each leaf the same way would give every leaf the
    # same value; drawn per leaf, the plan still follows the weights.
    medical_copy.write_text(medical_copy.read_text().replace("per_leaf: 3", "per_leaf: 1"))
    plan = build_plan(load_taxonomy(medical_copy))
    difficulty = Counter(i.axes["difficulty"] for i in plan)
    assert len(plan) == 58 + 3 * 4 and set(difficulty) == {"easy", "medium", "hard"}  # three leaves set quota: 4
    assert difficulty["medium"] > max(difficulty["easy"], difficulty["hard"])


def test_plan_is_deterministic_for_a_seed(medical):
    assert build_plan(medical, seed=7) == build_plan(medical, seed=7)
    assert build_plan(medical, seed=7) != build_plan(medical, seed=8)


PLAN_IN_A_PROCESS = """
import json, sys
from distill.taxonomy import build_plan, load_taxonomy
plan = build_plan(load_taxonomy(sys.argv[1]), seed=7)
print(json.dumps([item.model_dump(mode="json") for item in plan]))
"""


def test_plan_is_the_same_in_another_process(medical):
    """A resumed run is a new process, where Python salts str hashes anew: its plan must still be the same
    items with the same ids and axes, or it would ask the teacher again for work it has."""
    plans = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO)}
        done = subprocess.run([sys.executable, "-c", PLAN_IN_A_PROCESS, str(REPO / "taxonomies" / "medical.yaml")],
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        plans.append(json.loads(done.stdout))
    here = [item.model_dump(mode="json") for item in build_plan(medical, seed=7)]
    assert plans[0] == plans[1] == here


def _by_leaf(plan) -> dict[str, list[tuple]]:
    leaves: dict[str, list[tuple]] = {}
    for item in plan:
        leaves.setdefault(item.node_path, []).append((item.index, item.id, tuple(sorted(item.axes.items()))))
    return {leaf: sorted(items) for leaf, items in leaves.items()}


def test_editing_one_node_keeps_every_other_nodes_ids_and_axes(medical_copy):
    before = _by_leaf(build_plan(load_taxonomy(medical_copy)))
    text = medical_copy.read_text()
    # One leaf gets its own quota (the case), another a new description, and a new leaf appears.
    edited = text.replace("\n      arrhythmias:\n", "\n      arrhythmias:\n        quota: 4\n", 1)
    edited = edited.replace("Heart failure with reduced", "Heart failure (edited) with reduced", 1)
    assert edited.count("quota: 4") == text.count("quota: 4") + 1 and "(edited)" in edited
    medical_copy.write_text(edited)
    after = _by_leaf(build_plan(load_taxonomy(medical_copy)))
    assert len(after["cardiology/arrhythmias"]) == 4 and after["cardiology/arrhythmias"] != before["cardiology/arrhythmias"]
    unchanged = [leaf for leaf in before if leaf != "cardiology/arrhythmias"]
    assert len(unchanged) == 60
    for leaf in unchanged:  # every other leaf: the same ids and the same axes, item by item
        assert after[leaf] == before[leaf], leaf


def test_limit_spreads_over_the_taxonomy(medical):
    plan = build_plan(medical)
    first = limit_plan(plan, len(medical.leaves))
    assert Counter(i.node_path for i in first) == Counter({leaf.path: 1 for leaf in medical.leaves})
    assert limit_plan(plan, 5) == plan[:5]
    for limit in (1, 5, 61, 62, 100, 185, 186, 500):  # planning only the prefix makes the same prefix
        assert build_plan(medical, limit=limit) == plan[:limit]


@pytest.mark.parametrize("quotas, limit, expected", [
    ([3, 1, 2], None, [3, 1, 2]),
    ([3, 1, 2], 4, [2, 1, 1]),
    ([3, 1, 2], 5, [2, 1, 2]),
    ([3, 0, 2], 3, [2, 0, 1]),
    ([50_000_000] * 3, 2, [1, 1, 0]),
    ([5, 5], 100, [5, 5]),
])
def test_items_in_prefix_counts_what_the_interleaved_prefix_holds(quotas, limit, expected):
    assert items_in_prefix(quotas, limit) == expected


# A guard against a hang, not a speed test: counting 2.9 billion items one by one would take hours; the
# bounded work takes well under a second, so the limit can be generous enough for a loaded machine.
@pytest.mark.timeout(300)
def test_a_huge_quota_is_bounded_by_the_limit_and_refused_without_one(medical_copy):
    medical_copy.write_text(medical_copy.read_text().replace("per_leaf: 3", "per_leaf: 50000000"))  # x 58 leaves
    loaded = load_taxonomy(medical_copy)
    plan = build_plan(loaded, limit=2)
    assert len(plan) == 2 and len({i.node_path for i in plan}) == 2
    with pytest.raises(DistillError, match=f"2,900,000,012 items, more than one run plans at once \\({MAX_PLAN_ITEMS:,}\\)"):
        build_plan(loaded)


@pytest.mark.timeout(300)  # as above: a thousand billion one by one would take days
def test_a_huge_total_is_spread_without_counting_one_by_one(medical_copy):
    medical_copy.write_text(medical_copy.read_text().replace("per_leaf: 3", "total: 1000000000000"))
    quotas = leaf_quotas(load_taxonomy(medical_copy))
    free = [q for q in quotas.values() if q != 4]  # three leaves set quota: 4
    assert sum(quotas.values()) == 10**12 and len(free) == 58 and max(free) - min(free) <= 1


def test_total_quota_is_spread_evenly(tmp_path):
    shutil.copytree(REPO / "tests" / "fixtures" / "tiny", tmp_path / "tiny")
    path = tmp_path / "tiny" / "qa.yaml"
    path.write_text(path.read_text().replace("per_leaf: 2", "total: 5"))
    quotas = leaf_quotas(load_taxonomy(path))
    assert sum(quotas.values()) == 5 and sorted(quotas.values()) == [2, 3]


def test_per_leaf_replaces_the_taxonomys_quota_and_node_quotas_still_win(medical, medical_copy):
    from distill.taxonomy import with_per_leaf

    quotas = leaf_quotas(with_per_leaf(medical, 7))
    assert sorted(set(quotas.values())) == [4, 7] and list(quotas.values()).count(4) == 3  # three set quota: 4
    medical_copy.write_text(medical_copy.read_text().replace("per_leaf: 3", "total: 90"))
    loaded = load_taxonomy(medical_copy)
    assert leaf_quotas(with_per_leaf(loaded, 5)) == {path: 4 if q == 4 else 5 for path, q in quotas.items()}
    plan = build_plan(with_per_leaf(medical, 7))
    first = {item.id: item for item in build_plan(medical)}
    # A leaf's items grow from the same plan: the items a smaller quota planned keep their ids and axes where
    # the quota does not change the axis split (here the three leaves with their own quota).
    fixed = [item for item in plan if quotas[item.node_path] == 4]
    assert fixed and all(first[item.id] == item for item in fixed)
    assert medical.taxonomy.generation.per_leaf == 3  # the loaded taxonomy itself is left as it was
