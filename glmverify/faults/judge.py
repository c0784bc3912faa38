"""What one pytest run showed: ``observe`` reads its matrix.json, ``judge`` turns it into an ``Outcome``.

The rule: a fault is detected when every feature it expects failed ``failed`` (and every check it
names is among the failing ones); a control or a conforming run passes when no feature failed
and every feature it ran has a live status (``verified``, or ``unsupported``/skipped by the row).
Check ids are reduced to ``feature::function`` (parameters dropped), the unit of the coverage.
"""
from __future__ import annotations

import json
from pathlib import Path

from .model import Outcome


def observe(results_dir: Path, row: str) -> dict[str, dict]:
    """Per feature of ``row`` in DIR/matrix.json: status and the first failing check's detail."""
    try:
        doc = json.loads((results_dir / "matrix.json").read_text())
    except (OSError, ValueError) as exc:
        return {"_error": {"status": "no matrix.json", "detail": str(exc)}}
    out = {}
    for c in doc.get("cells", []):
        if c.get("row") != row:
            continue
        bad = [k for k in c.get("checks", []) if k.get("outcome") in ("failed", "error")]
        detail = ""
        if bad:
            detail = f"{bad[0]['id']}: {bad[0].get('detail', '')}"
        out[c["feature"]] = {"status": c["status"], "detail": " ".join(detail.split())[:400],
                             "checks": len(c.get("checks", [])),
                             "failed": sorted({f"{c['feature']}::{k['id'].split('[')[0]}" for k in bad}),
                             "passed": sorted({f"{c['feature']}::{k['id'].split('[')[0]}" for k in c.get("checks", [])
                                               if k.get("outcome") == "passed"})}
    return out


def judge(case_id: str, kind: str, row: str, expect_failed: list[str], features: list[str], seen: dict[str, dict],
          rc: int, seconds: float, results: Path, checks: list[str] = ()) -> Outcome:
    """Detected: every expected feature ``failed`` (and every named check among the failing ones). A
    control or conforming run: no feature failed and every feature run has a live status (verified,
    or unsupported/skipped by the row)."""
    observed = {f: seen.get(f, {}).get("status", "absent") for f in features}
    failed = sorted({k for f in features for k in seen.get(f, {}).get("failed", [])})
    passed = sorted({k for f in features for k in seen.get(f, {}).get("passed", [])})
    if expect_failed:
        missing = [c for c in checks if not any(k.endswith("::" + c) for k in failed)]
        detected = all(observed.get(f) == "failed" for f in expect_failed) and not missing
        detail = next((seen[f]["detail"] for f in expect_failed if seen.get(f, {}).get("detail")), "")
        if missing:
            detail = f"named checks did not fail: {missing}; " + detail
    else:
        detected = bool(observed) and all(s in ("verified", "unsupported") for s in observed.values())
        detail = next((f"{f}: {seen[f]['detail']}" for f in features if seen.get(f, {}).get("detail")), "")
    if "_error" in seen:
        detail = f"{seen['_error']['status']}: {seen['_error']['detail']}"
    return Outcome(case_id, kind, row, list(expect_failed), observed, detected, round(seconds, 1), detail, rc,
                   results=str(results), failed_checks=failed, passed_checks=passed)
