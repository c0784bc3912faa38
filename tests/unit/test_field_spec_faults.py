"""Offline tests of the long-context and speculative-decoding field faults and of the rules that
catch them: the /metrics rewrites on synthetic Prometheus text, the answer rewrites on synthetic
bodies, the per-position and trend rules on synthetic windows (good and bad), the sweep's sizes
and nested prompts."""
from __future__ import annotations

import json
import random

import pytest

from glmverify import faultproxy as fp
from glmverify import haystack, policy
from glmverify.adapters.vllm import ACCEPTED, DRAFTS, PER_POS, accept_length, counter, per_position
from glmverify.client import parse_prometheus
from glmverify.faultproxy import field_spec_faults as fs
from glmverify.matrix import load
from glmverify.verdicts import decide


def prom(drafts: float, per: list[float], model: str = "m") -> str:
    """Prometheus text of vLLM's spec-decode counters (accepted = sum of the positions)."""
    lab = f'engine="0",model_name="{model}"'
    lines = ["# HELP vllm:spec_decode_num_drafts Number of spec decoding drafts.",
             "# TYPE vllm:spec_decode_num_drafts counter",
             f"vllm:spec_decode_num_drafts_total{{{lab}}} {drafts}",
             f"vllm:spec_decode_num_draft_tokens_total{{{lab}}} {drafts * len(per)}",
             f"vllm:spec_decode_num_accepted_tokens_total{{{lab}}} {sum(per)}",
             f"vllm:spec_decode_num_accepted_tokens_created{{{lab}}} 1.7e9"]
    lines += [f'vllm:spec_decode_num_accepted_tokens_per_pos_total{{{lab},position="{k}"}} {v}' for k, v in enumerate(per)]
    return "\n".join(lines) + "\n"


RATES = [0.91, 0.80, 0.72, 0.63, 0.61]  # the ngram reference's per-position rates


def run(fault: str, scrapes: int, per_scrape_drafts: float = 100.0) -> list[dict]:
    """Counters of a steady engine scraped ``scrapes`` times through ``fault``, parsed."""
    state: dict = {}
    out = []
    for i in range(scrapes):
        d = per_scrape_drafts * (i + 1)
        out.append(parse_prometheus(fp.apply(fp.FAULTS[fault], "metrics", False, prom(d, [r * d for r in RATES]), state)))
    return out


@pytest.fixture(scope="module")
def ngram_row():
    return load().row("reference-ngram")


# ---- spec_accept_decay ---------------------------------------------------------------------------
def test_accept_decay_falls_toward_one_while_the_first_windows_pass(ngram_row):
    snaps = run("spec_accept_decay", 28)
    windows = [accept_length(snaps[i], snaps[i + 1])["accept_length"] for i in range(1, 27, 2)]
    assert windows[0] > 3.5 and windows[-1] < 1.2  # the start passes, the end is near 1.0
    assert all(a >= b for a, b in zip(windows, windows[1:]))
    first4 = sum(windows[:4]) / 4
    assert first4 >= float(ngram_row.expect["min_accept_length"])  # a short mean check still passes
    for s in snaps:  # drafts untouched; accepted = sum of the positions, monotonic
        assert counter(s, ACCEPTED) == pytest.approx(sum(per_position(s).values()), abs=1.0)
    assert all(counter(b, ACCEPTED) >= counter(a, ACCEPTED) for a, b in zip(snaps, snaps[1:]))
    assert counter(snaps[-1], DRAFTS) == 2800


def test_trend_rule_fails_a_decay_and_passes_a_steady_run(ngram_row):
    snaps = run("spec_accept_decay", 2 * policy.MTP_TREND_WINDOWS + 2)
    decaying = [accept_length(snaps[i], snaps[i + 1])["accept_length"] for i in range(1, 2 * policy.MTP_TREND_WINDOWS, 2)]
    bad = policy.trend_decision(ngram_row, True, decaying)
    assert bad["decay"] == "failed" and "accept length decays over the run" in bad["problems"][0]
    # the last windows alone: a run that ends at about 1.0 is confidently below the minimum
    end = policy.trend_decision(ngram_row, True, [4.6] * 8 + [1.12, 1.08, 1.05, 1.03])
    assert end["last"]["status"] == "failed"
    assert any("last windows below the minimum" in p for p in end["problems"])
    rng = random.Random(3)
    false_fail = 0
    for _ in range(200):  # a conforming engine sampling around a steady mean
        steady = [4.6 + rng.gauss(0, 0.15) for _ in range(policy.MTP_TREND_WINDOWS)]
        false_fail += bool(policy.trend_decision(ngram_row, True, steady)["problems"])
    assert false_fail == 0
    const = policy.trend_decision(ngram_row, True, [4.67] * policy.MTP_TREND_WINDOWS)  # deterministic engine: ties
    assert const["problems"] == [] and const["p_value"] == 1.0


def test_trend_rule_ignores_a_significant_but_tiny_drift(ngram_row):
    drift = [4.7 - 0.01 * i for i in range(policy.MTP_TREND_WINDOWS)]  # tau -1, decline 0.11 < effect
    out = policy.trend_decision(ngram_row, True, drift)
    assert out["p_value"] < out["alpha_decay"] and out["decay"] == "passed" and not out["problems"]


def test_trend_rule_needs_windows(ngram_row):
    assert policy.trend_decision(ngram_row, True, [4.0, 4.1])["problems"]


