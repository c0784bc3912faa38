"""matrix.md: the matrix as a Markdown table, its failures, errata, every cell's basis, the sign-off.

Text from a document (model output above all) is made inert: backslash escapes keep it from
becoming HTML, links or table breaks (``md_text``), code spans get a fence longer than any run
of backticks inside (``md_code``).
"""
from __future__ import annotations

import re
from typing import Any

from ..document import counts as counts_of, likely as likely_causes
from .common import SYMBOL, STATUS_ORDER, cell_label, clean, clip, kind_counts, layout
from .figures import key_figures

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#!<>])")


def md_text(text: Any, n: int | None = None) -> str:
    """Model output as inert one-line Markdown text: no HTML, no links, no table breaks."""
    s = " ".join(clean(text).split())
    if n is not None:
        s = clip(s, n)
    # Backslash escapes (CommonMark): "\<script>" is literal text, never raw HTML; "\|" keeps tables whole.
    return _MD_SPECIAL.sub(r"\\\1", s)


def md_code(text: Any, table: bool = False) -> str:
    s = " ".join(clean(text).split())
    if table:
        s = s.replace("|", "\\|")
    longest = max((len(m) for m in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or longest else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def _md_ident(text: Any) -> str:
    """Identifiers from matrix.yaml (features, engines) as they are, anything else escaped."""
    s = clean(text)
    return s if re.fullmatch(r"[A-Za-z0-9_.-]+", s) else md_text(s)


def render_markdown(doc: dict, signoff: dict | None = None) -> str:
    features, groups, rows = layout(doc)
    run = doc.get("run", {}) or {}
    counts = counts_of(doc)
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
            diag = c.get("diagnosis") or []
            likely = likely_causes(diag)
            if diag and not likely:
                out.append("  - **no known cause matches**; similar known causes below")
            for g in diag:
                label = "**likely cause**" if g in likely else "similar"
                alike = f"; looks the same as: {md_text(', '.join(g['alike']), 300)}" if g.get("alike") else ""
                out.append(f"  - {label}: {md_text(g.get('cause'), 300)} ({md_code(g.get('id'))}, "
                           f"score {md_text(g.get('score'))}); source: {md_text(g.get('source') or '-', 300)}; "
                           f"fix: {md_text(g.get('fix') or '-', 400)}{alike}")
    flaky = [c for c in doc.get("cells", []) if c.get("status") == "flaky"]
    if flaky:
        out += ["", "## Flaky: failed, then verified on a re-run (not verified)", "",
                "Sign-off needs `glmverify signoff --accept-flaky ROW/FEATURE --reason TEXT` for each.", ""]
        for c in flaky:
            out.append(f"- {md_code(c['row'])} / {md_code(c['feature'])}: {md_text(c.get('basis'), 300)}")
            for x in c.get("history") or []:
                if x.get("status") == "failed":
                    bad = [k.get("id") for k in x.get("checks") or [] if k.get("outcome") in ("failed", "error")]
                    out.append(f"  - ⚠ failed in run {md_code(x.get('run'))} ({md_text(x.get('time'))}): "
                               + ", ".join(md_code(b) for b in bad))
    if doc.get("known_issues"):
        out += ["", "## Known issues per row", "",
                "Fault catalogue entries whose reported version range covers the row's engine version "
                "(observed from the server when the row ran live, else declared).", ""]
        for rid, items in doc["known_issues"].items():
            for k in items:
                out.append(f"- {md_code(rid)}: {md_code(k.get('id'))} {md_text(k.get('source'), 300)} "
                           f"(versions {md_text(k.get('versions') or 'all')}, {md_text(k.get('basis'))} "
                           f"{md_text(k.get('engine_version') or '')}); fix: {md_text(k.get('fix') or '-', 400)}")
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
            older = ", ".join(f"{'⚠ ' if x.get('status') == 'failed' else ''}{md_text(x.get('status'))} in run {md_code(x.get('run'))} ({md_text(x.get('time'))})"
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
        for a in rec.get("accepted_flaky") or []:
            out.append(f"- ⚠ flaky {md_code(a.get('cell'))} accepted by {md_text(a.get('by'))} at {md_text(a.get('at'))}: "
                       f"{md_text(a.get('reason'), 500)}")
    else:
        out.append("Not signed off. Review, then: `glmverify signoff --by NAME DIR` "
                   "(binds the name, UTC time and sha256 of matrix.json; `glmverify signoff --verify DIR` checks it).")
    return "\n".join(out) + "\n"

