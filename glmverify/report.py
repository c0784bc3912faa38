"""Reports rendered from a matrix.json document.

* ``matrix.md``   the table for pull requests and the sign-off record (model output escaped);
* ``matrix.html`` one self-contained page for release engineers: rows grouped by engine and
  hardware, one column per feature, each cell coloured by status with its key figure and a
  ``<details>`` drill-down to its checks and evidence, plus matplotlib figures embedded as
  data: URIs. No script at all; a Content-Security-Policy forbids any (``script-src 'none'``)
  and allows only the page's own stylesheet (by hash) and data: images, so evidence that holds
  HTML or ``<script>`` can neither run nor load anything. Every text from a document is escaped;
* ``junit.xml``   one testsuite per cell, one testcase per check, for CI dashboards.

Key figures are read from check evidence when present (all optional): ``accept_length``,
``per_position`` (mtp_accept_length); ``accuracy``, ``wilson_lower``, ``n``, ``threshold``
(accuracy_smoke); ``context_reached``, ``needles`` (context_1m); ``ratio``,
``reasoning_tokens`` (effort_levels).
"""
from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from . import __version__
from .util import atomic_write

STATUS_ORDER = ("verified", "failed", "inconclusive", "inferred", "unsupported", "not_run")
SYMBOL = {"verified": "✅ verified", "failed": "❌ failed", "inconclusive": "❓ inconclusive", "inferred": "◐ inferred",
          "unsupported": "— unsupported", "not_run": "· not_run"}
GLYPH = {"verified": "✓", "failed": "✗", "inconclusive": "?", "inferred": "◐", "unsupported": "—", "not_run": "·"}
MEANING = {
    "verified": "checks passed against a live engine, none failed",
    "failed": "at least one check failed live (or the engine did not start)",
    "inconclusive": "ran live, but a statistical check spent its sample budget without deciding: not verified",
    "inferred": "claimed by a recipe or guide, not run; see its basis",
    "unsupported": "not offered by this row; see its basis",
    "not_run": "no live result and no declaration",
}

#: what an inferred claim rests on (matrix.yaml's cell ``kind``), shown apart on the page
KIND_ORDER = ("vendor-verified", "proposed", "derived")
KIND_MEANING = {
    "vendor-verified": "the vendor's guide says it signed this combination off (e.g. SGLang's Deploy panel on main @ 09ca4fc)",
    "proposed": "the guide offers it but marks it unverified (SGLang's multi-node BF16: 'proposed/inferred (verified: false)')",
    "derived": "the harness derived the claim from a guide's flags and text; nobody signed it off",
}

# XML 1.0 forbids these; model output and ANSI logs contain them.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _clean(text: Any) -> str:
    return _INVALID_XML.sub("\ufffd", "" if text is None else str(text))


def h(text: Any) -> str:
    """HTML-escaped text (quotes too: safe in attributes)."""
    return html.escape(_clean(text), quote=True)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n] + f"… [{len(text) - n} more chars]"


# ---- figures from evidence ------------------------------------------------------------------------
def _num(x: Any) -> float | None:
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
        return [v for v in (_num(i) for i in x) if v is not None]
    v = _num(x)
    return [] if v is None else [v]


def reasoning_tokens(cell: dict) -> dict[str, list[float]]:
    rt = find(cell, "reasoning_tokens")
    if not isinstance(rt, dict):
        return {}
    out = {str(k): _numbers(v) for k, v in rt.items()}
    return {k: v for k, v in out.items() if v}


def effort_ratio(cell: dict) -> float | None:
    r = _num(find(cell, "ratio"))
    if r is not None:
        return r
    rt = {k.lower(): v for k, v in reasoning_tokens(cell).items()}
    if rt.get("high") and rt.get("max"):
        mx = sum(rt["max"]) / len(rt["max"])
        return (sum(rt["high"]) / len(rt["high"])) / mx if mx else None
    return None


def per_position(cell: dict) -> list[float]:
    return _numbers(find(cell, "per_position"))


def accept_length(cell: dict) -> float | None:
    a = _num(find(cell, "accept_length"))
    if a is None and per_position(cell):
        a = 1.0 + sum(per_position(cell))  # mean accepted drafts per step + the bonus token
    return a


