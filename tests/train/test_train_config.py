"""Training config: our defaults, YAML with clear errors, flags over YAML; memory-fit refusals."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from cli_helpers import ROOT
from distill.errors import DistillError
from distill.train.config import TrainConfig, load_train_config
from train_helpers import make_run

CONFIGS = ROOT / "configs"


def test_defaults_are_ours_not_trls():
    config = TrainConfig()
    assert (config.lora_r, config.lora_alpha, config.lora_dropout) == (16, 32, 0.05)
    assert config.target_modules == "all-linear" and config.qlora
    assert (config.learning_rate, config.lr_scheduler, config.epochs) == (2e-4, "cosine", 2)
    assert config.warmup_ratio > 0


def test_flags_override_yaml_and_train_section_is_accepted(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lora_r: 8\n  max_length: 256\n  qlora: false\n")
    config = load_train_config(path, max_length=128, lora_r=None)
    assert (config.lora_r, config.max_length, config.qlora) == (8, 128, False)


@pytest.mark.parametrize("text, message", [
    ("qlora: false\nlora_rank: 8\n", "c.yaml:2: lora_rank: unknown field 'lora_rank'"),
    ("max_length: lots\n", "c.yaml:1: max_length: Input should be a valid integer"),
    ("lora_r: [1\n", "c.yaml:2: malformed YAML"),
    ("- a\n- b\n", "c.yaml:1: expected a mapping"),
    ("train:\n  lora_r: 0\n", "c.yaml:2: train.lora_r: Input should be greater than 0"),
])
def test_bad_yaml_is_one_clear_line(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(DistillError, match=message) as info:
        load_train_config(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("path", sorted(p for p in CONFIGS.glob("train-*.yaml") if "accelerate" not in p.name))
def test_example_configs_load(path):
    load_train_config(path)


def test_memory_estimate_fits_and_refuses_with_advice(monkeypatch):
    from distill.models import resolve_model
    from distill.train import memory

    shape = memory.model_shape(resolve_model("local"))
    small = memory.estimate(shape, qlora=False, cuda=False, lora_r=16, batch_size=2, max_length=256,
                            gradient_checkpointing=False)
    large = memory.estimate(shape, qlora=False, cuda=False, lora_r=16, batch_size=64, max_length=4096,
                            gradient_checkpointing=False)
    quantised = memory.estimate(shape, qlora=True, cuda=False, lora_r=16, batch_size=2, max_length=256,
                                gradient_checkpointing=False)
    assert 0.3 < small.weights_gib < 1.0  # 135M parameters (plus untied head) in fp32
    assert quantised.weights_gib < small.weights_gib and large.activations_gib > 10 * small.activations_gib
    assert 4.5e6 < small.trainable < 5.0e6  # r16 on all 7 projections of 30 layers: ~4.9M
    monkeypatch.setenv("DISTILL_MEMORY_LIMIT_GIB", "4")
    big = memory.estimate(shape, qlora=False, cuda=False, lora_r=16, batch_size=64, max_length=4096,
                          gradient_checkpointing=False)
    assert not big.fits
    advice = memory.advice(big, qlora=False, batch_size=64, max_length=4096, gradient_checkpointing=False)
    assert "--batch-size 32" in advice and "--max-length 2048" in advice and "will not fit" in advice


def _cli():
    from distill.train.commands import register

    app = typer.Typer()
    register(app)
    return app


def test_train_refuses_before_loading_when_it_will_not_fit(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_MEMORY_LIMIT_GIB", "1")
    run = make_run(tmp_path / "run")
    result = CliRunner().invoke(_cli(), [str(run), "--student", "local", "--batch-size", "32", "--max-length", "2048"])
    assert isinstance(result.exception, DistillError) and "will not fit" in str(result.exception)
    assert not (run / "student").exists()


@pytest.mark.parametrize("student, message", [
    ("./no/such/folder", "does not exist"),
    ("nobody/no-such-model-xyz", "cannot load"),
])
def test_unknown_student_is_a_clear_error(tmp_path, student, message):
    run = make_run(tmp_path / "run")
    result = CliRunner().invoke(_cli(), [str(run), "--student", student, "--max-steps", "1"])
    assert isinstance(result.exception, DistillError) and message in str(result.exception)


def test_cli_reports_missing_run_directory(tmp_path):
    result = CliRunner().invoke(_cli(), [str(tmp_path / "nope"), "--student", "local"])
    assert isinstance(result.exception, DistillError) and "does not exist" in str(result.exception)
