"""Model behaviour as rates: what a sampling model usually does, decided like the verdicts.

GLM-5.2 samples its choices, not only its words. A healthy deployment asked "Call get_weather
and get_time" returns the two calls in the other order about a quarter of the time, and a lone
call under ``tool_choice: auto`` becomes a clarifying question about 2% of the time. A check that
judges one answer as if the model were deterministic then fails healthy engines by chance. So
each answer is held to two kinds of checks:

* **invariants**, hard, per answer (the suites and ``glmverify.toolcalls``): a conforming engine
  never breaks them whatever the model samples: every call's fields declared, JSON-object
  arguments valid against an offered tool's schema, no markup in content or reasoning, the finish
  reason that matches the answer, the stream's grammar. They spend no error budget;
* **behaviour**, a rate over the case set (``suites/cases/tool_calls.jsonl``, each case once
  streamed and once not per round), decided by a ``verdicts.Rule`` (exact Clopper-Pearson bounds,
  group-sequential looks at rounds ``ROUNDS``, union bound over looks):

  ========== ========================================================== ======= ========
  measure    an answer counts when                                      fails   verifies
                                                                        below   from
  ========== ========================================================== ======= ========
  calls      it calls a tool exactly when the case expects one          0.90    0.70
  correct    (answers with calls) the expected tools, compared as a     0.90    0.70
             set (parallel order is behaviour), every argument object
             valid against its tool's schema
  exact      (answers calling the expected tools, cases with expected   0.90    0.65
             arguments) every argument equal to the prompt's, byte for
             byte
  round_trip the final answer after the tool results uses them          0.90    0.35
  tool_use   (/v1/messages) the tool_use blocks name the expected       0.90    0.50
             tools, as a set
  needles    (context_1m) the needle is retrieved                       0.90    0.25
  ========== ========================================================== ======= ========

  "Fails below": a deployment at or above this rate fails with probability at most alpha (the
  conforming boundary, ``Rule.fail_bound``); "verifies from": a deployment at or below this rate
  verifies with probability at most beta = 0.05 (the effect to detect, ``Rule.verify_bound``).
  Basis (``Bar.basis``): Kimi Vendor Verifier judges tool calling by ``tool_call_f1`` with pass
  bars 0.73 and 0.80; our prompts name the tool and its arguments outright, so a healthy model does
  better (a measured healthy GLM-5.2 deployment made 98% of lone auto calls; what it got "wrong"
  was call order and clarifying questions) and the conforming boundary is 0.90; the verify bounds are what one round can show with one sampled miss (a
  clarifying question): 21 of 22 answers calling give a lower bound of 0.75 at beta/3, 11 of 11
  exact-string answers 0.69, 4 of 4 round trips 0.36, 6 of 6 tool_use answers 0.51, 3 of 3
  needles (one full-window prompt each, the costliest request of a row) 0.26. A broken engine (never calls, calls the wrong tool, strips or re-encodes strings in
  half the cases, drops the tool result) fails within the budget (``tests/unit/test_behaviour.py``).

* **stream vs non-stream** is a comparison of the same rates (``compare``): the difference of a
  measure's streamed and non-streamed rate, with Newcombe's hybrid score interval (statsmodels
  ``confint_proportions_2indep``), fails when the difference is confidently beyond
  ``STREAM_FAIL_EFFECT`` (0.25) either way and verifies when it is confidently within
  ``STREAM_VERIFY_EFFECT`` (0.5). Two independent samples are never required to be equal.

Alpha comes from the row's family budget (``policy.alpha``): the behaviour decisions take one slot
of the row's Bonferroni family (``SLOT``; one slot keeps the verdicts' share, and so their power,
nearly where it was: 1/7 of the family instead of 1/6 on the vLLM reference), split evenly over the
parts of the features the row serves (``PARTS``, ``part_alpha``); a part with several decisions
splits again (the stream comparison over its three measures, the round trip over its two modes,
/v1/messages over its two checks streamed and not).
A conforming engine decides at the first look: the case set once streamed and once not.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Sequence

from .chat_answers import ChatResult
from .verdicts import DEFAULT_BETA, FAILED, INCONCLUSIVE, VERIFIED, Decision, Rule, decide

#: The row's one slot in its Bonferroni family (``policy.family`` adds it) for every behaviour decision.
SLOT = "behaviour"
#: The decisions each feature makes, in equal parts of the row's one behaviour slot: the case-set
#: rounds (the stream comparison is one part, split again over its measures) and the round trip
#: (split over its two modes); /v1/messages (its two checks, each streamed and not); the needles.
PARTS = {
    "tool_calls": ("calls", "correct", "exact", "stream", "round_trip"),
    "anthropic_messages": ("tool_use",),
    "context_1m": ("needles",),
}

#: Looks, in rounds of the case set (each case once streamed, once not, per round).
ROUNDS = (1, 2, 4)
STREAM_FAIL_EFFECT = 0.25
STREAM_VERIFY_EFFECT = 0.5
MEASURES = ("calls", "correct", "exact")


@dataclass(frozen=True)
class Bar:
    fail: float     # conforming boundary: at or above it, failed with P <= alpha
    verify: float   # broken boundary: at or below it, verified with P <= beta
    quantity: str
    basis: str


_TOOLS_BASIS = ("the prompts name the tool and its arguments outright, so a healthy model does better than Kimi "
                "Vendor Verifier's tool_call_f1 bars (0.73/0.80): conforming >= 0.90 (a measured healthy GLM-5.2 "
                "deployment made 98% of lone auto calls; its misses were clarifying questions and call order)")
_ONE_ROUND = "the effect is what one round can show (module docstring)"
BARS = {
    "calls": Bar(0.90, 0.70, "share of answers that call a tool exactly when the case expects one",
                 f"{_TOOLS_BASIS}; {_ONE_ROUND}"),
    "correct": Bar(0.90, 0.70, "share of calling answers with the expected tools (as a set) and schema-valid arguments",
                   f"{_TOOLS_BASIS}; {_ONE_ROUND}"),
    "exact": Bar(0.90, 0.65, "share of answers with the expected calls whose arguments are kept byte for byte",
                 f"copying a string quoted in the prompt: conforming >= 0.90; a parser that strips or re-encodes "
                 f"strings in half the cases must fail; {_ONE_ROUND}"),
    "round_trip": Bar(0.90, 0.35, "share of final answers after tool results that use them",
                      f"the final answer is asked only about the tool results: conforming >= 0.90; {_ONE_ROUND}"),
    "tool_use": Bar(0.90, 0.50, "share of /v1/messages answers whose tool_use blocks name the expected tools (as a set)",
                    f"{_TOOLS_BASIS}; {_ONE_ROUND}"),
    "needles": Bar(0.90, 0.25, "share of needles retrieved from a full-window haystack",
                   "a single exact passphrase asked for: conforming >= 0.90; one round is three full-window prompts, "
                   "the costliest requests of a row"),
}


def family_names(row) -> list[str]:
    """The row's share of the Bonferroni family: one slot for all its behaviour decisions."""
    return [SLOT] if any(row.serves(f) for f in PARTS) else []


