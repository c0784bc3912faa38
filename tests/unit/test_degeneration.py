"""Degenerate answers (glmverify/degeneration.py): the screen on healthy texts and on loops, its
thresholds at their boundaries, the counted-apart answers, and the rate decision (seeded
simulation with the production rule: a conforming rate does not fail, 5% loops do)."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from glmverify import degeneration as d
from glmverify.chat import ChatResult, ToolCall
from glmverify.matrix import load
from glmverify.standin.reasoning import base_units, words
from glmverify.standin.sampling import greedy_loop, reasoning_sentences
from glmverify.verdicts import FAILED, simulate

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
PROFILE_MAX = 8192

GSM8K_REASONING = """Natalia sold 48 clips in April. In May she sold half as many as in April, so in May she sold 48 / 2 = 24 clips.
Altogether she sold 48 + 24 = 72 clips.
Let me double-check: April 48, May 24. 48 + 24 = 72. Yes.
So the answer is 72."""

STEPS = "\n".join(f"Step {i}: the total after day {i} is {i} x 12 = {12 * i} apples, so {12 * i} apples remain to count."
                  for i in range(1, 31))
NUMBERED = "\n".join(f"{i}. Item number {i}: check the value of x_{i} against the limit." for i in range(1, 41))
TABLE = "| Day | Apples | Pears | Total |\n| --- | --- | --- | --- |\n" + "\n".join(
    f"| {i} | {3 * i} | {2 * i} | {5 * i} |" for i in range(1, 40))
CODE = "def f(values):\n    total = 0\n" + "".join(f"    total += values[{i}] * {i}\n" for i in range(40)) + \
    "    return total\n\n" + "# " + "=" * 78 + "\n" + "\n".join(f"assert f([{i}] * 40) == {i * 780}" for i in range(20))
JSON_OUT = json.dumps([{"id": i, "name": f"user{i}", "active": i % 2 == 0, "tags": ["a", "b"]} for i in range(40)])
MATH = " ".join(f"We have x = {i}, so x^2 = {i * i} and 2x = {2 * i}; therefore x^2 + 2x = {i * i + 2 * i}."
                for i in range(1, 30))
CJK = "首先，我们计算四月份卖出的数量。四月份卖出48个，五月份卖出一半，也就是24个。所以总共是72个。" * 2
HEALTHY = {"gsm8k": GSM8K_REASONING, "steps": STEPS, "numbered": NUMBERED, "table": TABLE, "code": CODE,
           "json": JSON_OUT, "math": MATH, "cjk": CJK, "rule": "=" * 120, "dashes": "-" * 250}


def standin_reasoning(seed: int) -> str:
    """The stand-in's sampled reasoning at the most effort (its checking sentences repeat each unit)."""
    focus = (f"A baker makes {seed} loaves each morning and sells three quarters of them. How many loaves "
             "are left after a week of baking?")
    return " ".join(reasoning_sentences(base_units(focus, "gsm8k"), words(focus), rank=0, key=focus,
                                        rng=random.Random(seed)))


def answer(content=None, reasoning=None, finish="stop", completion=50, max_tokens=PROFILE_MAX, calls=(), **req):
    return ChatResult(stream=False, content=content, reasoning=reasoning, finish_reason=finish,
                      tool_calls=list(calls), usage={"prompt_tokens": 20, "completion_tokens": completion,
                                                     "total_tokens": 20 + completion},
                      request={"max_tokens": max_tokens, "messages": [{"role": "user", "content": "q"}], **req})


# ---- the screen -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(HEALTHY))
def test_healthy_texts_have_no_loop(name):
    assert d.loop_in(HEALTHY[name]) is None


def test_standin_sampled_reasoning_has_no_loop():
    assert [s for s in range(200) if d.loop_in(standin_reasoning(s))] == []


def test_fixture_outputs_have_no_loop():
    rows = [json.loads(line) for line in (FIXTURES / "glm52_outputs.jsonl").read_text().splitlines() if line.strip()]
    texts = [r["raw"] for r in rows] + [r["expect"].get(k) or "" for r in rows for k in ("reasoning", "content")]
    assert len(texts) > 20 and [t for t in texts if d.loop_in(t)] == []


@pytest.mark.parametrize("text,scale,unit", [
    ("1. " * 3000, "words", "1."),
    ("Let me reconsider the problem. " * 40, "words", "Let me reconsider the problem."),
    ("这是一个重复的句子。" * 100, "chars", "这是一个重复的句子。"),
    ("1.1.1." * 100, "chars", "1."),
])
def test_loops_are_caught(text, scale, unit):
    loop = d.loop_in(GSM8K_REASONING + "\n" + text)
    assert loop and loop["scale"] == scale and loop["unit"] == unit and loop["share"] > 0.5


def test_a_loop_the_model_left_is_caught_in_the_middle():
    text = GSM8K_REASONING + " " + "Wait, let me recount the clips. " * 30 + "\n" + STEPS
    loop = d.loop_in(text)
    assert loop and loop["period"] == 6 and loop["repeats"] == 30


def test_the_standin_greedy_loop_is_caught():
    sentences = standin_reasoning(3).split(". ")
    prefix, unit = next(x for x in (greedy_loop(sentences, f"prompt {i}") for i in range(100)) if x)
    assert d.loop_in(prefix + unit * 400)["scale"] == "words"


