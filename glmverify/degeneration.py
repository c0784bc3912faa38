"""Degenerate answers: every answer of the run screened, and the rate decided against a stated bar.

Degeneration is model behaviour under sampling, not an engine invariant: a healthy GLM-5.2 at the
guides' sampling (the checkpoint's generation config, temperature 1.0 / top_p 0.95) almost never
loops, so one loop is no defect, but a rate above the bar is (SGLang #36802: DP attention turning
answers into ``1. 1. 1. ...``; vLLM #55605: MTP on repetitive text; a broken KV-cache dtype
producing nonsense, vLLM #44550).

**The screen** (``screen``), per answer, three codes:

* ``degeneration.loop``: a stretch of a text field (reasoning, content, each call's arguments)
  that is one unit repeated back to back. Two scales, both exact periodicity (a sampled loop
  repeats its tokens exactly, which is what makes it a loop):

  - words: the longest run of words where word i equals word i - k, for a period of k <= 128
    words, covering at least ``LOOP_MIN_WORDS`` (100) words and ``LOOP_MIN_REPEATS`` (5) periods,
    anywhere in the field (a loop the model left again is still a loop);
  - characters, at the end of the field (text without spaces, e.g. Chinese, or ``1.1.1.``): the
    longest suffix with a period of p <= 512 characters covering at least ``LOOP_MIN_CHARS``
    (300) characters and 5 periods.

  The score is the share of the field the loop covers. Basis: healthy answers repeat *structure*
  (numbered lists, table rows, code lines, the same phrase in successive math steps), but the
  repeated parts differ in their numbers or names, so their exact period breaks within a line;
  a markdown separator row or a ``====`` rule is far below 100 words or 300 characters. What a
  healthy answer could still trip is a literal block of 100+ identical words (a 16 x 16 zero
  matrix): rare, and a rate bar, not a single answer, fails a cell. tests/unit/test_degeneration.py
  holds the healthy texts it was tried on (GSM8K reasoning, lists, tables, code, JSON, the
  stand-in's sampled reasoning, fixtures/glm52_outputs.jsonl) and the loops it catches.
* ``degeneration.max_tokens``: the answer ran to ``max_tokens`` (finish ``length``, or the billed
  completion reached the limit).
* ``degeneration.empty_after_reasoning``: reasoning present, content empty, no tool call,
  finish ``stop``: the model thought and then said nothing.

**Counted apart** (screened and shown, never in the rate): answers to requests that set
``max_tokens`` below the profile's (checks that cut answers on purpose), greedy requests
(``temperature`` 0: not the guides' sampling; reasoning models loop under greedy decoding), and,
for the empty-answer code only, ``tool_choice: none`` with tools offered (vLLM drops the call the
model wrote, leaving reasoning alone: conforming). Answers with a transport error are not answers.
A row whose model output is unscripted waives the codes (the ledger's ``CONTENT_CODES``).

**The decision** (``decide``): the share of counted answers with any code, one-sided exact
Clopper-Pearson (``verdicts``, kind ``proportion``, one look at the run's final count): **failed**
when confidently above ``BAR`` (1%: a conforming deployment degenerates in at most 1 of 100
answers); confidently below ``EFFECT`` (5%, the planted fault's share) is recorded as verified in
the evidence, but only a failure changes the cell: otherwise the rate, the counts and the worst
examples are evidence. Each cell is decided on its own answers (``cell_check``: a fault that
loops only under one feature's load), and each row once over all its cells' answers
(``row_check``: a diffuse 5% that no single cell has the answers to show), recorded on the row's
``accuracy_smoke`` cell when it ran (the cell with the most answers and the one that asks "does
the model answer well"), else on the cell with the most counted answers. The false-failure rate
is spent apart from the row's family (``policy.family``), so the other decisions' alphas do not
move: ``FAMILY_ALPHA`` (0.1%) per row, split evenly over one decision per feature and the
row-wide one. At that alpha a 5% rate fails with power >= 98% from about 512 answers (the row's
run has more); a conforming rate of 0.2% fails with probability well under alpha.

Plain functions over duck-typed answers (``ChatResult``, the ledger's ``MessagesAnswer``) and
plain dicts (the tallies travel in each check's evidence to the controller, where ``inference``
decides the cells): no pytest, no engine.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Sequence

from .verdicts import FAILED, Rule, decide as decide_rule, per_decision_alpha

LOOP = "degeneration.loop"
MAX_TOKENS = "degeneration.max_tokens"
EMPTY = "degeneration.empty_after_reasoning"
CODES = (LOOP, MAX_TOKENS, EMPTY)

LOOP_MAX_PERIOD_WORDS = 128
LOOP_MIN_WORDS = 100
LOOP_MIN_REPEATS = 5
LOOP_MAX_PERIOD_CHARS = 512
LOOP_MIN_CHARS = 300
TAIL_CHARS = 16384           # the character scale looks at the field's end only (a loop that ran out)
MAX_SCREEN_WORDS = 20000     # a runaway body: its start and end are screened (bounded cost)
#: requests without a known profile limit: a max_tokens below this is a deliberate cut
DELIBERATE_BELOW = 1024

BAR = 0.01
EFFECT = 0.05
FAMILY_ALPHA = 0.001
BETA = 0.05
WORST = 5
EXCERPT = 160
BASIS = ("a healthy GLM-5.2 at the guides' sampling almost never loops, runs out of max_tokens or ends "
         f"empty after reasoning: at most {BAR:.0%} of answers (conforming); a deployment degenerating "
         f"{EFFECT:.0%} of answers (SGLang #36802's '1. 1. 1.', vLLM #55605) must fail")
ROW_CELL = "accuracy_smoke"

_WORD = re.compile(r"\S+")


# ---- loops -----------------------------------------------------------------------------------------
def _longest_word_run(words: list[str]) -> tuple[int, int, int]:
    """(span in words, period, start) of the longest back-to-back repetition of words."""
    import numpy as np

    if len(words) < 2 * LOOP_MIN_REPEATS:
        return 0, 0, 0
    index: dict[str, int] = {}
    ids = np.array([index.setdefault(w, len(index)) for w in words])
    best = (0, 0, 0)
    for k in range(1, min(LOOP_MAX_PERIOD_WORDS, len(words) // 2) + 1):
        eq = np.concatenate(([0], (ids[k:] == ids[:-k]).astype(np.int8), [0]))
        edges = np.flatnonzero(np.diff(eq))
        if not len(edges):
            continue
        runs = edges[1::2] - edges[::2]
        i = int(runs.argmax())
        span = int(runs[i]) + k  # a run of r equal pairs at lag k is r + k words of one unit
        if span > best[0]:
            best = (span, k, int(edges[2 * i]))
    return best


def _z(s: str) -> list[int]:
    """Z-function: z[i] = the longest common prefix of s and s[i:]."""
    n = len(s)
    z = [0] * n
    lo = hi = 0
    for i in range(1, n):
        if i < hi:
            z[i] = min(hi - i, z[i - lo])
        while i + z[i] < n and s[z[i]] == s[i + z[i]]:
            z[i] += 1
        if i + z[i] > hi:
            lo, hi = i, i + z[i]
    return z


def _periodic_suffix(text: str) -> tuple[int, int]:
    """(span in characters, period) of the longest suffix that repeats a unit of <= 512 characters
    (the smallest period among those that qualify)."""
    tail = text[-TAIL_CHARS:][::-1]
    if len(tail) < LOOP_MIN_CHARS:
        return 0, 0
    z = _z(tail)
    for p in range(1, min(LOOP_MAX_PERIOD_CHARS, len(tail) // 2) + 1):
        span = z[p] + p
        if span >= max(LOOP_MIN_CHARS, LOOP_MIN_REPEATS * p):
            return span, p
    return 0, 0


def loop_in(text: str) -> dict | None:
    """The loop in one text field (module docstring), or None: its share of the field, span,
    period, scale and an excerpt of the repeated unit."""
    if not text:
        return None
    words = _WORD.findall(text)
    if len(words) > MAX_SCREEN_WORDS:
        words = words[:MAX_SCREEN_WORDS // 2] + words[-MAX_SCREEN_WORDS // 2:]
    span, k, start = _longest_word_run(words)
    if span >= max(LOOP_MIN_WORDS, LOOP_MIN_REPEATS * k):
        unit = " ".join(words[start:start + k])
        return {"scale": "words", "share": round(span / len(words), 3), "span": span, "period": k,
                "repeats": span // k, "unit": unit[:EXCERPT],
                "excerpt": " ".join(words[start:start + min(span, EXCERPT)])[:EXCERPT]}
    span, p = _periodic_suffix(text)
    if span:
        return {"scale": "chars", "share": round(min(span, len(text)) / len(text), 3), "span": span, "period": p,
                "repeats": span // p, "unit": text[-p:][:EXCERPT], "excerpt": text[-span:][:EXCERPT]}
    return None


# ---- one answer -------------------------------------------------------------------------------------
def _limit(request: Any) -> int | None:
    req = request if isinstance(request, dict) else {}
    v = next((req[k] for k in ("max_completion_tokens", "max_tokens") if k in req), None)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def apart_reason(request: Any, profile_max_tokens: int | None) -> str | None:
    """Why an answer is counted apart from the rate (module docstring), or None: it counts."""
    req = request if isinstance(request, dict) else {}
    limit = _limit(req)
    if limit is not None and limit < (profile_max_tokens or DELIBERATE_BELOW):
        return "max_tokens below the profile's (cut on purpose)"
    if req.get("temperature") == 0:
        return "greedy (temperature 0)"
    return None


def fields(answer: Any) -> list[tuple[str, str]]:
    out = [(name, getattr(answer, name)) for name in ("reasoning", "content") if isinstance(getattr(answer, name, None), str)]
    for i, tc in enumerate(getattr(answer, "tool_calls", None) or []):
        if isinstance(getattr(tc, "arguments", None), str):
            out.append((f"tool_calls[{i}].arguments", tc.arguments))
    return out


def screen(answer: Any, request: Any = None, profile_max_tokens: int | None = None) -> dict:
    """One answer's screen: its codes, score (1.0 for a run to max_tokens or an empty answer, the
    loop's share for a loop), where, an excerpt, and why it is counted apart (None: it counts)."""
    request = request if request is not None else getattr(answer, "request", None)
    codes, score, where, excerpt = [], 0.0, None, ""
    for name, text in fields(answer):
        loop = loop_in(text)
        if loop and loop["share"] > score:
            score, where = loop["share"], f"{name}: {loop['repeats']} x {loop['period']} {loop['scale']}"
            excerpt = loop["excerpt"]
        if loop and LOOP not in codes:
            codes.append(LOOP)
    limit, used = _limit(request), getattr(answer, "completion_tokens", None)
    if getattr(answer, "finish_reason", None) == "length" or (limit is not None and isinstance(used, int) and used >= limit):
        codes.append(MAX_TOKENS)
        score, where = max(score, 1.0), where or f"ran to max_tokens ({used} of {limit})"
        excerpt = excerpt or _tail(answer)
    reasoning, content = getattr(answer, "reasoning", None) or "", getattr(answer, "content", None) or ""
    empty = (reasoning.strip() and not content.strip() and not getattr(answer, "tool_calls", None)
             and getattr(answer, "finish_reason", None) == "stop")
    if empty and not _calls_dropped(request):
        codes.append(EMPTY)
        score, where = max(score, 1.0), where or "reasoning, then no content and no call"
        excerpt = excerpt or reasoning.strip()[-EXCERPT:]
    return {"codes": codes, "score": round(score, 3), "where": where, "excerpt": excerpt[:EXCERPT],
            "apart": apart_reason(request, profile_max_tokens)}