def part_alpha(row, slot_alpha: float) -> float:
    """The alpha of one part (``PARTS``) of the features ``row`` serves, from the slot's alpha."""
    return slot_alpha / max(1, sum(len(p) for f, p in PARTS.items() if row.serves(f)))


def shares(part: float) -> dict[str, float]:
    """Each tool_calls decision's alpha from one part's alpha (``PARTS["tool_calls"]``)."""
    return {p: part for p in PARTS["tool_calls"]}


def rate_rule(measure: str, alpha: float, looks: Sequence[int], name: str | None = None) -> Rule:
    bar = BARS[measure]
    return Rule(name=name or f"tool_calls[{measure}]", quantity=bar.quantity, kind="proportion",
                higher_is_better=True, verify_bound=bar.verify, fail_bound=bar.fail, alpha=alpha,
                looks=tuple(looks), effect=bar.verify, basis=bar.basis)


# ---- one answer against its case ----------------------------------------------------------------
@dataclass
class Judged:
    """One answer's behaviour against its case; None: the measure does not apply (or excluded)."""

    case: str
    stream: bool
    calls: bool | None = None
    correct: bool | None = None
    exact: bool | None = None
    note: str = ""     # why a measure counted against it, in the words the old checks used

    def value(self, measure: str) -> bool | None:
        return getattr(self, measure)


