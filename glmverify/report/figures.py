"""Numbers read from a cell's evidence, and the short key figures a cell shows.

Every figure is optional and read where the suites record it (``find``: on the cell, else the
first check evidence that has it): ``accept_length``, ``per_position`` (mtp_accept_length);
``accuracy``, ``wilson_lower``, ``n``, ``threshold`` (accuracy_smoke); ``context_reached``,
``needles`` (context_1m); ``levels``, ``ratio``, ``reasoning_tokens`` (effort_levels); the
statistical ``decisions`` of any check. Junk values are skipped, never shown.

Effort levels are data, never names in this module: ``levels`` is the profile's order (most
effort, the default, first); each lowered level is compared with the first. Results written
before ``levels`` was recorded give the order of their ``reasoning_tokens`` keys, where the key
``default`` stands for the default level.
"""
from __future__ import annotations

import math
from typing import Any

DEFAULT_KEY = "default"  # the key the effort suite records the default level's tokens under


def num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def find(cell: dict, key: str) -> Any:
    """The first value of ``key`` in the cell's check evidence (or on the cell itself)."""
    for src in (cell, cell.get("figures")):
        if isinstance(src, dict) and src.get(key) is not None:
            return src[key]
    checks = (cell.get("evidence") or {}).get("checks") or {}
    if isinstance(checks, dict):
        for ev in checks.values():
            if isinstance(ev, dict) and ev.get(key) is not None:
                return ev[key]
    return None


def _numbers(x: Any) -> list[float]:
    if isinstance(x, (list, tuple)):
        return [v for v in (num(i) for i in x) if v is not None]
    v = num(x)
    return [] if v is None else [v]


def recorded_levels(cell: dict) -> list[str]:
    """The effort levels the cell's check recorded (``levels``: most effort first), else []."""
    lv = find(cell, "levels")
    if isinstance(lv, (list, tuple)) and lv and all(isinstance(x, str) and x for x in lv):
        return list(dict.fromkeys(lv))
    return []


def reasoning_tokens(cell: dict) -> dict[str, list[float]]:
    """{level: reasoning tokens of the prompts at it}: recorded levels first, in their order, then
    any other value the check sent (a fall-through value); the ``default`` key is named after the
    default level when the levels are recorded."""
    rt = find(cell, "reasoning_tokens")
    if not isinstance(rt, dict):
        return {}
    levels = recorded_levels(cell)
    out: dict[str, list[float]] = {lv: [] for lv in levels}
    for k, v in rt.items():
        key = levels[0] if levels and str(k) == DEFAULT_KEY and levels[0] not in rt else str(k)
        out[key] = _numbers(v)
    return {k: v for k, v in out.items() if v}


def effort_levels(cell: dict) -> list[str]:
    """The cell's levels, the default first: recorded, else the keys of its reasoning tokens."""
    return recorded_levels(cell) or list(reasoning_tokens(cell))


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def effort_ratios(cell: dict) -> dict[str, float]:
    """{lowered level: its reasoning tokens / the default level's}. The check's own ``ratio`` wins
    (a number is the first lowered level's, a mapping gives levels by name); the rest is the
    ratio of mean tokens."""
    levels = effort_levels(cell)
    out: dict[str, float] = {}
    recorded = find(cell, "ratio")
    if isinstance(recorded, dict):
        out.update({str(k): v for k, v in ((k, num(v)) for k, v in recorded.items()) if v is not None})
    elif num(recorded) is not None:
        out[levels[1] if len(levels) > 1 else ""] = num(recorded)  # "": levels unknown
    rt = reasoning_tokens(cell)
    base = rt.get(levels[0]) if levels else None
    for lv in levels[1:]:
        if lv not in out and base and rt.get(lv) and _mean(base):
            out[lv] = _mean(rt[lv]) / _mean(base)
    order = [lv for lv in levels[1:] if lv in out]
    return {lv: out[lv] for lv in order + [k for k in out if k not in order]}


def effort_ratio(cell: dict) -> float | None:
    """The first lowered level's ratio to the default (None without data)."""
    ratios = effort_ratios(cell)
    levels = effort_levels(cell)
    first = levels[1] if len(levels) > 1 else ""
    return ratios.get(first, next(iter(ratios.values()), None))


def ratio_label(cell: dict, level: str) -> str:
    """``Lowered/Default`` in the words of the cell's levels, e.g. High/Max."""
    levels = effort_levels(cell)
    default = levels[0] if levels else DEFAULT_KEY
    return f"{(level or 'lowered').capitalize()}/{default.capitalize()}"


