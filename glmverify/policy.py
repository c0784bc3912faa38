"""The statistical decisions each row makes, built from its profile and expectations.

One function per decision (the suites call them; none computes a bound itself). Targets come from
the model profile's ``verdicts`` block in matrix.yaml (GSM8K expected accuracy and tolerance per
mode with their basis, the conforming ratio of an effort level's reasoning to the next-higher
level's, the thinking-off token ratio) and from the
row's ``expect`` (MTP minimum accept length, an accuracy bar override). The false-failure rate is
chosen for the sign-off: ``family_alpha`` (1%) per row and run, split evenly over the decisions in
``family(row, rendered)``, so a conforming row false-fails anywhere with probability <= 1%.

Ratio decisions (effort High/Max and each adjacent pair, fall-through value/default, non_think
off/on, the wrong thinking variable) are on the **median** of per-prompt log ratios of paired
requests, by the sign test (``verdicts``, kind ``median``): their error rates hold whatever the
shape of the ratio's distribution (heavy tails, skew), which an assumed Gaussian spread did not.
The sign test needs more samples than a t test on Gaussian data, so the budgets are larger; the
power is stated for log-ratio spreads up to SD 0.8 and t3, lognormal and gamma shapes (simulated
in tests/unit/test_verdicts.py). Budgets, in prompts (each prompt costs two requests, one per
side of the pair; a level's draws are reused as the reference of the next pair):

* effort and fall-through: looks ``EFFORT_LOOKS`` = 8 .. 768 prompts (at most 1,536 requests a
  decision); a conforming engine (High about half of Max) decides at 8-16 prompts, an
  effort-ignoring one fails after about 150 prompts at the stand-in's spread (log-ratio SD 0.45),
  about 400 at SD 0.8; a fall-through value that reasons like the default is an equivalence claim
  (its ratio > 0.8) and takes about 64-128;
* non_think off/on: ``NONTHINK_LOOKS`` = 8 .. 128 prompts (256 requests); conforming: 8, thinking
  off ignored: about 25-55;
* wrong variable: ``WRONG_VARIABLE_LOOKS`` = 8 .. 64 prompts (128 requests); conforming: 8-16,
  the wrong variable obeyed: about 20-40.

Requests that time out or fail in transport (``serving_error``) are excluded from these decisions
and judged apart (``serving_decision``): a hard bar of ``SERVING_ERROR_SHARE`` (2%) of a check's
requests, at least ``SERVING_ERROR_AT_LEAST`` (1), so one slow request does not fail a conforming
cell and a flaky server still goes red. The request timeout follows the row (``request_timeout``:
``max_tokens`` at the row's decode-speed floor, unless ``--request-timeout`` is given).

Speculative decoding has three decisions: the mean accept length (``mtp_rule``), the acceptance per
draft position (``position_rules``: a position's acceptance given the one before it, bounded below
by half the conditional rate of a drafter that just reaches the row's minimum) and the trend over
the run (``trend_decision``: Kendall's tau of window accept length on window index, one-sided,
with the fitted decline as its effect size, and the last windows' mean against the minimum).

Looks (group-sequential sample sizes) are chosen so that a conforming engine decides at the first
look or two and a broken one at the effect still fails with power >= 95% within the budget; the
simulations in tests/unit/test_verdicts.py show both.
"""
from __future__ import annotations

from .adapters import adapter_for
from .chat_answers import ChatResult
from .matrix import EffortProfile, Row
from .options import Options
from .verdicts import FAMILY_ALPHA, Decision, Rule, error_bar_decision, per_decision_alpha

