"""`distill run`: the one-shot job end to end on a tiny taxonomy with the local teacher and student."""

import json
import shutil

import pytest

from cli_helpers import ROOT, TINY as FIXTURES
from distill.errors import DistillError
from distill.run import load_run_config, run_pipeline


@pytest.mark.model
@pytest.mark.train
def test_one_shot_job_runs_every_stage_and_resumes(tmp_path):
    shutil.copytree(FIXTURES, tmp_path / "tiny")
    taxonomy = tmp_path / "tiny" / "qa.yaml"
    taxonomy.write_text(taxonomy.read_text().replace("per_leaf: 2", "per_leaf: 4"))
    config_path = tmp_path / "job.yaml"
    config_path.write_text(
        "taxonomy: tiny/qa.yaml\nout: run\nsplit_fraction: 0.3\n"
        "train: {student: local, qlora: false, max_steps: 2, max_length: 256, batch_size: 2, grad_accum: 1,"
        " eval_before: false, threads: 2}\n"
        "eval: {max_new_tokens: 16, resamples: 50, threads: 2}\n"
    )
    lines = []
    state = run_pipeline(load_run_config(config_path), say=lines.append)
    out = tmp_path / "run"
    assert list(state["done"]) == ["generate", "split", "train", "eval"]
    assert state["done"]["split"]["train"] + state["done"]["split"]["eval"] == state["done"]["generate"]["kept"]
    assert (out / "student" / "adapter_config.json").is_file()
    evaluated = json.loads((out / "eval.json").read_text())
    assert evaluated["n"] == state["done"]["split"]["eval"] and set(evaluated["tasks"]) == {"qa"}
    assert json.loads((out / "pipeline.json").read_text())["done"].keys() == state["done"].keys()

    again = []
    run_pipeline(load_run_config(config_path), say=again.append)
    assert again == []  # every stage finished: nothing runs twice


def test_bad_run_config_is_one_clear_error(tmp_path):
    config_path = tmp_path / "job.yaml"
    config_path.write_text("taxonomy: x.yaml\ngenerat: {}\n")
    with pytest.raises(DistillError, match="job.yaml:2: generat: unknown field 'generat'"):
        load_run_config(config_path)
    config_path.write_text("taxonomy: x.yaml\ntrain:\n  student: local\n  lora_r: -1\n")
    with pytest.raises(DistillError, match="job.yaml:4: train.lora_r: Input should be greater than 0"):
        load_run_config(config_path)


def test_paths_of_a_config_are_relative_to_its_folder_with_dot_dot_folded(tmp_path):
    (tmp_path / "configs").mkdir()
    config_path = tmp_path / "configs" / "job.yaml"
    config_path.write_text("taxonomy: ../taxonomies/qa.yaml\nout: ../runs/job\n")
    config = load_run_config(config_path)
    # Said in every message and record as the user would write it, not as configs/../runs/job.
    assert config.out == tmp_path / "runs" / "job" and ".." not in config.out.parts
    assert config.taxonomy == tmp_path / "taxonomies" / "qa.yaml"
    (tmp_path / "linked").symlink_to(tmp_path / "configs")
    linked = load_run_config(tmp_path / "linked" / "job.yaml")
    assert linked.out == tmp_path / "linked" / ".." / "runs" / "job"  # a link's `..` is left to the system


def test_the_generate_section_takes_what_distill_generate_takes(tmp_path, monkeypatch):
    """budget_usd, teacher_options and an API config file: one settings model for the flags, the run config
    and the Python API. The prices in api.yaml make the first calls cost more than the budget; at the
    built-in price of gpt-4o-mini all 8 calls cost about $0.0005 and the job would go on to train (a student
    that does not exist: it would fail there at once)."""
    from distill.errors import BudgetExceeded
    from fakeapi import FakeAPI

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-run-0000")
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "api.yaml").write_text("prices:\n  gpt-4o-mini: {input: 1000, output: 1000}\n")
    config_path = tmp_path / "job.yaml"
    with FakeAPI() as api:
        config_path.write_text(
            f"taxonomy: {FIXTURES / 'qa.yaml'}\nout: run\ntrain: {{student: ./no-such-student}}\n"
            "generate:\n  teacher: openai:gpt-4o-mini\n  budget_usd: 0.05\n  preflight: false\n  api_config: api.yaml\n"
            f"  teacher_options: {{base_url: '{api.url}/v1', concurrency: 1, timeout_s: 5}}\n")
        with pytest.raises(BudgetExceeded, match=r"budget of \$0.0500 reached"):
            run_pipeline(load_run_config(config_path), say=lambda line: None)
        assert api.total_paid() == 0  # the first call's estimate is over the budget: nothing is sent
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert stats["counts"]["pending"] == 4


@pytest.mark.parametrize("name, task, planned", [("tickets-cpu.yaml", "classification", 300),
                                                  ("medical-cpu.yaml", "qa", 244)])
def test_the_recipe_configs_load_and_plan_a_few_hundred_items(name, task, planned):
    """The measured recipe's configs (benchmarks/bench_recipe.py) stay valid as the train and eval settings
    change, and plan the size the README states."""
    from distill.taxonomy import build_plan, load_taxonomy, with_per_leaf

    config = load_run_config(ROOT / "configs" / name)
    loaded = load_taxonomy(config.taxonomy)
    assert loaded.taxonomy.task == task
    assert len(build_plan(with_per_leaf(loaded, config.generate.per_leaf), seed=config.generate.seed)) == planned
    assert config.train["qlora"] is False  # plain LoRA: QLoRA is ~2x slower on CPU
