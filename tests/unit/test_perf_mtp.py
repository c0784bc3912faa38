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
from glmverify.perf_mtp import EFFECT, decide_speedup, launch_flags, speedup_rule, speedup_samples, twin_of
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
    # reference-ngram runs without the stand-in's logits processor: not reference's twin
    assert twin_of(matrix.row("reference-ngram"), rows) is None
    assert launch_flags(["m", "--a", "1", "--speculative-config", "{}", "--b"]) == launch_flags(["m", "--b", "--a", "1"])