GSM8K_SIZE = 1319
EFFORT_LOOKS = (8, 16, 32, 64, 128, 256, 512, 768)  # prompts, each sent at both levels (paired)
NONTHINK_LOOKS = (8, 16, 32, 64, 128)     # prompts, each sent with thinking off and on
WRONG_VARIABLE_LOOKS = (8, 16, 32, 64)    # prompts, each sent with the wrong variable and on
MTP_LOOKS = (4, 8, 16)                    # windows of the workload (counter deltas per window)
MTP_WINDOW = 4                            # requests per window
MTP_TREND_WINDOWS = 12                    # windows of the over-time workload (the whole run, one look)
MTP_TREND_LAST = 4                        # the last windows, decided against the minimum
MTP_DECAY_EFFECT = 0.5                    # a decline of the fitted accept length over the run that counts
MTP_POSITION_FRACTION = 0.5               # a position below this share of the constant conditional rate collapsed
DEFAULT_EFFORT_RATIO = 0.8
DEFAULT_NONTHINK_RATIO = 0.5
# serving errors (timeouts, transport errors, 5xx): a hard bar per check. A conforming server at a
# timeout derived from its decode floor fails well under 0.5% of requests (P(failed) <= 0.3% at
# 16 requests, less at more); a flaky one failing 10% of them is caught from about 30 requests.
SERVING_ERROR_SHARE = 0.02
SERVING_ERROR_AT_LEAST = 1
SERVING_CONFORMING_RATE = 0.005
SERVING_FLAKY_RATE = 0.10
# accuracy beyond the absolute gate (glmverify.accuracy_decisions; issue #25): stated effects and budgets
PAIRED_EFFECT = 0.03    # baseline - current accuracy a paired run must confidently stay under (--accuracy-effect)
# questions the paired check may draw (capped by --accuracy-max and the baseline's): a row whose
# seeded answers are reproducible (expect.deterministic) differs from its baseline only where a
# defect changed an answer, and 512 questions decide (a conforming one verifies at 256); anywhere
# else both sides sample independently (vLLM: no reproducibility online without batch invariance),
# about 8.6% of pairs differ by chance at GLM-5.2's 95.5%, and only the whole test set resolves
# 3 points (a healthy deployment verifies in about 92% of simulated runs, the rest inconclusive)
PAIRED_BUDGET = 512
DRIFT_EFFECT = 0.10     # early - late window accuracy a steady run must confidently stay under
BATCH_EFFECT = 0.10     # concurrency-1 - full-concurrency accuracy on the same seeded questions
STEADY_BUDGET = 384     # seeded requests the steady check judges (12 windows of 32; the paired check's, topped up)
BATCH_SUBSET = 64       # questions re-asked one at a time (their cost is reported)


def _v(row: Row) -> dict:
    return row.profile.verdicts or {}


def rendered_prompt(engine_kind: str) -> bool:
    """Whether the engine shows the prompt its template rendered (its adapter's answer)."""
    return adapter_for(engine_kind).shows_rendered_prompt


def family(row: Row, rendered: bool) -> list[str]:
    """Every statistical decision the row's suites make in one run (the Bonferroni family)."""
    out: list[str] = []
    eff = row.profile.effort
    if row.serves("accuracy_smoke") and row.expect.get("accuracy") is not None:
        out += ["accuracy[think]", "accuracy[nonthink]", "accuracy[paired:think]", "accuracy[paired:nonthink]",
                "accuracy[drift]", "accuracy[batch]"]
    if row.serves("effort_levels"):
        for ch in ("kwargs", "top_level"):
            out += [f"effort[{ch}:{lower}]" for lower, _ in effort_pairs(eff)]
            if not rendered:
                out += [f"effort[{ch}:{v}={eff.default}]" for v in eff.probe_values if eff.resolve(v) == eff.default]
    if row.serves("non_think"):
        out.append("non_think[ratio]")
        out += [f"non_think[wrong:{v}]" for v in row.profile.wrong_thinking_variables]
    if row.serves("mtp_accept_length") and row.expect.get("min_accept_length") is not None:
        out += ["mtp[accept_length]", "mtp[position]", "mtp[trend]"]
    from .behaviour import family_names; out += family_names(row)  # noqa: E702 - model behaviour as rates
    return out


def alpha(row: Row, rendered: bool) -> float:
    return per_decision_alpha(len(family(row, rendered)), _v(row).get("family_alpha", FAMILY_ALPHA))


def serving_error(r: ChatResult) -> bool:
    """A request the server did not serve: a timeout, a transport error or a 5xx. It is no sample
    of the behaviour being decided (excluded from the decision, judged by ``serving_decision``);
    a 4xx refusal or a protocol defect is the engine's answer and stays with the check."""
    return r.error is not None and (r.status is None or r.status >= 500)


