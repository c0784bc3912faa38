"""The page's figures, drawn with matplotlib (``Figure`` objects, no pyplot state) as PNG data: URIs.

One figure per feature that has the data: acceptance per draft position (mtp_accept_length),
reasoning tokens per effort level (effort_levels: the cell's own levels, the default first),
needles found by depth and context length (context_1m). A figure that fails to draw is
reported in its place; it never costs the page.
"""
from __future__ import annotations

import base64
import io

from .perf_plot import plot_performance
from .figures import accept_length, effort_ratios, find, needles, num, per_position, ratio_label, reasoning_tokens, tokens_text

def _png_data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(n, max_cols)
    return (n + cols - 1) // cols, cols


def _figure(n_axes: int, width_per: float = 4.2, height_per: float = 3.0, **kw):
    from matplotlib.figure import Figure  # no pyplot: no global backend state, Agg rendering

    rows, cols = _grid(n_axes)
    fig = Figure(figsize=(width_per * cols, height_per * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, **kw).ravel()
    for ax in axes[n_axes:]:
        ax.set_visible(False)
    return fig, list(axes[:n_axes])


def plot_accept(cells: list[dict]) -> str | None:
    data = [(c, per_position(c)) for c in cells]
    data = [(c, pp) for c, pp in data if pp]
    if not data:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 3.6), layout="constrained")
    ax = fig.subplots()
    for c, pp in data:
        a = accept_length(c)
        label = f"{c['row']}" + (f" (accept length {a:.2f})" if a is not None else "")
        ax.plot(range(1, len(pp) + 1), pp, marker="o", label=label)
    ax.set_xlabel("draft position")
    ax.set_ylabel("acceptance rate")
    ax.set_ylim(0, 1.05)
    ax.set_xticks(range(1, max(len(pp) for _, pp in data) + 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title("MTP / speculative acceptance per draft position")
    return _png_data_uri(fig)


def plot_effort(cells: list[dict]) -> str | None:
    data = [(c, reasoning_tokens(c)) for c in cells]
    data = [(c, rt) for c, rt in data if rt]
    if not data:
        return None
    fig, axes = _figure(len(data))
    for ax, (c, rt) in zip(axes, data):
        levels = list(rt)
        ax.boxplot([rt[lv] for lv in levels], widths=0.5, showmeans=True)
        for i, lv in enumerate(levels, start=1):
            vals = rt[lv]
            xs = [i + (j % 7 - 3) * 0.03 for j in range(len(vals))]
            ax.scatter(xs, vals, s=10, alpha=0.6, color="#0969da", zorder=3)
        ax.set_xticks(range(1, len(levels) + 1), [str(lv) for lv in levels])
        ratios = ", ".join(f"{ratio_label(c, lv)} {r:.2f}" for lv, r in effort_ratios(c).items())
        ax.set_title(f"{c['row']}" + (f" — {ratios}" if ratios else ""), fontsize=10)
        ax.set_xlabel("reasoning effort")
        ax.set_ylabel("reasoning tokens")
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Reasoning tokens per effort level")
    return _png_data_uri(fig)


def plot_needles(cells: list[dict]) -> str | None:
    data = [(c, needles(c)) for c in cells]
    data = [(c, nd) for c, nd in data if nd]
    if not data:
        return None
    from matplotlib.ticker import FuncFormatter, NullFormatter, PercentFormatter

    fig, axes = _figure(len(data))
    for ax, (c, nd) in zip(axes, data):
        found = [n for n in nd if n["found"]]
        missed = [n for n in nd if not n["found"]]
        if found:
            ax.scatter([n["tokens"] for n in found], [n["depth"] for n in found], marker="o", s=40,
                       color="#1a7f37", label=f"found ({len(found)})", zorder=3)
        if missed:
            ax.scatter([n["tokens"] for n in missed], [n["depth"] for n in missed], marker="X", s=60,
                       color="#cf222e", label=f"missed ({len(missed)})", zorder=3)
        toks = [n["tokens"] for n in nd]
        if min(toks) > 0 and max(toks) / min(toks) > 4:
            ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: tokens_text(v) if v >= 1 else ""))
        ax.xaxis.set_minor_formatter(NullFormatter())  # log minor labels would need mathtext (slow, cluttered)
        depth_scale = 100 if max(n["depth"] for n in nd) > 1 else 1
        ax.yaxis.set_major_formatter(PercentFormatter(depth_scale))
        ax.set_ylim(-0.05 * depth_scale, 1.05 * depth_scale)
        reached = num(find(c, "context_reached"))
        ax.set_title(f"{c['row']}" + (f" — {tokens_text(reached)} reached" if reached else ""), fontsize=10)
        ax.set_xlabel("context length (tokens)")
        ax.set_ylabel("needle depth")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False)
    fig.suptitle("Needle retrieval by depth and context length")
    return _png_data_uri(fig)


PLOTS = (
    ("fig-accept", "Accept length per draft position", "mtp_accept_length", plot_accept,
     "Acceptance rate of each draft position; accept length = 1 + the sum of the rates."),
    ("fig-effort", "Reasoning tokens per effort level", "effort_levels", plot_effort,
     "Reasoning tokens of the same prompts at each reasoning_effort, the default (most effort) first; "
     "every lowered level must reason less than the default."),
    ("fig-needles", "Needle depth by context length", "context_1m", plot_needles,
     "Each marker is one needle: where it was placed (depth) in a prompt of that length, and whether it was found."),
    ("fig-performance", "Serving performance per hardware", "serving_performance",
     lambda cells: plot_performance(cells, _png_data_uri),
     "Each row's concurrency levels (tokens/s per user against output tokens/s per GPU), with the guide's "
     "published point (square) and the baseline it was held to (diamond)."),
)


def render_figures(doc: dict) -> list[dict]:
    """[{id, title, caption, src|error}] for every figure that has data."""
    out = []
    cells = doc.get("cells", [])
    for fid, title, feature, fn, caption in PLOTS:
        subset = [c for c in cells if c.get("feature") == feature]
        try:
            src = fn(subset)
        except Exception as exc:  # noqa: BLE001 - one bad figure must not cost the page
            out.append({"id": fid, "title": title, "caption": caption, "error": f"{type(exc).__name__}: {exc}"})
            continue
        if src:
            out.append({"id": fid, "title": title, "caption": caption, "src": src, "feature": feature})
    return out

