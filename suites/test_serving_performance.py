"""serving_performance: the row's speed claim measured with ``vllm bench serve``, cross-checked
against the engine's own counters, and decided against the signed baseline.

One measurement serves three checks (the ``measured`` fixture, once per row; the loop is
``glmverify.perf_measurement.Measurement``): per concurrency level of the row's shape
(``glmverify.performance.shape_of``), warm-up requests in a client run of their own (excluded:
the counters are read after it), the cache flushed before every window where the engine allows
it, then windows of the shape, each one client run between two ``/metrics`` scrapes, drawn look by
look until both regression rules of the level decide (a window the counters do not vouch for
stops the level).

* ``test_client_report``: every window's report complete (TTFT, TPOT, ITL, E2E at mean, median
  and P99; throughput) with every request completed and none failed;
* ``test_counters_agree``: each window's client figures within ``performance.TOLERANCE`` of the
  engine's counters (requests, output tokens, mean TTFT, TPOT, E2E); a disagreement fails with both;
* ``test_no_regression``: per level, TPOT (E2E latency where the row's shape says ``latency: e2el``)
  and output throughput against the baseline (on the CPU reference: this host's, recorded by
  ``make perf-baseline`` in an earlier launch)
  (``performance.regression_rules``): failed beyond the effect, inconclusive when the windows'
  noise allows no decision or no baseline applies (the reason says which).

Where the row speculates and has a no-speculation twin in the matrix, the speed-up between the two
is decided on the run's document once both are measured (``glmverify.perf_mtp``: speculation must not
be slower for a single user), not by a check of this module.

A row whose guides make no speed claim skips every check (its cell stays ``not_run`` with the
declared reason). So does a row with nothing to compare with (``perf_measurement.unmeasured``: no
baseline recorded for this host and no published figure), unless the run records a baseline
(``make perf-baseline``). Both skip in each check's own call phase, never in the shared fixture:
a setup-phase skip reads as a launch gate, and the run would count the cell undecided (exit 6).

Failure codes (``glmverify/failure_codes.py``): ``serving_performance.requests_failed``,
``.no_tokens_measured``, ``.counters_disagree`` (fields: figures, windows), ``.no_counters``,
``.regressed_against_baseline`` / ``.below_guide`` (by what the decision was held to; inconclusive
with the same code when the windows' noise allows no decision), ``.unvouched_windows`` (inconclusive:
no decision on windows the counters do not vouch for) and ``.no_decision`` (a harness gap).
"""
from __future__ import annotations

import os

import pytest

from glmverify import benchclient, gsm8k, performance, policy
from glmverify.checks import Inconclusive, conclude, expect
from glmverify.perf_measurement import RECORD_ENV, Measurement, unmeasured, write_prompts

pytestmark = pytest.mark.feature(performance.FEATURE)
HELD_TO_CODES = {"baseline": "serving_performance.regressed_against_baseline",
                 "guide": "serving_performance.below_guide"}


def held_to(decision) -> str:
    """The code of a regression decision: against the guide's published figure, or the signed baseline."""
    return HELD_TO_CODES["guide" if decision.basis.startswith("published figure") else "baseline"]


@pytest.fixture(scope="module")
def measured(engine, options):
    """The measurement, or the reason there is none (each check skips with it in its own call phase)."""
    row = engine.row
    shape = performance.shape_of(row)
    if shape is None:
        return f"{row.id}: {performance.NO_CLAIM}"
    data, host = performance.load_baseline(), performance.host_fingerprint()
    recording = os.environ.get(RECORD_ENV) == "1"
    why = unmeasured(row, shape, data, host, recording=recording)
    if why:
        return f"{row.id}: {why}"
    results = options.results_dir / "performance" / row.id
    results.mkdir(parents=True, exist_ok=True)
    base_family = len(policy.family(row, engine.adapter.shows_rendered_prompt))
    alpha = performance.perf_alpha(row, 2 * len(shape.concurrency), base_family)
    # one client process for the whole measurement: vLLM's import costs tens of seconds on a busy CPU
    prompts = None
    if shape.workload == "gsm8k":  # a natural workload (the MTP speed-up is decided on it): GSM8K's questions
        prompts = write_prompts(gsm8k.load(options.gsm8k, options.gsm8k_sha256), results / "gsm8k-prompts.jsonl")
    with benchclient.BenchSession(results / "bench.log") as session:
        m = Measurement(engine, shape, results, session, benchclient.client_version(), prompts=prompts)
        m.host, m.recording = host, recording
        for c in shape.concurrency:
            means, basis = performance.baseline_for(row, shape, c, data, host)
            rules = performance.regression_rules(row, shape, c, alpha, basis) if means else []
            if not means:
                m.missing[c] = basis
            m.measure_level(c, rules, (means, basis) if means else None)
    return m