def serving_decision(check: str, requests: int, errors: list[str]) -> Decision:
    """The serving-error bar of one check: at most ``SERVING_ERROR_SHARE`` of its requests (at
    least ``SERVING_ERROR_AT_LEAST``) may fail to be served."""
    return error_bar_decision(
        f"serving_errors[{check}]", f"serving errors of {check} (timeouts, transport errors, 5xx)", requests, errors,
        SERVING_ERROR_SHARE, SERVING_ERROR_AT_LEAST, SERVING_CONFORMING_RATE, SERVING_FLAKY_RATE,
        basis=(f"a request cut by the derived timeout or the transport is no sample of the behaviour; a server "
               f"failing over {SERVING_ERROR_SHARE:.0%} of requests (or more than {SERVING_ERROR_AT_LEAST} of a small "
               f"batch) is flaky, whatever its answers"))


def decode_floor(row: Row) -> float | None:
    """The row's slowest acceptable decode speed per request (tokens/s): ``expect.decode_tokens_per_s``,
    else the profile's ``verdicts.decode_tokens_per_s``, else None (the options' conservative default)."""
    v = row.expect.get("decode_tokens_per_s", _v(row).get("decode_tokens_per_s"))
    return float(v) if v else None


def request_timeout(row: Row, options: Options) -> float:
    """Seconds one request of this row may take: ``--request-timeout`` when given, else the row's
    ``max_tokens`` at its decode floor plus a margin (``options.derived_request_timeout``)."""
    return options.timeout_for(row.profile.max_tokens, decode_floor(row))


def accuracy_looks(first: int, budget: int) -> tuple[int, ...]:
    """``first``, doubling, then the budget (0 = the whole test set)."""
    budget = GSM8K_SIZE if budget <= 0 else min(budget, GSM8K_SIZE)
    first = max(2, min(first, budget))
    looks = [first]
    while looks[-1] * 2 < budget:
        looks.append(looks[-1] * 2)
    if looks[-1] != budget:
        looks.append(budget)
    return tuple(looks)


def accuracy_target(row: Row, thinking: bool) -> dict:
    mode = "think" if thinking else "nonthink"
    t = dict((_v(row).get("accuracy") or {}).get(mode) or {})
    if not t:
        t = {"expected": 0.95, "tolerance": 0.05, "effect": 0.80, "basis": "harness default (profile has no target)"}
    t["bar"] = round(t["expected"] - t["tolerance"], 4)
    if thinking and row.expect.get("accuracy") is not None and row.expect["accuracy"] != t["bar"]:
        t["bar"] = row.expect["accuracy"]
        t["basis"] = f"row {row.id} expect.accuracy {row.expect['accuracy']} (overrides the profile's bar)"
    return t


def accuracy_rule(row: Row, thinking: bool, rendered: bool, first: int, budget: int) -> Rule:
    t = accuracy_target(row, thinking)
    return Rule(
        name=f"accuracy[{'think' if thinking else 'nonthink'}]",
        quantity=f"GSM8K accuracy (thinking {'on' if thinking else 'off'})", kind="proportion",
        higher_is_better=True, verify_bound=t["bar"], fail_bound=t["bar"], alpha=alpha(row, rendered),
        effect=t["effect"], looks=accuracy_looks(first, budget),
        basis=f"bar {t['bar']} = expected {t['expected']} - tolerance {t['tolerance']}: {t['basis']}")


def paired_effect(row: Row, options: Options) -> tuple[float, str]:
    """(effect, basis) of the paired decision: ``--accuracy-effect``, else the profile's
    ``verdicts.accuracy_paired_effect``, else ``PAIRED_EFFECT`` (3 points)."""
    given = getattr(options, "accuracy_effect", None)
    if given:
        return float(given), f"--accuracy-effect {given}"
    v = _v(row).get("accuracy_paired_effect")
    if v:
        return float(v), f"profile {row.profile.name} verdicts.accuracy_paired_effect"
    return PAIRED_EFFECT, (f"harness default: {PAIRED_EFFECT:g} of accuracy (GLM-5.2 scores 0.95-0.96 on GSM8K; the "
                           "field's regressions are a few points, vLLM #50435)")


