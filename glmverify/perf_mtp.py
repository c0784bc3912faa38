"""serving_performance's MTP speed-up decision (issue 24, 4.4): speculation must not be slower.

Seed 000 says MTP's 5 draft tokens lift end-to-end throughput; vLLM #55605 measured MTP 29-41%
*slower* than no MTP on repetitive text. Where a row speculates (``expect.draft_tokens``) and has
a no-speculation twin on the same hardware (``twin_of``: same hardware, accelerator count,
engine, image and model, no draft tokens), its E2E latency at concurrency 1 on a natural
workload (``expect.performance.workload: gsm8k``: seed 000 warns random tokens under-report MTP's
gain) is held to the twin's, on the run's document once both rows are measured (``attach``: the
run's recorder calls it on every document it writes, ``merge`` on merged results):

* the twin differs from the row in speculation alone: its launch arguments are the row's without
  the ``--speculative*`` flags (and the served model name) (a low-latency row against a high-throughput one differs in
  parallelism too, and is no twin);
* both rows must measure the same workload (``workload`` and ``output_len`` of their shapes), else
  the pair is ``not comparable`` with the reason;
* the samples are per-window log ratios, ``log(spec_i / twin_i)``, the i-th usable window of each
  row at concurrency 1 (``e2el_windows``: completed, none failed, not set aside, in a level the
  counters did not stop). The windows are independent draws of two independent launches, so the
  pairing by index is arbitrary but harmless: the difference of two independent draws has the
  variance of both, which the t interval sees (it costs efficiency, never the error rates);
* the rule (``speedup_rule``) is a ``verdicts.Rule`` of kind mean on log scale with one bar at
  1.0, one look at the windows both rows have (they exist already; nothing is drawn): **failed**
  when speculation is confidently slower than its twin (a conforming row, at most as slow, fails
  with P <= alpha, the row's profile ``family_alpha``), **verified** when confidently faster,
  ``inconclusive`` when the windows cannot tell (a break-even speculation); power is stated at
  ``EFFECT`` (a speculation costing 25% more than it saves fails with P >= 1 - beta at the stated
  window noise, ``tests/unit/test_perf_mtp.py``).

E2E latency at concurrency 1 is the single user's wait for a whole answer, the quantity MTP is
deployed to lower (TPOT would hide a slower first token; throughput at concurrency 1 is its
reciprocal up to the fixed output length).

``attach`` puts the comparison in both rows' serving_performance cells (``evidence.mtp_speedup``)
and adds its outcome as a check of the speculating row's cell (``CHECK_PREFIX``; a failure has the
code ``CODE``), which then decides the cell with its own checks (the status and basis it had are
kept in ``evidence.mtp_before``). A pair neither of whose rows measured anything (a host with no
baseline measures no speed) is left out; one row measured alone is ``not comparable``, said on
both cells, no status changed. ``strip`` undoes all of it, so a document decided again (merge) is
decided from its runs' own results. Pure: no I/O.

On the CPU reference, reference-ngram (vLLM's ngram drafts, 5 tokens) and its twin
reference-nospec serve the stand-in's random weights without its logits processor (vLLM refuses
one with speculation), greedy: GSM8K questions measured at 349 ms E2E with speculation against
835 ms without (256 tokens out, accept length about 4.5). The fault catalogue's
``perf-mtp-slow-drafter`` plants the slow case (``glmverify/standin/slow_drafter.py``: the same
drafts, 30 ms to make each batch of them): 2,650 ms.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .document import decide_status, strip_added
from .matrix import Row
from .performance import FEATURE, shape_of
from .verdicts import FAILED, FAMILY_ALPHA, INCONCLUSIVE, VERIFIED, Decision, Rule, decide

EFFECT = 1.25                      # spec / twin E2E latency the rule must fail (vLLM #55605: 1.29-1.41)
LOOKS = (3, 6, 10)                 # windows per row, as the regression decision's
CONCURRENCY = 1
QUANTITY = "E2E latency with speculation / without (its twin) at concurrency 1"
CODE = "serving_performance.mtp_slower_than_twin"
CHECK_PREFIX = "run::serving_performance::mtp_speedup"
NOT_COMPARABLE = "not comparable"
PROMISE = ("speculation must not slow a single user: E2E latency at concurrency 1 with drafts <= without "
           "(seed 000: MTP's draft tokens lift end-to-end throughput)")
OUTCOME = {VERIFIED: "passed", FAILED: "failed", INCONCLUSIVE: "inconclusive"}


def speculates(row: Row) -> bool:
    return bool(row.expect.get("draft_tokens"))


# left out of the twin comparison: speculation itself, and the name a row serves under (an identity
# each row has its own of, not a setting of the engine)
NOT_COMPARED = ("--speculative", "--served-model-name")


def launch_flags(args: Sequence[str], drop: tuple[str, ...] | str = NOT_COMPARED) -> list[tuple[str, ...]]:
    """Launch arguments as sorted groups (a flag with its values; leading positionals), the flags
    starting with ``drop`` left out: two launches with equal groups differ only in those."""
    groups: list[list[str]] = [[]]
    for a in args:
        if a.startswith("--"):
            groups.append([a])
        else:
            groups[-1].append(a)
    return sorted(tuple(g) for g in groups if g and not g[0].startswith(drop))


def twin_of(row: Row, rows: Iterable[Row]) -> Row | None:
    """The row's no-speculation twin on the same hardware, or None (also for a row that does not speculate)."""
    if not speculates(row):
        return None
    mine = launch_flags(row.launch.args)
    for other in rows:
        if other.id != row.id and not speculates(other) and all(
                getattr(other, k) == getattr(row, k) for k in ("hardware", "accelerators", "engine", "image", "model")) \
                and launch_flags(other.launch.args) == mine:
            return other
    return None


