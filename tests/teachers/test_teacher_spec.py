"""A teacher spec is parsed once, where the user gives it (a flag, a run config, a keyword), into a typed value;
written back it is the text the user wrote."""

from __future__ import annotations

import json

import pytest

from distill.errors import DistillError
from distill.generate.runner import GenerateSettings
from distill.teachers.registry import TeacherSpec


def test_a_spec_is_its_backend_and_its_model():
    spec = TeacherSpec.parse("openai:gpt-4o-mini")
    assert (spec.kind, spec.model, spec.text, str(spec)) == ("openai", "gpt-4o-mini", "openai:gpt-4o-mini",
                                                             "openai:gpt-4o-mini")
    assert TeacherSpec.parse("local") == TeacherSpec(kind="local", model="local") and TeacherSpec.parse("local").text \
        == "local"
    # Only the first colon parts the backend from the model: a model id may hold more (a revision).
    assert TeacherSpec.parse("hf:HuggingFaceTB/SmolLM2-135M-Instruct:main").model == \
        "HuggingFaceTB/SmolLM2-135M-Instruct:main"


def test_settings_hold_the_parsed_spec_and_write_back_its_text():
    settings = GenerateSettings(teacher="anthropic:claude-haiku-4-5", judge="openai:gpt-4o-mini")
    assert settings.teacher.kind == "anthropic" and settings.judge == TeacherSpec.parse("openai:gpt-4o-mini")
    # A config dumped and read again (as `distill run` builds its generation from its `generate:` section).
    dumped = settings.model_dump()
    assert dumped["teacher"] == "anthropic:claude-haiku-4-5" and GenerateSettings(**dumped) == settings
    assert json.loads(settings.model_dump_json())["judge"] == "openai:gpt-4o-mini"
    assert GenerateSettings().teacher.text == "local"


def test_an_unknown_backend_is_refused_where_it_is_looked_up():
    with pytest.raises(DistillError, match="unknown teacher spec 'gpt5'; use one of: local, hf:<model>"):
        TeacherSpec.parse("gpt5").check()
    with pytest.raises(DistillError, match="unknown teacher spec 'openai'"):  # a backend needs its model
        TeacherSpec.parse("openai").check()
    assert GenerateSettings(teacher="shout:x").teacher.kind == "shout"  # a plugin's spec reads like any other
