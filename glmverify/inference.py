"""Inference about cells: what a run's records mean for each (row, feature) cell of the matrix.

``results.Recorder`` records (check outcomes, the engine each row ran, parser-conformance
results) into ``Records``; this module turns those records into the document's cells and
``known_issues``, and is the only place that reasons beyond a cell's own checks:

* a cell's status is ``document.decide_status`` of its checks and its declaration, its basis
  ``document.live_basis`` when checks decided it;
* parser conformance (``suites/test_parsers.py``: the GLM-5.2 raw-output catalogue through the
  row's engine release's own parsers) is a basis for an inferred cell when every case passes, and
  a failed check of the cell when a case fails (``parser_check``: the failing cases are its
  detail, the whole result its evidence): a parser that loses a tool call fails the row, it is
  never written into an inferred cell's basis and left green;
* an inferred cell of a GPU row names what this run's live reference of the same engine decided
  and observed, and where that differs from the other engine's reference (``live_reference``);
* degenerate answers (``degeneration.findings``): every check's screened answers, decided as a
  rate per cell, and once per row on the row's ``accuracy_smoke`` cell (else the cell with the most
  answers); a rate confidently above the bar adds a failed check naming the worst examples;
* a failed cell carries its ``diagnosis`` (``diagnosis.diagnose``);
* per row, the catalogue entries whose ``affects`` covers the row's engine at the version
  ``/version`` reported (``basis: observed``), else its declared ``engine_version``
  (``basis: declared``): ``known_issues``.

Plain functions over plain data: no pytest, no files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import degeneration, knowledge
from .diagnosis import diagnose, facts_of
from .document import LIVE, Cell, decide_status, live_basis, new_cell
from .matrix import Matrix, Row, engine_kind

CHECK_KEYS = ("id", "outcome", "detail", "code", "fields", "phase", "time", "duration", "launch_id")


@dataclass
class Records:
    """What a run recorded: per (row, feature) its checks by id (with their evidence), per row the
    engine's launch evidence, per (row, feature) the parser-conformance result."""
    run_id: Any = None
    checks: dict[tuple[str, str], dict[str, dict]] = field(default_factory=dict)
    engines: dict[str, dict] = field(default_factory=dict)
    parsers: dict[tuple[str, str], dict] = field(default_factory=dict)


# ---- parser conformance --------------------------------------------------------------------------
def parser_basis(p: dict) -> str:
    """One sentence: which parsers, on how many raw outputs, and the failing case ids (or all pass)."""
    ns, st = p["nonstream"], p["stream"]
    own = p.get("row_engine_version")
    note = "" if own == p["version"] else f" (row's engine version {own or 'unknown'}; checked against {p['version']})"
    text = (f"parsers of {p['engine']} {p['version']} (reasoning {p['reasoning_parser']}, tools {p['tool_parser']}){note} "
            f"on GLM-5.2 raw outputs: non-stream {ns[0]}/{ns[1]}, stream {st[0]}/{st[1]} "
            f"({p['chunkings']} seeded chunkings each)")
    if p["failing"]:
        return text + f"; failing: {', '.join(sorted({f['id'] for f in p['failing']}))}"
    return text + "; all pass"


def parser_check(p: dict) -> dict | None:
    """The failed check a parser result with failing cases adds to its cell (None: all pass)."""
    if not p.get("failing"):
        return None
    cases = "; ".join(f"{f['id']} ({f['mode']}): {f.get('first_diff')} {f.get('detail') or ''}".strip()
                      for f in p["failing"][:10])
    more = f"; and {len(p['failing']) - 10} more" if len(p["failing"]) > 10 else ""
    return {"id": f"parsers[{p['engine']}-{p['version']}]", "outcome": "failed",
            "detail": f"{len(p['failing'])} GLM-5.2 raw output(s) mis-parsed by {parser_basis(p)}: {cases}{more}",
            "time": p.get("time"), "duration": None, "launch_id": None}


# ---- live reference observations on GPU rows -----------------------------------------------------
def observed(records: Records, row_id: str, feature: str) -> dict[str, str]:
    """What the checks of (row, feature) recorded as engine behaviour (``evidence.observed``)."""
    out: dict[str, str] = {}
    for c in records.checks.get((row_id, feature), {}).values():
        if isinstance(c.get("evidence"), dict) and isinstance(c["evidence"].get("observed"), dict):
            out.update({str(k): str(v) for k, v in c["evidence"]["observed"].items()})
    return dict(sorted(out.items()))


def live_references(matrix: Matrix, records: Records, feature: str) -> dict[str, Row]:
    """Engine kind -> this run's live reference for ``feature``: the first process row on CPU of
    that kind whose checks of the feature ran live (verified, failed or inconclusive)."""
    out: dict[str, Row] = {}
    for r in matrix.rows:
        checks = records.checks.get((r.id, feature))
        if (r.is_reference and r.local_process and checks
                and decide_status(list(checks.values()), "not_run") in LIVE):
            out.setdefault(engine_kind(r.engine), r)
    return out


