"""Statistical verdicts: every behavioural check is a decision with stated error rates.

GLM-5.2 samples (temperature 1.0 / top_p 0.95 from its generation config), its reasoning length
varies from request to request, and a healthy deployment still misses a few GSM8K questions. A
check that compares one sample with a fixed threshold is then decided by chance. Here a check
states a ``Rule`` instead:

* the quantity it estimates (a proportion, or the mean of per-sample values such as per-prompt
  log ratios or per-window accept lengths), and which direction is good;
* ``verify_bound``: the cell is **verified** once the quantity is confidently on the good side of
  it. It is the *broken* boundary (the effect to detect): a deployment at or past it is verified
  with probability at most ``beta``;
* ``fail_bound``: the cell is **failed** once the quantity is confidently on the bad side of it.
  It is the *conforming* boundary: a deployment at or inside it fails with probability at most
  ``alpha`` (the false-failure rate). The two bounds may coincide (accuracy: one bar) or differ
  (effort: conforming High/Max ratio <= 0.8, broken >= 1.0). Between them both conclusions can be
  reachable; verified is checked first, since such a deployment does keep the promise (High
  lowers effort), only less than assumed;
* ``looks``: the cumulative sample sizes at which the rule looks (group-sequential). It stops at
  the first look that decides, so a clearly conforming engine costs one round; the last look is
  the budget, and a rule that has not decided by then ends **inconclusive** (never verified,
  never failed).

Error control is the union bound: each look uses one-sided confidence bounds at ``alpha / K``
(fail side) and ``beta / K`` (verify side) for K looks, so over the whole sequence P(failed |
conforming) <= alpha and P(verified | broken) <= beta whatever the look at which it stops.
Bounds come from maintained libraries: exact Clopper-Pearson (statsmodels ``proportion_confint``,
method ``beta``) for proportions; Student t (statsmodels ``DescrStatsW``) for means.

``family_alpha`` is chosen for the sign-off, not per check: a conforming row's whole run
false-fails with probability at most ``FAMILY_ALPHA`` (1%), split evenly (Bonferroni) over the
statistical decisions the row makes (``family_size``). Deterministic checks (markup in content, a
malformed stream, a schema-invalid argument) have no sampling error: a conforming engine never
produces them, so they do not spend the budget.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

FAMILY_ALPHA = 0.01   # P(any cell of a conforming row false-fails in one run)
DEFAULT_BETA = 0.05   # P(a decision verifies a deployment sitting exactly at its effect)

VERIFIED, FAILED, INCONCLUSIVE = "verified", "failed", "inconclusive"


@dataclass(frozen=True)
class Rule:
    """A decision to make from samples; see the module docstring for the error guarantees."""

    name: str
    quantity: str              # what is estimated, e.g. "GSM8K accuracy (thinking on)"
    kind: str                  # "proportion" (samples are bools) | "mean" (samples are floats)
    higher_is_better: bool
    verify_bound: float        # on the quantity's scale (ratios for log_scale rules)
    fail_bound: float
    alpha: float               # false-failure rate over the whole sequence
    looks: tuple[int, ...]     # cumulative sample sizes; the last is the budget
    beta: float = DEFAULT_BETA
    effect: float | None = None  # the broken value the rule must detect (power is stated at it)
    log_scale: bool = False    # mean rules: samples are logs, quantity = exp(mean)
    basis: str = ""            # where the bounds come from (guide, profile, row)

    def __post_init__(self) -> None:
        if self.kind not in ("proportion", "mean"):
            raise ValueError(f"{self.name}: kind must be proportion or mean, not {self.kind!r}")
        if not self.looks or list(self.looks) != sorted(set(self.looks)) or self.looks[0] < 2:
            raise ValueError(f"{self.name}: looks must be increasing sample sizes >= 2, got {self.looks}")
        if not (0 < self.alpha < 0.5 and 0 < self.beta < 0.5):
            raise ValueError(f"{self.name}: alpha and beta must be in (0, 0.5)")

    @property
    def hypothesis(self) -> str:
        good, bad = (">", "<") if self.higher_is_better else ("<", ">")
        return (f"{self.quantity}: verified when confidently {good}= {self.verify_bound:g} (at {bad}= "
                f"{self.verify_bound:g} it verifies with P <= beta), failed when confidently {bad} {self.fail_bound:g} "
                f"(at {good}= {self.fail_bound:g} it fails with P <= alpha)")

    @property
    def description(self) -> str:
        method = "exact Clopper-Pearson" if self.kind == "proportion" else (
            "Student t on log values" if self.log_scale else "Student t")
        return (f"group-sequential, looks at n={list(self.looks)}; one-sided {method} bounds at alpha/K="
                f"{self.alpha / len(self.looks):.2g} (fail) and beta/K={self.beta / len(self.looks):.2g} (verify), "
                f"K={len(self.looks)} (union bound over looks)")


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


def bounds(rule: Rule, samples: Sequence, level_alpha: float) -> tuple[float | None, float | None, float | None]:
    """(estimate, lower, upper): one-sided bounds each at ``level_alpha`` on the quantity's scale."""
    n = len(samples)
    if rule.kind == "proportion":
        from statsmodels.stats.proportion import proportion_confint

        k = sum(1 for s in samples if s)
        lo, hi = proportion_confint(k, n, alpha=2 * level_alpha, method="beta")
        return k / n, float(lo), float(hi)
    import numpy as np
    from statsmodels.stats.weightstats import DescrStatsW

    x = np.asarray(samples, dtype=float)
    mean = float(x.mean())
    if n < 2:
        return (math.exp(mean) if rule.log_scale else mean), None, None
    if float(x.std(ddof=1)) == 0.0:
        lo = hi = mean  # no spread: the data are the quantity (e.g. a deterministic engine)
    else:
        lo, hi = DescrStatsW(x).tconfint_mean(alpha=2 * level_alpha)
    if rule.log_scale:
        return math.exp(mean), math.exp(lo), math.exp(hi)
    return mean, float(lo), float(hi)


