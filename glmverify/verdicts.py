"""Statistical verdicts: every behavioural check is a decision with stated error rates.

GLM-5.2 samples (temperature 1.0 / top_p 0.95 from its generation config), its reasoning length
varies from request to request, and a healthy deployment still misses a few GSM8K questions. A
check that compares one sample with a fixed threshold is then decided by chance. Here a check
states a ``Rule`` instead:

* the quantity it estimates and how: ``proportion`` (samples are bools; exact Clopper-Pearson
  bounds, statsmodels), ``mean`` (Student t bounds, scipy; per-window accept lengths) or
  ``median`` (the sign test's exact order-statistic bounds on the median, binomial quantiles from
  scipy; per-prompt log ratios of paired requests), and which direction is good;
* ``verify_bound``: the cell is **verified** once the quantity is confidently *strictly* on the
  good side of it. It is the *broken* boundary (the effect to detect): a deployment at or past it
  is verified with probability at most ``beta``;
* ``fail_bound``: the cell is **failed** once the quantity is confidently *strictly* on the bad
  side of it. It is the *conforming* boundary: a deployment at or inside it fails with probability
  at most ``alpha`` (the false-failure rate). The two bounds may coincide (accuracy: one bar) or
  differ (effort: conforming High/Max ratio <= 0.8, broken >= 1.0). Between them both conclusions
  can be reachable; verified is checked first, since such a deployment does keep the promise
  (High lowers effort), only less than assumed;
* ``looks``: the cumulative sample sizes at which the rule looks (group-sequential). It stops at
  the first look that decides, so a clearly conforming engine costs one round; the last look is
  the budget, and a rule that has not decided by then ends **inconclusive** (never verified,
  never failed).

Both comparisons are strict, so a sample with no spread sitting on a bound decides nothing on
that side: an engine that ignores ``reasoning_effort`` and answers deterministically gives every
High/Max ratio exactly 1.0, whose interval collapses to 1.0, which is not "< 1.0" (never verified
"different"; it is failed, being confidently above the conforming 0.8). For ``median`` rules a
sample equal to the bound counts against the conclusion being drawn, which keeps the sign test
exact for discrete data (token counts tie).

Why the sign test for ratios: its error rates hold for any distribution of the per-prompt log
ratio, heavy-tailed or skewed (it uses only the signs about the bound), where Student t's hold
for Gaussian log ratios of an assumed spread only, and Wilcoxon's need a symmetric one. An engine
that ignores a switch sends exchangeable pairs (both requests alike), so its log ratio is
symmetric about 0 and its median is exactly the effect; a conforming engine's may be skewed.

Error control is the union bound: each look uses one-sided bounds at ``alpha / K`` (fail side)
and ``beta / K`` (verify side) for K looks, so over the whole sequence P(failed | conforming) <=
alpha and P(verified | broken) <= beta whatever the look at which it stops. One vectorised code
path (``look_status``) decides a single sample (``decide``) and many simulated runs at once
(``simulate``), so the simulated operating characteristics are those of the code the suites run.

``family_alpha`` is chosen for the sign-off, not per check: a conforming row's whole run
false-fails with probability at most ``FAMILY_ALPHA`` (1%), split evenly (Bonferroni) over the
statistical decisions the row makes (``family_size``). Deterministic checks (markup in content, a
malformed stream, a schema-invalid argument) have no sampling error: a conforming engine never
produces them, so they do not spend the budget. Requests that time out or fail in transport are
no sample of the behaviour: they are excluded from the decision and judged apart by
``error_bar_decision`` (a hard bar on the serving-error count, with its operating
characteristics stated).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

FAMILY_ALPHA = 0.01   # P(any cell of a conforming row false-fails in one run)
DEFAULT_BETA = 0.05   # P(a decision verifies a deployment sitting exactly at its effect)

VERIFIED, FAILED, INCONCLUSIVE = "verified", "failed", "inconclusive"
KINDS = ("proportion", "mean", "median")


@dataclass(frozen=True)
class Rule:
    """A decision to make from samples; see the module docstring for the error guarantees."""

    name: str
    quantity: str              # what is estimated, e.g. "GSM8K accuracy (thinking on)"
    kind: str                  # "proportion" (bools) | "mean" (floats, t) | "median" (floats, sign test)
    higher_is_better: bool
    verify_bound: float        # on the quantity's scale (ratios for log_scale rules)
    fail_bound: float
    alpha: float               # false-failure rate over the whole sequence
    looks: tuple[int, ...]     # cumulative sample sizes; the last is the budget
    beta: float = DEFAULT_BETA
    effect: float | None = None  # the broken value the rule must detect (power is stated at it)
    log_scale: bool = False    # mean/median rules: samples are logs, quantity = exp(location)
    basis: str = ""            # where the bounds come from (guide, profile, row)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be one of {KINDS}, not {self.kind!r}")
        if not self.looks or list(self.looks) != sorted(set(self.looks)) or self.looks[0] < 2:
            raise ValueError(f"{self.name}: looks must be increasing sample sizes >= 2, got {self.looks}")
        if not (0 < self.alpha < 0.5 and 0 < self.beta < 0.5):
            raise ValueError(f"{self.name}: alpha and beta must be in (0, 0.5)")

    @property
    def hypothesis(self) -> str:
        good, bad = (">", "<") if self.higher_is_better else ("<", ">")
        at_good, at_bad = (">=", "<=") if self.higher_is_better else ("<=", ">=")
        return (f"{self.quantity}: verified when confidently {good} {self.verify_bound:g} (at {at_bad} "
                f"{self.verify_bound:g} it verifies with P <= beta), failed when confidently {bad} {self.fail_bound:g} "
                f"(at {at_good} {self.fail_bound:g} it fails with P <= alpha)")

    @property
    def description(self) -> str:
        method = {"proportion": "exact Clopper-Pearson",
                  "mean": "Student t on log values" if self.log_scale else "Student t",
                  "median": "sign-test (exact binomial order-statistic) bounds on the median"
                            + (" log value" if self.log_scale else "")}[self.kind]
        return (f"group-sequential, looks at n={list(self.looks)}; one-sided {method} at alpha/K="
                f"{self.alpha / len(self.looks):.2g} (fail) and beta/K={self.beta / len(self.looks):.2g} (verify), "
                f"K={len(self.looks)} (union bound over looks); strict comparisons with the bounds")


@dataclass
class Decision:
    """What a rule concluded, with everything a reviewer needs to defend the cell."""

    status: str
    rule: str
    quantity: str
    hypothesis: str
    method: str
    alpha: float
    beta: float
    effect: float | None
    verify_bound: float
    fail_bound: float
    n: int
    estimate: float | None
    interval: tuple[float | None, float | None]   # (lower, upper) bounds at the last look
    interval_level: float
    looks_taken: int
    looks_planned: int
    requests: int = 0
    excluded: int = 0
    basis: str = ""
    detail: str = ""
    extra: dict = field(default_factory=dict)

    def evidence(self) -> dict:
        d = asdict(self)
        d["interval"] = [_round(x) for x in self.interval]
        d["estimate"] = _round(self.estimate)
        return d

    def summary(self) -> str:
        lo, hi = self.interval
        return (f"{self.quantity}: estimate {_fmt(self.estimate)} on n={self.n} "
                f"(interval {_fmt(lo)}..{_fmt(hi)} at {self.interval_level:.4g}), {self.status} "
                f"[{self.hypothesis}; alpha {self.alpha:.2g}, beta {self.beta:.2g}"
                + (f", effect {self.effect:g}" if self.effect is not None else "") + "]"
                + (f"; {self.detail}" if self.detail else ""))


def _round(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, 5)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.4g}"


def order_index(n: int, level_alpha: float) -> int:
    """k such that the k-th smallest of n samples is a one-sided lower bound on the median at
    ``level_alpha`` (and the k-th largest an upper one): the most k with P(Bin(n, 1/2) <= k - 1)
    <= level_alpha. 0: n is too small for any bound at that level."""
    import numpy as np
    from scipy.stats import binom

    return int((binom.cdf(np.arange(n + 1), n, 0.5) <= level_alpha).sum())


def bounds_many(rule: Rule, x, level_alpha: float):
    """(estimate, lower, upper) per run for a (runs, n) array of samples: one-sided bounds each at
    ``level_alpha`` on the quantity's scale (-inf/inf where n is too small for a bound)."""
    import numpy as np

    x = np.asarray(x, dtype=float)
    n = x.shape[1]
    if rule.kind == "proportion":
        from statsmodels.stats.proportion import proportion_confint

        k = x.sum(axis=1)
        lo, hi = proportion_confint(k, n, alpha=2 * level_alpha, method="beta")
        return k / n, np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    if rule.kind == "mean":
        from scipy.stats import t

        est = x.mean(axis=1)
        # no spread: the interval is the mean itself (e.g. a deterministic engine); strict
        # comparisons keep such a sample from deciding at a bound it sits on
        half = t.ppf(1 - level_alpha, n - 1) * x.std(axis=1, ddof=1) / math.sqrt(n)
        lo, hi = est - half, est + half
    else:
        est = np.median(x, axis=1)
        k = order_index(n, level_alpha)
        if k == 0:
            lo, hi = np.full(len(x), -np.inf), np.full(len(x), np.inf)
        else:  # the k-th smallest and k-th largest (a partial sort is enough)
            part = np.partition(x, sorted({k - 1, n - k}), axis=1)
            lo, hi = part[:, k - 1], part[:, n - k]
    if rule.log_scale:
        return np.exp(est), np.exp(lo), np.exp(hi)
    return est, lo, hi