def seeded_concurrency(row: Row, options: Options) -> tuple[int, str]:
    """(concurrency, basis) of requests carrying a seed: the row's ``expect.seeded_concurrency``
    (an engine that cannot take seeded requests in a batch), else the run's ``--concurrency``."""
    limit = row.expect.get("seeded_concurrency")
    if limit:
        return min(int(limit), options.concurrency), row.expect.get("seeded_concurrency_basis") or "row expect"
    return options.concurrency, "the run's --concurrency"


def paired_budget(row: Row) -> int:
    """Questions the paired check may draw on this row (and records for a twin): ``PAIRED_BUDGET``
    where seeded answers are reproducible (``expect.deterministic``), else the whole test set."""
    return PAIRED_BUDGET if row.expect.get("deterministic") else GSM8K_SIZE


def paired_looks(first: int, budget: int, baseline_n: int, cap: int = PAIRED_BUDGET) -> tuple[int, ...]:
    """The paired check's looks: ``accuracy_looks`` up to the smallest of ``cap`` (the row's
    ``paired_budget``), the ``--accuracy-max`` budget (0: no cap) and the questions the baseline scored."""
    cap = min(cap, budget or cap, max(2, baseline_n))
    return accuracy_looks(min(first, cap), cap)


def effort_pairs(eff: EffortProfile) -> list[tuple[str, str]]:
    """``(level, next-higher level)`` for each adjacent pair of the profile's levels (most effort
    first): each level must reason less than the one above it (GLM-5.2: high < max; GLM-5.3 also
    low < high)."""
    levels = list(eff.levels)
    return [(levels[i], levels[i - 1]) for i in range(1, len(levels))]


def _effort_conforming(row: Row) -> float:
    """A conforming deployment's level/next-higher-level reasoning ratio is at most this (row, else profile)."""
    return row.expect.get("effort_ratio_max", _v(row).get("effort_conforming_ratio", DEFAULT_EFFORT_RATIO))


def effort_rule(row: Row, level: str, rendered: bool, channel: str) -> Rule:
    """``level`` reasons less than the next-higher level of the profile (``effort_pairs``)."""
    higher = dict(effort_pairs(row.profile.effort))[level]
    conforming = _effort_conforming(row)
    return Rule(
        name=f"effort[{channel}:{level}]",
        quantity=f"{level}/{higher} reasoning-length ratio (median over prompts)", kind="median",
        higher_is_better=False, verify_bound=1.0, fail_bound=conforming, alpha=alpha(row, rendered),
        effect=1.0, looks=EFFORT_LOOKS, log_scale=True,
        basis=(f"the guides: {level} lowers effort below {higher}; a conforming deployment reasons at most "
               f"{conforming}x as long (profile), effort ignored (1.0x) must fail"))


def fallthrough_rule(row: Row, value: str, rendered: bool, channel: str) -> Rule:
    """Engines without a rendered prompt: a value that falls through reasons like the default."""
    eff = row.profile.effort
    conforming = _effort_conforming(row)
    return Rule(
        name=f"effort[{channel}:{value}={eff.default}]",
        quantity=f"reasoning_effort={value!r} / default reasoning-length ratio (median over prompts)", kind="median",
        higher_is_better=True, verify_bound=conforming, fail_bound=1.0, alpha=alpha(row, rendered),
        effect=conforming, looks=EFFORT_LOOKS, log_scale=True,
        basis=(f"the guides: {value!r} falls through to {eff.default}; equivalence margin: it must not reason "
               f"as little as a lowered level ({conforming}x)"))


def nonthink_rule(row: Row, rendered: bool) -> Rule:
    bar = _v(row).get("nonthink_ratio", DEFAULT_NONTHINK_RATIO)
    return Rule(
        name="non_think[ratio]", quantity="thinking-off/on completion-token ratio (median over prompts)",
        kind="median", higher_is_better=False, verify_bound=bar, fail_bound=bar, alpha=alpha(row, rendered),
        effect=1.0, looks=NONTHINK_LOOKS, log_scale=True,
        basis=f"enable_thinking: false turns reasoning off: under {bar}x the tokens of thinking on (profile)")


