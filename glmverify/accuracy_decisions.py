"""Accuracy decisions beyond the absolute gate: paired against a baseline, steady over the run.

All three end as a ``verdicts.Decision`` (verified / failed / inconclusive) with stated error
rates, so ``checks.conclude`` records and ends them like every other decision.

* ``paired``: the same GSM8K questions answered by a baseline and by this run. The quantity is
  d = accuracy(baseline) - accuracy(current). Only the discordant pairs carry information: ``b``
  (baseline right, current wrong) and ``c`` (baseline wrong, current right); d = psi (2 pi - 1)
  with psi the discordant share and pi = b / (b + c) (McNemar). **failed** when d is confidently
  above 0: the exact one-sided McNemar test (``scipy.stats.binomtest`` on b of b + c, p = 1/2)
  at alpha / K (K looks, union bound as in ``verdicts``); the lower bound shown is psi_lo (2
  pi_lo - 1), whose sign is that test. **verified** when d is confidently below the stated
  effect (default 3 points): Tango's score upper bound for a paired difference (Tango 1998, the
  asymptotic score interval of R's ``PropCIs::scoreci.mp`` and ``contingencytables``; its root
  found with ``scipy.optimize.brentq``) at beta / K is under the effect. It replaced a product of
  two Clopper-Pearson bounds (psi_hi (2 pi_hi - 1)) that was valid but loose where the seeded
  answers are not reproducible: there both sides sample independently (vLLM: "does not guarantee
  the reproducibility of the results by default ... in online mode, you can only enable batch
  invariance"), about 8.6% of GSM8K pairs are discordant at 95.5%, and a healthy deployment ended
  inconclusive in 81% of simulated runs at 512 questions (34% at the whole test set); with Tango's
  bound at the whole test set, 8% (``tests/unit/test_accuracy_baseline.py``). Its one-sided error
  is near nominal (1.5% at a nominal 1.25%, 512 pairs, simulated); the union bound over the looks
  keeps the whole decision under beta. No discordant pair at all gives z^2 / (n + z^2): a
  conforming seeded engine that answers exactly as its baseline verifies at 256 questions for 3
  points at K = 4, as before.
* ``drift``: accuracy in the run's early windows against its late windows (requests in order of
  sending; the first and last ``DRIFT_SHARE`` of the windows). The quantity is p_early - p_late;
  a score interval for two independent proportions (``confint_proportions_2indep``, statsmodels,
  Newcombe) at alpha (fail side: lower bound > 0, the run decays) and beta (verify side: upper
  bound < the effect). One look: the windows are what the run drew.
* ``batch``: the same questions with the same seeds at concurrency 1 and at full concurrency,
  paired like ``paired`` (the concurrency-1 answers play the baseline). On a row declaring
  ``expect.deterministic`` (seeded output reproducible) any differing answer is a defect on its
  own (numerics that depend on batch shape), with no sampling error: failed with the ids.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

from .verdicts import FAILED, INCONCLUSIVE, VERIFIED, Decision

FIRST_IDS = 8        # discordant question ids shown per side
DRIFT_WINDOW = 32    # requests per window of the drift decision
DRIFT_SHARE = 1 / 3  # the first and the last third of the windows are compared


def _cp(k: int, n: int, level: float) -> tuple[float, float]:
    """One-sided Clopper-Pearson bounds (each at ``level``) of k successes in n (statsmodels)."""
    from statsmodels.stats.proportion import proportion_confint

    if n == 0:
        return 0.0, 1.0
    lo, hi = proportion_confint(k, n, alpha=2 * level, method="beta")
    return (0.0 if math.isnan(lo) else float(lo)), (1.0 if math.isnan(hi) else float(hi))


def mcnemar_p(b: int, c: int) -> float:
    """Exact one-sided McNemar p-value for 'the current side is worse' (b of b + c at p = 1/2)."""
    from scipy.stats import binomtest

    return 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5, alternative="greater").pvalue)


def tango_z(b: int, c: int, n: int, d: float) -> float:
    """Tango's score statistic for H0: p12 - p21 = d (b = n12, c = n21), with p21 its restricted MLE."""
    a2, bb, cc = 2 * n, -b - c + (2 * n - b + c) * d, -c * d * (1 - d)
    p21 = (math.sqrt(max(bb * bb - 4 * a2 * cc, 0.0)) - bb) / (2 * a2)
    var = n * (2 * p21 + d - d * d)
    num = b - c - n * d
    return num / math.sqrt(var) if var > 0 else (math.inf if num > 0 else -math.inf if num < 0 else 0.0)


