"""serving_performance between regimes (glmverify.perf_regimes): groups, the two promises decided
on synthetic windows, the reasons for no decision, and the decisions attached through the merge."""
from __future__ import annotations

import math

import numpy as np
import pytest

from glmverify import perf_regimes as pr
from glmverify.matrix import load
from glmverify.merge import Source, merge_documents
from glmverify.performance import FEATURE
from glmverify.verdicts import simulate

LL, BAL, HT = ("sglang-glm52-fp8-h200-low-latency", "sglang-glm52-fp8-h200-balanced",
               "sglang-glm52-fp8-h200-high-throughput")
B200_BAL = "sglang-glm52-fp8-b200-balanced"
CHECK = "suites/test_serving_performance.py::test_client_report[{}]"


@pytest.fixture(scope="module")
def matrix():
    return load()


@pytest.fixture(scope="module")
def rows(matrix):
    return {r.id: r for r in matrix.rows}


def level(tpot: float, tput: float, n: int = 6, noise: float = 0.03, seed: int = 0, stopped=None) -> dict:
    """n windows around (tpot ms, tput tok/s), each with its own log-normal noise."""
    rng = np.random.default_rng(seed)
    ws = [{"report": {"completed": 8, "failed": 0, "output_throughput": float(tput * math.exp(rng.normal(0, noise))),
                      "latency": {"tpot": {"mean": float(tpot * math.exp(rng.normal(0, noise)))}}}} for _ in range(n)]
    return {"windows": ws, "stopped": stopped}


def perf_cell(row: str, levels: dict[int, dict] | None, status: str = "verified", regime: str | None = None) -> dict:
    ev = {"checks": {CHECK.format(row): {"regime": regime, "levels": {str(c): lv for c, lv in levels.items()}}}} \
        if levels else {}
    return {"row": row, "engine": "sglang", "image": "lmsysorg/sglang:latest", "hardware": "h200", "feature": FEATURE,
            "status": status, "declared": "not_run", "basis": f"{status} basis",
            "checks": [{"id": CHECK.format(row), "outcome": "passed", "detail": ""}] if levels else [],
            "evidence": ev}


def find(comps, kind, promiser, other):
    [c] = [c for c in comps if c.kind == kind and c.promiser.id == promiser and c.other.id == other]
    return c


# ---- groups -------------------------------------------------------------------------------------------
def test_groups_are_one_build_on_one_hardware(matrix):
    groups = {frozenset(r.id for r in g) for g in pr.groups(matrix.rows)}
    assert frozenset({LL, BAL, HT}) in groups
    for g in pr.groups(matrix.rows):
        assert len({tuple(getattr(r, k) for k in pr.GROUP_KEYS) for r in g}) == 1
        assert {pr.regime_of(r) for r in g} <= set(pr.REGIMES)
    members = {r for g in groups for r in g}
    assert "reference" not in members and "vllm-glm52-fp8-h200" not in members   # no Deploy panel regime
    assert LL + "-09ca4fc" in members and not any(LL in g and LL + "-09ca4fc" in g for g in groups)


def test_rows_on_different_hardware_are_not_compared(rows):
    cells = {LL: perf_cell(LL, {1: level(3, 300)}), B200_BAL: perf_cell(B200_BAL, {1: level(9, 100)})}
    comps = pr.compare(rows.values(), cells)
    assert not [c for c in comps if {c.promiser.id, c.other.id} == {LL, B200_BAL}]
    assert find(comps, "tpot", LL, BAL).status == pr.NOT_COMPARABLE   # its own group's balanced row: no windows


