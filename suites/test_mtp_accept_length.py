"""mtp_accept_length: speculative decoding accepts what the row claims, read from the engine itself.

The engine's adapter measures (``accept_length_meter``): vLLM scrapes ``/metrics`` around each
window of a natural workload (mean accept length = 1 + Δaccepted / Δdrafts, the bonus token
included; per-position rate = Δper_pos / Δdrafts); SGLang reads per request
``completion_tokens / meta_info.spec_verify_ct`` (``return_meta_info``). The values feed a
sequential decision against the row's minimum (``glmverify.policy.mtp_rule``), so a verdict
carries its interval and error rates. A row that claims MTP but exposes no speculative statistics
fails; a row launched with its engine's simulated-acceptance switch (SGLang's
``SGLANG_SIMULATE_ACC_LEN``, benchmark mode) never verifies.

A good mean can hide two field defects, so two more checks decide on what the mean averages away:

* per draft position (``test_accept_per_position``; vLLM PR #46075: acceptance collapsing after
  position 0 while the mean still passes on a short run): position k can accept only after
  position k - 1 did, so the counters must be consistent (positions sum to the accepted tokens,
  never rising with k) and each position's acceptance given the previous one is decided against a
  floor derived from the row's minimum (``policy.position_rules``);
* over time (``test_accept_over_time``; vllm-ascend #13523: acceptance decaying toward 1.0 over
  minutes, a scrape at the start passing): ``policy.MTP_TREND_WINDOWS`` windows across the run,
  a one-sided Kendall's tau of window accept length on window index with the fitted (Theil-Sen)
  decline as effect size, and the last windows' mean against the minimum
  (``policy.trend_decision``); the trend is in the evidence either way. When nothing fails and
  the last windows decide nothing, the check ends inconclusive (never passed for lack of evidence).
"""
from __future__ import annotations

import dataclasses

import pytest

from glmverify import policy
from glmverify.adapters import adapter_for_row
from glmverify.checks import Failure, Inconclusive, conclude, expect
from glmverify.invariants import code_of
from glmverify.verdicts import decide, run_sequential

pytestmark = pytest.mark.feature("mtp_accept_length")

WORKLOAD = [
    "Repeat the following list exactly five times: alpha beta gamma delta epsilon zeta eta theta.",
    "Count from one to forty in words, separated by commas.",
    "Write the multiplication table of 7 from 7x1 to 7x12, one line each.",
    "Copy this sentence three times: the quick brown fox jumps over the lazy dog.",
] * 4
# bounds decode time per window on a shared machine; acceptance is a rate over whatever is generated
WORKLOAD_MAX_TOKENS = 512


def _meter(engine):
    """The row's MTP claim checked, and the engine's meter: (meter, minimum, draft tokens claimed)."""
    row = engine.row
    minimum = row.expect.get("min_accept_length")
    drafts_claimed = row.expect.get("draft_tokens")
    expect(minimum is not None and drafts_claimed, f"row {row.id} claims no MTP (expect.draft_tokens/min_accept_length unset)",
           "mtp.not_claimed")
    why = (((engine.evidence or {}).get("observed") or {}).get("unobserved") or {}).get("speculative decoding")
    if why:
        # the counters cannot be seen here: neither verified on the claim nor failed for the gateway
        raise Inconclusive(f"INCONCLUSIVE: speculative decoding is unobserved on this endpoint ({why}); "
                           "give --metrics-url URL (the engine's /metrics) to measure the accept length",
                           "mtp.unobserved", why=why)
    simulated = adapter_for_row(row).simulated_acceptance_env
    expect(simulated is None or simulated not in row.launch.env,
           f"{simulated} is set on this row: accept length is simulated (benchmark mode), never verified",
           "mtp.simulated", env=simulated)
    return _Meter(engine.adapter.accept_length_meter(engine.client, drafts_claimed, policy.MTP_WINDOW)), minimum, drafts_claimed


class _Meter:
    """The adapter's meter, its failures coded by where they come from: no speculative counters at
    the start (``mtp.no_spec_counters``), a defect of one measurement (``mtp.measurement``), counters
    that did not move over the workload (``summary``'s problems: ``mtp.counters_frozen``, in the check)."""

    def __init__(self, meter):
        self._m = meter

    def __getattr__(self, name):
        return getattr(self._m, name)

    def begin(self) -> None:
        try:
            self._m.begin()
        except AssertionError as exc:  # the meter's only failure at the start: no speculative counters
            raise Failure(str(exc), "mtp.no_spec_counters", source=self._m.source) from None


def _measured(m) -> None:
    for problem in m.problems:
        expect(False, problem, "mtp.measurement", codes=[code_of(problem)])


def _windows(meter, chat, n: int, records: list[dict], start: int = 0) -> list[float]:
    """``n`` values of the workload (windows, or requests where the engine counts per request)."""
    values: list[float] = []
    for i in range(n):
        at = (start + i) * meter.requests_per_value
        m = meter.measure(chat, [WORKLOAD[(at + j) % len(WORKLOAD)] for j in range(meter.requests_per_value)],
                          WORKLOAD_MAX_TOKENS)
        records.extend(m.records)
        _measured(m)
        values += m.values
    return values


