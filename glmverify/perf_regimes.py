"""serving_performance between regimes on the same hardware (issue 24, 4.3), from merged results.

Seed 001's Deploy panel names three regimes of one recipe: Low-Latency ("fastest reply for a
single user"), Balanced ("good speed with several users at once") and High-Throughput ("most
tokens per second across many users"). Each row's own run holds it to its baseline or the guide's
figure; only a merged document has the rows of one panel side by side, so the order between them
is decided here, after ``merge.merge_documents`` merged the cells (``attach``):

* **groups** (``groups``): rows with a Deploy panel regime (``REGIMES``) on the same hardware,
  accelerator count, model, engine and image. The image is part of it: the panel's promise is
  between configurations of one build, and across builds a difference is the build's, not the
  regime's (``:latest`` and ``:main-09ca4fc`` rows are two groups);
* **comparisons** (``comparisons``): low-latency against balanced on TPOT at the lowest
  concurrency both rows measured (the single user's token pace; none shared: ``not comparable``
  with both rows' levels, never a verdict), and high-throughput against every other regime of
  its group on output tokens/s, each row at its own highest declared concurrency (the load each
  regime is configured for). The low-latency row carries the first promise, the high-throughput
  row the second: a violation fails the row that made the promise;
* **samples**: per-window log ratios ``log(a_i / b_i)`` of the i-th usable window of each row
  (as ``perf_mtp``: the windows are independent draws of two launches, so the pairing by index
  is arbitrary but harmless; the t interval sees both rows' variance). A usable window completed
  requests, failed none, measured positive figures and was not set aside; a level the engine's
  counters stopped (``stopped``) has none. A row without usable windows at the level compared is ``not
  comparable``, the reason stated (its cell keeps its status: a ``not_run`` cell stays one); a
  pair neither of whose rows measured anything is left out;
* **the rule** (``comparison_rule``): a ``verdicts.Rule`` of kind mean on log scale with one bar
  at 1.0, one look at the windows both rows have (the windows exist already; nothing is drawn):
  **failed** when the promise is confidently broken (a pair at equal speed fails with P <=
  alpha), **verified** when it confidently holds, ``inconclusive`` otherwise (two regimes at the
  same speed stay there). Power is stated at ``EFFECTS`` (the promising row 25% worse). ``alpha``
  is the rows' profile ``family_alpha`` (1%) split evenly (Bonferroni) over the group's
  comparisons: a conforming group false-fails any comparison with P <= family_alpha.

``attach`` puts every comparison of a row's group in its serving_performance cell's
``evidence.regimes``; a failed one also adds a failed check (``CHECK_PREFIX``, code
``serving_performance.regime_order_violated``) to the promising row's cell and turns it ``failed``,
keeping the status and basis it had in ``evidence.regimes_before``. ``strip`` undoes all of it, so
a merged document merged again is decided again from its runs' own results (merge reads every
input cell through it). Pure: no I/O.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

from .document import strip_added
from .matrix import Row
from .performance import FEATURE, shape_of
from .verdicts import FAILED, FAMILY_ALPHA, Decision, Rule, decide

LOW, BALANCED, HIGH = "low-latency", "balanced", "high-throughput"
REGIMES = (LOW, BALANCED, HIGH)
GROUP_KEYS = ("hardware", "accelerators", "model", "engine", "image")
CODE = "serving_performance.regime_order_violated"
CHECK_PREFIX = "merge::serving_performance::regimes"
NOT_COMPARABLE = "not comparable"
EFFECTS = {"tpot": 1.25, "throughput": 0.8}   # the promising row 25% worse: power is stated there
PROMISES = {"tpot": "the low-latency row's TPOT <= the balanced row's (seed 001: 'fastest reply for a single user')",
            "throughput": "the high-throughput row's output tok/s >= the other regime's "
                          "(seed 001: 'most tokens per second across many users')"}


@dataclass
class Comparison:
    """One ordered pair of a group: ``promiser`` (low-latency / high-throughput) against ``other``."""

    kind: str                       # "tpot" | "throughput"
    promiser: Row
    other: Row
    concurrency: dict[str, int | None] = field(default_factory=dict)   # row id -> level compared
    status: str = NOT_COMPARABLE
    reason: str = ""
    decision: Decision | None = None

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.promiser.id}-vs-{self.other.id}"

    def evidence(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "comparison": self.name, "promise": PROMISES[self.kind], "status": self.status,
            "rows": {regime_of(self.promiser): self.promiser.id, regime_of(self.other): self.other.id},
            "concurrency": dict(self.concurrency)}
        if self.decision is not None:
            out["decision"] = self.decision.evidence()
            out["summary"] = self.decision.summary()
        if self.reason:
            out["reason"] = self.reason
        if self.status == FAILED:
            out["violated_by"] = self.promiser.id
        return out


def regime_of(row: Row) -> str | None:
    try:
        shape = shape_of(row)
    except ValueError:
        return None
    return shape.regime if shape else None


def groups(rows: Iterable[Row]) -> list[list[Row]]:
    """Rows of Deploy panel regimes sharing hardware, accelerators, model, engine and image; only
    groups with two regimes or more (anything else has nothing to be compared with)."""
    out: dict[tuple, list[Row]] = {}
    for r in rows:
        if regime_of(r) in REGIMES:
            out.setdefault(tuple(getattr(r, k) for k in GROUP_KEYS), []).append(r)
    return [g for g in out.values() if len({regime_of(r) for r in g}) > 1]


def pairs(group: list[Row]) -> list[Comparison]:
    by = {reg: [r for r in group if regime_of(r) == reg] for reg in REGIMES}
    out = [Comparison("tpot", lo, bal) for lo in by[LOW] for bal in by[BALANCED]]
    out += [Comparison("throughput", hi, o) for hi in by[HIGH] for o in by[LOW] + by[BALANCED]]
    return out


# ---- the measured windows --------------------------------------------------------------------------
def windows(cell: dict | None) -> dict[int, list[dict[str, float]]]:
    """Per concurrency level, the usable windows of a serving_performance cell's measurement
    (``{"tpot_ms", "output_throughput"}``); levels without one are left out."""
    out: dict[int, list[dict[str, float]]] = {}
    checks = ((cell or {}).get("evidence") or {}).get("checks") or {}
    for ev in checks.values() if isinstance(checks, dict) else ():
        levels = ev.get("levels") if isinstance(ev, dict) else None
        if not isinstance(levels, dict):
            continue
        for c, level in levels.items():
            if not isinstance(level, dict) or level.get("stopped"):
                continue   # a window the counters did not vouch for stopped the level: none is used
            usable = [w for w in (_window(x) for x in level.get("windows") or []) if w]
            if usable:
                out[int(c)] = usable
    return out


def _window(w: Any) -> dict[str, float] | None:
    # a window set aside (the counters disowned it alone) is never decided on, here as in its own run
    r = w.get("report") if isinstance(w, dict) and not w.get("set_aside") else None
    if not isinstance(r, dict):
        return None
    try:
        tpot, tput = float(r["latency"]["tpot"]["mean"]), float(r["output_throughput"])
        ok = int(r.get("completed") or 0) > 0 and not int(r.get("failed") or 0)
    except (KeyError, TypeError, ValueError):
        return None
    return {"tpot_ms": tpot, "output_throughput": tput} if ok and tpot > 0 and tput > 0 else None


# ---- the decision ------------------------------------------------------------------------------------
def comparison_rule(kind: str, concurrency: dict[str, int | None], n: int, alpha: float) -> Rule:
    levels = ", ".join(f"{r} at concurrency {c}" for r, c in concurrency.items())
    if kind == "tpot":
        quantity = f"TPOT low-latency / balanced ({levels})"
    else:
        quantity = f"output tok/s high-throughput / other regime ({levels})"
    return Rule(name=f"perf[regimes:{kind}]", quantity=quantity, kind="mean", higher_is_better=kind == "throughput",
                verify_bound=1.0, fail_bound=1.0, alpha=alpha, looks=(max(2, n),), effect=EFFECTS[kind],
                log_scale=True, basis=PROMISES[kind] + "; one look at the windows both rows measured (merged results)")


def samples(a: list[dict[str, float]], b: list[dict[str, float]], figure: str) -> list[float]:
    return [math.log(x[figure] / y[figure]) for x, y in zip(a, b)]


def decide_comparison(comp: Comparison, cells: dict[str, dict | None], alpha: float) -> Comparison:
    """Decide ``comp`` on the rows' cells (``{row id: serving_performance cell}``), in place."""
    p, o = comp.promiser, comp.other
    have = {r.id: windows(cells.get(r.id)) for r in (p, o)}
    for r in (p, o):
        cell = cells.get(r.id) or {}
        measured = ((cell.get("evidence") or {}).get("checks") or {})
        said = {ev.get("regime") for ev in measured.values() if isinstance(ev, dict) and ev.get("regime")}
        if said and regime_of(r) not in said:
            comp.reason = f"{r.id} was measured as regime {sorted(said)}, matrix.yaml now says {regime_of(r)}"
            return comp
        if not have[r.id]:
            comp.reason = (f"{r.id} has no measured windows (its cell is {cell.get('status', 'absent')}"
                           + (f": {cell['basis']}" if cell.get("basis") else "") + ")")
            return comp
    if comp.kind == "tpot":
        shared = sorted(set(have[p.id]) & set(have[o.id]))
        if not shared:
            comp.concurrency = {p.id: None, o.id: None}
            comp.reason = (f"no concurrency both rows measured: {p.id} at {sorted(have[p.id])}, {o.id} at "
                           f"{sorted(have[o.id])}; the single-user promise needs both at the same level")
            return comp
        comp.concurrency = {p.id: shared[0], o.id: shared[0]}
        figure = "tpot_ms"
    else:
        comp.concurrency = {r.id: max(shape_of(r).concurrency) for r in (p, o)}  # type: ignore[union-attr]
        missing = [f"{r.id} at concurrency {comp.concurrency[r.id]} (measured: {sorted(have[r.id])})"
                   for r in (p, o) if comp.concurrency[r.id] not in have[r.id]]
        if missing:
            comp.reason = "no measured windows at the row's highest concurrency: " + "; ".join(missing)
            return comp
        figure = "output_throughput"
    a, b = have[p.id][comp.concurrency[p.id]], have[o.id][comp.concurrency[o.id]]  # type: ignore[index]
    xs = samples(a, b, figure)
    if len(xs) < 2:
        comp.reason = f"fewer than 2 windows both rows measured ({p.id}: {len(a)}, {o.id}: {len(b)}): no spread to decide on"
        return comp
    comp.decision = decide(comparison_rule(comp.kind, comp.concurrency, len(xs), alpha), xs)
    comp.status = comp.decision.status
    return comp


