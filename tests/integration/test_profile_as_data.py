"""GLM-5.3 is a profile change: a new profile, model and row in the matrix, and no code edited.

``helpers.matrices.with_profile`` adds a profile, a model (its checkpoint and served name) and a
row copied from an existing one to the project's matrix.yaml. These tests build the stand-in for
that profile and read its rendered template and scripted reasoning back; the live test
(tests/live/test_profile_as_data_live.py) runs the effort suite against the reference serving it.
"""
from __future__ import annotations

import json
import random
import statistics
from pathlib import Path

import pytest

from glmverify import policy
from glmverify.matrix import load, parse
from helpers.require import need_module
from helpers.matrices import ROW, SERVED, glm53_matrix

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def glm53_data() -> dict:
    return glm53_matrix()


@pytest.fixture(scope="module")
def glm53(glm53_data):
    return parse(glm53_data).profiles["glm-5.3"]


def test_with_profile_adds_a_row_serving_the_profile(glm53_data):
    m = parse(glm53_data)
    row, ref = m.row(ROW), m.row("reference")
    assert row.profile.name == "glm-5.3" and list(row.profile.effort.levels) == ["max", "high", "low"]
    assert row.served_model == SERVED and SERVED in row.launch.args and "glm-5.2-ref" not in row.launch.args
    assert row.engine == ref.engine and row.declared == ref.declared
    assert len(m.rows) == len(load().rows) + 1


def test_glm53_decisions_are_adjacent_pairs(glm53_data):
    row = parse(glm53_data).row(ROW)
    assert policy.effort_pairs(row.profile.effort) == [("high", "max"), ("low", "high")]
    fam = policy.family(row, rendered=True)
    assert [f for f in fam if f.startswith("effort[kwargs")] == ["effort[kwargs:high]", "effort[kwargs:low]"]
    assert "low/high" in policy.effort_rule(row, "low", True, "kwargs").quantity
    assert "high/max" in policy.effort_rule(row, "high", True, "kwargs").quantity
    # an engine showing no rendered prompt: medium and the unknown value (and an explicit max) are decided as fall-through
    fell = [f for f in policy.family(row, rendered=False) if f.startswith("effort[kwargs") and "=" in f]
    assert fell == ["effort[kwargs:max=max]", "effort[kwargs:medium=max]", "effort[kwargs:extreme-unknown=max]"]


# --------------------------------------------------------------------------- the stand-in for GLM-5.3


@pytest.fixture(scope="module")
def glm53_model(tmp_path_factory, glm53) -> Path:
    need_module("tokenizers")
    need_module("numpy")
    from glmverify.standin import build

    return build.build(tmp_path_factory.mktemp("glm53") / "model", profile=glm53)


def _render(model_dir: Path, text: str = "hi", **kwargs) -> str:
    import jinja2

    env = jinja2.Environment()
    env.filters["tojson"] = lambda v: json.dumps(v)
    template = env.from_string((model_dir / "chat_template.jinja").read_text())
    return template.render(messages=[{"role": "user", "content": text}], add_generation_prompt=True, **kwargs)


@pytest.mark.parametrize(("kwargs", "word"), [
    ({}, "Max"),
    ({"reasoning_effort": "max"}, "Max"),
    ({"reasoning_effort": "high"}, "High"),
    ({"reasoning_effort": "low"}, "Low"),
    ({"reasoning_effort": "medium"}, "Max"),
    ({"reasoning_effort": "extreme-unknown"}, "Max"),
    ({"reasoning_effort": None}, "Max"),
    ({"reasoning_effort": 3}, "Max"),
    ({"enable_thinking": True, "reasoning_effort": "low"}, "Low"),
])
def test_glm53_template_renders_each_level_and_the_fallback(glm53_model, kwargs, word):
    assert _render(glm53_model, **kwargs) == f"[gMASK]<sop><|system|>Reasoning Effort: {word}<|user|>hi<|assistant|><think>"


@pytest.mark.parametrize("effort", [None, "low", "high", "max", "medium"])
def test_glm53_template_has_no_effort_line_with_thinking_off(glm53_model, effort):
    assert _render(glm53_model, enable_thinking=False, reasoning_effort=effort) == "[gMASK]<sop><|user|>hi<|assistant|></think>"


def test_glm53_model_dir_names_its_levels(glm53_model, glm53):
    from glmverify.standin import build, profile

    loaded = profile.load(glm53_model)
    assert loaded.name == "glm-5.3" and loaded.levels == (("max", "Max"), ("high", "High"), ("low", "Low"))
    assert build.is_built(glm53_model, profile=glm53) and not build.is_built(glm53_model)  # GLM-5.2's hash differs
    assert build.model_dir_for(glm53).name == "glm-5.3-standin"
    assert build.model_dir_for(None).name == "glm-5.2-standin"


def _reasoning_chars(raw: str) -> int:
    return len(raw.split("</think>")[0])


def test_glm53_scripted_and_sampled_reasoning_shrink_level_by_level(glm53_model):
    from glmverify.standin import profile, script

    prof = profile.load(glm53_model)
    questions = ["Why is the sky blue?", "How do volcanoes form under the ocean floor?",
                 "What makes a good cup of coffee in the morning?", "Explain how a bicycle stays upright."]

    def chars(level, sampling=None, faults=frozenset()):
        kwargs = {} if level is None else {"reasoning_effort": level}
        return [_reasoning_chars(script.respond(_render(glm53_model, q, **kwargs),
                                                profile=prof, sampling=sampling, faults=faults))
                for q in questions]

    scripted = {lv: chars(lv) for lv in ("max", "high", "low")}
    assert chars(None) == scripted["max"] == chars("medium")
    for lo, hi in zip(scripted["low"], scripted["high"]):
        assert lo < hi
    for hi, mx in zip(scripted["high"], scripted["max"]):
        assert hi < mx
    assert chars("low", faults=frozenset({"ignore_effort"})) == scripted["max"]
    sampled = {lv: statistics.mean(c for i in range(60) for c in chars(lv, script.Sampling(random.Random(i))))
               for lv in ("max", "high", "low")}
    assert sampled["low"] / sampled["high"] <= 0.7 and sampled["high"] / sampled["max"] <= 0.6, sampled