def decide(rule: Rule, samples: Sequence, look: int | None = None) -> Decision:
    """The decision at one look (``look`` = index into ``rule.looks``; default: the last one reached)."""
    n = len(samples)
    k = len(rule.looks)
    if look is None:
        look = max([i for i, size in enumerate(rule.looks) if size <= n] or [0])
    a_fail, a_verify = rule.alpha / k, rule.beta / k
    status, detail = INCONCLUSIVE, ""
    est = lo_f = hi_f = lo_v = hi_v = None
    if n >= 2:
        est, lo_f, hi_f = bounds(rule, samples, a_fail)
        _, lo_v, hi_v = bounds(rule, samples, a_verify)
    if rule.higher_is_better:
        fail_side, verify_side = hi_f, lo_v      # fail: even the optimistic bound is bad
        if verify_side is not None and verify_side >= rule.verify_bound:
            status = VERIFIED
        elif fail_side is not None and fail_side < rule.fail_bound:
            status = FAILED
    else:
        fail_side, verify_side = lo_f, hi_v
        if verify_side is not None and verify_side <= rule.verify_bound:
            status = VERIFIED
        elif fail_side is not None and fail_side > rule.fail_bound:
            status = FAILED
    last = look >= k - 1
    if status == INCONCLUSIVE:
        detail = ("sample budget spent without a decision" if last else "no decision yet")
    return Decision(
        status=status, rule=rule.name, quantity=rule.quantity, hypothesis=rule.hypothesis,
        method=rule.description, alpha=rule.alpha, beta=rule.beta, effect=rule.effect,
        verify_bound=rule.verify_bound, fail_bound=rule.fail_bound, n=n, estimate=est,
        # (lower, upper): the verify-side bound is at beta/K, the fail-side bound at alpha/K
        interval=(lo_v, hi_f) if rule.higher_is_better else (lo_f, hi_v),
        interval_level=1 - a_fail - a_verify, looks_taken=look + 1, looks_planned=k,
        basis=rule.basis, detail=detail)


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
    """Monte-Carlo operating characteristics: the share of runs ending each way.

    ``sampler(rng, k)`` returns k samples from the engine being modelled (numpy Generator).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    counts = {VERIFIED: 0, FAILED: 0, INCONCLUSIVE: 0}
    spent = 0
    for _ in range(runs):
        d, s = run_sequential(rule, lambda k: (list(sampler(rng, k)), k))
        counts[d.status] += 1
        spent += d.n
    out = {k: v / runs for k, v in counts.items()}
    out["mean_n"] = spent / runs
    return out


# ---- the family of decisions a row makes --------------------------------------------------------
def per_decision_alpha(n_decisions: int, family_alpha: float = FAMILY_ALPHA) -> float:
    """Bonferroni: each of the row's statistical decisions gets an equal share of the family rate."""
    return family_alpha / max(1, n_decisions)
