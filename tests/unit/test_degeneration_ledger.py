"""Degeneration through the ledger and the cells (glmverify/ledger.py, glmverify/inference.py) and
the planted fault (glmverify/faultproxy/degeneration_faults.py), offline: a loop in one answer is
evidence on its cell, a high rate fails the cell naming the worst answers, a diffuse rate fails the
row's accuracy_smoke cell, and the greedy_loops fault fails the decision while the accuracy gate
would still pass."""
from __future__ import annotations

import json
import random

from glmverify import degeneration, inference, policy
from glmverify.chat import ChatResult
from glmverify.faultproxy.catalogue import FAULTS
from glmverify.faultproxy.degeneration_faults import GREEDY_SHARE, drawn
from glmverify.ledger import CONTENT_CODES, Ledger
from glmverify.matrix import load
from glmverify.standin.reasoning import base_units, words
from glmverify.standin.sampling import greedy_loop, reasoning_sentences
from glmverify.verdicts import FAILED, decide

MAX = 8192
ROW = "reference"


def request(text: str, **extra) -> dict:
    return {"model": "glm", "max_tokens": MAX, "messages": [{"role": "user", "content": text}], **extra}


def healthy(i: int) -> ChatResult:
    return ChatResult(stream=False, reasoning=f"Question {i}: 6 x 12 = 72.", content="The answer is 72.",
                      finish_reason="stop", usage={"prompt_tokens": 30, "completion_tokens": 20, "total_tokens": 50},
                      request=request(f"question {i}"), wire={"id": f"chatcmpl-{i}"})


def looping(i: int, unit: str = " 1.") -> ChatResult:
    return ChatResult(stream=False, reasoning=("Let me count." + unit * MAX)[:MAX], content=None, finish_reason="length",
                      usage={"prompt_tokens": 30, "completion_tokens": MAX, "total_tokens": 30 + MAX},
                      request=request(f"question {i}"), wire={"id": f"chatcmpl-{i}"})


def check_record(check_id: str, answers: list[ChatResult], waive: bool = False) -> dict:
    """What the plugin records for one check: its ledger's summary in the evidence."""
    ledger = Ledger(max_tokens=MAX)
    if waive:
        ledger.waive(CONTENT_CODES, "the row's model output is unscripted: random weights")
    for n, a in enumerate(answers):
        ledger.add_chat(a, a.request, n)
    bad = ledger.check()
    return {"id": check_id, "outcome": "passed", "detail": "", "evidence": {"invariants": ledger.summary(bad)}}


def cells(records_by_feature: dict[str, list[dict]]) -> dict[str, dict]:
    matrix = load()
    row = next(r for r in matrix.rows if r.id == ROW)
    records = inference.Records(run_id="t", checks={(ROW, f): {c["id"]: c for c in cs}
                                                    for f, cs in records_by_feature.items()})
    return {f: inference.cell(matrix, records, row, f) for f in records_by_feature}


def test_one_loop_is_evidence_on_its_cell_not_a_failure():
    answers = [healthy(i) for i in range(40)] + [looping(40)]
    rec = check_record("test_tools_still_parsed", answers)
    tally = rec["evidence"]["invariants"]["degeneration"]
    assert (tally["counted"], tally["degenerate"]) == (41, 1)
    assert tally["worst"][0]["request_id"] == "chatcmpl-40" and tally["worst"][0]["answer"] == 40
    out = cells({"tool_calls": [rec], "accuracy_smoke": [check_record("test_gsm8k[think]",
                                                                       [healthy(i) for i in range(100)])]})
    ev = out["tool_calls"]["evidence"]["degeneration"]["cell"]
    assert ev["degenerate"] == 1 and ev["worst"][0]["check"] == "test_tools_still_parsed"
    assert out["tool_calls"]["status"] != FAILED and out["accuracy_smoke"]["status"] != FAILED
    row = out["accuracy_smoke"]["evidence"]["degeneration"]["row"]
    assert (row["counted"], row["degenerate"]) == (141, 1) and row["worst"][0]["check"].startswith("tool_calls::")


def test_a_high_rate_fails_the_cell_naming_the_worst_answers():
    answers = [looping(i) if i % 10 == 0 else healthy(i) for i in range(600)]
    out = cells({"tool_calls": [check_record("test_x", answers)]})["tool_calls"]
    assert out["status"] == FAILED
    failed = {c["id"]: c for c in out["checks"] if c["outcome"] == "failed"}
    assert "degeneration[cell]" in failed and "chatcmpl-0" in failed["degeneration[cell]"]["detail"]
    # with no accuracy_smoke checks, the row-wide decision sits on the cell with the most answers
    assert "degeneration[row]" in failed


