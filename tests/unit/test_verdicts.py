"""Decision rules: false-failure rate and power, exactly where the rule allows and by seeded
simulation, for every rule the suites use.

Each rule is built exactly as the suites build it (``glmverify.policy``), on the row where its
alpha is smallest: the SGLang reference's row as an engine that shows no rendered prompt would run
it (``rendered=False``: fall-through is decided by behaviour too, so 19 decisions share the 1%
family rate) for the ratio rules, the vLLM reference for accuracy. Then:

* false failures, at the rule's conforming boundary (the worst conforming engine):
  - exactly, by dynamic programming over the two-point engine that is the worst case (for the
    ratio rules: the worst over *every* distribution with its median on the boundary, the sign
    test using only signs; for accuracy: Bernoulli answers at the bar), through the decision code
    itself (``look_status``);
  - by simulation for each shape of log ratio (Gaussian with SD 0.45 / 0.6 / 0.8, t3, skewed
    lognormal either way, gamma-shaped lengths), seeded, pooled, with a one-sided 95%
    Clopper-Pearson upper bound on the observed rate held to alpha;
* power, at the effect, for every shape: >= 95%, within the budget (``policy.*_LOOKS``; a prompt
  costs two requests, one per side of the pair);
* a conforming engine typical of the stand-in decides at the first look or two.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binom
from statsmodels.stats.proportion import proportion_confint

from glmverify import behaviour, policy
from glmverify.chat import ChatResult
from glmverify.matrix import load
from glmverify.options import Options, derived_request_timeout
from glmverify.verdicts import (FAILED, INCONCLUSIVE, VERIFIED, Rule, decide, error_bar_decision, look_status,
                                order_index, run_sequential, simulate)

RUNS_FALSE = 4000   # per shape at the conforming boundary (6 shapes pooled: 24,000 runs a rule)
RUNS_POWER = 1500   # per shape at the effect
SD_STANDIN = 0.45   # per-prompt spread of the stand-in's log ratio (two lognormal lengths of sigma ~0.3)


def lognormal_skew(sign: float):
    """Skewed log ratios, median 0: 0.5 (e^(0.8 Z) - 1), mirrored for sign -1 (SD about 0.65)."""
    return lambda g, k: sign * 0.5 * (np.exp(0.8 * g.standard_normal(k)) - 1)


# zero-median log-ratio shapes; a rule's sampler shifts them to the median it models
SHAPES = {
    "gauss-0.45": lambda g, k: g.normal(0.0, 0.45, k),
    "gauss-0.6": lambda g, k: g.normal(0.0, 0.6, k),
    "gauss-0.8": lambda g, k: g.normal(0.0, 0.8, k),
    "t3": lambda g, k: 0.45 * g.standard_t(3, k),                       # heavy tails, SD 0.78
    "lognormal-right": lognormal_skew(1.0),
    "lognormal-left": lognormal_skew(-1.0),
    "gamma-lengths": lambda g, k: np.log(g.gamma(4.0, 1.0, k) / g.gamma(4.0, 1.0, k)),  # CV 0.5, SD 0.75
}
# one Gaussian spread less keeps the tier fast; the exact worst case above covers every distribution
FALSE_SHAPES = [s for s in SHAPES if s != "gauss-0.6"]
# the most requests a decision may spend: two a prompt (policy's docstring states the same)
BUDGET_REQUESTS = {"effort": 1536, "fall-through": 1536, "non_think": 256, "wrong-variable": 128}


@pytest.fixture(scope="module")
def matrix():
    return load()


@pytest.fixture(scope="module")
def row(matrix):
    return matrix.row("reference")


@pytest.fixture(scope="module")
def sglang_row(matrix):
    return matrix.row("reference-sglang")


def ratio_rules(r) -> dict[str, Rule]:
    return {"effort": policy.effort_rule(r, "high", False, "kwargs"),
            "fall-through": policy.fallthrough_rule(r, "low", False, "kwargs"),
            "non_think": policy.nonthink_rule(r, False),
            "wrong-variable": policy.wrong_variable_rule(r, "thinking", False)}


RATIO_RULES = ["effort", "fall-through", "non_think", "wrong-variable"]


def at_ratio(ratio: float, shape: str = "gauss-0.45"):
    return lambda g, k: math.log(ratio) + SHAPES[shape](g, k)


def cp_upper(count: int, runs: int, level: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound on a rate observed ``count`` times in ``runs``."""
    return float(proportion_confint(count, runs, alpha=2 * (1 - level), method="beta")[1])