def wrong_variable_rule(row: Row, variable: str, rendered: bool) -> Rule:
    bar = _v(row).get("nonthink_ratio", DEFAULT_NONTHINK_RATIO)
    return Rule(
        name=f"non_think[wrong:{variable}]",
        quantity=f"{variable}=false / thinking-on completion-token ratio (median over prompts)",
        kind="median", higher_is_better=True, verify_bound=bar, fail_bound=bar, alpha=alpha(row, rendered),
        effect=0.2, looks=WRONG_VARIABLE_LOOKS, log_scale=True,
        basis=(f"{variable!r} is not the switch ({row.profile.thinking_variable} is): the model keeps thinking, "
               f"i.e. at least {bar}x the tokens of thinking on"))


def mtp_rule(row: Row, rendered: bool) -> Rule:
    minimum = float(row.expect["min_accept_length"])
    return Rule(
        name="mtp[accept_length]", quantity="mean accept length per window (1 + accepted/drafts)", kind="mean",
        higher_is_better=True, verify_bound=minimum, fail_bound=minimum, alpha=alpha(row, rendered),
        effect=round(minimum - 0.5, 3), looks=MTP_LOOKS,
        basis=f"row {row.id} expect.min_accept_length {minimum} (guides: cookbook 3.5 for EAGLE 5-1-6, >90% for one token)")


def constant_conditional_rate(draft_tokens: int, minimum: float) -> float:
    """The conditional acceptance c of a drafter accepting each position with probability c given
    the one before (position k: c**(k+1)) whose mean accept length, 1 + sum_k c**k, is ``minimum``."""
    from scipy.optimize import brentq

    target = minimum - 1.0
    if target >= draft_tokens:
        return 1.0
    if target <= 0:
        return 0.0
    return float(brentq(lambda c: sum(c ** k for k in range(1, draft_tokens + 1)) - target, 0.0, 1.0))


def position_floor(row: Row) -> tuple[float, str]:
    """(floor, basis) of the conditional acceptance of a draft position given the one before it."""
    minimum = float(row.expect["min_accept_length"])
    drafts = int(row.expect.get("draft_tokens") or 1)
    c = constant_conditional_rate(drafts, minimum)
    floor = round(MTP_POSITION_FRACTION * c, 4)
    return floor, (f"a drafter accepting every position with the same conditional rate reaches the row's minimum "
                   f"{minimum} over {drafts} draft tokens at c = {c:.3f}; a position accepting under "
                   f"{MTP_POSITION_FRACTION} x c = {floor} of what the previous position accepted has collapsed "
                   f"(vLLM PR #46075: ~10% after position 0 with the mean still acceptable)")


def position_rules(row: Row, rendered: bool, positions: int, trials: dict[int, int]) -> list[Rule]:
    """One proportion rule per draft position k >= 1: accepted at k out of accepted at k - 1 (a
    position can accept only after the previous one did). The counts are tokens of a few sequences,
    not independent trials, so the exact bound is a working approximation; the floor is far from
    both a conforming drafter and a collapsed one. The ``mtp[position]`` alpha is split over the
    positions (Bonferroni); one look over the whole workload."""
    floor, basis = position_floor(row)
    share = alpha(row, rendered) / max(1, positions - 1)
    return [Rule(name=f"mtp[position:{k}]",
                 quantity=f"acceptance at draft position {k} given position {k - 1} (accepted tokens ratio)",
                 kind="proportion", higher_is_better=True, verify_bound=floor, fail_bound=floor, alpha=share,
                 effect=round(floor / 2, 4), looks=(max(2, trials.get(k, 0)),), basis=basis)
            for k in range(1, positions)]


