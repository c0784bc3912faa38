"""matrix.html: one self-contained page, no script at all.

A Content-Security-Policy forbids any script (``script-src 'none'``) and allows only the page's
own stylesheet (``matrix.css``, package data, admitted by its sha256) and data: images, so
evidence that holds HTML or ``<script>`` can neither run nor load anything; every text from the
document is escaped besides. Rows are grouped by engine and hardware; each cell shows its
status, claim kind and key figures, and drills down to its checks, evidence and history. A
failed cell shows its diagnosis (the likely cause, or "no known cause matches", with source and fix, the others
listed below it); each row head lists the row's known issues (catalogue entries whose version
range covers the row's engine version, observed or declared).
"""
from __future__ import annotations

import base64
import hashlib
import json
from importlib.resources import files
from typing import Any

from .. import __version__
from ..document import counts as counts_of, declared_only, likely as likely_causes
from .common import GLYPH, KIND_MEANING, KIND_ORDER, MEANING, STATUS_ORDER, clip, h, cell_label, kind_counts, layout
from .accuracy_plot import accuracy_html
from .figures import key_figures
from .plots import render_figures

CSS = files(__package__).joinpath("matrix.css").read_text(encoding="utf-8")

def _csp(css: str) -> str:
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    return ("default-src 'none'; script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; "
            f"img-src data:; style-src 'sha256-{digest}'")