def speedup_rule(alpha: float, looks: tuple[int, ...] = LOOKS, basis: str = "") -> Rule:
    return Rule(name=f"perf[mtp_speedup:c{CONCURRENCY}]", quantity=QUANTITY, kind="mean", higher_is_better=False,
                verify_bound=1.0, fail_bound=1.0, alpha=alpha, looks=looks, effect=EFFECT, log_scale=True,
                basis=basis or "seed 000: MTP lifts end-to-end throughput; it must at least not slow a single user")


def speedup_samples(spec_e2el_ms: Sequence[float], twin_e2el_ms: Sequence[float]) -> list[float]:
    """log(spec_i / twin_i) over the windows both rows have (a window that measured nothing is dropped)."""
    return [math.log(s / t) for s, t in zip(spec_e2el_ms, twin_e2el_ms) if s > 0 and t > 0]


def decide_speedup(spec_e2el_ms: Sequence[float], twin_e2el_ms: Sequence[float], alpha: float,
                   looks: tuple[int, ...] = LOOKS, basis: str = "") -> Decision:
    """The decision on the windows measured so far (the last look they reach)."""
    return decide(speedup_rule(alpha, looks, basis), speedup_samples(spec_e2el_ms, twin_e2el_ms))


# ---- on a document's cells ------------------------------------------------------------------------
@dataclass
class Speedup:
    """One speculating row against its twin, decided on their serving_performance cells."""

    spec: Row
    twin: Row
    status: str = NOT_COMPARABLE
    reason: str = ""
    decision: Decision | None = None
    windows: dict[str, list[float]] | None = None

    @property
    def name(self) -> str:
        return f"{self.spec.id}-vs-{self.twin.id}"

    def evidence(self) -> dict[str, Any]:
        out: dict[str, Any] = {"comparison": self.name, "promise": PROMISE, "status": self.status,
                               "rows": {"speculating": self.spec.id, "twin": self.twin.id},
                               "concurrency": CONCURRENCY, "e2el_ms": self.windows or {}}
        if self.decision is not None:
            out["decision"] = self.decision.evidence()
            out["summary"] = self.decision.summary()
        if self.reason:
            out["reason"] = self.reason
        return out


def e2el_windows(cell: dict | None, concurrency: int = CONCURRENCY) -> list[float]:
    """Mean E2E latency (ms) of each usable window the cell measured at ``concurrency`` (module doc)."""
    checks = ((cell or {}).get("evidence") or {}).get("checks") or {}
    for ev in checks.values() if isinstance(checks, dict) else ():
        level = ((ev.get("levels") if isinstance(ev, dict) else None) or {}).get(str(concurrency))
        if not isinstance(level, dict) or level.get("stopped"):
            continue
        out = []
        for w in level.get("windows") or []:
            r = w.get("report") if isinstance(w, dict) and not w.get("set_aside") else None
            try:
                e2el = float(r["latency"]["e2el"]["mean"])  # type: ignore[index]
                ok = int(r.get("completed") or 0) > 0 and not int(r.get("failed") or 0)  # type: ignore[union-attr]
            except (KeyError, TypeError, ValueError):
                continue
            if ok and e2el > 0:
                out.append(e2el)
        if out:
            return out
    return []