def _version(records: Records, row: Row) -> str | None:
    return records.engines.get(row.id, {}).get("engine_version") or row.engine_version


def live_reference(matrix: Matrix, records: Records, row: Row, feature: str) -> dict[str, Any] | None:
    """For a GPU row's inferred cell: what this run's live reference of the same engine decided
    and observed, and where that differs from the other engine's reference; None when no such
    reference ran the feature live. Still a basis, never a verdict."""
    refs = live_references(matrix, records, feature)
    kind = engine_kind(row.engine)
    ref = refs.get(kind)
    if row.is_reference or ref is None:
        return None
    status = decide_status(list(records.checks[(ref.id, feature)].values()), "not_run")
    version = _version(records, ref)
    seen = observed(records, ref.id, feature)
    others: dict[str, dict[str, Any]] = {}
    for other_kind, r in refs.items():
        if other_kind != kind:
            for k, v in observed(records, r.id, feature).items():
                others.setdefault(k, {"row": r.id, "engine": other_kind, "engine_version": _version(records, r),
                                      "observed": v})
    differs = {k: o for k, o in others.items() if k in seen and seen[k] != o["observed"]}
    parts = [f"{k}: {v}" + (f" (differs from {differs[k]['engine']} {differs[k]['engine_version']}: "
                             f"{differs[k]['observed']})" if k in differs else "") for k, v in seen.items()]
    text = f"live {kind} {version} reference (row {ref.id}, run {records.run_id}): {status}"
    if parts:
        text += "; observed " + "; ".join(parts)
    return {"row": ref.id, "engine": kind, "engine_version": version, "status": status, "observed": seen,
            "differs_from": differs, "basis": text}


# ---- cells ---------------------------------------------------------------------------------------
def cell(matrix: Matrix, records: Records, row: Row, feature: str) -> Cell:
    """The cell of (row, feature): status, basis, checks and evidence from the records."""
    declared = row.declared_cell(feature)
    checks = list(records.checks.get((row.id, feature), {}).values())
    parsers = records.parsers.get((row.id, feature))
    failing = parser_check(parsers) if parsers else None
    degenerate, degen_evidence = degeneration.findings(records.checks, row.id, feature, matrix.features)
    added = ([failing] if failing else []) + degenerate
    status = decide_status(checks + added, declared.status)
    if checks and status in LIVE:
        basis = live_basis(records.run_id, status, checks + added)
    elif checks:
        basis = f"checks skipped in run {records.run_id}; declared: {declared.basis}"
    else:
        basis = declared.basis
    evidence: dict[str, Any] = {}
    if parsers and (status == "inferred" or failing):
        basis = (f"parser conformance failed in run {records.run_id}: " if failing and not checks else f"{basis}; ") \
            + parser_basis(parsers)
        evidence["parsers"] = parsers
    live = live_reference(matrix, records, row, feature) if status == "inferred" else None
    if live:
        basis = f"{basis}; {live['basis']}"
        evidence["live_reference"] = live
    if checks:
        evidence["engine"] = records.engines.get(row.id, {})
        evidence["checks"] = {c["id"]: c["evidence"] for c in checks if c.get("evidence")}
    if degen_evidence:
        evidence["degeneration"] = degen_evidence
    out = [{k: c[k] for k in CHECK_KEYS if k in c} for c in checks] + added
    result = new_cell(row, feature, status, basis, out, evidence)
    if status == "failed":
        result["diagnosis"] = diagnose(result, knowledge.catalogue(), facts_of(result, row))
    return result


def cells(matrix: Matrix, records: Records) -> list[Cell]:
    """Every cell of the matrix, then cells of records whose row or feature matrix.yaml lacks."""
    out = [cell(matrix, records, row, feature) for row in matrix.rows for feature in matrix.features]
    known = {r.id for r in matrix.rows}
    for (row_id, feature), checks in sorted(records.checks.items()):
        if row_id not in known or feature not in matrix.features:
            out.append({"row": row_id, "engine": None, "image": None, "hardware": None, "feature": feature,
                        "status": decide_status(list(checks.values()), "not_run"), "basis": "not in matrix.yaml",
                        "checks": [{k: c[k] for k in CHECK_KEYS if k in c} for c in checks.values()], "evidence": {}})
    return out


def known_issues(matrix: Matrix, records: Records) -> dict[str, list[dict]]:
    """{row id: [{id, source, fix, versions, engine_version, basis}]}: the catalogue entries whose
    ``affects`` covers the row's engine at its observed version (live), else its declared one."""
    entries = knowledge.catalogue()
    out = {}
    for row in matrix.rows:
        obs = (records.engines.get(row.id, {}).get("observed") or {}).get("version")
        version, basis = (obs, "observed") if obs else (row.engine_version, "declared")
        issues = knowledge.known_issues(entries, row.engine, version, basis)
        if issues:
            out[row.id] = issues
    return out
