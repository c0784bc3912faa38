"""Decision rules: false-failure rate and power by seeded simulation, for every rule the suites use.

Each rule is built exactly as the suites build it (``glmverify.policy`` on the reference row), then
run against simulated engines: a conforming one at the rule's conforming boundary (worst case for
false failures), a typical conforming one (decides at the first look), and a broken one at the
effect (must fail with power >= 95%). Samples model what the checks see: correct/wrong answers,
log reasoning-length ratios with the stand-in's spread, per-window accept lengths.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from glmverify import behaviour, policy
from glmverify.matrix import load
from glmverify.verdicts import FAILED, INCONCLUSIVE, VERIFIED, Rule, decide, run_sequential, simulate

RUNS = 400
SD_LOG_RATIO = 0.45  # per-prompt spread of log(tokens_a / tokens_b) (two lognormal draws of sigma ~0.3)


@pytest.fixture(scope="module")
def row():
    return load().row("reference")


def mc_upper(p: float, runs: int = RUNS) -> float:
    """A generous Monte-Carlo upper bound for an observed rate (3 standard errors + 1 run)."""
    return p + 3 * math.sqrt(max(p, 1 / runs) / runs) + 1 / runs


def bernoulli(p):
    return lambda g, k: g.random(k) < p


def log_ratio(ratio, sd=SD_LOG_RATIO):
    return lambda g, k: math.log(ratio) + g.normal(0.0, sd, k)


def test_family_alpha_is_split_over_the_row_decisions(row):
    fam = policy.family(row, rendered=True)
    assert fam[:6] == ["accuracy[think]", "accuracy[nonthink]", "effort[kwargs:high]", "effort[top_level:high]",
                       "non_think[ratio]", "non_think[wrong:thinking]"]
    assert fam[6:] == [behaviour.SLOT]   # model behaviour as rates: one slot (glmverify.behaviour)
    assert policy.alpha(row, True) * len(fam) == pytest.approx(0.01)
    # without a rendered prompt (SGLang) every fall-through value is decided too: a smaller share each
    assert len(policy.family(row, rendered=False)) > len(fam)
    assert policy.alpha(row, False) < policy.alpha(row, True)


@pytest.mark.parametrize("thinking", [True, False], ids=["think", "nonthink"])
def test_accuracy_rule(row, thinking):
    rule = policy.accuracy_rule(row, thinking, True, 64, 0)
    assert rule.looks[0] == 64 and rule.looks[-1] == 1319
    healthy = rule.verify_bound + 0.06
    at_bar = simulate(rule, bernoulli(rule.fail_bound), RUNS, seed=1)
    assert at_bar[FAILED] <= mc_upper(rule.alpha)           # the stated false-failure rate holds at the bar
    good = simulate(rule, bernoulli(healthy), RUNS, seed=2)
    assert good[VERIFIED] >= 0.99 and good[FAILED] == 0
    assert good["mean_n"] <= 400                            # a healthy engine decides in the first looks
    bad = simulate(rule, bernoulli(rule.effect), RUNS, seed=3)
    assert bad[FAILED] >= 0.95                              # power at the effect
    assert at_bar[VERIFIED] <= mc_upper(rule.beta)          # a deployment at the bar rarely verifies


def test_accuracy_rule_reproduces_the_issue_case(row):
    """62/64 correct was failed by the old Wilson-lower-bound rule; now it is never failed."""
    rule = policy.accuracy_rule(row, True, True, 64, 0)
    d = decide(rule, [True] * 62 + [False] * 2, look=0)
    assert d.status in (VERIFIED, INCONCLUSIVE)
    assert d.status != FAILED


@pytest.mark.parametrize("channel", ["kwargs", "top_level"])
def test_effort_rule(row, channel):
    rule = policy.effort_rule(row, "high", True, channel)
    conforming = simulate(rule, log_ratio(rule.fail_bound), RUNS, seed=4)  # the conforming boundary (0.8x)
    assert conforming[FAILED] <= mc_upper(rule.alpha)
    typical = simulate(rule, log_ratio(0.5), RUNS, seed=5)
    assert typical[VERIFIED] >= 0.99 and typical["mean_n"] <= 10
    ignored = simulate(rule, log_ratio(1.0), RUNS, seed=6)       # effort ignored
    assert ignored[FAILED] >= 0.95
    assert ignored[VERIFIED] <= mc_upper(rule.beta)


def test_glm52_effort_decisions_are_todays(row):
    """GLM-5.2's two levels give one adjacent pair, high < max: the decision it always made."""
    assert policy.effort_pairs(row.profile.effort) == [("high", "max")]
    rule = policy.effort_rule(row, "high", True, "kwargs")
    assert rule.name == "effort[kwargs:high]"
    assert rule.quantity == "high/max reasoning-token ratio (geometric mean over prompts)"
    with pytest.raises(KeyError):
        policy.effort_rule(row, "max", True, "kwargs")  # the top level has nothing above it


