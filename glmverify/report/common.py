"""What every renderer shares: status and claim-kind labels, text cleaning, the grid of rows.

``layout`` groups a document's cells into the matrix the pages show: features in order of
appearance, rows grouped by (engine, hardware), each row's cells by feature.
"""
from __future__ import annotations

import html
import re
from typing import Any

from ..document import STATUSES, declared_only

STATUS_ORDER = STATUSES  # the order of the summary chips and counts
SYMBOL = {"verified": "✅ verified", "failed": "❌ failed", "flaky": "⚠️ flaky", "inconclusive": "❓ inconclusive", "inferred": "◐ inferred",
          "unsupported": "— unsupported", "not_run": "· not_run"}
GLYPH = {"verified": "✓", "failed": "✗", "flaky": "!", "inconclusive": "?", "inferred": "◐", "unsupported": "—", "not_run": "·"}
MEANING = {
    "verified": "checks passed against a live engine, none failed",
    "failed": "at least one check failed live (or the engine did not start, or the engine's parsers mis-parse GLM-5.2 output)",
    "flaky": "verified in the newest run, but failed in an earlier one (see its history): not verified; "
             "sign-off needs an explicit, recorded --accept-flaky",
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


def clean(text: Any) -> str:
    return _INVALID_XML.sub("\ufffd", "" if text is None else str(text))


def h(text: Any) -> str:
    """HTML-escaped text (quotes too: safe in attributes)."""
    return html.escape(clean(text), quote=True)


def clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n] + f"… [{len(text) - n} more chars]"


def kind_counts(doc: dict) -> dict[str, int]:
    """Inferred cells by what their claim rests on."""
    out = {k: 0 for k in KIND_ORDER}
    for c in doc.get("cells", []):
        if c.get("status") == "inferred":
            k = c.get("kind") or "derived"
            out[k] = out.get(k, 0) + 1
    return out


def cell_label(c: dict) -> str:
    """Status, plus the claim kind of an inferred cell (vendor-verified / proposed / derived), or
    what a verified cell of an attached row only declared ("verified, attached: hardware and 3
    more declared")."""
    st = c.get("status")
    if st == "inferred" and c.get("kind"):
        return f"{st} ({c['kind']})"
    declared = declared_only(c)
    if declared:
        more = f" and {len(declared) - 1} more" if len(declared) > 1 else ""
        return f"{st}, attached: {declared[0]}{more} declared"
    return str(st)


def layout(doc: dict) -> tuple[list[str], dict[tuple[str, str], list[str]], dict[str, dict]]:
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