def group_alpha(group: list[Row], n_comparisons: int) -> float:
    fam = min((r.profile.verdicts or {}).get("family_alpha", FAMILY_ALPHA) for r in group)
    return fam / max(1, n_comparisons)


def compare(rows: Iterable[Row], cells: dict[str, dict | None]) -> list[Comparison]:
    """Every comparison of every group, decided on ``cells`` (``{row id: serving_performance cell}``);
    a pair neither of whose rows measured anything is left out (nothing to say, on every merge)."""
    out = []
    for g in groups(rows):
        comps = pairs(g)
        alpha = group_alpha(g, len(comps))   # over all the group's pairs, decided or not: the budget is fixed
        out += [decide_comparison(c, cells, alpha) for c in comps
                if windows(cells.get(c.promiser.id)) or windows(cells.get(c.other.id))]
    return out


# ---- onto the merged cells ---------------------------------------------------------------------------
def attach(cells: Iterable[dict], rows: Iterable[Row]) -> list[dict]:
    """Decide every comparison on the merged ``cells`` and attach them (module docstring); returns
    the cells a failed comparison turned ``failed`` (the caller diagnoses them)."""
    mine = {c["row"]: c for c in cells if c.get("feature") == FEATURE}
    turned = []
    for comp in compare(rows, mine):
        for r in (comp.promiser, comp.other):
            if r.id in mine:   # a copy: a merged cell shares its evidence with its input's
                ev = mine[r.id]["evidence"] = dict(mine[r.id].get("evidence") or {})
                ev["regimes"] = list(ev.get("regimes") or []) + [comp.evidence()]
        cell = mine.get(comp.promiser.id)
        if comp.status != FAILED or cell is None:
            continue   # verified, inconclusive or not comparable: the cell keeps its status
        assert comp.decision is not None
        cell["evidence"].setdefault("regimes_before", {"status": cell["status"], "basis": cell.get("basis", "")})
        cell["checks"] = list(cell.get("checks") or []) + [{
            "id": f"{CHECK_PREFIX}[{comp.name}]", "outcome": FAILED, "detail": comp.decision.summary(), "code": CODE,
            "fields": {"comparison": comp.name, "rows": [comp.promiser.id, comp.other.id],
                       "estimate": comp.decision.evidence()["estimate"], "concurrency": comp.concurrency},
            "evidence": comp.evidence()}]
        if cell["status"] != FAILED:
            cell["status"] = FAILED
            cell["basis"] = (f"failed between regimes (merged results): {comp.promiser.id} against {comp.other.id}, "
                             f"{PROMISES[comp.kind]} confidently broken; its own run: {cell.get('basis', '')}")
            turned.append(cell)
    return turned


def strip(cell: dict) -> dict:
    """``cell`` without anything ``attach`` added (``document.strip_added``)."""
    return strip_added(cell, CHECK_PREFIX, "regimes", "regimes_before")