def _json_pre(obj: Any, limit: int = 20000) -> str:
    text = json.dumps(obj, indent=1, ensure_ascii=False, sort_keys=False, default=str)
    return f"<pre>{h(clip(text, limit))}</pre>"


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
            parts.append(f"<div class=\"{cls}\"><b>{h(label)}</b><ul>" + "".join(f"<li class=\"mono\">{h(clip(str(x), 400))}</li>" for x in items) + "</ul></div>")
    hw = eng.get("hardware")
    if isinstance(hw, dict):
        parts.append("<div class=\"od-hw\"><b>hardware</b> " + (h("declared-only: " + str(hw.get("why"))) if hw.get("declared_only")
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
            items.append(f"<dt>{h(k)}</dt><dd class=\"mono\">{h(clip(str(v), 2000))}</dd>")
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
                    + (f"<div class=\"detail\">{h(clip(str(detail), 4000))}</div>" if detail else "") + "</td></tr>")
    return f"<table>{''.join(rows)}</table>"


_KNOWN_CELL_KEYS = {"row", "engine", "image", "hardware", "feature", "status", "declared", "declared_basis", "kind", "window",
                    "basis", "checks", "evidence", "history", "run", "time", "source", "sources", "diagnosis", "flaky"}


def _cause_html(g: dict) -> str:
    return (f"<span class=\"cause\">{h(g.get('cause') or g.get('id'))}</span> <code>{h(g.get('id'))}</code>"
            + (f"<span class=\"src\"><b>source:</b> {h(g.get('source'))}</span>" if g.get("source") else "")
            + (f"<span class=\"fix\"><b>fix:</b> {h(g.get('fix'))}</span>" if g.get("fix") else ""))


def _diagnosis_html(diag: list[dict]) -> str:
    """The likely cause prominent (cause, source, fix; tied causes all named, look-alikes named),
    or "no known cause matches" when none reaches the floor; the other candidates as similar."""
    if not diag:
        return ""
    likely = likely_causes(diag)
    rest = [g for g in diag if g not in likely]
    more = ""
    if rest:
        more = ("<details><summary>similar known causes (not likely)</summary><ol>"
                + "".join(f"<li>{_cause_html(g)} <span class=\"sub\">score {h(g.get('score'))}</span></li>" for g in rest)
                + "</ol></details>")
    if not likely:
        return f"<div class=\"diag\"><b>no known cause matches</b>{more}</div>"
    label = "likely cause" if len(likely) == 1 else f"likely causes ({len(likely)} tied)"
    body = "".join(
        f"{_cause_html(g)}<span class=\"sub\">matched: {h('; '.join(map(str, g.get('matched') or [])))}</span>"
        + (f"<span class=\"sub\">looks the same as: {h(', '.join(g['alike']))}</span>" if g.get("alike") else "")
        for g in likely)
    return f"<div class=\"diag\"><b>{label}:</b> {body}{more}</div>"


def _likely_summary(diag: list[dict]) -> str:
    if not diag:
        return ""
    likely = likely_causes(diag)
    return f" — likely: {h(' / '.join(str(g.get('cause')) for g in likely))}" if likely else " — no known cause matches"


def _known_issues_html(items: list[dict]) -> str:
    if not items:
        return ""
    lis = "".join(f"<li><code>{h(k.get('id'))}</code> {h(k.get('source'))}"
                  + (f" — <b>fix:</b> {h(k.get('fix'))}" if k.get("fix") else "")
                  + f" <span class=\"sub\">(versions {h(k.get('versions') or 'all')}; {h(k.get('basis'))} "
                    f"{h(k.get('engine_version') or '')})</span></li>" for k in items)
    return f"<details class=\"known\"><summary>{len(items)} known issue(s)</summary><ul>{lis}</ul></details>"


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
            mark = "⚠ " if x.get("status") == "failed" and c.get("status") == "flaky" else ""
            items.append(f"<li><span class=\"oc oc-{'passed' if x.get('status') == 'verified' else 'failed'}\">"
                         f"{mark}{h(x.get('status'))}</span> run <code>{h(x.get('run'))}</code> {h(x.get('time') or '')}: "
                         f"{h(x.get('basis'))}{_checks_html(x.get('checks') or [])}</li>")
        flaky = " open" if c.get("status") == "flaky" else ""  # a flaky cell shows its failure unasked
        parts.append(f"<details{flaky}><summary>{len(hist)} older result(s)</summary><ul>{''.join(items)}</ul></details>")
    return "<div class=\"drill\">" + "".join(p for p in parts if p) + "</div>"


def _cell_html(c: dict, anchor: str) -> str:
    st = c.get("status")
    st_cls = st if st in STATUS_ORDER else "not_run"
    figs = "".join(f"<div class=\"fig\">{h(x)}</div>" for x in key_figures(c)) + accuracy_html(c)
    checks = c.get("checks") or []
    n_bad = sum(k.get("outcome") in ("failed", "error") for k in checks)
    n_skip = sum(k.get("outcome") not in ("failed", "error", "passed") for k in checks)
    summary = (f"{len(checks)} check(s)" + (f", {n_bad} failed" if n_bad else "")
               + (f", {n_skip} skipped" if n_skip else "")) if checks else "basis"
    kind = c.get("kind") if st == "inferred" and c.get("kind") in KIND_ORDER else None
    badge = f"<div class=\"kind kind-{kind}\">{h(kind)}</div>" if kind else ""
    declared = declared_only(c)
    if declared:  # verified on an attached row: say what was only declared, never seen
        badge += (f"<div class=\"attached\"><details><summary>attached: {h(cell_label(c).split(': ', 1)[1])}"
                  f"</summary><ul>{''.join(f'<li>{h(x)}</li>' for x in declared)}</ul></details></div>")
    return (f"<td class=\"cell st-{st_cls}{' kd-' + kind if kind else ''}\" id=\"{anchor}\" title=\"{h(clip(str(c.get('basis') or ''), 300))}\">"
            f"<div class=\"st\">{GLYPH.get(st, '?')} {h(st)}</div>{badge}{figs}"
            f"{_diagnosis_html(c.get('diagnosis') or []) if st == 'failed' else ''}"
            f"<details><summary>{h(summary)}</summary>{_drill_html(c)}</details></td>")


def render_html(doc: dict, signoff: dict | None = None, figures: list[dict] | None = None) -> str:
    features, groups, rows = layout(doc)
    run = doc.get("run", {}) or {}
    counts = counts_of(doc)
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
                       + (f"<br>{h(rec.get('note'))}" if rec.get("note") else "")
                       + "".join(f"<br>⚠ flaky <code>{h(a.get('cell'))}</code> accepted by {h(a.get('by'))} at "
                                 f"{h(a.get('at'))}: {h(a.get('reason'))}" for a in rec.get("accepted_flaky") or [])
                       + "</div>")
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
                         + (f"<code>{h(first.get('id'))}</code> {h(clip(' '.join(str(first.get('detail') or '').split()), 200))}"
                            if first else h(c.get("basis")))
                         + (f" (+{len(bad) - 1} more)" if len(bad) > 1 else "")
                         + _likely_summary(c.get("diagnosis") or [])
                         + "</li>")
        out.append(f"<div class=\"attention\"><b>{len(failed)} failed cell(s)</b><ul>{''.join(items)}</ul></div>")
    flaky = [c for c in doc.get("cells", []) if c.get("status") == "flaky"]
    if flaky:  # a failure a later green run followed: shown, never folded into verified
        items = [f"<li><a href=\"#{anchors[id(c)]}\"><code>{h(c['row'])}</code> / <code>{h(c['feature'])}</code></a>: "
                 f"{h(c.get('basis'))}</li>" for c in flaky]
        out.append(f"<div class=\"attention\"><b>{len(flaky)} flaky cell(s)</b>: failed in an earlier run, verified in a "
                   f"later one; not verified (sign-off needs <code>--accept-flaky ROW/FEATURE --reason ...</code>)"
                   f"<ul>{''.join(items)}</ul></div>")
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
                       f"<div class=\"sub\">{' · '.join(s for s in sub if s)}</div>"
                       f"{_known_issues_html((doc.get('known_issues') or {}).get(rid) or [])}</th>")
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