# ---- spec_position_collapse ----------------------------------------------------------------------
def test_position_collapse_keeps_the_mean_and_the_counters_consistent(ngram_row):
    before, after = run("spec_position_collapse", 2)
    stats = accept_length(before, after)
    assert stats["accept_length"] >= float(ngram_row.expect["min_accept_length"])  # the mean still passes
    per_b, per_a = per_position(before), per_position(after)
    delta = {k: per_a[k] - per_b[k] for k in per_a}
    assert delta[1] == pytest.approx(0.1 * delta[0], abs=1.0) and delta[4] == pytest.approx(delta[1], abs=1.0)
    assert counter(after, ACCEPTED) == pytest.approx(sum(per_a.values()), abs=1.0)
    assert counter(after, DRAFTS) == 200


def position_decisions(row, per: dict[int, float]) -> list:
    trials = {k: int(per[k - 1]) for k in list(per)[1:]}
    out = []
    for rule in policy.position_rules(row, True, len(per), trials):
        k = int(rule.name.split(":")[1].rstrip("]"))
        out.append(decide(rule, [True] * int(per[k]) + [False] * (trials[k] - int(per[k]))))
    return out


def test_position_rule_fails_the_collapse_and_verifies_the_reference(ngram_row):
    drafts = 1742
    good = {k: r * drafts for k, r in enumerate(RATES)}
    assert all(d.status == "verified" for d in position_decisions(ngram_row, good))
    before, after = run("spec_position_collapse", 2, per_scrape_drafts=drafts)
    pa, pb = per_position(after), per_position(before)
    bad = position_decisions(ngram_row, {k: pa[k] - pb[k] for k in pa})
    assert bad[0].status == "failed" and bad[0].rule == "mtp[position:1]"


def test_position_floor_follows_the_rows_minimum(ngram_row):
    c = policy.constant_conditional_rate(5, 1.5)
    assert sum(c ** k for k in range(1, 6)) == pytest.approx(0.5, abs=1e-6)
    assert policy.constant_conditional_rate(5, 3.5) == pytest.approx(0.78, abs=0.01)  # cookbook EAGLE 5 drafts
    assert policy.constant_conditional_rate(1, 2.5) == 1.0
    floor, basis = policy.position_floor(ngram_row)
    assert floor == pytest.approx(policy.MTP_POSITION_FRACTION * c, abs=1e-4) and "PR #46075" in basis
    assert {"mtp[accept_length]", "mtp[position]", "mtp[trend]"} <= set(policy.family(ngram_row, True))


# ---- long context ------------------------------------------------------------------------------
def chat(prompt: int, completion: int, content: str = "The secret passphrase is amber-1.") -> str:
    return json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": prompt, "completion_tokens": completion}})


def test_long_context_corrupt_from_4k_tokens():
    f = fp.FAULTS["long_context_corrupt"]
    short = json.loads(fp.apply(f, "chat", False, chat(1938, 41)))
    assert short["choices"][0]["message"]["content"] == "The secret passphrase is amber-1."
    long = json.loads(fp.apply(f, "chat", False, chat(4008, 41)))
    assert set(long["choices"][0]["message"]["content"]) == {"!"}


def messages(input_tokens: int) -> str:
    return json.dumps({"type": "message", "stop_reason": "tool_use", "usage": {"input_tokens": input_tokens, "output_tokens": 300},
                       "content": [{"type": "thinking", "thinking": "I should call it."},
                                   {"type": "text", "text": "I'll call get_weather for this."},
                                   {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Tokyo", "days": 2}}]})


def test_messages_tool_markup_only_near_the_window():
    f = fp.FAULTS["messages_tool_markup_near_window"]
    half = json.loads(fp.apply(f, "messages", False, messages(8828)))
    assert [b["type"] for b in half["content"]] == ["thinking", "text", "tool_use"] and half["stop_reason"] == "tool_use"
    near = json.loads(fp.apply(f, "messages", False, messages(int(0.8 * fs.REFERENCE_WINDOW))))
    assert [b["type"] for b in near["content"]] == ["thinking", "text"] and near["stop_reason"] == "end_turn"
    assert "<tool_call>get_weather<arg_key>city</arg_key><arg_value>Tokyo</arg_value>" in near["content"][1]["text"]


def test_gsm8k_fault_asks_only_gsm8k_like_requests():
    f = fp.FAULTS["gsm8k_wrong_with_spec"]
    gsm = {"messages": [{"role": "user", "content": "Tom has 3 apples...\n\nSolve the problem. End your answer with "
                                                    "'The answer is N.' where N is the final number."}]}
    short = {"messages": [{"role": "user", "content": "What is the capital of Italy? One word."}]}
    assert f.applies(gsm) and not f.applies(short)
    assert "wrong_answers" in f.request("/v1/chat/completions", gsm)["vllm_xargs"]["glm_standin_faults"]


def test_sweep_sizes_and_nested_prompts():
    assert haystack.sweep_sizes(16384, 1600) == [2048, 4096, 8192, 14784]
    assert haystack.sweep_sizes(1_048_576, 1600)[-1] == 1_046_976
    assert haystack.sweep_sizes(4096, 1600) == [2048, 2496]

    def count(msgs):  # one token per character, as the stand-in's byte-level tokenizer
        return len(msgs[0]["content"]) + 20

    stages = haystack.sweep(count, [2048, 4096, 8192, 14784], haystack.NEEDLE.format(value="amber-1"), reserve=72)
    assert [s.size for s in stages] == [2048, 4096, 8192, 14784]
    for a, b in zip(stages, stages[1:]):
        assert b.text.startswith(a.text)  # each prompt extends the previous one's text
    for s in stages:
        assert s.text.count("The secret passphrase is amber-1.") == 1
        assert s.size - 72 - 2 * len(haystack.FILLER) <= count(s.messages()) <= s.size - 72
