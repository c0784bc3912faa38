"""Model behaviour as rates (glmverify.behaviour): the decisions verify a conforming sampled answer
set and fail a broken one, seeded.

The answers come from the stand-in's own tool-call draws (``script.tool_answer`` with a seeded
``Sampling``: parallel order, the sentence before the call, the 2% clarifying question), turned
into the ``ChatResult`` an engine's parser would give: the same case set the suite sends
(suites/cases/tool_calls.jsonl). Broken engines: one that never calls, one that calls the wrong
tool (stand-in fault ``wrong_tool``), one that strips string arguments (``strip_arg_whitespace``)
and one whose stream loses the calls the non-stream answers make.
"""
from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest

from glmverify import behaviour
from glmverify.chat import ChatResult, ToolCall
from glmverify.standin import script
from glmverify.standin.sampling import P_CLARIFY, P_PARALLEL_REORDER, Sampling
from glmverify.verdicts import FAILED, INCONCLUSIVE, VERIFIED, simulate

CASES_DIR = Path(__file__).resolve().parents[2] / "suites" / "cases"
TOOLS = json.loads((CASES_DIR / "tools.json").read_text())
SCHEMAS = {n: t["function"]["parameters"] for n, t in TOOLS.items()}
CASES = [json.loads(line) for line in (CASES_DIR / "tool_calls.jsonl").read_text().splitlines() if line.strip()]
ALPHA = 0.01 / 7 / 7  # one part on the vLLM reference: 6 verdicts + the behaviour slot, in 7 parts
RUNS = 40


def answer(case: dict, stream: bool, rng: random.Random, faults=frozenset(), never_calls=False) -> ChatResult:
    """What a conforming engine returns for the stand-in's sampled answer to ``case``."""
    offered = [{"name": n, "parameters": SCHEMAS[n]} for n in case["tools"]]
    choice = case["tool_choice"]
    named = [choice["function"]["name"]] if isinstance(choice, dict) else None
    forced = choice == "required" or named is not None
    ans = script.tool_answer(offered, case["prompt"], allowed=named, tool_required=forced, faults=frozenset(faults),
                             sampling=Sampling(rng))
    if never_calls and not forced:
        return ChatResult(stream=stream, content="I can tell you that without a tool.", finish_reason="stop")
    calls = [ToolCall(f"call_{next(_ids)}", n, json.dumps(a, ensure_ascii=False)) for n, a in ans.calls]
    return ChatResult(stream=stream, content=(ans.question or ans.preamble).strip() or None, tool_calls=calls,
                      finish_reason="tool_calls" if calls else "stop")


_ids = itertools.count()


def run(seed: int, faults=frozenset(), never_calls=False, stream_never_calls=False) -> behaviour.Outcome:
    rng = random.Random(seed)

    def draw():
        got = [answer(c, s, rng, faults, never_calls or (s and stream_never_calls)) for s in (False, True) for c in CASES]
        return [behaviour.judge(c, r, SCHEMAS) for c, r in zip(CASES * 2, got)], len(got)

    per_round = {"calls": 2 * len(CASES), "correct": 2 * len(CASES),
                 "exact": 2 * sum("arguments" in c["expect"] for c in CASES)}
    return behaviour.case_rounds(draw, per_round, behaviour.shares(ALPHA))


def statuses(out: behaviour.Outcome) -> dict[str, str]:
    return {k: d.status for k, d in out.decisions.items()}