# ---- the two promises on synthetic windows ----------------------------------------------------------------
@pytest.mark.parametrize("ll_tpot, expected", [(3.0, "verified"), (6.5, "failed"), (5.0, "inconclusive")])
def test_low_latency_tpot_against_balanced(rows, ll_tpot, expected):
    cells = {LL: perf_cell(LL, {1: level(ll_tpot, 300, seed=1), 16: level(9, 900, seed=2)}),
             BAL: perf_cell(BAL, {1: level(5.0, 200, seed=3), 64: level(20, 1700, seed=4)})}
    c = find(pr.compare(rows.values(), cells), "tpot", LL, BAL)
    assert c.status == expected, c.decision.summary()
    assert c.concurrency == {LL: 1, BAL: 1}   # the lowest level both measured
    assert c.decision.alpha == pytest.approx(0.01 / 3)   # the group's three comparisons share 1%


@pytest.mark.parametrize("ht_tput, expected", [(2500.0, "verified"), (1500.0, "failed"), (1800.0, "inconclusive")])
def test_high_throughput_tokens_against_balanced_at_each_own_highest_level(rows, ht_tput, expected):
    cells = {HT: perf_cell(HT, {1024: level(80, ht_tput, seed=5)}),
             BAL: perf_cell(BAL, {64: level(20, 1000, seed=6), 256: level(28, 1800, seed=7)})}
    c = find(pr.compare(rows.values(), cells), "throughput", HT, BAL)
    assert c.status == expected, c.decision.summary()
    assert c.concurrency == {HT: 1024, BAL: 256}
    assert c.decision.estimate == pytest.approx(ht_tput / 1800, rel=0.05)


def test_stated_error_rates_of_the_rule():
    """Six windows a side at 5% window noise: equal speed fails with P <= alpha, 25% worse fails with P >= 0.95."""
    rule = pr.comparison_rule("tpot", {LL: 1, BAL: 1}, 6, alpha=0.01 / 3)
    sd = 0.05 * math.sqrt(2)
    equal = simulate(rule, lambda rng, k: rng.normal(0.0, sd, k), runs=20000)
    worse = simulate(rule, lambda rng, k: rng.normal(math.log(pr.EFFECTS["tpot"]), sd, k), runs=20000)
    assert equal["failed"] <= rule.alpha * 1.2
    assert worse["failed"] >= 0.95


# ---- no decision, with the reason ---------------------------------------------------------------------------
def test_no_shared_concurrency_is_not_comparable_never_a_verdict(rows):
    cells = {LL: perf_cell(LL, {1: level(9, 300), 16: level(12, 900)}),    # as declared: 1 and 16
             BAL: perf_cell(BAL, {64: level(3, 1700), 256: level(5, 1800)})}
    c = find(pr.compare(rows.values(), cells), "tpot", LL, BAL)
    assert c.status == pr.NOT_COMPARABLE and c.decision is None
    assert "no concurrency both rows measured" in c.reason and "[1, 16]" in c.reason and "[64, 256]" in c.reason


def test_missing_windows_are_named(rows):
    cells = {LL: perf_cell(LL, {1: level(3, 300), 16: level(9, 900)}), BAL: perf_cell(BAL, None, status="not_run"),
             HT: perf_cell(HT, {1024: level(80, 2000, stopped="window 0: the client and the engine's counters disagree")})}
    comps = pr.compare(rows.values(), cells)
    assert find(comps, "tpot", LL, BAL).reason.startswith(f"{BAL} has no measured windows (its cell is not_run")
    ht = find(comps, "throughput", HT, LL)
    assert ht.status == pr.NOT_COMPARABLE and ht.reason.startswith(f"{HT} has no measured windows")  # stopped level
    cells[HT] = perf_cell(HT, {64: level(20, 2000)})
    assert "at concurrency 1024 (measured: [64])" in find(pr.compare(rows.values(), cells), "throughput", HT, LL).reason


def test_windows_that_failed_requests_are_not_used():
    lv = level(3, 300, n=3)
    lv["windows"][0]["report"]["failed"] = 2
    lv["windows"][1]["report"]["completed"] = 0
    assert len(pr.windows(perf_cell(LL, {1: lv}))[1]) == 1