def tango_upper(b: int, c: int, n: int, level: float) -> float:
    """One-sided upper confidence bound (at ``level``) of d = (p12 - p21) from Tango's score interval."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    if n == 0:
        return 1.0
    z = float(norm.isf(level))
    f = lambda d: tango_z(b, c, n, d) + z  # noqa: E731 - decreasing in d; the bound is its root
    top = 1 - 1e-12
    if f(top) >= 0:
        return 1.0
    est = (b - c) / n
    low = est if f(est) > 0 else -top
    return float(brentq(f, low, top, xtol=1e-10))


def paired_bounds(b: int, c: int, n: int, fail_level: float, verify_level: float) -> tuple[float, float, float]:
    """(estimate, lower, upper) of d = p_baseline - p_current from the discordant counts: the
    lower bound at ``fail_level`` (its sign is the exact McNemar test), the upper at ``verify_level``
    (Tango's score bound); see the module docstring."""
    m = b + c
    est = (b - c) / n if n else 0.0
    if n == 0:
        return est, -1.0, 1.0
    psi_lo_f, psi_hi_f = _cp(m, n, fail_level)
    pi_lo, _ = _cp(b, m, fail_level) if m else (0.0, 1.0)
    t = 2 * pi_lo - 1
    lower = psi_lo_f * t if t > 0 else psi_hi_f * t
    return est, lower, tango_upper(b, c, n, verify_level)


def discordant(pairs: Sequence[tuple[str, bool, bool]]) -> tuple[list[str], list[str]]:
    """Ids of (baseline right, current wrong) and (baseline wrong, current right) pairs."""
    return [q for q, base, cur in pairs if base and not cur], [q for q, base, cur in pairs if cur and not base]


def paired(pairs: Sequence[tuple[str, bool, bool]], *, name: str, quantity: str, effect: float, alpha: float,
           beta: float, look: int, looks: Sequence[int], source: str, basis: str = "") -> Decision:
    """The paired decision at look ``look`` (index into ``looks``) on ``pairs`` = (question id,
    baseline correct, current correct), in the seeded question order."""
    k = len(looks)
    n = len(pairs)
    worse, better = discordant(pairs)
    b, c = len(worse), len(better)
    est, lower, upper = paired_bounds(b, c, n, alpha / k, beta / k)
    p = mcnemar_p(b, c)
    status = VERIFIED if upper < effect else FAILED if lower > 0 else INCONCLUSIVE
    base_acc = sum(x for _, x, _ in pairs) / n if n else None
    cur_acc = sum(y for _, _, y in pairs) / n if n else None
    detail = (f"{n} paired questions: {b} right in the baseline and wrong now (first {worse[:FIRST_IDS]}), "
              f"{c} wrong in the baseline and right now (first {better[:FIRST_IDS]}); exact McNemar one-sided "
              f"p {p:.3g}; baseline: {source}")
    if status == INCONCLUSIVE:
        detail += "; sample budget spent without a decision" if look >= k - 1 else "; no decision yet"
    return Decision(
        status=status, rule=name, quantity=quantity,
        hypothesis=(f"{quantity}: verified when confidently < {effect:g} (no degradation beyond the effect), "
                    f"failed when confidently > 0 (worse than the baseline)"),
        method=(f"paired, group-sequential looks at n={list(looks)}; failed: exact one-sided McNemar (binomial on "
                f"the discordant pairs, scipy) at alpha/K={alpha / k:.2g}; verified: Tango's score upper bound "
                f"(paired difference) at beta/K={beta / k:.2g} below the effect"),
        alpha=alpha, beta=beta, effect=effect, verify_bound=effect, fail_bound=0.0, n=n, estimate=est,
        interval=(lower, upper), interval_level=1 - (alpha + beta) / k, looks_taken=look + 1, looks_planned=k,
        basis=basis or f"baseline: {source}", detail=detail,
        extra={"baseline_right_current_wrong": b, "baseline_wrong_current_right": c, "first_worse": worse[:FIRST_IDS],
               "first_better": better[:FIRST_IDS], "mcnemar_p": p, "baseline_accuracy": base_acc,
               "current_accuracy": cur_acc, "baseline_source": source})


def run_paired(baseline: dict[str, bool], draw: Callable[[int], list[tuple[str, bool]]], looks: Sequence[int],
               **kw) -> tuple[Decision, list[tuple[str, bool, bool]]]:
    """Sequential ``paired``: ``draw(k)`` answers the next k questions of the seeded order and
    returns (id, correct) for those it could score (unserved ones are left out); questions the
    baseline did not score are not paired. Stops at the first look that decides."""
    pairs: list[tuple[str, bool, bool]] = []
    decision = None
    asked = 0
    for i, size in enumerate(looks):
        need = size - asked
        if need > 0:
            asked += need
            pairs.extend((q, baseline[q], ok) for q, ok in draw(need) if q in baseline)
        decision = paired(pairs, look=i, looks=looks, **kw)
        if decision.status != INCONCLUSIVE:
            break
    assert decision is not None
    decision.requests = asked
    return decision, pairs


def windows(outcomes: Sequence[bool], size: int = DRIFT_WINDOW) -> list[float]:
    """Accuracy per window of ``size`` requests in order (a last partial window is left out)."""
    return [sum(outcomes[i:i + size]) / size for i in range(0, len(outcomes) - size + 1, size)]


def drift(outcomes: Sequence[bool], *, name: str, quantity: str, effect: float, alpha: float, beta: float,
          size: int = DRIFT_WINDOW, share: float = DRIFT_SHARE, basis: str = "") -> Decision:
    """Early against late windows of ``outcomes`` (in order of sending); see the module docstring."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    per = windows(outcomes, size)
    w = max(1, int(len(per) * share))
    early, late = list(outcomes[:w * size]), list(outcomes[(len(per) - w) * size:len(per) * size])
    est = lower = upper = None
    status = INCONCLUSIVE
    if len(per) >= 2 and early and late:
        e, l_ = sum(early), sum(late)

        def ci(level: float) -> tuple[float, float]:
            lo, hi = confint_proportions_2indep(e, len(early), l_, len(late), method="newcomb", compare="diff",
                                                alpha=2 * level)
            return float(lo), float(hi)
        est = e / len(early) - l_ / len(late)
        lower, _ = ci(alpha)
        _, upper = ci(beta)
        status = VERIFIED if upper < effect else FAILED if lower > 0 else INCONCLUSIVE
    detail = (f"accuracy per window of {size} requests: {[round(x, 3) for x in per]}; first {w} window(s) "
              f"against the last {w}" if per else f"fewer than {2 * size} requests: no windows to compare")
    return Decision(
        status=status, rule=name, quantity=quantity,
        hypothesis=(f"{quantity}: verified when confidently < {effect:g}, failed when confidently > 0 "
                    f"(accuracy falls over the run)"),
        method=(f"Newcombe score interval for two independent proportions (statsmodels), one-sided at alpha "
                f"{alpha:.2g} (fail) and beta {beta:.2g} (verify); one look over the run's windows"),
        alpha=alpha, beta=beta, effect=effect, verify_bound=effect, fail_bound=0.0, n=len(outcomes),
        estimate=est, interval=(lower, upper), interval_level=1 - alpha - beta, looks_taken=1, looks_planned=1,
        requests=0, basis=basis, detail=detail,
        extra={"windows": [round(x, 4) for x in per], "window_size": size, "compared_windows": w})


def answers_differ(first: dict[str, str | None], second: dict[str, str | None]) -> list[str]:
    """Question ids whose extracted answers differ between two seeded sets of answers."""
    return [q for q in first if q in second and first[q] != second[q]]