def look_status(rule: Rule, x, look: int):
    """Status codes per run (1 verified, -1 failed, 0 inconclusive) at look ``look`` for a (runs,
    n) array, with the bounds used: (codes, estimate, verify-side bound, fail-side bound)."""
    import numpy as np

    k = len(rule.looks)
    est, lo_f, hi_f = bounds_many(rule, x, rule.alpha / k)
    _, lo_v, hi_v = bounds_many(rule, x, rule.beta / k)
    if rule.higher_is_better:
        verify_side, fail_side = lo_v, hi_f    # fail: even the optimistic bound is bad
        verified, failed = verify_side > rule.verify_bound, fail_side < rule.fail_bound
    else:
        verify_side, fail_side = hi_v, lo_f
        verified, failed = verify_side < rule.verify_bound, fail_side > rule.fail_bound
    codes = np.where(verified, 1, np.where(failed, -1, 0))
    return codes, est, verify_side, fail_side


def decide(rule: Rule, samples: Sequence, look: int | None = None) -> Decision:
    """The decision at one look (``look`` = index into ``rule.looks``; default: the last one reached)."""
    n = len(samples)
    k = len(rule.looks)
    if look is None:
        look = max([i for i, size in enumerate(rule.looks) if size <= n] or [0])
    status, detail = INCONCLUSIVE, ""
    est = verify_side = fail_side = None
    if n >= 2:
        codes, e, v, f = look_status(rule, [list(samples)], look)
        status = {1: VERIFIED, -1: FAILED, 0: INCONCLUSIVE}[int(codes[0])]
        est, verify_side, fail_side = float(e[0]), float(v[0]), float(f[0])
    elif n == 1 and rule.kind != "proportion":
        est = math.exp(float(samples[0])) if rule.log_scale else float(samples[0])
    if status == INCONCLUSIVE:
        detail = "sample budget spent without a decision" if look >= k - 1 else "no decision yet"
    # (lower, upper): the verify-side bound is at beta/K, the fail-side bound at alpha/K
    interval = (verify_side, fail_side) if rule.higher_is_better else (fail_side, verify_side)
    return Decision(
        status=status, rule=rule.name, quantity=rule.quantity, hypothesis=rule.hypothesis,
        method=rule.description, alpha=rule.alpha, beta=rule.beta, effect=rule.effect,
        verify_bound=rule.verify_bound, fail_bound=rule.fail_bound, n=n, estimate=est,
        interval=interval, interval_level=1 - (rule.alpha + rule.beta) / k, looks_taken=look + 1,
        looks_planned=k, basis=rule.basis, detail=detail)