@pytest.mark.parametrize("words_,expected", [(d.LOOP_MIN_WORDS, True), (d.LOOP_MIN_WORDS - 1, False)])
def test_word_span_boundary(words_, expected):
    # a 4-word unit: the period is far below the span, so the span decides; the answer after the
    # loop keeps the character scale (a periodic end) out of it
    text = "start: " + " ".join((["alpha", "beta", "gamma", "delta"] * 100)[:words_]) + " and then 72."
    assert (d.loop_in(text) is not None) is expected


@pytest.mark.parametrize("repeats,expected", [(d.LOOP_MIN_REPEATS, True), (d.LOOP_MIN_REPEATS - 1, False)])
def test_repeat_boundary(repeats, expected):
    unit = " ".join(f"w{i}" for i in range(30))  # 30 words: 5 repeats = 150 words, over the span
    assert (d.loop_in("start " + " ".join([unit] * repeats) + " and then 72.") is not None) is expected


@pytest.mark.parametrize("chars,expected", [(d.LOOP_MIN_CHARS, True), (d.LOOP_MIN_CHARS - 2, False)])
def test_char_suffix_boundary(chars, expected):
    text = "答案是七十二。" + "啊哈" * (chars // 2)
    assert (d.loop_in(text) is not None) is expected


def test_screen_codes_and_counted_apart():
    loop = answer(reasoning="1. " * 3000, finish="length", completion=PROFILE_MAX)
    s = d.screen(loop)
    assert s["codes"] == [d.LOOP, d.MAX_TOKENS] and s["apart"] is None and s["score"] == 1.0
    assert d.screen(answer(content="ok", finish="length", completion=16, max_tokens=16))["apart"]
    assert d.screen(answer(content="The answer is 72.", reasoning=GSM8K_REASONING))["codes"] == []
    empty = d.screen(answer(content="", reasoning="I thought about it."))
    assert empty["codes"] == [d.EMPTY] and empty["apart"] is None
    # tool_choice none with tools: vLLM drops the call the model wrote; reasoning alone is conforming
    assert d.screen(answer(content=None, reasoning="call it", tools=[{}], tool_choice="none"))["codes"] == []
    assert d.screen(answer(content=None, reasoning="call it", tools=[{}], tool_choice={"type": "none"}))["codes"] == []
    assert d.screen(answer(content=None, reasoning="call it", tools=[{}], tool_choice="auto"))["codes"] == [d.EMPTY]
    assert d.screen(answer(content="x", temperature=0))["apart"] == "greedy (temperature 0)"
    call = ToolCall("c1", "write", json.dumps({"text": "ab " * 400}))
    assert d.screen(answer(calls=[call], finish="tool_calls"))["codes"] == [d.LOOP]


def test_tally_counts_apart_and_keeps_the_worst():
    t = d.new_tally()
    for i in range(10):
        d.add(t, d.screen(answer(content="fine")), {"answer": i})
    d.add(t, d.screen(answer(reasoning="1. " * 3000, finish="length", completion=PROFILE_MAX)), {"answer": 10})
    d.add(t, d.screen(answer(content="cut", finish="length", completion=8, max_tokens=8)), {"answer": 11})
    assert (t["counted"], t["degenerate"], t["apart"]["answers"], t["apart"]["degenerate"]) == (11, 1, 1, 1)
    assert [e["answer"] for e in t["worst"]] == [10, 11] and t["worst"][0]["counted"]


# ---- the decision ------------------------------------------------------------------------------------------
ALPHA = d.alpha(len(load().features))


@pytest.mark.parametrize("n", [512, 1024])
def test_conforming_rate_does_not_fail_and_five_percent_loops_do(n):
    rule = d.rate_rule("degeneration[test]", n, ALPHA)
    at_bar = simulate(rule, lambda rng, k: rng.random(k) < d.BAR, 4000, seed=1)
    healthy = simulate(rule, lambda rng, k: rng.random(k) < 0.002, 4000, seed=2)
    looping = simulate(rule, lambda rng, k: rng.random(k) < d.EFFECT, 2000, seed=3)
    assert at_bar[FAILED] <= max(ALPHA, 1 / 4000) and healthy[FAILED] == 0
    assert looping[FAILED] >= 0.95


def test_decide_names_the_worst_examples_when_it_fails():
    t = d.new_tally()
    for i in range(600):
        loops = i % 20 == 0
        s = d.screen(answer(reasoning="1. " * 3000 if loops else "ok", content=None if loops else "72",
                            finish="length" if loops else "stop", completion=PROFILE_MAX if loops else 10))
        d.add(t, s, {"answer": i, "request_id": f"chatcmpl-{i}"})
    v = d.decide(t, "degeneration[test]", ALPHA)
    assert v["decision"]["status"] == FAILED and v["degenerate"] == 30
    check = d.failed_check("degeneration[cell]", v, "answers of this cell")
    assert check["outcome"] == "failed" and "chatcmpl-0" in check["detail"] and "'1. 1." in check["detail"]
    few = d.new_tally()
    for i in range(600):
        d.add(few, d.screen(answer(content="72" if i else None, reasoning="r", finish="stop")), {"answer": i})
    assert d.failed_check("x", d.decide(few, "degeneration[test]", ALPHA), "") is None
