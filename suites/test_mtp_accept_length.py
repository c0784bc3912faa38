"""mtp_accept_length: speculative decoding accepts what the row claims, read from the engine itself.

The engine's adapter measures (``accept_length_meter``): vLLM scrapes ``/metrics`` around each
window of a natural workload (mean accept length = 1 + Δaccepted / Δdrafts, the bonus token
included; per-position rate = Δper_pos / Δdrafts); SGLang reads per request
``completion_tokens / meta_info.spec_verify_ct`` (``return_meta_info``). The values feed a
sequential decision against the row's minimum (``glmverify.policy.mtp_rule``), so a verdict
carries its interval and error rates. A row that claims MTP but exposes no speculative statistics
fails; a row launched with its engine's simulated-acceptance switch (SGLang's
``SGLANG_SIMULATE_ACC_LEN``, benchmark mode) never verifies.
"""
from __future__ import annotations

import dataclasses

import pytest

from glmverify import policy
from glmverify.adapters import adapter_for_row
from glmverify.checks import conclude, expect
from glmverify.verdicts import run_sequential

pytestmark = pytest.mark.feature("mtp_accept_length")

WORKLOAD = [
    "Repeat the following list exactly five times: alpha beta gamma delta epsilon zeta eta theta.",
    "Count from one to forty in words, separated by commas.",
    "Write the multiplication table of 7 from 7x1 to 7x12, one line each.",
    "Copy this sentence three times: the quick brown fox jumps over the lazy dog.",
] * 4
# bounds decode time per window on a shared machine; acceptance is a rate over whatever is generated
WORKLOAD_MAX_TOKENS = 512


def test_accept_length(engine, chat_nonstream, evidence):
    """Windows of a natural workload (no ``ignore_eos``: the guides warn synthetic decode
    under-reports acceptance); one accept length per window from the counters' deltas (vLLM) or
    per request (SGLang ``meta_info``); the decision is on their mean (``policy.mtp_rule``), with
    the per-position acceptance and every window in the evidence."""
    row = engine.row
    minimum = row.expect.get("min_accept_length")
    drafts_claimed = row.expect.get("draft_tokens")
    expect(minimum is not None and drafts_claimed, f"row {row.id} claims no MTP (expect.draft_tokens/min_accept_length unset)")
    simulated = adapter_for_row(row).simulated_acceptance_env
    expect(simulated is None or simulated not in row.launch.get("env", {}),
           f"{simulated} is set on this row: accept length is simulated (benchmark mode), never verified")
    adapter = engine.adapter
    rule = policy.mtp_rule(row, adapter.shows_rendered_prompt)
    meter = adapter.accept_length_meter(engine.client, drafts_claimed, policy.MTP_WINDOW)
    if meter.quantity:
        rule = dataclasses.replace(rule, quantity=meter.quantity)
    records: list[dict] = []
    cursor = 0

    def prompts(n: int) -> list[str]:
        nonlocal cursor
        out = [WORKLOAD[(cursor + i) % len(WORKLOAD)] for i in range(n)]
        cursor += n
        return out

    meter.begin()

    def draw(k: int):
        values = []
        for _ in range(k):
            m = meter.measure(chat_nonstream, prompts(meter.requests_per_value), WORKLOAD_MAX_TOKENS)
            records.extend(m.records)
            for problem in m.problems:
                expect(False, problem)
            values += m.values
        return values, k * meter.requests_per_value

    decision, _ = run_sequential(rule, draw)
    summary, problems = meter.summary(records)
    evidence.add(source=meter.source, threshold=minimum, windows=records[:meter.evidence_records], **summary)
    for problem in problems:
        expect(False, problem)
    conclude(decision, evidence=evidence, context=meter.context(records))