def run_sequential(rule: Rule, draw: Callable[[int], tuple[Sequence, int]]) -> tuple[Decision, list]:
    """Draw samples round by round (``draw(k)`` returns k new samples, possibly fewer when some
    were excluded, and the requests it spent) until a look decides or the budget is spent.

    Returns the decision and every sample drawn, in order.
    """
    samples: list = []
    requests = excluded = 0
    decision = None
    for i, size in enumerate(rule.looks):
        need = size - (len(samples) + excluded)
        if need > 0:
            new, spent = draw(need)
            samples.extend(new)
            excluded += need - len(new)
            requests += spent
        decision = decide(rule, samples, look=i)
        if decision.status != INCONCLUSIVE:
            break
    assert decision is not None
    decision.requests, decision.excluded = requests, excluded
    return decision, samples


def simulate(rule: Rule, sampler: Callable, runs: int, seed: int = 0) -> dict[str, float]:
    """Monte-Carlo operating characteristics: the share of runs ending each way, and the samples
    spent (``mean_n``, ``max_n``), all runs at once through ``look_status``.

    ``sampler(rng, k)`` returns k independent samples from the engine being modelled (numpy
    Generator); it is called once for ``runs`` x the budget samples.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    budget = rule.looks[-1]
    x = np.asarray(sampler(rng, runs * budget), dtype=float).reshape(runs, budget)
    final = np.zeros(runs, dtype=int)
    spent = np.full(runs, budget)
    open_ = np.ones(runs, dtype=bool)
    signs = _sign_counts(rule, x) if rule.kind == "median" else None
    for i, size in enumerate(rule.looks):
        if signs is not None:
            codes = _median_codes(rule, signs, size, i)[open_]
        else:
            codes, *_ = look_status(rule, x[open_, :size], i)
        idx = np.flatnonzero(open_)
        done = codes != 0
        final[idx[done]] = codes[done]
        spent[idx[done]] = size
        open_[idx[done]] = False
        if not open_.any():
            break
    return {VERIFIED: float((final == 1).mean()), FAILED: float((final == -1).mean()),
            INCONCLUSIVE: float((final == 0).mean()), "mean_n": float(spent.mean()), "max_n": int(spent.max())}


def _sign_counts(rule: Rule, x) -> dict:
    """Cumulative counts per run of samples below the verify bound and at-or-below the fail bound
    (lower is better; strictly above / at-or-above when higher is better), on the samples' scale:
    what the sign test's order-statistic bounds compare, computed once for every look."""
    import numpy as np

    def at(bound: float) -> float:
        return math.log(bound) if rule.log_scale else bound

    if rule.higher_is_better:
        pairs = (("upto_v", np.less_equal(x, at(rule.verify_bound))), ("below_f", np.less(x, at(rule.fail_bound))))
    else:
        pairs = (("below_v", np.less(x, at(rule.verify_bound))), ("upto_f", np.less_equal(x, at(rule.fail_bound))))
    return {name: np.cumsum(hit, axis=1, dtype=np.int32) for name, hit in pairs}


