"""The accuracy cell's own figures on the page: accuracy per window as an inline SVG sparkline, and
the comparison with the baseline (issue #25).

Read from the cell's check evidence (``test_steady_over_run`` / ``test_against_baseline``:
``window_accuracy``, and the ``accuracy[paired:*]`` / ``accuracy[drift]`` / ``accuracy[batch]``
decisions). The SVG is markup in the page (no script, no style attribute, no external load: the
page's Content-Security-Policy admits it); every text is escaped.
"""
from __future__ import annotations

from typing import Any

from .common import h
from .figures import num

WIDTH, HEIGHT, PAD = 140, 32, 2


def _checks(cell: dict) -> dict[str, dict]:
    ev = (cell.get("evidence") or {}).get("checks")
    return {str(k): v for k, v in ev.items() if isinstance(v, dict)} if isinstance(ev, dict) else {}


def window_series(cell: dict) -> tuple[str, list[float]] | None:
    """(check id, accuracy per window) of the steady check, else of the thinking-on paired check."""
    checks = _checks(cell)
    for cid in sorted(checks, key=lambda c: (not c.startswith("test_steady"), c)):
        values = checks[cid].get("window_accuracy")
        if isinstance(values, list):
            vals = [v for v in (num(x) for x in values) if v is not None]
            if len(vals) >= 2:
                return cid, vals
    return None


def decisions(cell: dict) -> list[dict]:
    """The paired, drift and batch decisions recorded by the cell's checks."""
    return [d for ev in _checks(cell).values() for d in ev.get("decisions") or []
            if isinstance(d, dict) and (str(d.get("rule", "")).startswith("accuracy[paired:")
                                        or d.get("rule") in ("accuracy[drift]", "accuracy[batch]"))]


def sparkline_svg(values: list[float], width: int = WIDTH, height: int = HEIGHT) -> str:
    """A polyline of ``values`` (0..1, accuracy) with a dot per window; y = 1 at the top."""
    n = len(values)
    step = (width - 2 * PAD) / max(1, n - 1)
    pts = [(PAD + i * step, PAD + (1 - max(0.0, min(1.0, v))) * (height - 2 * PAD)) for i, v in enumerate(values)]
    poly = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
    dots = "".join(f"<circle cx=\"{x:.1f}\" cy=\"{y:.1f}\" r=\"1.6\" fill=\"#1f77b4\"><title>window {i + 1}: "
                   f"{values[i]:.3f}</title></circle>" for i, (x, y) in enumerate(pts))
    label = h(f"accuracy per window: {', '.join(f'{v:.2f}' for v in values)}")
    return (f"<svg class=\"spark\" role=\"img\" aria-label=\"{label}\" width=\"{width}\" height=\"{height}\" "
            f"viewBox=\"0 0 {width} {height}\" xmlns=\"http://www.w3.org/2000/svg\"><title>{label}</title>"
            f"<polyline points=\"{poly}\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.2\"/>{dots}</svg>")


def _pct(x: Any) -> str:
    v = num(x)
    return "n/a" if v is None else f"{v:.1%}"


def comparison_lines(cell: dict) -> list[str]:
    """One line per paired / drift / batch decision: what it compared and how it ended."""
    lines = []
    for d in decisions(cell):
        ex = d.get("extra") or {}
        lo, hi = (d.get("interval") or [None, None])[:2]
        if str(d.get("rule", "")).startswith("accuracy[paired:"):
            lines.append(f"{d['rule']}: {d.get('status')}; baseline {_pct(ex.get('baseline_accuracy'))} vs now "
                         f"{_pct(ex.get('current_accuracy'))} on {d.get('n')} questions, discordant "
                         f"{ex.get('baseline_right_current_wrong')}/{ex.get('baseline_wrong_current_right')}, "
                         f"loss {_pct(lo)}..{_pct(hi)} (effect {_pct(d.get('effect'))}); {ex.get('baseline_source')}")
        else:
            lines.append(f"{d.get('rule')}: {d.get('status')}; difference {_pct(d.get('estimate'))} "
                         f"({_pct(lo)}..{_pct(hi)}, effect {_pct(d.get('effect'))})")
    for ev in _checks(cell).values():
        base = ev.get("baseline")
        if isinstance(base, dict) and base.get("none"):
            lines.append(f"no baseline: {base['none']}")
    return lines


def accuracy_html(cell: dict) -> str:
    """The accuracy cell's sparkline and baseline lines ('' for any other cell or without data)."""
    if cell.get("feature") != "accuracy_smoke":
        return ""
    parts = []
    series = window_series(cell)
    if series:
        cid, values = series
        parts.append(f"<div class=\"fig spark-fig\">{sparkline_svg(values)} <small>{h(cid)}</small></div>")
    parts += [f"<div class=\"fig\">{h(line)}</div>" for line in dict.fromkeys(comparison_lines(cell))]
    return "".join(parts)
