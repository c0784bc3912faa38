"""serving_performance's figure: latency against throughput, one panel per hardware.

Each measured row is a line through its concurrency levels: x is tokens/s per user (1000 / mean
TPOT of the level's windows), y is output tokens/s per GPU (the windows' mean output throughput
over the row's accelerators; a CPU row's per host). Beside them, hollow markers: the guide's
published point for that level (``against_figure``) and the baseline the level was held to
(``baseline_means``). Only cells whose client report ran have points; a declared cell has none.
"""
from __future__ import annotations

from .figures import find, num

HOLLOW = {"facecolors": "none", "s": 70, "zorder": 4}


def levels(cell: dict) -> list[dict]:
    """[{concurrency, user_tok_s, tok_s, figure: (x, y) | None, baseline: (x, y) | None}] of a cell."""
    per = num(find(cell, "accelerators")) or 1.0
    out = []
    for c, lv in sorted((find(cell, "levels") or {}).items(), key=lambda kv: int(kv[0])):
        recs = [r for r in lv.get("window_records") or [] if num(r.get("tpot_ms")) and num(r.get("output_throughput"))]
        if not recs:
            continue
        tpot = sum(r["tpot_ms"] for r in recs) / len(recs)
        tok = sum(r["output_throughput"] for r in recs) / len(recs) / per
        fig = ((lv.get("against_figure") or {}).get("figure")) or {}
        base = lv.get("baseline_means") or {}
        out.append({"concurrency": int(c), "user_tok_s": 1000.0 / tpot, "tok_s": tok,
                    "figure": (1000.0 / fig["tpot_ms"], fig["tok_s_per_gpu"])
                    if num(fig.get("tpot_ms")) and num(fig.get("tok_s_per_gpu")) else None,
                    "baseline": (1000.0 / base["tpot_ms"], base["output_throughput"] / per)
                    if num(base.get("tpot_ms")) and num(base.get("output_throughput")) else None})
    return out


def plot_performance(cells: list[dict], png) -> str | None:
    """The figure as a PNG data URI (``png``: the page's encoder), or None without measured levels."""
    data = [(c, levels(c)) for c in cells]
    data = [(c, lv) for c, lv in data if lv]
    if not data:
        return None
    from matplotlib.figure import Figure

    hardware = sorted({c.get("hardware") or "?" for c, _ in data})
    fig = Figure(figsize=(5.2 * len(hardware), 3.8), layout="constrained")
    axes = fig.subplots(1, len(hardware), squeeze=False).ravel()
    for ax, hw in zip(axes, hardware):
        for c, lv in [(c, lv) for c, lv in data if (c.get("hardware") or "?") == hw]:
            line, = ax.plot([p["user_tok_s"] for p in lv], [p["tok_s"] for p in lv], marker="o", label=c["row"])
            for p in lv:
                ax.annotate(f"c{p['concurrency']}", (p["user_tok_s"], p["tok_s"]), fontsize=7,
                            xytext=(4, 4), textcoords="offset points")
            figs = [p["figure"] for p in lv if p["figure"]]
            bases = [p["baseline"] for p in lv if p["baseline"]]
            if figs:
                ax.scatter(*zip(*figs), marker="s", edgecolors=line.get_color(), label=f"{c['row']}: guide", **HOLLOW)
            if bases:
                ax.scatter(*zip(*bases), marker="D", edgecolors=line.get_color(), label=f"{c['row']}: baseline", **HOLLOW)
        per = "GPU" if any(num(find(c, "accelerators")) for c, _ in data if (c.get("hardware") or "?") == hw) else "host"
        ax.set_title(hw, fontsize=10)
        ax.set_xlabel("tokens/s per user (1000 / TPOT)")
        ax.set_ylabel(f"output tokens/s per {per}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle("Serving performance: latency against throughput")
    return png(fig)