def pairs(rows: Iterable[Row]) -> list[tuple[Row, Row]]:
    rows = list(rows)
    return [(r, t) for r in rows if (t := twin_of(r, rows)) is not None]


def compare(rows: Iterable[Row], cells: dict[str, dict | None]) -> list[Speedup]:
    """Every speculating row with a twin, decided on ``cells`` (``{row id: serving_performance cell}``)."""
    out = []
    for spec, twin in pairs(rows):
        a, b = e2el_windows(cells.get(spec.id)), e2el_windows(cells.get(twin.id))
        if not a and not b:
            continue   # neither measured (no baseline on this host): nothing to say
        comp = Speedup(spec, twin, windows={spec.id: a, twin.id: b})
        missing = [(r, cells.get(r.id) or {}) for r, w in ((spec, a), (twin, b)) if not w]
        shapes = [shape_of(r) for r in (spec, twin)]
        asked = [(s.workload, s.output_len) if s else None for s in shapes]
        if asked[0] != asked[1]:   # the same prompts and lengths, or the ratio is of two workloads
            comp.reason = (f"the rows measure different workloads ({spec.id}: {asked[0]}, {twin.id}: {asked[1]}, "
                           "as workload and output length): their latencies are not comparable")
        elif missing:
            comp.reason = "; ".join(f"{r.id} has no usable window at concurrency {CONCURRENCY} (its cell is "
                                    f"{c.get('status', 'absent')}{': ' + c['basis'] if c.get('basis') else ''})"
                                    for r, c in missing)
        elif min(len(a), len(b)) < 2:
            comp.reason = f"fewer than 2 windows both rows measured ({spec.id}: {len(a)}, {twin.id}: {len(b)})"
        else:
            n = min(len(a), len(b))
            alpha = (spec.profile.verdicts or {}).get("family_alpha", FAMILY_ALPHA)
            comp.decision = decide_speedup(a[:n], b[:n], alpha, looks=(n,),
                                           basis=PROMISE + f"; one look at the {n} windows both rows measured")
            comp.status = comp.decision.status
        out.append(comp)
    return out


def attach(cells: Iterable[dict], rows: Iterable[Row]) -> list[dict]:
    """Decide every speed-up on ``cells`` and attach it (module docstring); returns the cells whose
    speed-up failed (the caller diagnoses them again: their checks changed)."""
    mine = {c["row"]: c for c in cells if c.get("feature") == FEATURE}
    turned = []
    for comp in compare(rows, mine):
        for r in (comp.spec, comp.twin):
            if r.id in mine:   # a copy: a merged cell shares its evidence with its input's
                ev = mine[r.id]["evidence"] = dict(mine[r.id].get("evidence") or {})
                ev["mtp_speedup"] = comp.evidence()
        cell = mine.get(comp.spec.id)
        if comp.decision is None or cell is None:
            continue   # not comparable: said on both cells, no status changed
        d = comp.decision
        cell["evidence"].setdefault("mtp_before", {"status": cell["status"], "basis": cell.get("basis", "")})
        check = {"id": f"{CHECK_PREFIX}[{comp.name}]", "outcome": OUTCOME[d.status], "detail": d.summary(),
                 "fields": {"comparison": comp.name, "rows": [comp.spec.id, comp.twin.id],
                            "estimate": d.evidence()["estimate"]}, "evidence": comp.evidence()}
        if d.status != VERIFIED:
            check["code"] = CODE
        cell["checks"] = list(cell.get("checks") or []) + [check]
        was = cell["status"]
        cell["status"] = decide_status(cell["checks"], was)
        if cell["status"] != was:
            cell["basis"] = (f"{d.status} against its no-speculation twin {comp.twin.id} ({d.summary()}); "
                             f"its own checks: {was}, {cell.get('basis', '')}")
        if d.status == FAILED:
            turned.append(cell)   # diagnosed again with this failure among its checks (failed before or not)
    return turned


def strip(cell: dict) -> dict:
    """``cell`` without anything ``attach`` added (``document.strip_added``)."""
    return strip_added(cell, CHECK_PREFIX, "mtp_speedup", "mtp_before")
