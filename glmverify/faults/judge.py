"""What one pytest run showed: ``observe`` reads its matrix.json, ``judge`` turns it into an ``Outcome``.

Each fault's diagnosis is measured too: the (pessimistic) rank of its own entry in the diagnosis
the recorder wrote into its failed cells (``diagnosis.rank_in``; best over the cells), what the
report's top-1/top-3 columns count, and the groups that rank with or above it
(``diagnosis.outranked_by``), which the run's gate (``report.summary``, ``diagnosis.placed``)
holds against the documented look-alikes. ``replay_places`` measures the same offline, on a
recording (``fixtures/diagnosis_cases.json.gz``) replayed through the current catalogue:
``python -m glmverify.faults.judge --ranks [RECORDING [FAULTS_JSON]]`` prints each fault's rank
(beside the rank a run's faults.json recorded, given one) and the top-1/top-3 counts.

The rule: a fault is detected when every feature it expects failed ``failed`` (and every check it
names is among the failing ones); a control or a conforming run passes when no feature failed
and every feature it ran has a live status (``verified``, or ``unsupported``/skipped by the row).
Check ids are reduced to ``feature::function`` (parameters dropped), the unit of the coverage.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from ..diagnosis import Facts, diagnose, facts_of, outranked_by, placed, rank_in
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
            code = f" [{bad[0]['code']}]" if bad[0].get("code") else ""
            detail = f"{bad[0]['id']}{code}: {bad[0].get('detail', '')}"
        out[c["feature"]] = {"status": c["status"], "detail": " ".join(detail.split())[:400],
                             "checks": len(c.get("checks", [])),
                             "failed": sorted({f"{c['feature']}::{k['id'].split('[')[0]}" for k in bad}),
                             "passed": sorted({f"{c['feature']}::{k['id'].split('[')[0]}" for k in c.get("checks", [])
                                               if k.get("outcome") == "passed"}),
                             "diagnosis": c.get("diagnosis") or []}
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
    o = Outcome(case_id, kind, row, list(expect_failed), observed, detected, round(seconds, 1), detail, rc,
                results=str(results), failed_checks=failed, passed_checks=passed)
    if expect_failed:
        cells = [seen[f] for f in expect_failed if seen.get(f, {}).get("status") == "failed"]
        o.rank, o.outranked_by = own_place(case_id, [c.get("diagnosis") or [] for c in cells])
        o.diagnosed = [g["id"] for c in cells[:1] for g in c.get("diagnosis", [])[:3]]
    return o


# ---- the diagnosis of a fault run ------------------------------------------------------------------
_PATH = re.compile(r"(?<![\w.])/(?:[\w.+-]+/)+[\w.+-]*")


def diagnosis_case(results_dir: Path, row: str, matrix_row=None) -> list[dict]:
    """The failed cells of ``row`` in one fault run's DIR/matrix.json, reduced to what the
    diagnosis reads: feature, the row's facts (engine, version, speculative decoding) and every
    check's id and outcome, with the detail, code and fields of the failing ones (absolute paths in the detail replaced by
    ``<path>``, so a recording names no machine). ``fixtures/diagnosis_cases.json.gz`` is these,
    per fault id."""
    try:
        doc = json.loads((results_dir / "matrix.json").read_text())
    except (OSError, ValueError):
        return []
    out = []
    for c in doc.get("cells", []):
        if c.get("row") != row or c.get("status") != "failed":
            continue
        f = facts_of(c, matrix_row)
        checks = [{"id": k.get("id"), "outcome": k.get("outcome"),
                   **({"detail": _PATH.sub("<path>", str(k.get("detail") or ""))[:1500]}
                      if k.get("outcome") in ("failed", "error") else {}),
                   **({"code": k["code"], "fields": k.get("fields") or {}}
                      if k.get("code") and k.get("outcome") in ("failed", "error") else {})} for k in c.get("checks", [])]
        out.append({"feature": c["feature"], "engine": f.engine, "version": f.version, "spec_decoding": f.spec_decoding,
                    "checks": checks})
    return out


def case_cell(case: dict) -> tuple[dict, Facts]:
    """A recorded ``diagnosis_case`` item as a cell and its facts (what ``diagnosis`` takes); every
    recording comes from a fault run on the reference rows."""
    return ({"feature": case["feature"], "checks": case["checks"]},
            Facts(case.get("engine"), case.get("version"), bool(case.get("spec_decoding")), reference=True))


def own_rank(case_id: str, cells: list[dict]) -> int | None:
    """The best rank of ``case_id``'s entry over the failed cells' stored diagnoses (None: in none)."""
    return own_place(case_id, [c.get("diagnosis") or [] for c in cells])[0]


def own_place(case_id: str, diagnoses: list[list[dict]]) -> tuple[int | None, list[list[str]]]:
    """(rank, outranked by) of ``case_id``'s entry over its failed cells' diagnoses: the cell that
    places it best (``diagnosis.placed`` first, then the lower rank); (None, []) when in none."""
    places = [(r, outranked_by(d, case_id) or []) for d in diagnoses if (r := rank_in(d, case_id)) is not None]
    if not places:
        return None, []
    return min(places, key=lambda p: (not placed(case_id, *p), p[0]))


def replay_places(cases: dict[str, list[dict]], entries=None) -> dict[str, tuple[int | None, list[list[str]]]]:
    """Per recorded fault (``diagnosis_case`` items per id), ``own_place`` of its entry in the
    diagnoses the current catalogue gives its recorded cells: what a run would have ranked."""
    from ..knowledge import load_entries

    entries = load_entries() if entries is None else list(entries)
    return {case_id: own_place(case_id, [diagnose(cell, entries, facts) for cell, facts in map(case_cell, cells)])
            for case_id, cells in sorted(cases.items())}


def ranks_text(places: dict[str, tuple[int | None, list[list[str]]]], recorded: dict[str, int | None] | None = None) -> str:
    """``replay_places`` as a table (fault, rank, the run's recorded rank, placed, outranked by), then
    the top-1/top-3 counts and how many are placed (top 3 or outranked only by look-alikes)."""
    lines = []
    for cid, (rank, above) in places.items():
        rec = "" if recorded is None else f"  run {recorded.get(cid, '?')!s:>4}"
        ok = "ok" if placed(cid, rank, above) else "OUT"
        lines.append(f"{cid:60} rank {rank!s:>4}{rec}  {ok:3}  {', '.join(g[0] for g in above)}")
    n = len(places)
    top1 = sum(r == 1 for r, _ in places.values())
    top3 = sum(r is not None and r <= 3 for r, _ in places.values())
    ok = sum(placed(c, *p) for c, p in places.items())
    lines.append(f"{n} faults: own entry top-1 {top1}/{n}, top-3 {top3}/{n}, "
                 f"top-3 or outranked only by look-alikes {ok}/{n}")
    return "\n".join(lines)


def _export(results_root: Path) -> dict[str, list[dict]]:
    """``diagnosis_case`` of every fault run under a ``make faults`` results directory."""
    from ..knowledge import load_entries
    from ..matrix import load

    matrix = {r.id: r for r in load().rows}
    entry_rows = {e.id: e.rows for e in load_entries()}
    out = {}
    for d in sorted(p for p in results_root.iterdir() if (p / "matrix.json").is_file()):
        if d.name.startswith(("conforming-", "control-", "engine-")):
            continue
        case_id = d.name
        row = case_id.split("@", 1)[1] if "@" in case_id else None
        doc = json.loads((d / "matrix.json").read_text())
        rows = {c.get("row") for c in doc.get("cells", []) if c.get("status") == "failed"}
        # a launch entry's row is its derived one (ID.ROW); a proxy entry's the reference row
        row = next((r for r in (launch_row_id_of(case_id), row) if r in rows), None) or (sorted(rows)[0] if rows else "")
        base_row = case_id.split("@", 1)[1] if "@" in case_id else (entry_rows.get(case_id) or ("",))[0]
        cells = diagnosis_case(d, row, matrix.get(base_row))
        if cells:
            out[case_id] = cells
    return out


def launch_row_id_of(case_id: str) -> str:
    return case_id.replace("@", ".")


if __name__ == "__main__":  # python -m glmverify.faults.judge RESULTS_DIR OUT.json.gz | --ranks [REC [FAULTS_JSON]]
    import gzip
    import sys

    if sys.argv[1:2] == ["--ranks"]:
        from ..paths import FIXTURES_DIR

        rec = Path(sys.argv[2]) if len(sys.argv) > 2 else FIXTURES_DIR / "diagnosis_cases.json.gz"
        run = ({o["id"]: o.get("rank") for o in json.loads(Path(sys.argv[3]).read_text())["outcomes"] if o.get("expect_failed")}
               if len(sys.argv) > 3 else None)
        print(ranks_text(replay_places(json.loads(gzip.decompress(rec.read_bytes()))), run))
        sys.exit(0)
    data = _export(Path(sys.argv[1]))
    text = json.dumps(data, sort_keys=True, indent=0, ensure_ascii=False) + "\n"
    Path(sys.argv[2]).write_bytes(gzip.compress(text.encode("utf-8"), mtime=0))  # same input, same bytes
    print(f"{len(data)} fault runs written to {sys.argv[2]}")