def per_position(cell: dict) -> list[float]:
    return _numbers(find(cell, "per_position"))


def accept_length(cell: dict) -> float | None:
    a = num(find(cell, "accept_length"))
    if a is None and per_position(cell):
        a = 1.0 + sum(per_position(cell))  # mean accepted drafts per step + the bonus token
    return a


def needles(cell: dict) -> list[dict]:
    out = []
    for n in find(cell, "needles") or []:
        if isinstance(n, dict) and num(n.get("depth")) is not None and num(n.get("tokens")) is not None:
            out.append({"depth": num(n["depth"]), "tokens": num(n["tokens"]), "found": bool(n.get("found"))})
    return out


def tokens_text(n: float) -> str:
    n = int(n)
    if n >= 1 << 20:
        return f"{n / (1 << 20):.3g}M"
    if n >= 1024:
        return f"{n / 1024:.3g}K"
    return str(n)


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%" if x <= 1.0 else f"{x:g}"


def decisions(cell: dict) -> list[dict]:
    """The statistical decisions recorded by the cell's checks (``verdicts.Decision.evidence``)."""
    out = []
    for ev in ((cell.get("evidence") or {}).get("checks") or {}).values():
        if isinstance(ev, dict) and isinstance(ev.get("decisions"), list):
            out += [d for d in ev["decisions"] if isinstance(d, dict)]
    return out


def decision_text(d: dict) -> str:
    """``quantity: 0.97 [0.93, 1] n=128 alpha 0.0017 -> verified`` (plain text)."""
    def short(x):
        v = num(x)
        return "n/a" if v is None else f"{v:.3g}"
    lo, hi = (list(d.get("interval") or []) + [None, None])[:2]
    return (f"{d.get('rule')}: {short(d.get('estimate'))} [{short(lo)}, {short(hi)}] n={d.get('n')} "
            f"α={short(d.get('alpha'))} → {d.get('status')}")


def key_figures(cell: dict) -> list[str]:
    """Short plain-text figures of a cell (escape before use)."""
    f = cell.get("feature")
    out: list[str] = [decision_text(d) for d in decisions(cell)]
    if f == "mtp_accept_length":
        a = accept_length(cell)
        if a is not None:
            pp = per_position(cell)
            out.append(f"accept {a:.2f}" + (f" ({len(pp)} drafts)" if pp else ""))
    if f == "accuracy_smoke":
        acc = num(find(cell, "accuracy"))
        if acc is not None:
            out.append(f"acc {_pct(acc)}")
            lb, n, thr = num(find(cell, "wilson_lower")), num(find(cell, "n")), num(find(cell, "threshold"))
            extra = []
            if lb is not None:
                extra.append(f"Wilson ≥ {_pct(lb)}")
            if n is not None:
                extra.append(f"n={int(n)}")
            if thr is not None:
                extra.append(f"need {_pct(thr)}")
            if extra:
                out.append(", ".join(extra))
    if f == "context_1m":
        if cell.get("window"):  # the row's own window: context_1m is checked at it, 1M only where claimed
            out.append(f"window {int(cell['window']):,}")  # exact: recipes write 200,000, not 195K
        reached = num(find(cell, "context_reached"))
        if reached is not None:
            out.append(f"{tokens_text(reached)} tokens reached")
        nd = needles(cell)
        if nd:
            out.append(f"needles {sum(n['found'] for n in nd)}/{len(nd)} found")
    if f == "effort_levels":
        out += [f"{ratio_label(cell, lv)} {r:.2f}" for lv, r in effort_ratios(cell).items()]
    if f == "serving_performance":
        out += cross_row_figures(cell)
    return out


def cross_row_figures(cell: dict) -> list[str]:
    """serving_performance decided between rows (perf_mtp: speculation against its twin; perf_regimes:
    between regimes): the decision, or why there was none."""
    ev = cell.get("evidence") or {}
    comps = [ev["mtp_speedup"]] if isinstance(ev.get("mtp_speedup"), dict) else []
    comps += [x for x in ev.get("regimes") or [] if isinstance(x, dict)]
    out = []
    for x in comps:
        d = x.get("decision")
        out.append(f"{x.get('comparison')}: " + (decision_text(d) if isinstance(d, dict) else str(x.get("status"))))
    return out