@pytest.mark.behaviour
def test_accept_length(engine, chat_nonstream, evidence):
    """Windows of a natural workload (no ``ignore_eos``: the guides warn synthetic decode
    under-reports acceptance); one accept length per window from the counters' deltas (vLLM) or
    per request (SGLang ``meta_info``); the decision is on their mean (``policy.mtp_rule``), with
    the per-position acceptance and every window in the evidence."""
    row = engine.row
    meter, minimum, drafts_claimed = _meter(engine)
    adapter = engine.adapter
    rule = policy.mtp_rule(row, adapter.shows_rendered_prompt)
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
            _measured(m)
            values += m.values
        return values, k * meter.requests_per_value

    decision, _ = run_sequential(rule, draw)
    summary, problems = meter.summary(records)
    evidence.add(source=meter.source, threshold=minimum, windows=records[:meter.evidence_records], **summary)
    for problem in problems:  # the meter's summary reports one thing: counters that did not move
        expect(False, problem, "mtp.counters_frozen", source=meter.source, drafts=summary.get("drafts"))
    conclude(decision, evidence=evidence, context=meter.context(records), code="mtp.accept_length_below_minimum")


@pytest.mark.behaviour
def test_accept_per_position(engine, chat_nonstream, evidence):
    """Per-position acceptance over one look of the workload: consistent counters, then each
    position k >= 1 given k - 1 against the floor (``policy.position_rules``, Bonferroni over
    positions). Engines that count no positions (SGLang's ``meta_info``) skip with the reason."""
    row = engine.row
    meter, minimum, drafts_claimed = _meter(engine)
    meter.begin()
    records: list[dict] = []
    values = _windows(meter, chat_nonstream, policy.MTP_LOOKS[0], records)
    counts = meter.positions()
    if counts is None:
        pytest.skip(f"{row.engine}: the engine reports no per-position acceptance ({meter.source})")
    drafts, accepted, per = counts["drafts"], counts["accepted"], counts["per_position"]
    ks = sorted(per)
    rates = [round(per[k] / drafts, 4) if drafts else None for k in ks]
    conditional = [round(per[k] / per[k - 1], 4) if per.get(k - 1) else None for k in ks[1:]]
    evidence.add(source=meter.source, drafts=drafts, accepted=accepted, per_position_accepted=[per[k] for k in ks],
                 per_position=rates, conditional=conditional, windows=records, mean_accept_length=(
                     round(1 + accepted / drafts, 4) if drafts else None), window_values=values)
    expect(drafts > 0, f"spec-decode counters did not move over the workload (drafts {drafts}): no per-position acceptance",
           "mtp.counters_frozen", source=meter.source, drafts=drafts)
    expect(len(ks) == drafts_claimed, f"{len(ks)} draft positions counted, the row claims {drafts_claimed} draft tokens",
           "mtp.draft_length_differs", counted=len(ks), claimed=drafts_claimed)
    expect(abs(sum(per.values()) - accepted) <= max(1.0, 0.005 * accepted),
           f"per-position counters inconsistent with the mean: positions sum to {sum(per.values()):g}, "
           f"accepted tokens {accepted:g}", "mtp.counters_inconsistent", positions_sum=sum(per.values()), accepted=accepted)
    for k in ks[1:]:
        expect(per[k] <= per[k - 1] * 1.005 + 1,
               f"per-position counters inconsistent: position {k} accepted {per[k]:g} > position {k - 1} {per[k - 1]:g} "
               f"(a position accepts only after the previous one)", "mtp.counters_inconsistent", position=k)
    rendered = engine.adapter.shows_rendered_prompt
    trials = {k: int(round(per[k - 1])) for k in ks[1:]}
    decisions = []
    for rule in policy.position_rules(row, rendered, len(ks), trials):
        k = int(rule.name.split(":")[1].rstrip("]"))
        hits = int(round(per[k]))
        decisions.append(decide(rule, [True] * hits + [False] * max(0, trials[k] - hits)))
    collapsed = [d for d in decisions if d.status == "failed"]
    mean = 1 + accepted / drafts
    context = (f"acceptance collapses after draft position {int(collapsed[0].rule.split(':')[1].rstrip(']')) - 1}: "
               f"per-position rates {rates}, conditional {conditional}, while the mean accept length {mean:.2f} "
               f"{'still meets' if mean >= minimum else 'is below'} the minimum {minimum}"
               if collapsed else f"per-position rates {rates} over {drafts:g} drafts")
    conclude(*decisions, evidence=evidence, context=context, code="mtp.position_collapse")


@pytest.mark.behaviour
def test_accept_over_time(engine, chat_nonstream, evidence):
    """``policy.MTP_TREND_WINDOWS`` windows across the run (one look: a trend needs the whole
    run), then ``policy.trend_decision``: a decay (Kendall's tau, one-sided, and a fitted decline of
    at least ``policy.MTP_DECAY_EFFECT``) or last windows confidently below the minimum fail; last
    windows neither confidently above nor below the minimum end it inconclusive."""
    row = engine.row
    meter, minimum, _ = _meter(engine)
    meter.begin()
    records: list[dict] = []
    values = _windows(meter, chat_nonstream, policy.MTP_TREND_WINDOWS, records)
    trend = policy.trend_decision(row, engine.adapter.shows_rendered_prompt, values)
    evidence.add(source=meter.source, threshold=minimum, trend=trend, windows=records[:meter.evidence_records])
    # policy.trend_decision's problems, in its order: too few windows, a decay, last windows below the minimum
    if trend["problems"]:
        code = ("mtp.too_few_windows" if "last" not in trend else
                "mtp.accept_decay" if trend.get("decay") == "failed" else "mtp.last_windows_below_minimum")
        raise Failure("; ".join(trend["problems"]), code, windows=trend["windows"], decay=trend.get("decay"),
                      kendall_tau=trend.get("kendall_tau"), decline=trend.get("decline_over_run"),
                      last=(trend.get("last") or {}).get("estimate"))
    if trend["status"] != "verified":
        raise Inconclusive(f"INCONCLUSIVE: accept length of the last {policy.MTP_TREND_LAST} windows undecided "
                           f"against the minimum {minimum}: {trend['last']['estimate']} "
                           f"(interval {trend['last']['interval']}); no decay found", "mtp.last_windows_undecided")
