"""serving_performance on the CPU reference: baselines per host, the E2E latency decision, the
row's own cross-check slack, the share-of-pace slowdown, and every row's declared shape.

The reference's host baseline is what ``make perf-baseline`` records (one entry per host and row,
the committed file plus ``GLMVERIFY_PERF_BASELINE``); the decisions run on synthetic windows whose
slowdown and noise each test states. Each check is also shown failing on a planted defect.
"""
from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from glmverify import performance
from glmverify.faultproxy.perf_faults import TOKEN_SHARE, share_departures
from glmverify.matrix import load
from glmverify.paths import REPO_ROOT
from glmverify.verdicts import FAILED, VERIFIED, run_sequential

HOST = {"cpu": "X", "cores": 2, "machine": "x86_64"}


@pytest.fixture(scope="module")
def matrix():
    return load()


def entry(host, e2el=(700.0, 720.0, 690.0), version="0.32.0"):
    return {"engine_version": version, "host": host, "signed_by": "make perf-baseline", "recorded": "2026-12-05",
            "levels": {"1": {"tpot_ms": [3.0, 3.1, 2.9], "e2el_ms": list(e2el), "output_throughput": [360.0, 350.0, 370.0]}}}


def report(e2el_ms: float, throughput: float, tpot_ms: float = 3.0, ttft_ms: float = 20.0) -> performance.Report:
    lat = {m: {"mean": v, "median": v, "p99": v} for m, v in
           (("ttft", ttft_ms), ("tpot", tpot_ms), ("itl", tpot_ms), ("e2el", e2el_ms))}
    return performance.Report(completed=8, failed=0, duration_s=5.0, total_input_tokens=512, total_output_tokens=2048,
                              request_throughput=1.6, output_throughput=throughput, latency=lat)


# ---- the reference's shape as matrix.yaml declares it -----------------------------------------------------
def test_every_rows_shape_resolves(matrix):
    """shape_of on every row: a layered block (a row's figures on its recipe's shape) is complete."""
    shapes = {r.id: performance.shape_of(r) for r in matrix.rows}
    assert shapes["reference"].latency == "e2el" and shapes["reference"].tolerance["ttft_ms"] == (0.25, 750.0)
    assert shapes["sglang-glm52-fp8-h200-low-latency"].figures[1]["tpot_ms"] == 3.03
    assert shapes["sglang-glm52-fp8-h200-low-latency-09ca4fc"].figures == shapes["sglang-glm52-fp8-h200-low-latency"].figures
    assert shapes["vllm-glm52-fp8-h200"].request_rate == 10 and shapes["vllm-glm52-fp8-h200"].client_range_ratio == 0.0
    # SGLang's reference is held to its own baseline with the reference's shape; the speculation pair
    # is measured on GSM8K questions at concurrency 1
    assert shapes["reference-sglang"] == shapes["reference"] and shapes["reference-container"] is not None
    assert shapes["reference-ngram"].workload == shapes["reference-nospec"].workload == "gsm8k"
    # every row without a shape says why (a declared cell), none falls back to "no declaration"
    for r in matrix.rows:
        assert r.declared_cell(performance.FEATURE).basis != "no declaration in matrix.yaml", r.id


def test_a_figures_only_block_is_refused(matrix):
    row = matrix.row("reference")
    bare = dataclasses.replace(row, expect={**row.expect, "performance": {"figures": {"1": {"tpot_ms": 3.0}}}})
    with pytest.raises(ValueError, match="lacks regime, concurrency"):
        performance.shape_of(bare)
    odd = dataclasses.replace(row, expect={**row.expect, "performance": {**row.expect["performance"], "latency": "itl"}})
    with pytest.raises(ValueError, match="latency must be"):
        performance.shape_of(odd)


def test_the_plan_names_the_latency_figure_and_the_slack(matrix):
    text = "\n".join(performance.plan_lines(matrix.row("reference")))
    assert "regression: E2E latency and output throughput within 25%" in text
    assert "cross-check slack over the default: ttft_ms 25% + 750" in text


# ---- baselines per host ---------------------------------------------------------------------------------
def test_this_hosts_entry_is_chosen_among_several(matrix):
    row = matrix.row("reference")
    shape = performance.shape_of(row)
    other = {**HOST, "cpu": "Y"}
    data = {"rows": {"reference": [entry(other, (100.0, 100.0)), entry(HOST)]}}
    means, basis = performance.baseline_for(row, shape, 1, data, HOST)
    assert means["e2el_ms"] == pytest.approx(703.3333, abs=1e-3) and "make perf-baseline" in basis
    means, why = performance.baseline_for(row, shape, 1, {"rows": {"reference": [entry(other)]}}, HOST)
    assert means is None and "host-specific" in why  # planted: only another host's baseline


def test_the_per_host_file_adds_to_the_committed_one(tmp_path, monkeypatch):
    extra = tmp_path / "baseline.json"
    extra.write_text(json.dumps({"rows": {"reference": entry(HOST)}}))
    monkeypatch.setenv(performance.BASELINE_ENV, str(extra))
    data = performance.load_baseline()
    assert performance.entries(data, "reference")[0]["host"] == HOST
    monkeypatch.setenv(performance.BASELINE_ENV, str(tmp_path / "absent.json"))
    assert performance.entries(performance.load_baseline(), "reference") == performance.entries(
        performance.load_baseline(performance.BASELINE_PATH), "reference")