def _calls_dropped(request: Any) -> bool:
    """Tools offered with tool choice none (chat ``"none"``, messages ``{"type": "none"}``): the
    engine drops a call the model wrote, so reasoning alone is a conforming answer."""
    req = request if isinstance(request, dict) else {}
    choice = req.get("tool_choice")
    return bool(req.get("tools")) and (choice == "none" or (isinstance(choice, dict) and choice.get("type") == "none"))


def _tail(answer: Any) -> str:
    text = next((t for _, t in reversed(fields(answer)) if t.strip()), "")
    return text[-EXCERPT:]


# ---- tallies (one check's, then merged per cell and per row) -------------------------------------------
def new_tally() -> dict:
    return {"counted": 0, "degenerate": 0, "by_code": {}, "apart": {"answers": 0, "degenerate": 0, "why": {}},
            "waived": 0, "worst": []}


def add(tally: dict, s: dict, where: dict) -> None:
    """Count one screen into ``tally``; ``where`` identifies the answer (answer index, api, ids)."""
    codes = s["codes"]
    if s.get("waived"):
        tally["waived"] += 1
        return
    if s["apart"]:
        a = tally["apart"]
        a["answers"] += 1
        a["degenerate"] += bool(codes)
        a["why"][s["apart"]] = a["why"].get(s["apart"], 0) + 1
    else:
        tally["counted"] += 1
        tally["degenerate"] += bool(codes)
        for c in codes:
            tally["by_code"][c] = tally["by_code"].get(c, 0) + 1
    if codes:
        tally["worst"].append({**where, "codes": codes, "score": s["score"], "where": s["where"],
                               "excerpt": s["excerpt"], "counted": not s["apart"]})
        tally["worst"] = _worst(tally["worst"])