def replay(samples: list):
    """A ``run_sequential`` draw handing out ``samples`` in order (one request each)."""
    pos = 0

    def draw(k: int):
        nonlocal pos
        out = samples[pos:pos + k]
        pos += k
        return out, k
    return draw


def exact_two_point(rule: Rule, a: float, b: float, p: float) -> dict[str, float]:
    """Exact outcome probabilities of ``rule`` for samples a (probability p) or b, by dynamic
    programming over the count of a's, each look decided by ``look_status`` itself."""
    alive, prev = np.array([1.0]), 0
    out = {VERIFIED: 0.0, FAILED: 0.0}
    for i, n in enumerate(rule.looks):
        alive = np.convolve(alive, binom.pmf(np.arange(n - prev + 1), n - prev, p))
        x = np.where(np.arange(n)[None, :] < np.arange(n + 1)[:, None], a, b)
        codes, *_ = look_status(rule, x, i)
        out[VERIFIED] += float(alive[codes == 1].sum())
        out[FAILED] += float(alive[codes == -1].sum())
        alive[codes != 0] = 0.0
        prev = n
    out[INCONCLUSIVE] = float(alive.sum())
    return out


def worst_conforming(rule: Rule) -> dict[str, float]:
    """The worst engine with its median on the conforming boundary: half its log ratios past the
    verify bound (never helping verification), half on the good side of the fail bound."""
    lo, hi = sorted((math.log(rule.fail_bound), math.log(rule.verify_bound)))
    return exact_two_point(rule, lo - 1.0, hi + 1.0, 0.5)


# ---- the family ----------------------------------------------------------------------------------
def test_family_alpha_is_split_over_the_row_decisions(row, sglang_row):
    fam = policy.family(row, rendered=True)
    assert fam[:10] == ["accuracy[think]", "accuracy[nonthink]", "accuracy[paired:think]", "accuracy[paired:nonthink]",
                        "accuracy[drift]", "accuracy[batch]",   # against the baseline, steady over the run (#25)
                        "effort[kwargs:high]", "effort[top_level:high]", "non_think[ratio]", "non_think[wrong:thinking]"]
    assert fam[10:] == [behaviour.SLOT]   # model behaviour as rates: one slot (glmverify.behaviour)
    assert policy.alpha(row, True) * len(fam) == pytest.approx(0.01)
    # an engine showing no rendered prompt decides every fall-through value too: a smaller share each
    assert len(policy.family(sglang_row, rendered=False)) == 19  # 18 verdicts and the behaviour slot
    assert policy.alpha(sglang_row, False) == pytest.approx(0.01 / 19)


# ---- ratio rules: the sign test on the median log ratio -------------------------------------------
@pytest.mark.parametrize("name", RATIO_RULES)
def test_ratio_rule_false_failures_exact_worst_case(sglang_row, name):
    """Over every distribution with the median on the conforming boundary, the false-failure rate
    is at most the two-point worst case, computed exactly: at most alpha, and near it (the union
    bound over looks and the binomial's discreteness leave some of it unspent)."""
    rule = ratio_rules(sglang_row)[name]
    assert rule.kind == "median" and rule.log_scale
    worst = worst_conforming(rule)
    assert worst[FAILED] <= rule.alpha
    assert worst[FAILED] >= rule.alpha / 5
    # the exact computation models the code: a simulation of the same engine agrees with it
    lo, hi = sorted((math.log(rule.fail_bound), math.log(rule.verify_bound)))
    sim = simulate(rule, lambda g, k: np.where(g.random(k) < 0.5, lo - 1.0, hi + 1.0), 3000, seed=40)
    runs_verified = round(sim[VERIFIED] * 3000)
    v_lo, v_hi = proportion_confint(runs_verified, 3000, alpha=0.001, method="beta")
    assert v_lo <= worst[VERIFIED] <= v_hi