def test_record_keeps_one_entry_per_host(tmp_path):
    """bench/performance_regression.py record: a second host is added, the same host only with --replace."""
    sys.path.insert(0, str(REPO_ROOT / "bench"))
    import performance_regression as pr

    def run(host, replace=False):
        ev = {"engine_version": "0.32.0", "host": host, "levels": {"1": {"window_records": [
            performance.window_record(report(700.0 + i, 360.0)) for i in range(3)]}}}
        cell = {"row": "reference", "feature": performance.FEATURE, "checks": [
            {"id": "test_client_report", "outcome": "passed"}, {"id": "test_counters_agree", "outcome": "passed"}],
            "evidence": {"checks": {"test_client_report": ev}}}
        res = tmp_path / "res"
        res.mkdir(exist_ok=True)
        (res / "matrix.json").write_text(json.dumps({"cells": [cell]}))
        return pr.main(["record", str(res), "--by", "T", "--out", str(tmp_path / "b.json")] + (["--replace"] if replace else []))

    assert run(HOST) == 0
    assert run({**HOST, "cpu": "Y"}) == 0
    assert run(HOST) == 1  # the same host again, without --replace: kept
    assert run(HOST, replace=True) == 0
    data = json.loads((tmp_path / "b.json").read_text())
    got = performance.entries(data, "reference")
    assert sorted(e["host"]["cpu"] for e in got) == ["X", "Y"]
    assert got[0]["levels"]["1"]["e2el_ms"] == [700.0, 701.0, 702.0]


def test_record_pools_the_windows_of_several_launches(tmp_path):
    """make perf-baseline signs several launches' windows as one entry (one launch is one draw of the
    host's speed); a launch whose counters did not vouch adds nothing."""
    sys.path.insert(0, str(REPO_ROOT / "bench"))
    import performance_regression as pr

    dirs = []
    for n, base in enumerate((700.0, 900.0, 5000.0)):
        ev = {"engine_version": "0.32.0", "host": HOST, "levels": {"1": {"window_records": [
            performance.window_record(report(base + i, 360.0)) for i in range(3)]}}}
        vouched = "passed" if n < 2 else "failed"
        cell = {"row": "reference", "feature": performance.FEATURE, "checks": [
            {"id": "test_client_report", "outcome": "passed"}, {"id": "test_counters_agree", "outcome": vouched}],
            "evidence": {"checks": {"test_client_report": ev}}}
        d = tmp_path / f"launch-{n}"
        d.mkdir()
        (d / "matrix.json").write_text(json.dumps({"cells": [cell]}))
        dirs.append(str(d))
    assert pr.main(["record", *dirs, "--by", "T", "--out", str(tmp_path / "b.json")]) == 0
    (entry,) = performance.entries(json.loads((tmp_path / "b.json").read_text()), "reference")
    assert entry["launches"] == 2
    assert entry["levels"]["1"]["e2el_ms"] == [700.0, 701.0, 702.0, 900.0, 901.0, 902.0]


# ---- the E2E latency decision -----------------------------------------------------------------------------
def decide(matrix, slowdown, cv, seed=3):
    row = matrix.row("reference")
    shape = performance.shape_of(row)
    base = {"e2el_ms": 700.0, "output_throughput": 360.0}
    rng = np.random.default_rng(seed)
    reports = [report(base["e2el_ms"] * slowdown * math.exp(rng.normal(0, cv)),
                      base["output_throughput"] / slowdown * math.exp(rng.normal(0, cv))) for _ in range(10)]
    samples = performance.regression_samples(reports, base, shape.latency)
    out = []
    for rule in performance.regression_rules(row, shape, 1, 0.01 / 8, "host baseline"):
        pool = iter(samples["e2el" if "e2el" in rule.name else "throughput"])
        out.append(run_sequential(rule, lambda k: ([next(pool) for _ in range(k)], k))[0])
    return out


def test_e2el_rules_verify_a_conforming_engine_and_fail_the_share_delay(matrix):
    assert [d.status for d in decide(matrix, 1.0, 0.02)] == [VERIFIED, VERIFIED]
    assert [d.status for d in decide(matrix, 1 + TOKEN_SHARE, 0.05)] == [FAILED, FAILED]


# ---- the share-of-pace slowdown ---------------------------------------------------------------------------
def test_share_departures_stretch_every_gap_by_the_share():
    arrivals = [0.0, 0.003, 0.006, 0.020, 0.023]
    out = share_departures(arrivals, 0.5)
    gaps = [b - a for a, b in zip(out, out[1:])]
    assert out[0] == 0.0 and gaps == pytest.approx([0.0045, 0.0045, 0.021, 0.0045])
    assert out[-1] - out[0] == pytest.approx(1.5 * (arrivals[-1] - arrivals[0]))
    assert share_departures(arrivals, 0.0) == arrivals  # planted: no share, no delay


def test_applies_says_when_this_host_lacks_a_baseline(tmp_path):
    env = {"PYTHONPATH": str(REPO_ROOT), performance.BASELINE_ENV: str(tmp_path / "none.json"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "performance_regression.py"), "applies", "--row",
                          "reference"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 1 and "reference concurrency 1" in out.stdout
    host = performance.host_fingerprint()
    (tmp_path / "b.json").write_text(json.dumps({"rows": {"reference": {**entry(host), "levels": {
        c: entry(host)["levels"]["1"] for c in ("1", "4")}}}}))
    env[performance.BASELINE_ENV] = str(tmp_path / "b.json")
    out = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "performance_regression.py"), "applies", "--row",
                          "reference"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