def needles(cell: dict) -> list[dict]:
    out = []
    for n in find(cell, "needles") or []:
        if isinstance(n, dict) and _num(n.get("depth")) is not None and _num(n.get("tokens")) is not None:
            out.append({"depth": _num(n["depth"]), "tokens": _num(n["tokens"]), "found": bool(n.get("found"))})
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
    def num(x):
        v = _num(x)
        return "n/a" if v is None else f"{v:.3g}"
    lo, hi = (list(d.get("interval") or []) + [None, None])[:2]
    return (f"{d.get('rule')}: {num(d.get('estimate'))} [{num(lo)}, {num(hi)}] n={d.get('n')} "
            f"α={num(d.get('alpha'))} → {d.get('status')}")


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
        acc = _num(find(cell, "accuracy"))
        if acc is not None:
            out.append(f"acc {_pct(acc)}")
            lb, n, thr = _num(find(cell, "wilson_lower")), _num(find(cell, "n")), _num(find(cell, "threshold"))
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
        reached = _num(find(cell, "context_reached"))
        if reached is not None:
            out.append(f"{tokens_text(reached)} tokens reached")
        nd = needles(cell)
        if nd:
            out.append(f"needles {sum(n['found'] for n in nd)}/{len(nd)} found")
    if f == "effort_levels":
        r = effort_ratio(cell)
        if r is not None:
            out.append(f"High/Max {r:.2f}")
    return out


# ---- common ---------------------------------------------------------------------------------------
def status_counts(doc: dict) -> dict[str, int]:
    out = {s: 0 for s in STATUS_ORDER}
    for c in doc.get("cells", []):
        out[c.get("status")] = out.get(c.get("status"), 0) + 1
    return out


def kind_counts(doc: dict) -> dict[str, int]:
    """Inferred cells by what their claim rests on."""
    out = {k: 0 for k in KIND_ORDER}
    for c in doc.get("cells", []):
        if c.get("status") == "inferred":
            k = c.get("kind") or "derived"
            out[k] = out.get(k, 0) + 1
    return out


def cell_label(c: dict) -> str:
    """Status, plus the claim kind of an inferred cell (vendor-verified / proposed / derived)."""
    st = c.get("status")
    return f"{st} ({c['kind']})" if st == "inferred" and c.get("kind") else str(st)


def _layout(doc: dict) -> tuple[list[str], dict[tuple[str, str], list[str]], dict[str, dict]]:
    """(features, {(engine, hardware): [row ids]}, {row id: {feature: cell, '_info': {...}}})."""
    cells = doc.get("cells", [])
    features = list(dict.fromkeys(c["feature"] for c in cells))
    rows: dict[str, dict] = {}
    for c in cells:
        r = rows.setdefault(c["row"], {"_info": {"engine": c.get("engine"), "hardware": c.get("hardware"),
                                                 "image": c.get("image"), "engine_version": None}})
        r[c["feature"]] = c
        info = r["_info"]
        for k in ("engine", "hardware", "image"):
            info[k] = info[k] or c.get(k)
        eng = (c.get("evidence") or {}).get("engine") or {}
        if isinstance(eng, dict) and eng.get("engine_version") and not info["engine_version"]:
            info["engine_version"] = eng["engine_version"]
    groups: dict[tuple[str, str], list[str]] = {}
    for rid, r in rows.items():
        groups.setdefault((r["_info"]["engine"] or "?", r["_info"]["hardware"] or "?"), []).append(rid)
    return features, groups, rows


def signoff_state(results_dir: Path) -> dict | None:
    """The sign-off of DIR, checked against DIR/matrix.json, or None when there is none."""
    from .signoff import SignoffError, verify  # late: signoff imports merge imports results

    try:
        v = verify(results_dir)
    except (SignoffError, OSError) as exc:
        return {"ok": False, "message": str(exc), "record": None}
    if v.record is None:
        return None
    return {"ok": v.ok, "message": v.message, "record": v.record}


# ---- markdown -------------------------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#!<>])")


def md_text(text: Any, n: int | None = None) -> str:
    """Model output as inert one-line Markdown text: no HTML, no links, no table breaks."""
    s = " ".join(_clean(text).split())
    if n is not None:
        s = _clip(s, n)
    # Backslash escapes (CommonMark): "\<script>" is literal text, never raw HTML; "\|" keeps tables whole.
    return _MD_SPECIAL.sub(r"\\\1", s)