def test_the_stand_in_samples_tool_behaviour_at_its_documented_rates():
    rng = random.Random(7)
    two = [{"name": "get_weather", "parameters": SCHEMAS["get_weather"]}, {"name": "get_time", "parameters": {}}]
    ask = "Call get_weather for city Tokyo and days 2, and also call get_time."
    orders = [tuple(n for n, _ in script.tool_answer(two, ask, sampling=Sampling(rng)).calls) for _ in range(4000)]
    swapped = sum(o == ("get_time", "get_weather") for o in orders) / len(orders)
    assert abs(swapped - P_PARALLEL_REORDER) < 0.03
    lone = [script.tool_answer(two[1:], "What time is it? Use get_time.", sampling=Sampling(rng)) for _ in range(6000)]
    asked = sum(bool(a.question) and not a.calls for a in lone) / len(lone)
    assert abs(asked - P_CLARIFY) < 0.008
    assert 0.2 < sum(not a.preamble for a in lone if a.calls) / len(lone) < 0.4
    # a grammar-forced call never turns into a question; scripted output is the named order with the sentence
    forced = [script.tool_answer(two[1:], "Use get_time.", tool_required=True, sampling=Sampling(rng)) for _ in range(500)]
    assert all(a.calls and not a.preamble for a in forced)
    scripted = script.tool_answer(two, ask)
    assert [n for n, _ in scripted.calls] == ["get_weather", "get_time"] and scripted.preamble.endswith("for this.\n")


def test_a_conforming_sampled_answer_set_verifies_at_the_first_look():
    outs = [run(seed) for seed in range(RUNS)]
    for out in outs:
        assert set(statuses(out).values()) == {VERIFIED}, (statuses(out), [out.misses(m) for m in behaviour.MEASURES])
    # the order of parallel calls and the clarifying questions were in these samples, and did not matter
    assert sum(out.rounds == 1 for out in outs) >= 0.8 * RUNS
    assert any(out.misses("calls") for out in outs)


