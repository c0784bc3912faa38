"""mtp_accept_length: speculative decoding accepts what the row claims, read from the engine itself.

vLLM: scrape ``/metrics`` around each window of a natural workload; mean accept length =
1 + Δaccepted / Δdrafts (the bonus token included), per-position rate = Δper_pos / Δdrafts.
SGLang: per request, ``completion_tokens / meta_info.spec_verify_ct`` (``return_meta_info``).
The window (or request) values feed a sequential decision against the row's minimum
(``glmverify.policy.mtp_rule``), so a verdict carries its interval and error rates.
A row that claims MTP but exposes no speculative counters fails; a SGLang row launched with
``SGLANG_SIMULATE_ACC_LEN`` (benchmark mode, faked acceptance) never verifies.
"""
from __future__ import annotations

import dataclasses
import re

import pytest

from glmverify import policy
from glmverify.checks import conclude, expect, no_problems
from glmverify.verdicts import run_sequential

pytestmark = pytest.mark.feature("mtp_accept_length")

VLLM_DRAFTS = "vllm:spec_decode_num_drafts"
VLLM_ACCEPTED = "vllm:spec_decode_num_accepted_tokens"
VLLM_DRAFT_TOKENS = "vllm:spec_decode_num_draft_tokens"
VLLM_PER_POS = "vllm:spec_decode_num_accepted_tokens_per_pos"

WORKLOAD = [
    "Repeat the following list exactly five times: alpha beta gamma delta epsilon zeta eta theta.",
    "Count from one to forty in words, separated by commas.",
    "Write the multiplication table of 7 from 7x1 to 7x12, one line each.",
    "Copy this sentence three times: the quick brown fox jumps over the lazy dog.",
] * 4
# bounds decode time per window on a shared machine; acceptance is a rate over whatever is generated
WORKLOAD_MAX_TOKENS = 512


def counter(metrics: dict[str, float], name: str) -> float | None:
    """Sum of a counter over all label sets (names may or may not carry the _total suffix)."""
    total, found = 0.0, False
    for key, value in metrics.items():
        base = key.split("{", 1)[0]
        if base in (name, name + "_total"):
            total += value
            found = True
    return total if found else None


def per_position(metrics: dict[str, float]) -> dict[int, float]:
    out: dict[int, float] = {}
    for key, value in metrics.items():
        base = key.split("{", 1)[0]
        if base in (VLLM_PER_POS, VLLM_PER_POS + "_total"):
            m = re.search(r'position="(\d+)"', key)
            if m:
                out[int(m.group(1))] = out.get(int(m.group(1)), 0.0) + value
    return out


def vllm_accept_length(before: dict, after: dict) -> dict:
    d_drafts = (counter(after, VLLM_DRAFTS) or 0) - (counter(before, VLLM_DRAFTS) or 0)
    d_acc = (counter(after, VLLM_ACCEPTED) or 0) - (counter(before, VLLM_ACCEPTED) or 0)
    d_tok = (counter(after, VLLM_DRAFT_TOKENS) or 0) - (counter(before, VLLM_DRAFT_TOKENS) or 0)
    pb, pa = per_position(before), per_position(after)
    rates = [round((pa.get(p, 0) - pb.get(p, 0)) / d_drafts, 4) if d_drafts else None for p in sorted(pa)]
    return {"drafts": d_drafts, "accepted": d_acc, "draft_tokens": d_tok,
            "accept_length": round(1 + d_acc / d_drafts, 4) if d_drafts > 0 else None,
            "per_position": rates}


def _sglang_request_accept_lengths(client, prompts: list[str], max_tokens: int) -> list[float]:
    """SGLang: per request, accept length = completion_tokens / spec_verify_ct (``return_meta_info``)."""
    out = []
    with client.http() as h:
        for p in prompts:
            r = h.post("/v1/chat/completions", json={"model": client.model, "max_tokens": max_tokens, "return_meta_info": True,
                                                     "messages": [{"role": "user", "content": p}]})
            expect(r.status_code == 200, f"SGLang chat completion with return_meta_info: HTTP {r.status_code}")
            body = r.json()
            meta = (body.get("choices") or [{}])[0].get("meta_info") or {}
            verify = meta.get("spec_verify_ct")
            done = (body.get("usage") or {}).get("completion_tokens")
            if isinstance(verify, (int, float)) and verify > 0 and isinstance(done, int):
                out.append(done / verify)
    return out