def trend_decision(row: Row, rendered: bool, values: list[float]) -> dict:
    """The accept length over the run: does it decay, and do the last windows fall below the minimum?

    ``decay``: Kendall's tau of the window values on their index, one-sided (tau < 0), at half the
    ``mtp[trend]`` alpha, AND a Theil-Sen decline over the run of at least ``MTP_DECAY_EFFECT``
    (a significant but tiny drift is not a defect). ``last``: the mean of the last
    ``MTP_TREND_LAST`` windows, Student t, failed when confidently below the minimum (the other
    half of alpha). Returns the statistics, each part's status, the failure messages and ``status``:
    failed on any problem, else the last windows' decision (inconclusive: not enough evidence)."""
    import math

    from scipy.stats import kendalltau, theilslopes

    from .verdicts import decide

    minimum = float(row.expect["min_accept_length"])
    a = alpha(row, rendered) / 2
    n = len(values)
    out: dict = {"rule": "mtp[trend]", "windows": n, "alpha_decay": a, "alpha_last": a, "minimum": minimum,
                 "decay_effect": MTP_DECAY_EFFECT, "values": [round(v, 4) for v in values], "problems": []}
    if n < 3:
        out["problems"].append(f"accept length over time: only {n} windows measured, need at least 3")
        out["status"] = "failed"
        return out
    idx = list(range(n))
    if len(set(values)) > 1:
        tau, p = kendalltau(idx, values, alternative="less")
        slope = float(theilslopes(values, idx)[0])
    else:
        tau, p, slope = 0.0, 1.0, 0.0
    tau = 0.0 if tau is None or math.isnan(tau) else float(tau)
    p = 1.0 if p is None or math.isnan(p) else float(p)
    decline = -slope * (n - 1)
    out.update(kendall_tau=round(tau, 4), p_value=float(f"{p:.4g}"), theil_sen_slope=round(slope, 5),
               decline_over_run=round(decline, 4))
    out["decay"] = "failed" if p < a and decline >= MTP_DECAY_EFFECT else "passed"
    last = values[-MTP_TREND_LAST:]
    rule = Rule(name="mtp[trend:last]", quantity=f"mean accept length of the last {len(last)} windows", kind="mean",
                higher_is_better=True, verify_bound=minimum, fail_bound=minimum, alpha=a,
                effect=round(minimum - MTP_DECAY_EFFECT, 3), looks=(max(2, len(last)),),
                basis=f"row {row.id} expect.min_accept_length {minimum}, at the end of the run")
    d = decide(rule, last)
    out["last"] = d.evidence()
    if out["decay"] == "failed":
        out["problems"].append(
            f"accept length decays over the run: Kendall tau {tau:.3f} (one-sided p {p:.3g} < alpha {a:.2g}), "
            f"fitted decline {decline:.2f} over {n} windows (>= {MTP_DECAY_EFFECT}), "
            f"first {values[0]:.2f} -> last {values[-1]:.2f}")
    if d.status == "failed":
        out["problems"].append(f"accept length of the last windows below the minimum {minimum}: {d.summary()}")
    # the check's outcome: a problem fails it; last windows that decide nothing leave it open
    out["status"] = "failed" if out["problems"] else d.status
    return out


def rules(row: Row, rendered: bool, accuracy_first: int = 64, accuracy_budget: int = 0) -> list[Rule]:
    """Every rule of ``family(row, rendered)``, in the same order (for ``glmverify rules``)."""
    eff = row.profile.effort
    out: list[Rule] = []
    for name in family(row, rendered):
        kind, _, arg = name.partition("[")
        arg = arg.rstrip("]")
        if kind == "accuracy" and ":" in arg or arg in ("drift", "batch"):
            continue  # paired, drift and batch are accuracy_decisions', not bounds rules
        if kind == "accuracy":
            out.append(accuracy_rule(row, arg == "think", rendered, accuracy_first, accuracy_budget))
        elif kind == "effort":
            channel, _, what = arg.partition(":")
            if what.endswith(f"={eff.default}"):
                out.append(fallthrough_rule(row, what.split("=")[0], rendered, channel))
            else:
                out.append(effort_rule(row, what, rendered, channel))
        elif name == "non_think[ratio]":
            out.append(nonthink_rule(row, rendered))
        elif kind == "non_think":
            out.append(wrong_variable_rule(row, arg.partition(":")[2], rendered))
        elif name == "mtp[accept_length]":
            out.append(mtp_rule(row, rendered))
        elif name == "mtp[position]":  # its looks are the workload's counts; shown with none yet
            out += position_rules(row, rendered, int(row.expect.get("draft_tokens") or 1), {})
        # mtp[trend] is a trend test, not a bounds rule (trend_decision)
    return out