def measurement(measured) -> Measurement:
    if isinstance(measured, str):
        pytest.skip(measured)
    return measured


def test_client_report(measured, evidence):
    """Every window: the report has every figure (parse_report) and every request completed."""
    measured = measurement(measured)
    evidence.add(**measured.evidence())
    for c, level in measured.levels.items():
        for i, w in enumerate(level["windows"]):
            r = w["report"]
            expect(r.failed == 0 and r.completed == measured.shape.num_prompts,
                   f"concurrency {c} window {i}: {r.completed} of {measured.shape.num_prompts} requests completed, "
                   f"{r.failed} failed", "serving_performance.requests_failed", concurrency=c, window=i,
                   completed=r.completed, failed=r.failed)
            expect(r.output_throughput > 0 and r.latency["tpot"]["mean"] > 0,
                   f"concurrency {c} window {i}: no tokens measured (throughput {r.output_throughput}, "
                   f"TPOT {r.latency['tpot']['mean']})", "serving_performance.no_tokens_measured", concurrency=c, window=i)


def test_counters_agree(measured, evidence):
    """The client's figures within tolerance of the engine's own counters, on every level: a level
    fails when its disagreement reproduces (``perf_measurement``: two windows in a row, or more than
    ``SET_ASIDE_MAX``); a lone disagreeing window is set aside, shown with both figures, and passes."""
    measured = measurement(measured)
    tables, problems, figures, windows, set_aside = {}, [], set(), [], {}
    for c, level in measured.levels.items():
        for i, w in enumerate(level["windows"]):
            tables[f"c{c}-w{i}"] = w["cross_check"]
            if w["problems"] and not level.get("stopped"):
                set_aside[f"c{c}-w{i}"] = "; ".join(w["problems"])
                continue
            problems += [f"concurrency {c} window {i}: {p}" for p in w["problems"]]
            figures |= {p.split(":", 1)[0] for p in w["problems"]}
            windows += [f"c{c}-w{i}"] if w["problems"] else []
    evidence.add(cross_check=tables, tolerance={k: list(v) for k, v in {**performance.TOLERANCE, **measured.shape.tolerance}.items()})
    if set_aside:
        evidence.add(observed={"windows set aside (a lone disagreement, not decided on)": set_aside})
    expect(not problems, "the benchmark client and the engine's counters disagree, again in the next window: "
           + "; ".join(problems[:6]), "serving_performance.counters_disagree", figures=sorted(figures), windows=windows)


def test_no_regression(measured, evidence):
    """Per level, TPOT and output throughput against the baseline (sequential over windows)."""
    measured = measurement(measured)
    decisions = [d for level in measured.levels.values() for d in level["decisions"]]
    evidence.add(baselines={str(c): (lv["baseline"][1] if lv["baseline"] else measured.missing.get(c))
                            for c, lv in measured.levels.items()},
                 not_compared={str(c): why for c, why in measured.missing.items()})
    stopped = {c: lv["stopped"] for c, lv in measured.levels.items() if lv.get("stopped")}
    if stopped:  # never decide on windows the engine does not vouch for (test_counters_agree fails them)
        evidence.add(decisions=[])
        raise Inconclusive("INCONCLUSIVE: no decision on windows the engine's counters do not vouch for: " + "; ".join(
            f"concurrency {c}: {why}" for c, why in stopped.items()), "serving_performance.unvouched_windows",
            levels=sorted(stopped))
    if measured.missing and not decisions:  # measured to record a baseline (make perf-baseline)
        evidence.add(decisions=[])
        pytest.skip("measured to record a baseline, nothing to hold it to: " + "; ".join(
            f"concurrency {c}: {why}" for c, why in measured.missing.items()))
    expect(bool(decisions), "no regression decision was made and no reason recorded", "serving_performance.no_decision")
    # a level with nothing to compare with is named, never undecided (perf_measurement.unmeasured)
    conclude(*decisions, evidence=evidence, code=held_to, context=(
        "; ".join(f"concurrency {c}: not compared ({why})" for c, why in measured.missing.items())))