def _worst(examples: Iterable[dict]) -> list[dict]:
    """The worst examples first: counted before apart, then by score."""
    return sorted(examples, key=lambda e: (not e.get("counted"), -e.get("score", 0)))[:WORST]


def merge(tallies: Iterable[tuple[str, dict]]) -> dict:
    """Tallies of several checks (check id, tally) as one; each example names its check."""
    out = new_tally()
    for check, t in tallies:
        if not isinstance(t, dict):
            continue
        out["counted"] += t.get("counted", 0)
        out["degenerate"] += t.get("degenerate", 0)
        out["waived"] += t.get("waived", 0)
        for c, n in (t.get("by_code") or {}).items():
            out["by_code"][c] = out["by_code"].get(c, 0) + n
        a = t.get("apart") or {}
        out["apart"]["answers"] += a.get("answers", 0)
        out["apart"]["degenerate"] += a.get("degenerate", 0)
        for why, n in (a.get("why") or {}).items():
            out["apart"]["why"][why] = out["apart"]["why"].get(why, 0) + n
        out["worst"] = _worst(out["worst"] + [{"check": e.get("check", check), **e} for e in t.get("worst") or []])
    return out


# ---- the decision ---------------------------------------------------------------------------------------
def alpha(features: int) -> float:
    """The false-failure rate of one degeneration decision of a row with ``features`` cells."""
    return per_decision_alpha(features + 1, FAMILY_ALPHA)