def expects_call(case: dict) -> bool:
    exp = case.get("expect") or {}
    return not exp.get("no_call") and exp.get("min_calls", 1) > 0


def _args(tc) -> dict | None:
    try:
        v = json.loads(tc.arguments) if (tc.arguments or "").strip() else None
    except ValueError:
        return None
    return v if isinstance(v, dict) else None


def judge(case: dict, res: ChatResult, schemas: dict[str, dict]) -> Judged:
    """What ``res`` did against ``case`` (``schemas``: tool name -> JSON Schema of its arguments).
    A failed request or an answer cut by ``max_tokens`` counts for no measure (its invariants are
    the suites' to judge)."""
    import jsonschema

    mode = "stream" if res.stream else "non-stream"
    j = Judged(case["id"], res.stream)
    if res.error is not None or res.truncated:
        j.note = f"{mode}: excluded ({res.error or 'cut by max_tokens'})"
        return j
    names = [t.name for t in res.tool_calls]
    j.calls = bool(names) == expects_call(case)
    if not j.calls:
        j.note = (f"{mode}: expected a tool call, got none; content {(res.content or '')[:120]!r}" if expects_call(case)
                  else f"{mode}: expected no call, got {names}")
    if not names or not expects_call(case):
        return j
    exp = case.get("expect") or {}
    parsed = [_args(t) for t in res.tool_calls]
    valid = all(a is not None and t.name in schemas and not list(
        jsonschema.Draft202012Validator(schemas[t.name]).iter_errors(a)) for t, a in zip(res.tool_calls, parsed))
    want = exp.get("names")
    right_set = sorted(names) == sorted(want) if want else all(n in case["tools"] for n in names)
    j.correct = valid and right_set
    if not right_set:
        j.note = f"{mode}: expected calls {want} (as a set), got {names}"
    elif not valid:
        j.note = f"{mode}: arguments not valid against the schema: {[t.arguments[:80] for t in res.tool_calls]}"
    if "arguments" in exp and j.correct:
        got = {t.name: a for t, a in zip(res.tool_calls, parsed)}
        misses = [(n, w, got.get(n)) for n, w in zip(want, exp["arguments"]) if got.get(n) != w]
        j.exact = not misses
        if misses:
            n, w, g = misses[0]
            j.note = (f"{mode}: {n}: arguments must be kept exactly: expected {json.dumps(w, ensure_ascii=False)}, "
                      f"got {json.dumps(g, ensure_ascii=False)}")
    return j


def samples(judged: Sequence[Judged], measure: str, stream: bool | None = None) -> list[bool]:
    return [j.value(measure) for j in judged
            if j.value(measure) is not None and (stream is None or j.stream == stream)]