# ---- onto the cells --------------------------------------------------------------------------------------------
def test_a_planted_violation_fails_the_promising_row_only(rows):
    cells = [perf_cell(LL, {1: level(7, 300, seed=8)}), perf_cell(BAL, {1: level(5, 250, seed=9), 256: level(28, 1800)}),
             perf_cell(HT, {1024: level(80, 2600, seed=10)})]
    before = [dict(c) for c in cells]
    turned = pr.attach(cells, rows.values())
    ll, bal, ht = cells
    assert turned == [ll] and ll["status"] == "failed" and ll["basis"].startswith("failed between regimes")
    [chk] = [k for k in ll["checks"] if k["id"].startswith(pr.CHECK_PREFIX)]
    assert chk["code"] == pr.CODE and chk["outcome"] == "failed" and chk["fields"]["rows"] == [LL, BAL]
    assert ll["evidence"]["regimes_before"] == {"status": "verified", "basis": "verified basis"}
    assert bal["status"] == ht["status"] == "verified"   # verified / not comparable comparisons change nothing
    assert {e["status"] for e in ht["evidence"]["regimes"]} == {"verified", pr.NOT_COMPARABLE}
    assert [e["violated_by"] for e in bal["evidence"]["regimes"] if e["status"] == "failed"] == [LL]
    assert before[0]["evidence"] is not ll["evidence"] and "regimes" not in before[0]["evidence"]  # input untouched
    assert pr.strip(ll)["status"] == "verified" and pr.strip(ll)["checks"] == before[0]["checks"]
    assert "regimes" not in pr.strip(bal)["evidence"]


def test_a_not_run_cell_stays_not_run(rows):
    cells = [perf_cell(LL, {1: level(3, 300)}), perf_cell(BAL, None, status="not_run")]
    assert pr.attach(cells, rows.values()) == []
    assert cells[1]["status"] == "not_run" and cells[1]["evidence"]["regimes"][0]["status"] == pr.NOT_COMPARABLE


# ---- through the merge -----------------------------------------------------------------------------------------
def doc(run_id, finished, cells):
    return {"schema": 1, "run": {"id": run_id, "started": finished, "finished": finished, "launches": {},
                                 "selected_rows": sorted({c["row"] for c in cells})}, "cells": cells}


def merged(matrix, *docs):
    d = merge_documents([Source(f"in{i}/matrix.json", x, f"{i:064x}") for i, x in enumerate(docs)], matrix)
    return d, {c["row"]: c for c in d["cells"] if c["feature"] == FEATURE}


def test_merge_decides_between_runners_results(matrix):
    a = doc("run-A", "2026-01-01T10:00:00Z", [perf_cell(LL, {1: level(7, 300, seed=11), 16: level(12, 900)}),
                                              perf_cell(HT, {1024: level(80, 2600, seed=12)})])
    b = doc("run-B", "2026-01-01T11:00:00Z", [perf_cell(BAL, {1: level(5, 250, seed=13), 256: level(28, 1800)})])
    d, cells = merged(matrix, a, b)
    ll = cells[LL]
    assert ll["status"] == "failed" and ll["run"] == "run-A"
    assert [k["code"] for k in ll["checks"] if k.get("code")] == [pr.CODE]
    assert "diagnosis" in ll
    assert cells[BAL]["status"] == cells[HT]["status"] == "verified"
    assert cells["sglang-glm52-fp8-b200-balanced"].get("evidence", {}).get("regimes") is None  # nothing measured there
    # merged again: decided again from the runs' own results, the same way (no history, not flaky)
    _, again = merged(matrix, d)
    assert again[LL]["status"] == "failed" and len([k for k in again[LL]["checks"] if k.get("code")]) == 1
    assert "history" not in again[LL]
    # a newer low-latency run that keeps the promise: verified, never flaky (the old failure was a comparison)
    c = doc("run-C", "2026-01-02T10:00:00Z", [perf_cell(LL, {1: level(3, 300, seed=14)})])
    _, fixed = merged(matrix, d, c)
    assert fixed[LL]["status"] == "verified" and fixed[LL]["run"] == "run-C"
    assert [h["status"] for h in fixed[LL]["history"]] == ["verified"]
