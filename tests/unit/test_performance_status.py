"""serving_performance's status rule and failure codes, through the suite's own check functions.

* Nothing to compare with (no baseline recorded for this host, no published figure): nothing is
  measured, every check skips in its own call phase with the reason, the cell keeps its declared
  ``not_run`` and the run is not undecided (exit 0, not 6). The planted contrast is the same skip
  in the setup phase (what the shared fixture's skip was): a launch gate, counted undecided.
* Each failing path carries its code: the cross-check names the figures that disagree, the
  regression decision says whether it was held to the signed baseline or the guide's figure, and
  windows the counters do not vouch for leave the decision inconclusive with a code of its own.
"""
from __future__ import annotations

import importlib.util

import pytest

from glmverify import performance
from glmverify.checks import Failure, Inconclusive
from glmverify.document import decide_run, decide_status, undecided_reason
from glmverify.matrix import load
from glmverify.paths import SUITES_DIR
from glmverify.perf_measurement import NO_BASELINE, unmeasured
from helpers.perf_stubs import SHAPE, measure, with_shape

HOST = {"cpu": "X", "cores": 2, "machine": "x86_64"}
CHECKS = ("test_client_report", "test_counters_agree", "test_no_regression")


@pytest.fixture(scope="module")
def matrix():
    return load()