def test_fallthrough_rule(row):
    rule = policy.fallthrough_rule(row, "low", False, "kwargs")
    same = simulate(rule, log_ratio(1.0), RUNS, seed=7)
    assert same[FAILED] <= mc_upper(rule.alpha) and same[VERIFIED] >= 0.95
    lowered = simulate(rule, log_ratio(0.5), RUNS, seed=8)       # 'low' wrongly lowers effort
    assert lowered[FAILED] >= 0.95


def test_nonthink_rules(row):
    rule = policy.nonthink_rule(row, True)
    assert simulate(rule, log_ratio(rule.fail_bound), RUNS, seed=9)[FAILED] <= mc_upper(rule.alpha)
    assert simulate(rule, log_ratio(0.15), RUNS, seed=10)[VERIFIED] >= 0.99
    assert simulate(rule, log_ratio(1.0), RUNS, seed=11)[FAILED] >= 0.95   # thinking ignored
    wrong = policy.wrong_variable_rule(row, "thinking", True)
    assert simulate(wrong, log_ratio(wrong.fail_bound), RUNS, seed=12)[FAILED] <= mc_upper(wrong.alpha)
    assert simulate(wrong, log_ratio(1.0), RUNS, seed=13)[VERIFIED] >= 0.99
    assert simulate(wrong, log_ratio(0.15), RUNS, seed=14)[FAILED] >= 0.95  # the template reads 'thinking'


def test_mtp_rule():
    row = next(r for r in load().rows if r.expect.get("draft_tokens") == 5 and not r.is_reference)
    rule = policy.mtp_rule(row, True)
    assert rule.verify_bound == 3.5
    windows = lambda mean: (lambda g, k: mean + g.normal(0.0, 0.25, k))  # noqa: E731
    assert simulate(rule, windows(rule.fail_bound), RUNS, seed=15)[FAILED] <= mc_upper(rule.alpha)
    assert simulate(rule, windows(4.2), RUNS, seed=16)[VERIFIED] >= 0.99
    assert simulate(rule, windows(rule.effect), RUNS, seed=17)[FAILED] >= 0.95


def test_budget_spent_ends_inconclusive():
    rule = Rule(name="x", quantity="p", kind="proportion", higher_is_better=True, verify_bound=0.9,
                fail_bound=0.9, alpha=0.01, looks=(20, 40))
    draws = []

    def draw(k):
        draws.append(k)
        return [True] * (k * 9 // 10) + [False] * (k - k * 9 // 10), k
    d, samples = run_sequential(rule, draw)
    assert d.status == INCONCLUSIVE and d.n == 40 and draws == [20, 20]
    assert "budget" in d.detail and d.looks_taken == 2 and d.requests == 40


def test_excluded_samples_are_counted_and_the_sequence_stops_early():
    rule = Rule(name="x", quantity="ratio", kind="mean", higher_is_better=False, verify_bound=1.0, fail_bound=0.8,
                alpha=0.01, looks=(8, 16), log_scale=True)
    d, samples = run_sequential(rule, lambda k: ([math.log(0.5)] * (k - 1), 2 * k))
    assert d.status == VERIFIED and d.excluded == 1 and d.requests == 16 and d.estimate == pytest.approx(0.5)
    ev = d.evidence()
    for key in ("n", "estimate", "interval", "alpha", "beta", "effect", "method", "hypothesis", "requests"):
        assert key in ev


def test_rule_validation():
    with pytest.raises(ValueError):
        Rule(name="x", quantity="p", kind="proportion", higher_is_better=True, verify_bound=0.9, fail_bound=0.9,
             alpha=0.01, looks=(40, 20))
    with pytest.raises(ValueError):
        Rule(name="x", quantity="p", kind="median", higher_is_better=True, verify_bound=0.9, fail_bound=0.9,
             alpha=0.01, looks=(20,))


def test_simulation_is_seeded(row):
    rule = policy.nonthink_rule(row, True)
    assert simulate(rule, log_ratio(0.55), 50, seed=3) == simulate(rule, log_ratio(0.55), 50, seed=3)
    assert np.isfinite(simulate(rule, log_ratio(0.55), 50, seed=3)["mean_n"])