@pytest.mark.parametrize("name", RATIO_RULES)
def test_ratio_rule_false_failures_simulated_per_shape(sglang_row, name):
    rule = ratio_rules(sglang_row)[name]
    failed = {s: simulate(rule, at_ratio(rule.fail_bound, s), RUNS_FALSE, seed=50 + i)[FAILED]
              for i, s in enumerate(FALSE_SHAPES)}
    # pooled over the shapes (each shape's own rate is bounded by the exact worst case above)
    count = round(sum(failed.values()) * RUNS_FALSE)
    assert cp_upper(count, RUNS_FALSE * len(FALSE_SHAPES)) <= rule.alpha, failed


@pytest.mark.parametrize("name", RATIO_RULES)
def test_ratio_rule_power_at_the_effect(sglang_row, name):
    rule = ratio_rules(sglang_row)[name]
    assert 2 * rule.looks[-1] == BUDGET_REQUESTS[name]
    for i, shape in enumerate(SHAPES):
        broken = simulate(rule, at_ratio(rule.effect, shape), RUNS_POWER, seed=60 + i)
        assert broken[FAILED] >= 0.95, (shape, broken)
        assert broken[VERIFIED] <= rule.beta, (shape, broken)
        # a broken engine may spend the budget, on average well under it
        assert 2 * broken["mean_n"] <= 0.6 * BUDGET_REQUESTS[name], (shape, broken)


@pytest.mark.parametrize("name,typical", [("effort", 0.5), ("non_think", 0.15), ("wrong-variable", 1.0)])
def test_ratio_rule_conforming_engine_decides_early(sglang_row, name, typical):
    rule = ratio_rules(sglang_row)[name]
    good = simulate(rule, at_ratio(typical, "gauss-0.45"), 2000, seed=70)
    assert good[VERIFIED] >= 0.99 and good[FAILED] == 0
    assert good["mean_n"] <= rule.looks[1]          # the first look or two


def test_ratio_budgets_are_stated(sglang_row):
    rules = ratio_rules(sglang_row)
    assert rules["effort"].looks == rules["fall-through"].looks == policy.EFFORT_LOOKS
    assert policy.EFFORT_LOOKS[-1] == 768 and policy.NONTHINK_LOOKS[-1] == 128 and policy.WRONG_VARIABLE_LOOKS[-1] == 64
    assert "sign-test" in rules["effort"].description and "median" in rules["effort"].quantity


def test_fallthrough_conforming_engine_verifies(sglang_row):
    """A value that falls through reasons like the default (ratio 1.0): an equivalence claim, it
    takes more prompts than a difference but verifies within the budget."""
    rule = ratio_rules(sglang_row)["fall-through"]
    same = simulate(rule, at_ratio(1.0), 2000, seed=71)
    assert same[VERIFIED] >= 0.99 and same[FAILED] == 0 and same["mean_n"] <= 128


# ---- boundaries are strict ----------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["median", "mean"])
def test_zero_spread_at_the_broken_boundary_is_not_verified(sglang_row, kind):
    """An engine ignoring reasoning_effort deterministically: every High/Max ratio exactly 1.0."""
    rule = dataclasses.replace(ratio_rules(sglang_row)["effort"], kind=kind)
    d = decide(rule, [0.0] * 16, look=1)
    assert d.status != VERIFIED
    assert d.status == FAILED and d.interval[1] == pytest.approx(1.0)   # confidently above 0.8
    wrong = ratio_rules(sglang_row)["wrong-variable"]   # higher is better, bound 0.5: sitting on it
    assert decide(wrong, [math.log(0.5)] * 64).status == INCONCLUSIVE


def test_ties_on_the_bound_count_against_the_conclusion(sglang_row):
    rule = ratio_rules(sglang_row)["effort"]
    below = [math.log(0.5)] * 6
    assert decide(rule, below + [math.log(0.5)] * 2, look=0).status == VERIFIED
    assert decide(rule, below + [0.0] * 2, look=0).status == INCONCLUSIVE   # 1.0 is not below 1.0


def test_order_index_is_the_exact_binomial_quantile():
    for n in (8, 16, 100, 768):
        for a in (1e-4, 1e-3, 0.00625):
            k = order_index(n, a)
            assert binom.cdf(k - 1, n, 0.5) <= a < binom.cdf(k, n, 0.5) or k == 0
    assert order_index(8, 1e-3) == 0   # 8 samples cannot bound a median at 1e-3