@pytest.fixture(scope="module")
def suite():
    spec = importlib.util.spec_from_file_location("serving_performance_suite", SUITES_DIR / "test_serving_performance.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Evidence(dict):
    def add(self, **kw) -> None:
        self.update(kw)


def host_entry(host, version="0.32.0"):
    level = {"tpot_ms": [3.0, 3.1], "e2el_ms": [700.0, 710.0], "output_throughput": [360.0, 350.0]}
    return {"engine_version": version, "host": host, "levels": {"1": level, "4": level}}


# ---- the status rule ------------------------------------------------------------------------------
def test_nothing_is_measured_without_a_baseline_for_this_host(matrix):
    row = matrix.row("reference")
    shape = performance.shape_of(row)
    why = unmeasured(row, shape, {"rows": {}}, HOST)
    assert why.startswith(NO_BASELINE) and "concurrency 1" in why and "concurrency 4" in why
    assert "make perf-baseline" in why
    # another host's baseline is no baseline here (CPU speed is host-specific)
    other = {"rows": {"reference": [host_entry({**HOST, "cpu": "Y"})]}}
    assert "this host is" in unmeasured(row, shape, other, HOST)
    # planted contrasts: this host's baseline, or a run that records one, measures
    assert unmeasured(row, shape, {"rows": {"reference": [host_entry(HOST)]}}, HOST) is None
    assert unmeasured(row, shape, {"rows": {}}, HOST, recording=True) is None


def test_a_published_figure_is_something_to_compare_with(matrix):
    row = matrix.row("sglang-glm52-fp8-h200-low-latency")
    shape = performance.shape_of(row)
    assert shape.figures and unmeasured(row, shape, {"rows": {}}, HOST) is None
    bare = with_shape(row, {**SHAPE, "figures": {}})
    assert unmeasured(bare, performance.shape_of(bare), {"rows": {}}, HOST).startswith("no signed baseline for this row")


def test_the_unmeasured_cell_is_declared_and_never_undecided(matrix, suite):
    why = unmeasured(matrix.row("reference"), performance.shape_of(matrix.row("reference")), {"rows": {}}, HOST)
    for name in CHECKS:
        with pytest.raises(pytest.skip.Exception) as exc:
            getattr(suite, name)(f"reference: {why}", Evidence())
        assert not isinstance(exc.value, Inconclusive) and NO_BASELINE in str(exc.value)
    skipped = [{"id": name, "outcome": "skipped", "detail": f"Skipped: reference: {why}"} for name in CHECKS]
    declared = matrix.row("reference").declared_cell(performance.FEATURE).status
    cell = {"row": "reference", "feature": performance.FEATURE, "status": decide_status(skipped, declared),
            "declared": declared, "checks": skipped}
    assert cell["status"] == "not_run" and undecided_reason(cell, CHECKS) is None
    run = {"selected": {"reference": {performance.FEATURE: list(CHECKS)}}}
    assert decide_run({"run": run, "cells": [cell]}).exit_code == 0
    # planted: the same skip in the setup phase reads as a launch gate, and the run is undecided (6)
    gated = {**cell, "checks": [{**c, "phase": "setup"} for c in skipped]}
    assert undecided_reason(gated, CHECKS).startswith("not run: ")
    assert decide_run({"run": run, "cells": [gated]}).exit_code == 6


# ---- the codes --------------------------------------------------------------------------------------
def test_a_slow_engine_fails_against_the_baseline_or_the_guide(matrix, tmp_path, suite):
    slow, _ = measure(matrix, 13.0, tmp=tmp_path)
    with pytest.raises(Failure) as exc:
        suite.test_no_regression(slow, Evidence())
    assert exc.value.code == "serving_performance.regressed_against_baseline" and exc.value.fields["rule"].startswith("perf[")
    guide, _ = measure(matrix, 13.0, tmp=tmp_path, basis="published figure at concurrency 1 (the guide)")
    with pytest.raises(Failure) as exc:
        suite.test_no_regression(guide, Evidence())
    assert exc.value.code == "serving_performance.below_guide"
    # planted contrast: the engine at its baseline's speed passes, and its windows are vouched for
    ok, _ = measure(matrix, lambda k: 10.0 + 0.1 * (k % 3), tmp=tmp_path)
    suite.test_no_regression(ok, Evidence())
    suite.test_counters_agree(ok, Evidence())
    suite.test_client_report(ok, Evidence())


def test_a_hop_adding_delay_fails_the_cross_check_and_leaves_the_decision_inconclusive(matrix, tmp_path, suite):
    m, _ = measure(matrix, 60.0, engine_tpot_ms=10.0, tmp=tmp_path)
    with pytest.raises(Failure) as exc:
        suite.test_counters_agree(m, Evidence())
    assert exc.value.code == "serving_performance.counters_disagree" and "tpot_ms" in exc.value.fields["figures"]
    assert exc.value.fields["windows"] == ["c1-w0", "c1-w1"]
    with pytest.raises(Inconclusive) as exc:
        suite.test_no_regression(m, Evidence())
    assert exc.value.code == "serving_performance.unvouched_windows"


def test_a_lone_stalled_window_passes_the_cross_check_and_is_shown(matrix, tmp_path, suite):
    m, _ = measure(matrix, lambda k: 60.0 if k == 2 else 10.0 + 0.1 * (k % 3), engine_tpot_ms=10.0, tmp=tmp_path)
    ev = Evidence()
    suite.test_counters_agree(m, ev)
    shown = ev["observed"]["windows set aside (a lone disagreement, not decided on)"]
    assert list(shown) == ["c1-w0"] and "client 60 vs engine 10" in shown["c1-w0"]
    suite.test_no_regression(m, Evidence())   # decided (verified) on the vouched windows


def test_a_level_without_a_comparison_is_named_not_undecided(matrix, tmp_path, suite):
    m, _ = measure(matrix, lambda k: 10.0 + 0.1 * (k % 3), tmp=tmp_path)
    m.missing[4] = "no signed baseline for reference and no published figure at concurrency 4"
    ev = Evidence()
    suite.test_no_regression(m, ev)  # decided where a baseline applies: verified, not inconclusive
    assert ev["not_compared"] == {"4": m.missing[4]} and len(ev["decisions"]) == 2
    # measured only to record a baseline: nothing decided, the check skips (never inconclusive)
    m.levels[1]["decisions"] = []
    with pytest.raises(pytest.skip.Exception) as exc:
        suite.test_no_regression(m, Evidence())
    assert not isinstance(exc.value, Inconclusive) and "record a baseline" in str(exc.value)
