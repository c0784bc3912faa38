"""junit.xml: one <testsuite> per cell, one <testcase> per check, for CI dashboards."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from .common import clean, clip
from .figures import num

def render_junit(doc: dict) -> str:
    """JUnit XML: one <testsuite> per cell, one <testcase> per check. A cell without checks gets
    one skipped testcase ``declared: STATUS`` so declared cells show up on dashboards too."""
    root = ET.Element("testsuites", name="glmverify")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    run = doc.get("run", {}) or {}
    for c in doc.get("cells", []):
        row, feature = clean(c.get("row")), clean(c.get("feature"))
        ts = ET.SubElement(root, "testsuite", name=f"{row}/{feature}")
        if c.get("time") or run.get("finished"):
            ts.set("timestamp", clean(c.get("time") or run.get("finished")))
        props = ET.SubElement(ts, "properties")
        for k in ("status", "declared", "basis", "engine", "hardware", "image", "run"):
            if c.get(k) is not None:
                ET.SubElement(props, "property", name=k, value=clean(clip(str(c[k]), 2000)))
        n = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        suite_time = 0.0
        checks = c.get("checks") or []
        for chk in checks:
            tc = ET.SubElement(ts, "testcase", classname=f"{row}.{feature}", name=clean(chk.get("id")))
            d = num(chk.get("duration"))
            tc.set("time", f"{d or 0.0:.3f}")
            suite_time += d or 0.0
            n["tests"] += 1
            outcome, detail = chk.get("outcome"), clean(chk.get("detail") or "")
            first = clip(detail.splitlines()[0] if detail.strip() else str(outcome), 500)
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
            tc = ET.SubElement(ts, "testcase", classname=f"{row}.{feature}", name=f"declared: {clean(c.get('status'))}")
            tc.set("time", "0.000")
            ET.SubElement(tc, "skipped", message=clip(f"{clean(c.get('status'))}: {clean(c.get('basis'))}", 500))
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