def test_simulate_is_the_decision_code(sglang_row):
    """The vectorised simulation ends every run as run_sequential would (ties included)."""
    for rule in ratio_rules(sglang_row).values():  # the median rules' fast path; the others share look_status
        budget, runs = rule.looks[-1], 40
        mid = (rule.fail_bound * rule.verify_bound) ** 0.5
        sampler = (lambda g, k, m=mid: np.round(math.log(m) + g.normal(0.0, 0.8, k), 1))
        sim = simulate(rule, sampler, runs, seed=9)
        x = sampler(np.random.default_rng(9), runs * budget).reshape(runs, budget)
        seq = {VERIFIED: 0, FAILED: 0, INCONCLUSIVE: 0}
        spent = []
        for samples in x:
            d, _ = run_sequential(rule, replay(list(samples)))
            seq[d.status] += 1
            spent.append(d.n)
        assert {k: v / runs for k, v in seq.items()} == {k: sim[k] for k in seq}, rule.name
        assert np.mean(spent) == pytest.approx(sim["mean_n"])


# ---- accuracy (Clopper-Pearson) and MTP (Student t), as they are -----------------------------------
@pytest.mark.parametrize("thinking", [True, False], ids=["think", "nonthink"])
def test_accuracy_rule(row, thinking):
    rule = policy.accuracy_rule(row, thinking, True, 64, 0)
    assert rule.looks[0] == 64 and rule.looks[-1] == 1319
    at_bar = exact_two_point(rule, 1.0, 0.0, rule.fail_bound)   # Bernoulli answers at the bar, exactly
    assert rule.alpha / 5 <= at_bar[FAILED] <= rule.alpha       # the stated false-failure rate holds, near it
    assert at_bar[VERIFIED] <= rule.beta                        # a deployment at the bar rarely verifies
    sim = simulate(rule, lambda g, k: g.random(k) < rule.fail_bound, 1000, seed=1)
    v_lo, v_hi = proportion_confint(round(sim[VERIFIED] * 1000), 1000, alpha=0.001, method="beta")
    assert v_lo <= at_bar[VERIFIED] <= v_hi                     # the exact computation models the code
    good = simulate(rule, lambda g, k: g.random(k) < rule.verify_bound + 0.06, 1000, seed=2)
    assert good[VERIFIED] >= 0.99 and good[FAILED] == 0
    assert good["mean_n"] <= 400                                # a healthy engine decides in the first looks
    bad = exact_two_point(rule, 1.0, 0.0, rule.effect)
    assert bad[FAILED] >= 0.95                                  # power at the effect


def test_accuracy_rule_reproduces_the_issue_case(row):
    """62/64 correct was failed by the old Wilson-lower-bound rule; now it is never failed."""
    rule = policy.accuracy_rule(row, True, True, 64, 0)
    d = decide(rule, [True] * 62 + [False] * 2, look=0)
    assert d.status in (VERIFIED, INCONCLUSIVE)


def test_mtp_rule(matrix):
    """Student t on Gaussian window values spends exactly alpha/K at each look on the boundary
    (the t statistic is exactly t-distributed), and its three looks are nearly disjoint tail
    events: the union bound is tight, so the rate sits at alpha itself (<= alpha by the union
    bound, no slack for a simulation to show). 200,000 seeded runs: the two-sided 90%
    Clopper-Pearson interval reaches down to alpha (not above it) and its upper end is within 15%."""
    r = next(r for r in matrix.rows if r.expect.get("draft_tokens") == 5 and not r.is_reference)
    rule = policy.mtp_rule(r, True)
    assert rule.verify_bound == 3.5 and rule.kind == "mean"
    windows = lambda mean: (lambda g, k: mean + g.normal(0.0, 0.25, k))  # noqa: E731
    runs = 200_000
    count = round(simulate(rule, windows(rule.fail_bound), runs, seed=15)[FAILED] * runs)
    assert proportion_confint(count, runs, alpha=0.1, method="beta")[0] <= rule.alpha
    assert cp_upper(count, runs) <= 1.15 * rule.alpha
    assert simulate(rule, windows(4.2), 2000, seed=16)[VERIFIED] >= 0.99
    assert simulate(rule, windows(rule.effect), 2000, seed=17)[FAILED] >= 0.95


