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

A row whose guides make no speed claim skips every check (its cell stays ``not_run`` with the
declared reason).
"""
from __future__ import annotations

import pytest

from glmverify import benchclient, performance, policy
from glmverify.checks import Inconclusive, conclude, expect
from glmverify.perf_measurement import Measurement

pytestmark = pytest.mark.feature(performance.FEATURE)


@pytest.fixture(scope="module")
def measured(engine, options):
    row = engine.row
    shape = performance.shape_of(row)
    if shape is None:
        pytest.skip(f"{row.id}: {performance.NO_CLAIM}")
    results = options.results_dir / "performance" / row.id
    results.mkdir(parents=True, exist_ok=True)
    data, host = performance.load_baseline(), performance.host_fingerprint()
    base_family = len(policy.family(row, engine.adapter.shows_rendered_prompt))
    alpha = performance.perf_alpha(row, 2 * len(shape.concurrency), base_family)
    # one client process for the whole measurement: vLLM's import costs tens of seconds on a busy CPU
    with benchclient.BenchSession(results / "bench.log") as session:
        m = Measurement(engine, shape, results, session, benchclient.client_version())
        m.host = host
        for c in shape.concurrency:
            means, basis = performance.baseline_for(row, shape, c, data, host)
            rules = performance.regression_rules(row, shape, c, alpha, basis) if means else []
            if not means:
                m.missing[c] = basis
            m.measure_level(c, rules, (means, basis) if means else None)
    return m


def test_client_report(measured, evidence):
    """Every window: the report has every figure (parse_report) and every request completed."""
    evidence.add(**measured.evidence())
    for c, level in measured.levels.items():
        for i, w in enumerate(level["windows"]):
            r = w["report"]
            expect(r.failed == 0 and r.completed == measured.shape.num_prompts,
                   f"concurrency {c} window {i}: {r.completed} of {measured.shape.num_prompts} requests completed, "
                   f"{r.failed} failed")
            expect(r.output_throughput > 0 and r.latency["tpot"]["mean"] > 0,
                   f"concurrency {c} window {i}: no tokens measured (throughput {r.output_throughput}, "
                   f"TPOT {r.latency['tpot']['mean']})")


def test_counters_agree(measured, evidence):
    """Every window: the client's figures within tolerance of the engine's own counters."""
    tables, problems = {}, []
    for c, level in measured.levels.items():
        for i, w in enumerate(level["windows"]):
            tables[f"c{c}-w{i}"] = w["cross_check"]
            problems += [f"concurrency {c} window {i}: {p}" for p in w["problems"]]
    evidence.add(cross_check=tables, tolerance={k: list(v) for k, v in {**performance.TOLERANCE, **measured.shape.tolerance}.items()})
    expect(not problems, "the benchmark client and the engine's counters disagree: " + "; ".join(problems[:6]))


def test_no_regression(measured, evidence):
    """Per level, TPOT and output throughput against the baseline (sequential over windows)."""
    decisions = [d for level in measured.levels.values() for d in level["decisions"]]
    evidence.add(baselines={str(c): (lv["baseline"][1] if lv["baseline"] else measured.missing.get(c))
                            for c, lv in measured.levels.items()})
    stopped = {c: lv["stopped"] for c, lv in measured.levels.items() if lv.get("stopped")}
    if stopped:  # never decide on windows the engine does not vouch for (test_counters_agree fails them)
        evidence.add(decisions=[])
        raise Inconclusive("INCONCLUSIVE: no decision on windows the engine's counters do not vouch for: " + "; ".join(
            f"concurrency {c}: {why}" for c, why in stopped.items()))
    expect(bool(decisions) or bool(measured.missing), "no regression decision was made and no reason recorded")
    if measured.missing and not decisions:
        evidence.add(decisions=[])
        raise Inconclusive("INCONCLUSIVE: no baseline applies: " + "; ".join(
            f"concurrency {c}: {why}" for c, why in measured.missing.items()))
    conclude(*decisions, evidence=evidence, context=(
        "; ".join(f"concurrency {c}: no baseline ({why})" for c, why in measured.missing.items())))
    if measured.missing:
        raise Inconclusive("INCONCLUSIVE: decided where a baseline applies; " + "; ".join(
            f"concurrency {c}: {why}" for c, why in measured.missing.items()))