@pytest.mark.parametrize("broken, decision, signature", [
    (dict(never_calls=True), "calls", "expected a tool call, got none"),
    (dict(faults={"wrong_tool"}), "correct", "expected calls"),
    (dict(faults={"strip_arg_whitespace"}), "exact", "arguments must be kept exactly"),
    (dict(stream_never_calls=True), "stream:calls", "expected a tool call, got none"),
], ids=["never-calls", "wrong-tool", "mangled-strings", "stream-differs"])
def test_a_broken_engine_fails_its_decision(broken, decision, signature):
    for seed in range(RUNS // 4):
        out = run(1000 + seed, **broken)
        assert out.decisions[decision].status == FAILED, (decision, statuses(out))
        measure = decision.partition(":")[2] or decision
        assert any(signature in m for m in out.misses(measure, 50)), out.misses(measure)
    # and never fails a decision it has nothing to do with (wrong tools still call; stripped strings are right tools)
    if decision in ("correct", "exact"):
        assert out.decisions["calls"].status == VERIFIED


def test_stream_comparison_only_fails_confident_differences():
    def judged(stream_rate, plain_rate, n):
        return ([behaviour.Judged("c", True, calls=i < stream_rate * n) for i in range(n)]
                + [behaviour.Judged("c", False, calls=i < plain_rate * n) for i in range(n)])
    assert behaviour.compare(judged(1.0, 1.0, 12), "calls", ALPHA, 3, 0).status == VERIFIED
    assert behaviour.compare(judged(11 / 12, 1.0, 12), "calls", ALPHA, 3, 0).status == VERIFIED  # a question in one mode
    assert behaviour.compare(judged(0.0, 1.0, 24), "calls", ALPHA, 3, 1).status == FAILED
    assert behaviour.compare(judged(1.0, 0.0, 24), "calls", ALPHA, 3, 1).status == FAILED   # either way
    assert behaviour.compare(judged(0.75, 1.0, 12), "calls", ALPHA, 3, 0).status == INCONCLUSIVE
    # a stream losing every call is not yet confidently 0.25 apart on 12 answers a mode: the next round decides
    d = behaviour.compare(judged(0.0, 1.0, 12), "calls", ALPHA / len(behaviour.MEASURES), 3, 0)
    assert d.status == INCONCLUSIVE and d.estimate == -1.0 and d.interval[1] < 0


def test_stated_error_rates_hold_at_the_bars():
    """Each rate rule: a deployment at its conforming bar false-fails at most alpha, one at its
    effect verifies at most beta (seeded Monte Carlo)."""
    for measure in ("calls", "correct", "exact", "round_trip"):
        rule = behaviour.rate_rule(measure, 0.05, (12, 24, 48))  # a large alpha, so the check can bite
        at_bar = simulate(rule, lambda g, k, p=rule.fail_bound: g.random(k) < p, 400, seed=3)
        assert at_bar[FAILED] <= 0.05 + 0.03, (measure, at_bar)
        at_effect = simulate(rule, lambda g, k, p=rule.verify_bound: g.random(k) < p, 400, seed=4)
        assert at_effect[VERIFIED] <= rule.beta + 0.03, (measure, at_effect)


def test_judge_compares_parallel_calls_as_a_set_and_strings_byte_for_byte():
    case = next(c for c in CASES if c["id"] == "auto-parallel")
    swapped = ChatResult(stream=False, finish_reason="tool_calls", tool_calls=[
        ToolCall("a", "get_time", "{}"), ToolCall("b", "get_weather", '{"city": "Tokyo", "days": 2}')])
    assert behaviour.judge(case, swapped, SCHEMAS).correct is True
    one = ChatResult(stream=False, finish_reason="tool_calls", tool_calls=swapped.tool_calls[:1])
    assert behaviour.judge(case, one, SCHEMAS).correct is False
    exact = next(c for c in CASES if c["id"] == "auto-exact-string-whitespace")
    want = exact["expect"]["arguments"][0]["text"]
    kept = ChatResult(stream=True, finish_reason="tool_calls",
                      tool_calls=[ToolCall("a", "write_note", json.dumps({"text": want}))])
    stripped = ChatResult(stream=True, finish_reason="tool_calls",
                          tool_calls=[ToolCall("a", "write_note", json.dumps({"text": want.strip()}))])
    assert behaviour.judge(exact, kept, SCHEMAS).exact is True
    j = behaviour.judge(exact, stripped, SCHEMAS)
    assert j.exact is False and "arguments must be kept exactly" in j.note
    cut = ChatResult(stream=False, finish_reason="length", content="I'll call")
    assert behaviour.judge(exact, cut, SCHEMAS).calls is None   # cut answers are excluded, not scored


def test_the_row_family_holds_one_behaviour_slot_split_over_the_features_parts():
    from glmverify import policy
    from glmverify.matrix import load

    row = load().row("reference")
    fam = policy.family(row, rendered=True)
    assert fam.count(behaviour.SLOT) == 1 and fam[-1] == behaviour.SLOT
    served = [f for f in behaviour.PARTS if row.serves(f)]
    assert "tool_calls" in served
    part = behaviour.part_alpha(row, policy.alpha(row, True))
    assert part * sum(len(behaviour.PARTS[f]) for f in served) == pytest.approx(policy.alpha(row, True))

    class Nothing:
        def serves(self, feature):
            return False
    assert behaviour.family_names(Nothing()) == []


def test_sampling_off_is_scripted_and_a_request_seed_reproduces_the_turn():
    from glmverify.standin.sampling import ToolStyle, request_rng, tool_style

    assert tool_style(None, 2, may_clarify=True, may_omit_preamble=True) == ToolStyle((0, 1))
    two = [{"name": "get_weather", "parameters": SCHEMAS["get_weather"]}, {"name": "get_time", "parameters": {}}]
    ask = "Call get_weather for city Tokyo and days 2, and also call get_time."
    seeded = {script.tool_answer(two, ask, sampling=Sampling(request_rng(7, ask))).text for _ in range(5)}
    assert len(seeded) == 1
    drawn = {script.tool_answer(two, ask, sampling=Sampling(request_rng(s, ask))).text for s in range(60)}
    assert len(drawn) > 3   # unseeded variety: order, sentence, whitespace


def test_a_round_without_answers_ends_the_draws():
    """A hung or refusing engine: every request failed, so no more rounds (each would wait out its
    timeouts); the decisions end inconclusive and the invariant checks name the cause."""
    rounds = []

    def draw():
        rounds.append(1)
        return [behaviour.judge(c, ChatResult(stream=False, error="timed out"), SCHEMAS) for c in CASES], len(CASES)

    out = behaviour.case_rounds(draw, {"calls": 22, "correct": 22, "exact": 12}, behaviour.shares(ALPHA))
    assert len(rounds) == 1 and set(statuses(out).values()) == {INCONCLUSIVE}