# ---- stream vs non-stream: a comparison of rates ------------------------------------------------
def compare(judged: Sequence[Judged], measure: str, alpha: float, looks: int, look: int,
            beta: float = DEFAULT_BETA) -> Decision:
    """Streamed minus non-streamed rate of ``measure``: failed when confidently beyond
    +-``STREAM_FAIL_EFFECT`` (two-sided at alpha/K), verified when confidently within
    +-``STREAM_VERIFY_EFFECT`` (at beta/K per side), else inconclusive (module docstring)."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    s, p = samples(judged, measure, True), samples(judged, measure, False)
    a_fail, a_verify = alpha / looks, beta / looks
    status, est, lo_f, hi_f, lo_v, hi_v = INCONCLUSIVE, None, None, None, None, None
    if len(s) >= 2 and len(p) >= 2:
        ks, kp = sum(s), sum(p)
        est = ks / len(s) - kp / len(p)
        lo_f, hi_f = confint_proportions_2indep(ks, len(s), kp, len(p), method="newcomb", compare="diff", alpha=a_fail)
        lo_v, hi_v = confint_proportions_2indep(ks, len(s), kp, len(p), method="newcomb", compare="diff",
                                                alpha=2 * a_verify)
        if lo_f > STREAM_FAIL_EFFECT or hi_f < -STREAM_FAIL_EFFECT:
            status = FAILED
        elif -STREAM_VERIFY_EFFECT < lo_v and hi_v < STREAM_VERIFY_EFFECT:
            status = VERIFIED
    last = look >= looks - 1
    rates = (f"stream {sum(s)}/{len(s)}, non-stream {sum(p)}/{len(p)}")
    return Decision(
        status=status, rule=f"tool_calls[stream:{measure}]", quantity=f"stream - non-stream {BARS[measure].quantity}",
        hypothesis=(f"verified when the difference is confidently within +-{STREAM_VERIFY_EFFECT}, failed when "
                    f"confidently beyond +-{STREAM_FAIL_EFFECT} (a conforming engine differs by sampling only)"),
        method=(f"Newcombe hybrid score interval on the difference (statsmodels), looks {looks}: two-sided at "
                f"alpha/K={a_fail:.2g} (fail), one-sided at beta/K={a_verify:.2g} (verify)"),
        alpha=alpha, beta=beta, effect=STREAM_VERIFY_EFFECT, verify_bound=STREAM_VERIFY_EFFECT,
        fail_bound=STREAM_FAIL_EFFECT, n=len(s) + len(p), estimate=est,
        interval=(None if lo_f is None else float(lo_f), None if hi_f is None else float(hi_f)),
        interval_level=1 - a_fail, looks_taken=look + 1, looks_planned=looks, basis=rates,
        detail="" if status != INCONCLUSIVE else ("sample budget spent without a decision" if last else "no decision yet"))


# ---- the case set, round by round ---------------------------------------------------------------
@dataclass
class Outcome:
    """Every decision of the case-set rounds, and every answer judged (for the evidence)."""

    decisions: dict[str, Decision]
    judged: list[Judged]
    rounds: int
    requests: int

    def misses(self, measure: str, limit: int = 5) -> list[str]:
        return [f"{j.case}: {j.note}" for j in self.judged if j.value(measure) is False][:limit]


def case_rounds(draw_round: Callable[[], tuple[list[Judged], int]], per_round: dict[str, int], alpha: dict[str, float],
                rounds: Sequence[int] = ROUNDS) -> Outcome:
    """Draw rounds of the case set (``draw_round()``: one round judged, and the requests it spent)
    until every decision of ``MEASURES`` and of their stream comparison has decided, or the last
    of ``rounds`` is reached. A decision is kept at the first look that decides it.

    ``per_round``: the nominal answers per round of each measure (the rules' looks); ``alpha``:
    per measure and ``"stream"`` (split here over the measures' comparisons)."""
    rules = {m: rate_rule(m, alpha[m], [max(2, per_round[m]) * r for r in rounds]) for m in MEASURES}
    judged: list[Judged] = []
    done: dict[str, Decision] = {}
    requests = taken = 0
    for look, r in enumerate(rounds):
        answered = True
        while taken < r and answered:
            new, spent = draw_round()
            judged += new
            requests += spent
            taken += 1
            # a round without one usable answer (a hung or refusing engine) ends the draws: more
            # rounds would only cost more timeouts; the invariant checks name the cause
            answered = any(j.value(m) is not None for j in new for m in MEASURES)
        final = look == len(rounds) - 1 or not answered
        for m in MEASURES:
            if m not in done:
                d = decide(rules[m], samples(judged, m), look=look)
                if d.status != INCONCLUSIVE or final:
                    done[m] = d
            key = f"stream:{m}"
            if key not in done:
                d = compare(judged, m, alpha["stream"] / len(MEASURES), len(rounds), look)
                if d.status != INCONCLUSIVE or final:
                    done[key] = d
        if len(done) == 2 * len(MEASURES):
            break
    for d in done.values():
        d.requests = requests
    return Outcome(done, judged, taken, requests)