def decide(tally: dict, name: str, alpha_: float) -> dict:
    """The rate of ``tally``'s counted answers against ``BAR`` (module docstring), as evidence."""
    n, k = tally["counted"], tally["degenerate"]
    out: dict = {"rate": round(k / n, 5) if n else None, "counted": n, "degenerate": k, "bar": BAR,
                 "by_code": tally["by_code"], "apart": tally["apart"], "waived": tally["waived"],
                 "worst": tally["worst"]}
    if n >= 2:
        out["decision"] = decide_rule(rate_rule(name, n, alpha_), [True] * k + [False] * (n - k)).evidence()
    return out


def rate_rule(name: str, n: int, alpha_: float) -> Rule:
    """The rate decision at ``n`` counted answers: one look, failed above ``BAR``, verified below ``EFFECT``."""
    return Rule(name, "share of degenerate answers (loop, ran to max_tokens, empty after reasoning)",
                "proportion", higher_is_better=False, verify_bound=EFFECT, fail_bound=BAR, alpha=alpha_,
                looks=(n,), beta=BETA, effect=EFFECT, basis=BASIS)


RATE_CODE = "degeneration.rate_above_bar"  # the failed decision's code (glmverify.failure_codes)


def failed_check(check_id: str, verdict: dict, scope: str) -> dict | None:
    """The failed check a confidently-above-the-bar rate adds to its cell (None: evidence only)."""
    d = verdict.get("decision")
    if not d or d["status"] != FAILED:
        return None
    worst = "; ".join(f"{e.get('check', '?')} answer {e.get('answer')}"
                      + (f" ({e['request_id']})" if e.get("request_id") else "")
                      + f" [{', '.join(c.removeprefix('degeneration.') for c in e['codes'])}; score {e['score']}; "
                      f"{e.get('where')}]: {e.get('excerpt', '')[:80]!r}" for e in verdict["worst"][:3])
    lo = d["interval"][0]
    return {"id": check_id, "outcome": "failed", "time": None, "duration": None, "launch_id": None,
            "code": RATE_CODE, "fields": {"scope": scope, "degenerate": verdict["degenerate"],
                                          "counted": verdict["counted"], "by_code": dict(verdict["by_code"])},
            "detail": (f"degenerate answers {verdict['degenerate']} of {verdict['counted']} {scope} "
                       f"({verdict['rate']:.1%}; lower bound {lo:.2%} at alpha {d['alpha']:.2g}) confidently above "
                       f"the bar {BAR:.0%}; by code {verdict['by_code']}; worst: {worst}")}


