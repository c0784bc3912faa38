"""mtp_accept_length: speculative decoding accepts what the row claims, read from the engine itself.

vLLM: scrape ``/metrics`` before and after a decode-heavy workload; mean accept length =
1 + Δaccepted / Δdrafts (the bonus token included), per-position rate = Δper_pos / Δdrafts.
SGLang: ``/server_info`` ``internal_states[].avg_spec_accept_length`` (cumulative since start).
A row that claims MTP but exposes no speculative counters fails; a SGLang row launched with
``SGLANG_SIMULATE_ACC_LEN`` (benchmark mode, faked acceptance) never verifies.
"""
from __future__ import annotations

import re

import pytest

from glmverify.checks import expect

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


def test_accept_length(engine, chat_nonstream, evidence):
    row = engine.row
    minimum = row.expect.get("min_accept_length")
    drafts_claimed = row.expect.get("draft_tokens")
    expect(minimum is not None and drafts_claimed, f"row {row.id} claims no MTP (expect.draft_tokens/min_accept_length unset)")
    env = row.launch.get("env", {})
    if row.engine == "sglang":
        expect("SGLANG_SIMULATE_ACC_LEN" not in env,
               "SGLANG_SIMULATE_ACC_LEN is set on this row: accept length is simulated (benchmark mode), never verified")
    client = engine.client
    if client.engine == "sglang":
        chat_nonstream.many({"messages": [{"role": "user", "content": p}], "max_tokens": 256} for p in WORKLOAD)
        info = client.get_json("/server_info")
        states = info.get("internal_states") or [info]
        values = [s.get("avg_spec_accept_length") for s in states if isinstance(s, dict)]
        values = [v for v in values if isinstance(v, (int, float))]
        expect(values, f"no avg_spec_accept_length in /server_info: speculative decoding is off or unreported")
        accept = sum(values) / len(values)
        evidence.add(source="/server_info", accept_length=accept, threshold=minimum)
    else:
        before = client.metrics()
        expect(counter(before, VLLM_DRAFTS) is not None,
               f"no {VLLM_DRAFTS} counter in /metrics: speculative decoding is off on a row that claims MTP")
        results = chat_nonstream.many({"messages": [{"role": "user", "content": p}], "max_tokens": 256,
                                       "ignore_eos": True} for p in WORKLOAD)
        after = client.metrics()
        stats = vllm_accept_length(before, after)
        completion = sum(r.completion_tokens or 0 for r in results)
        evidence.add(source="/metrics", threshold=minimum, completion_tokens=completion, **stats)
        expect(stats["drafts"] > 0, f"spec-decode counters did not move over {completion} generated tokens "
                                    f"(frozen or stale metrics): {stats}")
        accept = stats["accept_length"]
        expect(accept is not None and accept <= drafts_claimed + 1,
               f"accept length {accept} exceeds draft tokens + 1 = {drafts_claimed + 1}: counters are inconsistent")
    expect(accept >= minimum, f"mean accept length {accept:.3f} below the row's minimum {minimum}")