def test_accept_length(engine, chat_nonstream, evidence):
    """Windows of a natural workload (no ``ignore_eos``: the guides warn synthetic decode
    under-reports acceptance); one accept length per window from the counters' deltas (vLLM) or
    per request (SGLang ``meta_info``); the decision is on their mean (``policy.mtp_rule``), with
    the per-position acceptance and every window in the evidence."""
    row = engine.row
    minimum = row.expect.get("min_accept_length")
    drafts_claimed = row.expect.get("draft_tokens")
    expect(minimum is not None and drafts_claimed, f"row {row.id} claims no MTP (expect.draft_tokens/min_accept_length unset)")
    env = row.launch.get("env", {})
    if row.engine == "sglang":
        expect("SGLANG_SIMULATE_ACC_LEN" not in env,
               "SGLANG_SIMULATE_ACC_LEN is set on this row: accept length is simulated (benchmark mode), never verified")
    client = engine.client
    rule = policy.mtp_rule(row, policy.rendered_prompt(client.engine))
    windows: list[dict] = []
    cursor = 0

    def prompts(n: int) -> list[str]:
        nonlocal cursor
        out = [WORKLOAD[(cursor + i) % len(WORKLOAD)] for i in range(n)]
        cursor += n
        return out

    if client.engine == "sglang":
        def draw(k: int):
            values = _sglang_request_accept_lengths(client, prompts(k), WORKLOAD_MAX_TOKENS)
            windows.extend({"accept_length": round(v, 4)} for v in values)
            return values, k

        decision, _ = run_sequential(dataclasses.replace(rule, quantity="mean accept length per request "
                                                         "(completion_tokens / spec_verify_ct)"), draw)
        evidence.add(source="meta_info", windows=windows[:64], threshold=minimum)
        conclude(decision, evidence=evidence, context="SGLang speculative decoding")
        return
    first = client.metrics()
    expect(counter(first, VLLM_DRAFTS) is not None,
           f"no {VLLM_DRAFTS} counter in /metrics: speculative decoding is off on a row that claims MTP")

    def draw(k: int):
        values = []
        for _ in range(k):
            before = client.metrics()
            results = chat_nonstream.many({"messages": [{"role": "user", "content": p}], "max_tokens": WORKLOAD_MAX_TOKENS}
                                          for p in prompts(policy.MTP_WINDOW))
            after = client.metrics()
            for r in results:
                no_problems(r)
            stats = vllm_accept_length(before, after)
            stats["completion_tokens"] = sum(r.completion_tokens or 0 for r in results)
            windows.append(stats)
            if stats["drafts"] > 0:
                expect(stats["accept_length"] <= drafts_claimed + 1,
                       f"accept length {stats['accept_length']} exceeds draft tokens + 1 = {drafts_claimed + 1}: "
                       f"counters are inconsistent ({stats})")
                values.append(stats["accept_length"])
        return values, k * policy.MTP_WINDOW

    decision, _ = run_sequential(rule, draw)
    overall = vllm_accept_length(first, client.metrics())
    completion = sum(w["completion_tokens"] for w in windows)
    evidence.add(source="/metrics", threshold=minimum, completion_tokens=completion, tokens_spent=completion, windows=windows[:32],
                 trend=[w.get("accept_length") for w in windows], **overall)
    expect(overall["drafts"] > 0, f"spec-decode counters did not move over {completion} generated tokens "
                                  f"(frozen or stale metrics): {overall}")
    conclude(decision, evidence=evidence, context=f"over {len(windows)} windows of {policy.MTP_WINDOW} requests")