def tallies_of(checks: Iterable[dict]) -> list[tuple[str, dict]]:
    """(check id, degeneration tally) of each recorded check that carries one in its evidence."""
    out = []
    for c in checks:
        ev = c.get("evidence") if isinstance(c, dict) else None
        t = ((ev or {}).get("invariants") or {}).get("degeneration") if isinstance(ev, dict) else None
        if isinstance(t, dict):
            out.append((c.get("id", "?"), t))
    return out


def row_cell(checks_by_cell: Mapping, row_id: str, features: Sequence[str]) -> str | None:
    """The cell that carries the row-wide decision: ``accuracy_smoke`` when it counted answers,
    else the cell with the most counted answers (None: no answer counted)."""
    counted = {f: merge(tallies_of((checks_by_cell.get((row_id, f)) or {}).values()))["counted"] for f in features}
    if counted.get(ROW_CELL):
        return ROW_CELL
    best = max(features, key=lambda f: counted[f], default=None)
    return best if best is not None and counted[best] else None


def findings(checks_by_cell: Mapping, row_id: str, feature: str, features: Sequence[str]) -> tuple[list[dict], dict]:
    """For the cell (row, feature): the failed checks the degeneration decisions add to it, and
    their evidence (the cell's own rate; on the row's chosen cell also the row-wide one)."""
    a = alpha(len(features))
    own = merge(tallies_of((checks_by_cell.get((row_id, feature)) or {}).values()))
    added: list[dict] = []
    evidence: dict = {}
    if own["counted"] or own["apart"]["answers"] or own["waived"]:
        evidence["cell"] = decide(own, f"degeneration[{feature}]", a)
        bad = failed_check("degeneration[cell]", evidence["cell"], "answers of this cell")
        added += [bad] if bad else []
    if row_cell(checks_by_cell, row_id, features) == feature:
        pooled = merge((f"{f}::{check}", t) for f in features
                       for check, t in tallies_of((checks_by_cell.get((row_id, f)) or {}).values()))
        evidence["row"] = {**decide(pooled, f"degeneration[row:{row_id}]", a),
                           "cells": [f for f in features if (row_id, f) in checks_by_cell]}
        bad = failed_check("degeneration[row]", evidence["row"], f"answers of row {row_id} (all its cells)")
        added += [bad] if bad else []
    if evidence:
        evidence["screen"] = (f"loop: >= {LOOP_MIN_WORDS} words or a >= {LOOP_MIN_CHARS}-character suffix repeating one "
                              f"unit >= {LOOP_MIN_REPEATS} times; ran to max_tokens; empty after reasoning "
                              "(glmverify.degeneration)")
    return added, evidence