def md_code(text: Any, table: bool = False) -> str:
    s = " ".join(_clean(text).split())
    if table:
        s = s.replace("|", "\\|")
    longest = max((len(m) for m in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or longest else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def _md_ident(text: Any) -> str:
    """Identifiers from matrix.yaml (features, engines) as they are, anything else escaped."""
    s = _clean(text)
    return s if re.fullmatch(r"[A-Za-z0-9_.-]+", s) else md_text(s)


# Kept for callers of the first version.
_md_escape = md_text


def render_markdown(doc: dict, signoff: dict | None = None) -> str:
    features, groups, rows = _layout(doc)
    run = doc.get("run", {}) or {}
    counts = status_counts(doc)
    matrix = run.get("matrix") or {}
    out = ["# GLM-5.2 verification matrix", ""]
    line = f"Run {md_code(run.get('id'))}, started {md_text(run.get('started'))}, finished {md_text(run.get('finished'))}"
    if matrix.get("sha256"):
        line += f"; {md_text(matrix.get('path') or 'matrix.yaml')} sha256 {md_code(str(matrix['sha256'])[:16])}"
    out.append(line + ".")
    if run.get("launches"):
        out.append("Engine launches: " + ", ".join(f"{md_code(k)} ×{md_text(v)}" for k, v in run["launches"].items()) + ".")
    if run.get("interrupted"):
        out.append("**The run was interrupted**: cells not reached keep their declared status.")
    if run.get("sources"):
        out += ["", f"Merged from {len(run['sources'])} result file(s):", ""]
        for s in run["sources"]:
            out.append(f"- {md_code(s.get('file'))}: run {md_code(s.get('id'))}, finished {md_text(s.get('finished'))}, "
                       f"sha256 {md_code(str(s.get('sha256') or '')[:16])}")
    out += ["", "**Cells:** " + " · ".join(f"{SYMBOL[s]} {counts[s]}" for s in STATUS_ORDER) + "",
            "", "**Inferred claims by kind:** " + " · ".join(f"{k} {n}" for k, n in kind_counts(doc).items()), ""]
    for w in doc.get("warnings") or []:
        out.append(f"> ⚠ {md_text(w, 500)}")
    if doc.get("warnings"):
        out.append("")
    out += ["| row | engine | hardware | " + " | ".join(_md_ident(f) for f in features) + " |",
            "|---|---|---|" + "---|" * len(features)]
    for (engine, hw), rids in groups.items():
        for rid in rids:
            r = rows[rid]
            tds = []
            for f in features:
                c = r.get(f)
                if c is None:
                    tds.append("")
                    continue
                head = SYMBOL.get(c["status"], md_text(c["status"])) + (f" ({c['kind']})" if c["status"] == "inferred" and c.get("kind") else "")
                tds.append(" · ".join([head] + [md_text(x) for x in key_figures(c)]))
            out.append(f"| {md_code(rid, table=True)} | {_md_ident(engine)} | {_md_ident(hw)} | " + " | ".join(tds) + " |")
    failed = [c for c in doc.get("cells", []) if c.get("status") == "failed"]
    if failed:
        out += ["", "## Failures", ""]
        for c in failed:
            out.append(f"- {md_code(c['row'])} / {md_code(c['feature'])}: {md_text(c.get('basis'), 300)}")
            for chk in c.get("checks", []):
                if chk.get("outcome") in ("failed", "error"):
                    out.append(f"  - {md_text(chk['outcome'])}: {md_code(chk['id'])}: {md_text(chk.get('detail'), 300)}")
    if doc.get("errata"):
        out += ["", "## Errata: seed errors kept as the guides wrote them", ""]
        for rid, items in doc["errata"].items():
            for e in items:
                out.append(f"- {md_code(rid)}: the guide writes {md_text(e.get('seed'), 400)}; **correction:** {md_text(e.get('correction'), 500)}")
    out += ["", "## Basis of each cell", ""]
    for c in doc.get("cells", []):
        out.append(f"- {md_code(c['row'])} / {md_code(c['feature'])}: **{md_text(cell_label(c))}**: {md_text(c.get('basis'), 500)}")
        for chk in c.get("checks", []):
            if chk.get("outcome") not in ("passed", "failed", "error"):
                out.append(f"  - {md_text(chk.get('outcome'))}: {md_code(chk['id'])}: {md_text(chk.get('detail'), 300)}")
        if c.get("history"):
            older = ", ".join(f"{md_text(x.get('status'))} in run {md_code(x.get('run'))} ({md_text(x.get('time'))})"
                              for x in c["history"])
            out.append(f"  - older results: {older}")
    if doc.get("unknown"):
        out += ["", "## Not in matrix.yaml", ""]
        for u in doc["unknown"]:
            out.append(f"- {md_code(u.get('row'))} / {md_code(u.get('feature'))} ({md_text(u.get('status'))}): {md_text(u.get('reason'))}")
    out += ["", "## Sign-off", ""]
    if signoff and signoff.get("record"):
        rec = signoff["record"]
        state = "matches this matrix.json" if signoff.get("ok") else "**DOES NOT MATCH** the current matrix.json"
        out.append(f"Signed off by **{md_text(rec.get('signed_by'))}** at {md_text(rec.get('signed_at'))} "
                   f"for matrix.json sha256 {md_code((rec.get('matrix_json') or {}).get('sha256'))}; {state}.")
        if rec.get("note"):
            out.append(f"Note: {md_text(rec['note'], 500)}")
    else:
        out.append("Not signed off. Review, then: `glmverify signoff --by NAME DIR` "
                   "(binds the name, UTC time and sha256 of matrix.json; `glmverify signoff --verify DIR` checks it).")
    return "\n".join(out) + "\n"


# ---- JUnit ----------------------------------------------------------------------------------------
def render_junit(doc: dict) -> str:
    """JUnit XML: one <testsuite> per cell, one <testcase> per check. A cell without checks gets
    one skipped testcase ``declared: STATUS`` so declared cells show up on dashboards too."""
    root = ET.Element("testsuites", name="glmverify")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    run = doc.get("run", {}) or {}
    for c in doc.get("cells", []):
        row, feature = _clean(c.get("row")), _clean(c.get("feature"))
        ts = ET.SubElement(root, "testsuite", name=f"{row}/{feature}")
        if c.get("time") or run.get("finished"):
            ts.set("timestamp", _clean(c.get("time") or run.get("finished")))
        props = ET.SubElement(ts, "properties")
        for k in ("status", "declared", "basis", "engine", "hardware", "image", "run"):
            if c.get(k) is not None:
                ET.SubElement(props, "property", name=k, value=_clean(_clip(str(c[k]), 2000)))
        n = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        suite_time = 0.0
        checks = c.get("checks") or []
        for chk in checks:
            tc = ET.SubElement(ts, "testcase", classname=f"{row}.{feature}", name=_clean(chk.get("id")))
            d = _num(chk.get("duration"))
            tc.set("time", f"{d or 0.0:.3f}")
            suite_time += d or 0.0
            n["tests"] += 1
            outcome, detail = chk.get("outcome"), _clean(chk.get("detail") or "")
            first = _clip(detail.splitlines()[0] if detail.strip() else str(outcome), 500)
            if outcome == "failed":
                el = ET.SubElement(tc, "failure", message=first, type="check failed")
                el.text = detail
                n["failures"] += 1
            elif outcome == "error":
                el = ET.SubElement(tc, "error", message=first, type="check error")
                el.text = detail
                n["errors"] += 1
            elif outcome != "passed":
                ET.SubElement(tc, "skipped", message=first)
                n["skipped"] += 1
        if not checks:
            tc = ET.SubElement(ts, "testcase", classname=f"{row}.{feature}", name=f"declared: {_clean(c.get('status'))}")
            tc.set("time", "0.000")
            ET.SubElement(tc, "skipped", message=_clip(f"{_clean(c.get('status'))}: {_clean(c.get('basis'))}", 500))
            n["tests"] += 1
            n["skipped"] += 1
        for k, v in n.items():
            ts.set(k, str(v))
            totals[k] += v
        ts.set("time", f"{suite_time:.3f}")
        total_time += suite_time
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("time", f"{total_time:.3f}")
    ET.indent(root, space=" ")
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


# ---- figures --------------------------------------------------------------------------------------
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
        r = effort_ratio(c)
        ax.set_title(f"{c['row']}" + (f" — High/Max {r:.2f}" if r is not None else ""), fontsize=10)
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
        reached = _num(find(c, "context_reached"))
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
     "Reasoning tokens of the same prompts at each reasoning_effort; High must reason less than Max."),
    ("fig-needles", "Needle depth by context length", "context_1m", plot_needles,
     "Each marker is one needle: where it was placed (depth) in a prompt of that length, and whether it was found."),
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


# ---- HTML -----------------------------------------------------------------------------------------
CSS = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --bg:#f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: var(--fg);
       margin: 0; padding: 20px 28px 40px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 10px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
code, pre, .mono { font-family: "DejaVu Sans Mono", ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
.meta { color: var(--muted); margin: 0 0 12px; }
.meta code { color: var(--fg); }
.chips { display: flex; flex-wrap: wrap; gap: 8px; margin: 10px 0 4px; }
.chip { border: 1px solid; border-radius: 14px; padding: 2px 12px; font-weight: 600; }
.legend { color: var(--muted); font-size: 12px; margin: 4px 0 14px; }
.legend span { margin-right: 14px; }
.banner { border-radius: 6px; padding: 8px 12px; margin: 10px 0; border: 1px solid; }
.banner.ok { background: #dafbe1; border-color: #1a7f37; }
.banner.bad { background: #ffebe9; border-color: #cf222e; }
.banner.none { background: var(--bg); border-color: var(--line); color: var(--muted); }
.warnings { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 8px 12px 8px 28px; margin: 10px 0; }
.attention { border: 1px solid #cf222e; border-radius: 6px; padding: 6px 12px; margin: 10px 0; }
.attention ul { margin: 4px 0; padding-left: 20px; }
.attention li { margin: 3px 0; }
table.matrix { border-collapse: separate; border-spacing: 3px; margin-top: 8px; }
table.matrix thead th { position: sticky; top: 0; background: #fff; font-size: 12px; font-weight: 600;
       text-align: center; padding: 4px 6px; border-bottom: 2px solid var(--line); z-index: 1; }
tr.group th { text-align: left; background: var(--bg); border-left: 4px solid #57606a; padding: 6px 10px; font-size: 13px; }
tr.group th .sub { font-weight: normal; color: var(--muted); margin-left: 8px; }
th.rowhead { text-align: left; vertical-align: top; padding: 6px 10px 6px 4px; min-width: 180px; max-width: 260px; font-weight: normal; }
th.rowhead .rid { font-weight: 600; font-family: "DejaVu Sans Mono", monospace; font-size: 12.5px; word-break: break-all; }
th.rowhead .sub { color: var(--muted); font-size: 11.5px; word-break: break-word; }
td.cell { vertical-align: top; border: 1px solid; border-radius: 6px; padding: 6px 8px; min-width: 118px; max-width: 420px; }
td.cell .st { font-weight: 700; font-size: 13px; white-space: nowrap; }
td.cell .fig { font-size: 12px; font-variant-numeric: tabular-nums; }
td.cell details { margin-top: 4px; font-size: 12px; }
td.cell summary { cursor: pointer; color: var(--muted); }
td.cell > details[open] { width: 400px; }
.drill { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 6px 8px; margin-top: 4px; color: var(--fg); }
.drill p { margin: 3px 0; }
.drill table { border-collapse: collapse; width: 100%; margin: 4px 0; }
.drill td { border-top: 1px solid var(--line); padding: 3px 4px; vertical-align: top; }
.drill pre, .detail { white-space: pre-wrap; word-break: break-word; max-height: 320px; overflow: auto;
       background: var(--bg); border-radius: 4px; padding: 4px 6px; margin: 2px 0; }
.drill dl { display: grid; grid-template-columns: max-content 1fr; gap: 1px 8px; margin: 4px 0; }
.drill dt { color: var(--muted); }
.drill dd { margin: 0; word-break: break-word; }
.oc { font-weight: 700; font-size: 11px; text-transform: uppercase; }
.oc-passed { color: #1a7f37; } .oc-failed, .oc-error { color: #cf222e; } .oc-skipped { color: #9a6700; }
.st-verified { background: #dafbe1; border-color: #1a7f37; color: #0f5323; }
.st-failed { background: #ffebe9; border-color: #cf222e; color: #82071e; }
.st-inconclusive { background: #fbefff; border-color: #8250df; color: #512a97; }
.st-inferred { background: #fff8c5; border-color: #bf8700; color: #6b4700; }
.kind { display: inline-block; border: 1px solid; border-radius: 10px; padding: 0 7px; font-size: 11px; font-weight: 600; margin: 2px 0; }
.kind-vendor-verified { background: #ddf4ff; border-color: #0969da; color: #0a3069; }
.kind-proposed { background: #fbefff; border-color: #8250df; color: #512a97; }
.kind-derived { background: #f6f8fa; border-color: #8c959f; color: #424a53; }
td.kd-vendor-verified { box-shadow: inset 4px 0 0 #0969da; }
td.kd-proposed { box-shadow: inset 4px 0 0 #8250df; }
td.kd-derived { box-shadow: inset 4px 0 0 #8c959f; }
.chips.kinds .sub { align-self: center; color: var(--muted); font-size: 12px; }
.observed div { margin: 4px 0; } .observed ul { margin: 2px 0 2px 18px; padding: 0; }
.od-diff b { color: #cf222e; } .od-ok b { color: #1a7f37; } .od-only b { color: #6b4700; }
table.errata { border-collapse: collapse; margin: 8px 0 16px; }
table.errata td, table.errata th { border: 1px solid var(--line); padding: 4px 8px; vertical-align: top; text-align: left; }
.st-unsupported { background: #eaeef2; border-color: #8c959f; color: #424a53; }
.st-not_run { background: #ffffff; border-color: #afb8c1; border-style: dashed; color: #59636e; }
td.empty { border: 1px dotted var(--line); }
figure { margin: 12px 0 22px; }
figure img { max-width: 100%; border: 1px solid var(--line); border-radius: 6px; }
figcaption { color: var(--muted); font-size: 12px; }
table.sources { border-collapse: collapse; font-size: 12px; }
table.sources td, table.sources th { border: 1px solid var(--line); padding: 3px 8px; text-align: left; }
footer { margin-top: 30px; color: var(--muted); font-size: 12px; }
"""


def _csp(css: str) -> str:
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    return ("default-src 'none'; script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; "
            f"img-src data:; style-src 'sha256-{digest}'")


def _json_pre(obj: Any, limit: int = 20000) -> str:
    text = json.dumps(obj, indent=1, ensure_ascii=False, sort_keys=False, default=str)
    return f"<pre>{h(_clip(text, limit))}</pre>"


ENGINE_KEYS = ("engine_version", "image", "served_model", "max_model_len", "server_args", "declared_args",
               "started_at", "ready_at")
OBSERVED_KEYS = ("observed", "declared", "observed_vs_declared", "hardware")


def _observed_html(eng: dict) -> str:
    """What the server reported against what the row declares; declared-only items marked as such."""
    ovd = eng.get("observed_vs_declared")
    if not isinstance(ovd, dict):
        return ""
    parts = []
    for key, label, cls in (("differences", "observed ≠ declared", "od-diff"), ("confirmed", "observed = declared", "od-ok"),
                            ("declared_only", "declared-only (the server does not report it)", "od-only")):
        items = ovd.get(key) or []
        if items:
            parts.append(f"<div class=\"{cls}\"><b>{h(label)}</b><ul>" + "".join(f"<li class=\"mono\">{h(_clip(str(x), 400))}</li>" for x in items) + "</ul></div>")
    hw = eng.get("hardware")
    if isinstance(hw, dict):
        parts.append(f"<div class=\"od-hw\"><b>hardware</b> " + (h("declared-only: " + str(hw.get("why"))) if hw.get("declared_only")
                     else h(f"seen by {hw.get('tool')} ({hw.get('where')}): {hw.get('seen')}")) + "</div>")
    return "<div class=\"observed\">" + "".join(parts) + "</div>"


def _engine_html(eng: dict) -> str:
    if not isinstance(eng, dict) or not eng:
        return ""
    items = []
    for k in ENGINE_KEYS:
        if eng.get(k) is not None:
            v = eng[k]
            v = " ".join(map(str, v)) if isinstance(v, list) else v
            items.append(f"<dt>{h(k)}</dt><dd class=\"mono\">{h(_clip(str(v), 2000))}</dd>")
    rest = {k: v for k, v in eng.items() if k not in ENGINE_KEYS}
    body = _observed_html(eng) + (f"<dl>{''.join(items)}</dl>" if items else "")
    if rest:
        body += _json_pre(rest, 8000)
    return f"<details><summary>engine</summary>{body}</details>"


def _checks_html(checks: list[dict]) -> str:
    if not checks:
        return ""
    rows = []
    for chk in checks:
        oc = str(chk.get("outcome"))
        detail = chk.get("detail") or ""
        rows.append(f"<tr><td><span class=\"oc oc-{h(oc)}\">{h(oc)}</span></td><td><code>{h(chk.get('id'))}</code>"
                    + (f"<div class=\"detail\">{h(_clip(str(detail), 4000))}</div>" if detail else "") + "</td></tr>")
    return f"<table>{''.join(rows)}</table>"


_KNOWN_CELL_KEYS = {"row", "engine", "image", "hardware", "feature", "status", "declared", "declared_basis", "kind", "window",
                    "basis", "checks", "evidence", "history", "run", "time", "source", "sources"}


def _drill_html(c: dict) -> str:
    parts = [f"<p><b>Basis:</b> {h(c.get('basis'))}</p>"]
    declared = c.get("declared")
    if declared in ("inferred", "unsupported") and (declared != c.get("status") or c.get("declared_basis")):
        parts.append(f"<p><b>Declared:</b> {h(declared)}"
                     + (f" — {h(c.get('declared_basis'))}" if c.get("declared_basis") else "") + "</p>")
    if c.get("run") or c.get("time"):
        parts.append(f"<p><b>Result of run</b> <code>{h(c.get('run'))}</code> {h(c.get('time') or '')}"
                     + (f" from <code>{h(c.get('source'))}</code>" if c.get("source") else "") + "</p>")
    parts.append(_checks_html(c.get("checks") or []))
    ev = c.get("evidence") or {}
    for cid, cev in ((ev.get("checks") or {}) if isinstance(ev.get("checks"), dict) else {}).items():
        parts.append(f"<details><summary>evidence: <code>{h(cid)}</code></summary>{_json_pre(cev)}</details>")
    parts.append(_engine_html(ev.get("engine") or {}))
    other_ev = {k: v for k, v in ev.items() if k not in ("checks", "engine")}
    if other_ev:
        parts.append(f"<details><summary>other evidence</summary>{_json_pre(other_ev)}</details>")
    extra = {k: v for k, v in c.items() if k not in _KNOWN_CELL_KEYS}
    if extra:  # e.g. a parser-conformance basis
        parts.append(f"<details><summary>more: {h(', '.join(extra))}</summary>{_json_pre(extra)}</details>")
    hist = c.get("history") or []
    if hist:
        items = []
        for x in hist:
            items.append(f"<li><span class=\"oc oc-{'passed' if x.get('status') == 'verified' else 'failed'}\">"
                         f"{h(x.get('status'))}</span> run <code>{h(x.get('run'))}</code> {h(x.get('time') or '')}: "
                         f"{h(x.get('basis'))}{_checks_html(x.get('checks') or [])}</li>")
        parts.append(f"<details><summary>{len(hist)} older result(s)</summary><ul>{''.join(items)}</ul></details>")
    return "<div class=\"drill\">" + "".join(p for p in parts if p) + "</div>"


def _cell_html(c: dict, anchor: str) -> str:
    st = c.get("status")
    st_cls = st if st in STATUS_ORDER else "not_run"
    figs = "".join(f"<div class=\"fig\">{h(x)}</div>" for x in key_figures(c))
    checks = c.get("checks") or []
    n_bad = sum(k.get("outcome") in ("failed", "error") for k in checks)
    n_skip = sum(k.get("outcome") not in ("failed", "error", "passed") for k in checks)
    summary = (f"{len(checks)} check(s)" + (f", {n_bad} failed" if n_bad else "")
               + (f", {n_skip} skipped" if n_skip else "")) if checks else "basis"
    kind = c.get("kind") if st == "inferred" and c.get("kind") in KIND_ORDER else None
    badge = f"<div class=\"kind kind-{kind}\">{h(kind)}</div>" if kind else ""
    return (f"<td class=\"cell st-{st_cls}{' kd-' + kind if kind else ''}\" id=\"{anchor}\" title=\"{h(_clip(str(c.get('basis') or ''), 300))}\">"
            f"<div class=\"st\">{GLYPH.get(st, '?')} {h(st)}</div>{badge}{figs}"
            f"<details><summary>{h(summary)}</summary>{_drill_html(c)}</details></td>")


def render_html(doc: dict, signoff: dict | None = None, figures: list[dict] | None = None) -> str:
    features, groups, rows = _layout(doc)
    run = doc.get("run", {}) or {}
    counts = status_counts(doc)
    figures = render_figures(doc) if figures is None else figures
    anchors: dict[int, str] = {id(c): f"c{i}" for i, c in enumerate(doc.get("cells", []))}
    fig_for = {f.get("feature"): f["id"] for f in figures if f.get("src")}

    out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<meta http-equiv=\"Content-Security-Policy\" content=\"{h(_csp(CSS))}\">",
           "<meta name=\"referrer\" content=\"no-referrer\">",
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
           f"<title>GLM-5.2 verification matrix — {h(run.get('id'))}</title>",
           f"<style>{CSS}</style></head><body>"]
    out.append("<header><h1>GLM-5.2 verification matrix</h1>")
    meta = [f"run <code>{h(run.get('id'))}</code>", f"started {h(run.get('started'))}", f"finished {h(run.get('finished'))}"]
    m = run.get("matrix") or {}
    if m.get("sha256"):
        meta.append(f"{h(m.get('path') or 'matrix.yaml')} <code>{h(str(m['sha256'])[:16])}</code>")
    if run.get("launches"):
        meta.append("launches " + ", ".join(f"<code>{h(k)}</code>×{h(v)}" for k, v in run["launches"].items()))
    if run.get("sources"):
        meta.append(f"merged from {len(run['sources'])} result file(s)")
    out.append(f"<p class=\"meta\">{' · '.join(meta)}</p>")
    if run.get("interrupted"):
        out.append("<div class=\"banner bad\"><b>This run was interrupted</b>: cells not reached keep their declared status.</div>")
    out.append("<div class=\"chips\">" + "".join(
        f"<span class=\"chip st-{s}\">{GLYPH[s]} {s} {counts[s]}</span>" for s in STATUS_ORDER) + "</div>")
    out.append("<div class=\"legend\">" + "".join(f"<span><b>{s}</b>: {h(MEANING[s])}</span>" for s in STATUS_ORDER) + "</div>")
    kc = kind_counts(doc)
    out.append("<div class=\"chips kinds\"><span class=\"sub\">inferred claims by kind:</span>" + "".join(
        f"<span class=\"chip kind kind-{k}\" title=\"{h(KIND_MEANING[k])}\">{h(k)} {kc[k]}</span>" for k in KIND_ORDER) + "</div>")
    out.append("<div class=\"legend\">" + "".join(f"<span><b>{k}</b>: {h(KIND_MEANING[k])}</span>" for k in KIND_ORDER) + "</div>")
    if signoff and signoff.get("record"):
        rec = signoff["record"]
        sha = (rec.get("matrix_json") or {}).get("sha256") or ""
        if signoff.get("ok"):
            out.append(f"<div class=\"banner ok\"><b>Signed off</b> by {h(rec.get('signed_by'))} at {h(rec.get('signed_at'))} "
                       f"(matrix.json sha256 <code>{h(sha[:16])}</code>, verified)"
                       + (f"<br>{h(rec.get('note'))}" if rec.get("note") else "") + "</div>")
        else:
            out.append(f"<div class=\"banner bad\"><b>Sign-off does not match this matrix.json</b>: {h(signoff.get('message'))}</div>")
    elif signoff and not signoff.get("ok"):
        out.append(f"<div class=\"banner bad\">{h(signoff.get('message'))}</div>")
    else:
        out.append("<div class=\"banner none\">Not signed off yet: <code>glmverify signoff --by NAME DIR</code></div>")
    if doc.get("warnings"):
        out.append("<ul class=\"warnings\">" + "".join(f"<li>{h(w)}</li>" for w in doc["warnings"]) + "</ul>")
    failed = [c for c in doc.get("cells", []) if c.get("status") == "failed"]
    if failed:
        items = []
        for c in failed:
            bad = [k for k in c.get("checks", []) if k.get("outcome") in ("failed", "error")]
            first = bad[0] if bad else {}
            items.append(f"<li><a href=\"#{anchors[id(c)]}\"><code>{h(c['row'])}</code> / <code>{h(c['feature'])}</code></a>: "
                         + (f"<code>{h(first.get('id'))}</code> {h(_clip(' '.join(str(first.get('detail') or '').split()), 200))}"
                            if first else h(c.get("basis")))
                         + (f" (+{len(bad) - 1} more)" if len(bad) > 1 else "") + "</li>")
        out.append(f"<div class=\"attention\"><b>{len(failed)} failed cell(s)</b><ul>{''.join(items)}</ul></div>")
    out.append("</header><main>")

    out.append("<table class=\"matrix\"><thead><tr><th>row</th>"
               + "".join(f"<th>{h(f)}" + (f" <a href=\"#{fig_for[f]}\" title=\"figure below\">fig&#8595;</a>" if f in fig_for else "")
                         + "</th>" for f in features)
               + "</tr></thead><tbody>")
    for (engine, hw), rids in groups.items():
        out.append(f"<tr class=\"group\"><th colspan=\"{len(features) + 1}\">{h(engine)} · {h(hw)}"
                   f"<span class=\"sub\">{len(rids)} row(s)</span></th></tr>")
        for rid in rids:
            r = rows[rid]
            info = r["_info"]
            sub = [h(info.get("image") or "")]
            if info.get("engine_version"):
                sub.append(f"{h(info.get('engine'))} {h(info['engine_version'])}")
            if (run.get("launches") or {}).get(rid):
                sub.append(f"launched ×{h(run['launches'][rid])}")
            out.append(f"<tr><th class=\"rowhead\"><div class=\"rid\">{h(rid)}</div>"
                       f"<div class=\"sub\">{' · '.join(s for s in sub if s)}</div></th>")
            for f in features:
                c = r.get(f)
                out.append(_cell_html(c, anchors[id(c)]) if c else "<td class=\"empty\"></td>")
            out.append("</tr>")
    out.append("</tbody></table>")

    if doc.get("errata"):
        out.append("<h2 id=\"errata\">Errata</h2><p class=\"meta\">Seed errors the rows keep as the guides wrote them, "
                   "with the correction.</p><table class=\"errata\"><tr><th>row</th><th>the guide writes</th><th>correction</th></tr>")
        for rid, items in doc["errata"].items():
            for e in items:
                out.append(f"<tr><td><code>{h(rid)}</code></td><td class=\"mono\">{h(e.get('seed'))}</td><td>{h(e.get('correction'))}</td></tr>")
        out.append("</table>")
    if figures:
        out.append("<h2>Figures</h2>")
        for f in figures:
            if f.get("src"):
                out.append(f"<figure id=\"{h(f['id'])}\"><img alt=\"{h(f['title'])}\" src=\"{f['src']}\">"
                           f"<figcaption><b>{h(f['title'])}.</b> {h(f['caption'])}</figcaption></figure>")
            else:
                out.append(f"<p class=\"meta\">{h(f['title'])}: not drawn ({h(f.get('error'))})</p>")
    if doc.get("unknown"):
        out.append("<h2>Not in matrix.yaml</h2><ul>" + "".join(
            f"<li><code>{h(u.get('row'))}</code> / <code>{h(u.get('feature'))}</code> ({h(u.get('status'))}): {h(u.get('reason'))}</li>"
            for u in doc["unknown"]) + "</ul>")
    if run.get("sources"):
        out.append("<h2>Source runs</h2><table class=\"sources\"><tr><th>file</th><th>run</th><th>started</th>"
                   "<th>finished</th><th>sha256</th></tr>")
        for s in run["sources"]:
            out.append(f"<tr><td><code>{h(s.get('file'))}</code></td><td><code>{h(s.get('id'))}</code></td>"
                       f"<td>{h(s.get('started'))}</td><td>{h(s.get('finished'))}</td>"
                       f"<td><code>{h(str(s.get('sha256') or '')[:16])}</code></td></tr>")
        out.append("</table>")
    details = {k: v for k, v in run.items() if k not in ("sources",)}
    out.append(f"<h2>Run</h2><details><summary>run record</summary>{_json_pre(details)}</details>")
    out.append(f"<footer>glmverify {h(__version__)} · self-contained page: no scripts, no external resources</footer>")
    out.append("</main></body></html>")
    return "\n".join(out) + "\n"


# ---- writing --------------------------------------------------------------------------------------
def write_reports(results_dir: Path, doc: dict) -> list[Path]:
    """Write DIR/matrix.md, DIR/matrix.html and DIR/junit.xml for ``doc``; returns the paths."""
    d = Path(results_dir)
    state = signoff_state(d) if (d / "signoff.json").exists() else None
    written = []
    for name, text in (("matrix.md", render_markdown(doc, state)),
                       ("junit.xml", render_junit(doc)),
                       ("matrix.html", render_html(doc, state))):
        atomic_write(d / name, text)
        written.append(d / name)
    return written
