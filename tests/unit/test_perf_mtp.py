"""The MTP speed-up decision (``glmverify.perf_mtp``): a row's speculation held to its no-speculation
twin at concurrency 1.

Seeded windows with log-normal noise (5% CV per window, the upper end the 2-core reference's
baseline windows show) give the rule's operating characteristics through the code the decision
runs (``verdicts.simulate`` over ``speedup_samples``): a conforming speculation (break-even, or
faster) fails with probability at most alpha, and the planted defect, a speculation that costs
25% more than it saves (vLLM #55605 measured 29-41%), fails with power >= 1 - beta. The twin is
found in matrix.yaml only where the launches differ in speculation alone.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from glmverify.matrix import load
from glmverify.performance import FEATURE
from glmverify.perf_mtp import (CHECK_PREFIX, CODE, EFFECT, attach, decide_speedup, e2el_windows, launch_flags,
                                speedup_rule, speedup_samples, strip, twin_of)
from glmverify.verdicts import FAILED, INCONCLUSIVE, VERIFIED, simulate

ALPHA, CV, RUNS = 0.01, 0.05, 20000
SIGMA = math.sqrt(math.log(1 + CV ** 2))   # log-normal windows of coefficient of variation CV


def windows(rng, k: int, ratio: float, twin_ms: float = 800.0):
    """k windows of each row: the twin's E2E latency, and the speculating row's at ``ratio`` times it."""
    twin = twin_ms * np.exp(rng.normal(0, SIGMA, k))
    spec = ratio * twin_ms * np.exp(rng.normal(0, SIGMA, k))
    return spec, twin


def rates(ratio: float) -> dict:
    sampler = lambda rng, k: speedup_samples(*windows(rng, k, ratio))  # noqa: E731 - the decision's own samples
    return simulate(speedup_rule(ALPHA), sampler, RUNS, seed=24)


def mc_slack(p: float) -> float:
    return 3 * math.sqrt(p * (1 - p) / RUNS)


@pytest.mark.parametrize("ratio", [1.0, 0.8])
def test_a_conforming_speculation_fails_at_most_alpha(ratio):
    r = rates(ratio)
    assert r[FAILED] <= ALPHA + mc_slack(ALPHA), r
    if ratio < 1:  # a speculation that does lift speed is verified, almost always
        assert r[VERIFIED] >= 0.95, r


def test_a_speculation_costing_more_than_it_saves_fails_with_power():
    r = rates(EFFECT)
    assert r[FAILED] >= 1 - speedup_rule(ALPHA).beta, r
    assert r[VERIFIED] == 0.0, r


def test_one_planted_run_each_way():
    rng = np.random.default_rng(7)
    slow = decide_speedup(*windows(rng, 10, EFFECT), alpha=ALPHA)
    assert slow.status == FAILED and slow.estimate == pytest.approx(EFFECT, rel=0.06)
    assert slow.rule == "perf[mtp_speedup:c1]" and slow.fail_bound == 1.0
    fast = decide_speedup(*windows(rng, 10, 0.8), alpha=ALPHA)
    assert fast.status == VERIFIED
    # two windows of each are below the first look: nothing is decided yet
    assert decide_speedup([1000.0, 1010.0], [800.0, 790.0], alpha=ALPHA).status == INCONCLUSIVE
    assert speedup_samples([900.0, 0.0], [900.0, 800.0]) == [0.0]  # a window that measured nothing is dropped


def test_the_twin_differs_in_speculation_alone():
    matrix = load()
    rows = matrix.rows
    # seed 000's recipe with MTP, and the same image and flags without it
    assert twin_of(matrix.row("vllm-glm52-fp8-h200"), rows).id == "vllm-glm52-fp8-docker"
    assert twin_of(matrix.row("vllm-glm52-fp8-docker"), rows) is None          # no speculation: no decision
    # a low-latency row against the high-throughput one differs in parallelism too: no twin
    assert twin_of(matrix.row("sglang-glm52-fp8-h200-low-latency"), rows) is None
    # reference-ngram runs without the stand-in's logits processor: not reference's twin, but
    # reference-nospec's launch is its own without the drafts (the served name aside)
    assert twin_of(matrix.row("reference-ngram"), rows).id == "reference-nospec"
    assert twin_of(matrix.row("reference-nospec"), rows) is None
    assert launch_flags(["m", "--a", "1", "--speculative-config", "{}", "--b"]) == launch_flags(["m", "--b", "--a", "1"])


# ---- on a run's document: attach / strip -----------------------------------------------------------
def perf_cell(row: str, e2el_ms, status="verified", set_aside=(), stopped=None) -> dict:
    """A serving_performance cell as the suite writes it: levels of windows at concurrency 1."""
    windows = [{"report": {"completed": 8, "failed": 0, "latency": {"e2el": {"mean": x}}},
                **({"set_aside": True} if i in set_aside else {})} for i, x in enumerate(e2el_ms)]
    return {"row": row, "feature": FEATURE, "status": status, "basis": "its own checks",
            "checks": [{"id": "test_client_report", "outcome": "passed"}],
            "evidence": {"checks": {"test_client_report": {"levels": {"1": {"windows": windows, "stopped": stopped}}}}}}


def run_cells(spec_ms, twin_ms, **kw):
    return [perf_cell("reference-ngram", spec_ms, **kw), perf_cell("reference-nospec", twin_ms),
            perf_cell("reference", [600.0, 610.0])]


def test_attach_fails_a_slower_speculation_and_strip_undoes_it():
    rows = load().rows
    cells = run_cells([2650.0, 2610.0, 2700.0], [835.0, 820.0, 850.0])   # the planted slow drafter, measured
    turned = attach(cells, rows)
    spec, twin, other = cells
    assert turned == [spec] and spec["status"] == FAILED
    check = spec["checks"][-1]
    assert check["id"].startswith(CHECK_PREFIX) and check["outcome"] == "failed" and check["code"] == CODE
    assert check["fields"]["rows"] == ["reference-ngram", "reference-nospec"]
    assert spec["evidence"]["mtp_speedup"]["e2el_ms"]["reference-nospec"] == [835.0, 820.0, 850.0]
    assert twin["evidence"]["mtp_speedup"]["status"] == FAILED and twin["status"] == "verified"   # the twin keeps its own
    assert "mtp_speedup" not in other["evidence"]
    # a cell already failed by its own checks is returned too: its diagnosis must see the new failure
    again = run_cells([2650.0, 2610.0, 2700.0], [835.0, 820.0, 850.0])
    again[0]["status"] = FAILED
    assert attach(again, rows) == [again[0]]
    back = strip(spec)
    assert back["status"] == "verified" and back["basis"] == "its own checks" and len(back["checks"]) == 1
    assert "mtp_speedup" not in back["evidence"] and "mtp_before" not in back["evidence"]


def test_attach_verifies_a_faster_speculation_as_a_passed_check():
    cells = run_cells([349.0, 352.0, 345.0], [835.0, 820.0, 850.0])
    assert attach(cells, load().rows) == []
    spec = cells[0]
    assert spec["status"] == "verified" and spec["checks"][-1]["outcome"] == "passed"
    assert "code" not in spec["checks"][-1]


def test_a_break_even_speculation_is_inconclusive_not_failed():
    cells = run_cells([830.0, 850.0, 815.0], [835.0, 820.0, 850.0])
    attach(cells, load().rows)
    assert cells[0]["status"] == INCONCLUSIVE and cells[0]["checks"][-1]["outcome"] == "inconclusive"


def test_set_aside_and_stopped_windows_are_never_compared():
    assert e2el_windows(perf_cell("r", [900.0, 5000.0, 910.0], set_aside=(1,))) == [900.0, 910.0]
    assert e2el_windows(perf_cell("r", [900.0, 910.0], stopped="windows 0, 1 disagree")) == []


def test_a_twin_that_measured_nothing_is_not_comparable_and_changes_no_status():
    cells = run_cells([2650.0, 2610.0, 2700.0], [])
    cells[1]["status"], cells[1]["checks"] = "not_run", []
    assert attach(cells, load().rows) == []
    assert cells[0]["status"] == "verified" and len(cells[0]["checks"]) == 1
    assert "reference-nospec has no usable window" in cells[0]["evidence"]["mtp_speedup"]["reason"]
    # neither measured (a host with no baseline): nothing is said at all
    quiet = [perf_cell("reference-ngram", [], status="not_run"), perf_cell("reference-nospec", [], status="not_run")]
    attach(quiet, load().rows)
    assert all("mtp_speedup" not in c["evidence"] for c in quiet)


def test_the_plan_names_the_twin_a_speculating_row_is_held_to():
    from glmverify.plan import plan_text

    m = load()
    both = plan_text([m.row("reference-ngram"), m.row("reference-nospec")])
    assert "held to its no-speculation twin reference-nospec" in both
    alone = plan_text([m.row("reference-ngram")])
    assert "no no-speculation twin among this run's rows" in alone


def test_twins_measured_on_different_workloads_are_not_compared():
    import dataclasses

    rows = load().rows
    other = [dataclasses.replace(r, expect={**r.expect, "performance": {**r.expect["performance"], "workload": "random",
                                                                         "input_len": 64}})
             if r.id == "reference-nospec" else r for r in rows]
    cells = run_cells([2650.0, 2610.0, 2700.0], [835.0, 820.0, 850.0])
    assert attach(cells, other) == [] and cells[0]["status"] == "verified"
    assert "different workloads" in cells[0]["evidence"]["mtp_speedup"]["reason"]