def _median_codes(rule: Rule, signs: dict, n: int, look: int):
    """``look_status``'s codes for a median rule from the sign counts of the first n samples:
    the k-th smallest exceeds b iff fewer than k samples are <= b; the k-th largest is below b
    iff at least n - k + 1 samples are < b (tests/unit/test_verdicts.py checks both paths agree)."""
    import numpy as np

    k_len = len(rule.looks)
    kf, kv = order_index(n, rule.alpha / k_len), order_index(n, rule.beta / k_len)
    at_n = {name: counts[:, n - 1] for name, counts in signs.items()}
    none = np.zeros(len(next(iter(at_n.values()))), dtype=bool)
    if rule.higher_is_better:   # verified: k-th smallest > vb; failed: k-th largest < fb
        verified = (at_n["upto_v"] < kv) if kv else none
        failed = (at_n["below_f"] >= n - kf + 1) if kf else none
    else:                       # verified: k-th largest < vb; failed: k-th smallest > fb
        verified = (at_n["below_v"] >= n - kv + 1) if kv else none
        failed = (at_n["upto_f"] < kf) if kf else none
    return np.where(verified, 1, np.where(failed, -1, 0))


def error_bar_decision(name: str, quantity: str, requests: int, errors: Sequence[str], share: float,
                       at_least: int, conforming_rate: float, flaky_rate: float, basis: str = "") -> Decision:
    """A hard bar on a count of serving errors (timeouts, transport errors, 5xx): failed when more
    than ``max(at_least, floor(share * requests))`` of ``requests`` failed, else verified. Its
    operating characteristics at this n are stated in the decision (binomial, scipy): ``alpha`` =
    P(failed) for a server failing ``conforming_rate`` of requests, ``beta`` = P(verified) for a
    flaky one failing ``flaky_rate``."""
    from scipy.stats import binom

    allowed = max(at_least, int(math.floor(share * requests)))
    count = len(errors)
    status = FAILED if count > allowed else VERIFIED
    rate = count / requests if requests else 0.0
    alpha = float(binom.sf(allowed, requests, conforming_rate)) if requests else 0.0
    beta = float(binom.cdf(allowed, requests, flaky_rate)) if requests else 1.0
    return Decision(
        status=status, rule=name, quantity=quantity,
        hypothesis=(f"{quantity}: failed when more than max({at_least}, {share:g} x requests) = {allowed} of "
                    f"{requests} requests failed to be served"),
        method=(f"hard bar; at n={requests}: P(failed) {alpha:.2g} at a {conforming_rate:g} serving-error rate "
                f"(conforming), P(passed) {beta:.2g} at {flaky_rate:g} (flaky)"),
        alpha=alpha, beta=beta, effect=flaky_rate, verify_bound=share, fail_bound=share, n=requests,
        estimate=rate, interval=(None, None), interval_level=0.0, looks_taken=1, looks_planned=1,
        requests=0, excluded=0, basis=basis,   # it spends none: n is the check's requests, judged
        detail=(f"{count} serving errors, first: {list(errors)[:3]}" if count else "no serving errors"),
        extra={"errors": count, "allowed": allowed, "hard_bar": True})


# ---- the family of decisions a row makes --------------------------------------------------------
def per_decision_alpha(n_decisions: int, family_alpha: float = FAMILY_ALPHA) -> float:
    """Bonferroni: each of the row's statistical decisions gets an equal share of the family rate."""
    return family_alpha / max(1, n_decisions)