# ---- serving errors and the request timeout -------------------------------------------------------
def test_serving_errors_are_told_from_answers():
    assert policy.serving_error(ChatResult(stream=False, error="no complete response within 885s"))
    assert policy.serving_error(ChatResult(stream=False, status=503, error="HTTP 503: overloaded"))
    assert not policy.serving_error(ChatResult(stream=False, status=400, error="HTTP 400: bad value"))
    assert not policy.serving_error(ChatResult(stream=False, content="4", problems=["malformed chunk"]))


def test_serving_error_bar():
    """One timeout among a conforming cell's requests passes; a flaky server goes red."""
    ok = policy.serving_decision("effort_levels[kwargs]", 32, ["timeout"])
    assert ok.status == VERIFIED and ok.extra == {"errors": 1, "allowed": 1, "hard_bar": True}
    assert policy.serving_decision("effort_levels[kwargs]", 32, ["timeout"] * 2).status == FAILED
    big = policy.serving_decision("effort_levels[kwargs]", 400, ["timeout"] * 8)
    assert big.status == VERIFIED and big.extra["allowed"] == 8       # 2% of 400
    assert policy.serving_decision("x", 400, ["timeout"] * 9).status == FAILED
    # its operating characteristics at n, stated in the decision
    assert ok.alpha == pytest.approx(binom.sf(1, 32, policy.SERVING_CONFORMING_RATE)) and ok.alpha < 0.02
    assert "hard bar" in ok.method and ok.evidence()["n"] == 32 and ok.requests == 0   # it spends none
    flaky = error_bar_decision("x", "q", 200, [], 0.02, 1, 0.005, 0.10)
    assert flaky.beta < 1e-4            # a server failing 10% of 200 requests passes with P < 1e-4


def test_request_timeout_follows_max_tokens_and_the_decode_floor(row):
    derived = Options(matrix_path=Path("matrix.yaml"), results_dir=Path("out"))
    assert not derived.request_timeout_given
    assert policy.request_timeout(row, derived) == derived_request_timeout(row.profile.max_tokens) > 120
    assert derived.timeout_for(4096, 50.0) < derived.timeout_for(8192, 50.0) < derived.timeout_for(8192, 10.0)
    assert derived.request_timeout == derived_request_timeout(8192)   # readers of the field get a float
    given = Options(matrix_path=Path("matrix.yaml"), results_dir=Path("out"), request_timeout=45.0)
    assert given.request_timeout_given and policy.request_timeout(row, given) == 45.0
    faster = dataclasses.replace(row, expect={**row.expect, "decode_tokens_per_s": 40})
    assert policy.request_timeout(faster, derived) == derived_request_timeout(row.profile.max_tokens, 40)


# ---- the sequence -------------------------------------------------------------------------------
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
    rule = Rule(name="x", quantity="ratio", kind="median", higher_is_better=False, verify_bound=1.0, fail_bound=0.8,
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
        Rule(name="x", quantity="p", kind="mode", higher_is_better=True, verify_bound=0.9, fail_bound=0.9,
             alpha=0.01, looks=(20,))


def test_simulation_is_seeded(row):
    rule = policy.nonthink_rule(row, True)
    assert simulate(rule, at_ratio(0.55), 50, seed=3) == simulate(rule, at_ratio(0.55), 50, seed=3)
    assert np.isfinite(simulate(rule, at_ratio(0.55), 50, seed=3)["mean_n"])


def test_trend_ends_inconclusive_when_the_last_windows_do_not_decide(matrix):
    r = matrix.row("reference-ngram")
    minimum = float(r.expect["min_accept_length"])
    steady = [minimum + 0.4 + 0.01 * (i % 2) for i in range(policy.MTP_TREND_WINDOWS)]
    assert policy.trend_decision(r, True, steady)["status"] == VERIFIED
    near = [minimum + (0.3 if i % 2 else -0.3) for i in range(policy.MTP_TREND_WINDOWS)]
    out = policy.trend_decision(r, True, near)
    assert out["status"] == INCONCLUSIVE and not out["problems"]
    falling = [4.6] * 8 + [1.12, 1.08, 1.05, 1.03]
    assert policy.trend_decision(r, True, falling)["status"] == FAILED