def test_a_diffuse_rate_fails_the_row_on_accuracy_smoke():
    feats = ["reasoning_split", "tool_calls", "non_think", "accuracy_smoke"]
    by = {f: [check_record(f"test_{f}", [looping(i) if i % 25 == 0 else healthy(i) for i in range(200)])]
          for f in feats}
    out = cells(by)
    assert [f for f in feats if any(c["id"] == "degeneration[cell]" for c in out[f]["checks"])] == []
    assert [c["id"] for c in out["accuracy_smoke"]["checks"] if c["outcome"] == "failed"] == ["degeneration[row]"]
    assert out["accuracy_smoke"]["status"] == FAILED and out["tool_calls"]["status"] != FAILED


def test_small_max_tokens_and_unscripted_rows_do_not_count():
    cut = [ChatResult(stream=False, content="x" * 16, finish_reason="length", request=request("q", max_tokens=16),
                      usage={"prompt_tokens": 5, "completion_tokens": 16, "total_tokens": 21}) for _ in range(300)]
    tally = check_record("test_cut", cut)["evidence"]["invariants"]["degeneration"]
    assert tally["counted"] == 0 and tally["apart"]["degenerate"] == 300
    waived = check_record("test_random_weights", [looping(i) for i in range(300)], waive=True)
    tally = waived["evidence"]["invariants"]["degeneration"]
    assert tally["waived"] == 300 and tally["counted"] == 0
    assert cells({"tool_calls": [waived]})["tool_calls"]["status"] != FAILED


# ---- the planted fault --------------------------------------------------------------------------------------
def test_greedy_loops_draws_its_share_and_asks_for_greedy_decoding():
    f = FAULTS["greedy_loops"]
    bodies = [request(f"question {i}") for i in range(4000)]
    share = sum(f.applies(b) for b in bodies) / len(bodies)
    assert abs(share - GREEDY_SHARE) < 0.03
    same = request("the same question")
    assert 0 < sum(drawn(same) for _ in range(400)) < 400  # a repeated request draws again
    assert f.request("/v1/chat/completions", request("q"))["temperature"] == 0


def gsm8k_run(fault: bool, n: int = 800, seed: int = 7) -> tuple[list[bool], list[ChatResult]]:
    """A thinking-on GSM8K check against the stand-in: a request the fault draws is decoded greedily
    (the stand-in's own greedy loop decides whether it loops to max_tokens), else sampled (3% wrong)."""
    rng = random.Random(seed)
    outcomes, answers = [], []
    for i in range(n):
        q = f"Question {i}: a farmer has {i + 3} cows and buys {i % 7 + 2} more. How many cows now?"
        body = request(q)
        units = base_units(q, "gsm8k")
        sentences = reasoning_sentences(units, words(q), rank=0, key=q, rng=rng)
        loop = greedy_loop(sentences, json.dumps(body)) if fault and drawn(body) else None
        if loop:
            text = (loop[0] + loop[1] * MAX)[:MAX]
            res = ChatResult(stream=False, reasoning=text, content=None, finish_reason="length",
                             usage={"prompt_tokens": 40, "completion_tokens": MAX, "total_tokens": 40 + MAX}, request=body)
            outcomes.append(False)
        else:
            res = ChatResult(stream=False, reasoning=" ".join(sentences), content="The answer is 9.", finish_reason="stop",
                             usage={"prompt_tokens": 40, "completion_tokens": 300, "total_tokens": 340}, request=body)
            outcomes.append(rng.random() > 0.03)
        answers.append(res)
    return outcomes, answers


def test_planted_loops_fail_the_decision_while_the_accuracy_gate_would_pass():
    row = next(r for r in load().rows if r.id == ROW)
    rule = policy.accuracy_rule(row, True, True, 800, 800)
    outcomes, answers = gsm8k_run(fault=True)
    loops = sum(a.finish_reason == "length" for a in answers) / len(answers)
    assert 0.03 < loops < 0.08
    assert sum(outcomes) / len(outcomes) > rule.fail_bound and decide(rule, outcomes).status != FAILED
    out = cells({"accuracy_smoke": [check_record("test_gsm8k[think]", answers)]})["accuracy_smoke"]
    assert out["status"] == FAILED
    assert any(c["id"] == "degeneration[row]" and "loop" in c["detail"] for c in out["checks"])
    conforming = cells({"accuracy_smoke": [check_record("test_gsm8k[think]", gsm8k_run(fault=False)[1])]})
    assert conforming["accuracy_smoke"]["status"] != FAILED
    assert conforming["accuracy_smoke"]["evidence"]["degeneration"]["row"]["degenerate"] == 0
