"""Results: check records in, one typed cell per (row, feature) out, written atomically.

Each check (one pytest test item for one row) produces a ``CheckRecord``. Records travel from
xdist workers to the controller inside ``report.user_properties``, so exactly one ``Recorder``
(in the controller) owns DIR/matrix.json. The last record per (row, feature, check id) wins.

A cell's status is ``document.decide_status`` of its checks and its declaration, its basis
``document.live_basis`` when checks decided it; an inferred cell of a GPU row also carries the
parser-conformance evidence and what this run's live reference of its engine decided.

A failed cell also carries its ``diagnosis`` (``diagnosis.diagnose``: the fault catalogue's causes
ranked by how well they explain its failing checks, given the row's engine, observed version and
speculative decoding), and the document lists per row its ``known_issues``: the catalogue entries
whose ``affects`` covers the row's engine at the version ``/version`` reported when the row ran
live (``basis: observed``), else at the row's declared ``engine_version`` (``basis: declared``).
Both are in the document from its first write, before anything ran.

matrix.json is rewritten (write to a temp file, fsync, rename) after every record, so an
interrupted run keeps everything it finished and never leaves a half-written file. The reports
(matrix.md, matrix.html, junit.xml) are the caller's to write: this module knows no renderer.
"""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import knowledge
from .diagnosis import diagnose, facts_of
from .document import LIVE, SCHEMA_VERSION, Cell, Document, decide_status, dumps, errata_of, live_basis, new_cell
from .matrix import FEATURES, Matrix, Row, engine_kind
from .redact import REDACT
from .util import atomic_write, utcnow

PROPERTY_KEY = "glmverify.check"
PARSER_PROPERTY = "glmverify.parsers"
PARSER_FEATURES = ("reasoning_split", "non_think", "tool_calls")
MAX_DETAIL = 4000


@dataclass
class CheckRecord:
    row: str
    feature: str
    id: str
    outcome: str  # passed | failed | inconclusive | skipped | error
    detail: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=dict)  # launch evidence of the engine used
    launch_id: str | None = None
    time: str = field(default_factory=utcnow)
    duration: float | None = None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "CheckRecord":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def _clip(text: str, n: int = MAX_DETAIL) -> str:
    return text if len(text) <= n else text[: n // 2] + f"\n…[{len(text) - n} chars cut]…\n" + text[-n // 2:]


def sanitize(obj: Any, depth: int = 0) -> Any:
    """JSON-safe, size-bounded, secret-free copy of evidence."""
    if depth > 8:
        return "…"
    if isinstance(obj, str):
        return REDACT(_clip(obj, 2000))
    if isinstance(obj, (int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, dict):
        return {str(k): sanitize(v, depth + 1) for k, v in list(obj.items())[:200]}
    if isinstance(obj, (list, tuple)):
        items = [sanitize(v, depth + 1) for v in list(obj)[:200]]
        if len(obj) > 200:
            items.append(f"…{len(obj) - 200} more")
        return items
    return REDACT(_clip(repr(obj), 2000))


class Recorder:
    """Collects check records for one run and keeps DIR/matrix.json current."""

    def __init__(self, matrix: Matrix, results_dir: Path, run: dict[str, Any]):
        self.matrix = matrix
        self.dir = Path(results_dir)
        self.run = dict(run)
        self.run.setdefault("started", utcnow())
        self.run.setdefault("launches", {})
        self.selected_rows: list[str] = []
        self._checks: dict[tuple[str, str], dict[str, dict]] = {}
        self._engines: dict[str, dict] = {}
        self._launch_ids: dict[str, set[str]] = {}
        self._parsers: dict[tuple[str, str], dict] = {}
        self._lock = threading.Lock()

    def select_rows(self, row_ids: list[str]) -> None:
        self.selected_rows = [r for r in dict.fromkeys(row_ids)]
        self.run["selected_rows"] = self.selected_rows

    def add(self, rec: CheckRecord) -> None:
        with self._lock:
            if rec.feature not in FEATURES:
                rec.detail = f"(unknown feature {rec.feature!r}) {rec.detail}"
            self._checks.setdefault((rec.row, rec.feature), {})[rec.id] = {
                "id": rec.id,
                "outcome": rec.outcome,
                "detail": REDACT(_clip(rec.detail)),
                "time": rec.time,
                "duration": rec.duration,
                "evidence": sanitize(rec.evidence),
                "launch_id": rec.launch_id,
            }
            if rec.engine:
                self._engines[rec.row] = sanitize(rec.engine)
            if rec.launch_id:
                self._launch_ids.setdefault(rec.row, set()).add(rec.launch_id)
                self.run["launches"] = {r: len(ids) for r, ids in sorted(self._launch_ids.items())}
            self.write()

    def add_parsers(self, result: dict) -> None:
        """Parser-conformance evidence for rows: a basis for inferred cells, never a live verdict."""
        with self._lock:
            for row in result.get("rows", []):
                for feature, summ in result.get("features", {}).items():
                    self._parsers[(row["id"], feature)] = {
                        **{k: result[k] for k in ("engine", "version", "reasoning_parser", "tool_parser", "chunkings")},
                        "row_engine_version": row.get("engine_version"), **summ}
            self.write()

    @staticmethod
    def parser_basis(p: dict) -> str:
        ns, st = p["nonstream"], p["stream"]
        own = p.get("row_engine_version")
        note = "" if own == p["version"] else f" (row's engine version {own or 'unknown'}; checked against {p['version']})"
        text = (f"parsers of {p['engine']} {p['version']} (reasoning {p['reasoning_parser']}, tools {p['tool_parser']}){note} "
                f"on GLM-5.2 raw outputs: non-stream {ns[0]}/{ns[1]}, stream {st[0]}/{st[1]} "
                f"({p['chunkings']} seeded chunkings each)")
        if p["failing"]:
            ids = sorted({f["id"] for f in p["failing"]})
            text += f"; FAILING: {', '.join(ids)}"
        else:
            text += "; all pass"
        return text

    # ---- live reference observations on GPU rows -----------------------------------------------
    def observed(self, row_id: str, feature: str) -> dict[str, str]:
        """What the checks of (row, feature) recorded as engine behaviour (``evidence.observed``)."""
        out: dict[str, str] = {}
        for c in self._checks.get((row_id, feature), {}).values():
            if isinstance(c.get("evidence"), dict) and isinstance(c["evidence"].get("observed"), dict):
                out.update({str(k): str(v) for k, v in c["evidence"]["observed"].items()})
        return dict(sorted(out.items()))

    def _live_references(self, feature: str) -> dict[str, Row]:
        """Engine kind -> this run's live reference for ``feature``: the first process row on CPU of
        that kind whose checks of the feature ran live (verified, failed or inconclusive)."""
        out: dict[str, Row] = {}
        for r in self.matrix.rows:
            checks = self._checks.get((r.id, feature))
            if (r.is_reference and r.local_process and checks
                    and decide_status(list(checks.values()), "not_run") in LIVE):
                out.setdefault(engine_kind(r.engine), r)
        return out

    def _version(self, row: Row) -> str | None:
        return self._engines.get(row.id, {}).get("engine_version") or row.engine_version

    def live_reference(self, row: Row, feature: str) -> dict[str, Any] | None:
        """For a GPU row's inferred cell: what this run's live reference of the same engine decided
        and observed, and where that differs from the other engine's reference; None when no such
        reference ran the feature live. Still a basis, never a verdict."""
        refs = self._live_references(feature)
        kind = engine_kind(row.engine)
        ref = refs.get(kind)
        if row.is_reference or ref is None:
            return None
        status = decide_status(list(self._checks[(ref.id, feature)].values()), "not_run")
        version = self._version(ref)
        seen = self.observed(ref.id, feature)
        others: dict[str, dict[str, Any]] = {}
        for other_kind, r in refs.items():
            if other_kind != kind:
                for k, v in self.observed(r.id, feature).items():
                    others.setdefault(k, {"row": r.id, "engine": other_kind, "engine_version": self._version(r), "observed": v})
        differs = {k: o for k, o in others.items() if k in seen and seen[k] != o["observed"]}
        parts = [f"{k}: {v}" + (f" (differs from {differs[k]['engine']} {differs[k]['engine_version']}: "
                                 f"{differs[k]['observed']})" if k in differs else "") for k, v in seen.items()]
        text = f"live {kind} {version} reference (row {ref.id}, run {self.run.get('id')}): {status}"
        if parts:
            text += "; observed " + "; ".join(parts)
        return {"row": ref.id, "engine": kind, "engine_version": version, "status": status, "observed": seen,
                "differs_from": differs, "basis": text}

    # ---- output -------------------------------------------------------------------------------
    def cells(self) -> list[Cell]:
        out = []
        for row in self.matrix.rows:
            for feature in self.matrix.features:
                out.append(self._cell(row, feature))
        known = {r.id for r in self.matrix.rows}
        for (row_id, feature), checks in sorted(self._checks.items()):
            if row_id not in known or feature not in self.matrix.features:
                out.append({"row": row_id, "engine": None, "image": None, "hardware": None,
                            "feature": feature, "status": decide_status(list(checks.values()), "not_run"),
                            "basis": "not in matrix.yaml", "checks": list(checks.values()), "evidence": {}})
        return out

    def _cell(self, row: Row, feature: str) -> Cell:
        declared = row.declared_cell(feature)
        checks = list(self._checks.get((row.id, feature), {}).values())
        status = decide_status(checks, declared.status)
        if status in LIVE:
            basis = live_basis(self.run.get("id"), status, checks)
        elif checks:
            basis = f"checks skipped in run {self.run.get('id')}; declared: {declared.basis}"
        else:
            basis = declared.basis
        evidence: dict[str, Any] = {}
        parsers = self._parsers.get((row.id, feature))
        if parsers and status == "inferred":
            basis = f"{basis}; {self.parser_basis(parsers)}"
            evidence["parsers"] = parsers
        live = self.live_reference(row, feature) if status == "inferred" else None
        if live:
            basis = f"{basis}; {live['basis']}"
            evidence["live_reference"] = live
        if checks:
            evidence["engine"] = self._engines.get(row.id, {})
            evidence["checks"] = {c["id"]: c["evidence"] for c in checks if c["evidence"]}
        checks = [{k: c[k] for k in ("id", "outcome", "detail", "time", "duration", "launch_id")} for c in checks]
        cell = new_cell(row, feature, status, basis, checks, evidence)
        if status == "failed":
            cell["diagnosis"] = diagnose(cell, knowledge.catalogue(), facts_of(cell, row))
        return cell

    def known_issues(self) -> dict[str, list[dict]]:
        """{row id: [{id, source, fix, versions, engine_version, basis}]}: the catalogue entries whose
        ``affects`` covers the row's engine at its observed version (live), else its declared one."""
        entries = knowledge.catalogue()
        out = {}
        for row in self.matrix.rows:
            obs = (self._engines.get(row.id, {}).get("observed") or {}).get("version")
            version, basis = (obs, "observed") if obs else (row.engine_version, "declared")
            issues = knowledge.known_issues(entries, row.engine, version, basis)
            if issues:
                out[row.id] = issues
        return out

    def document(self) -> Document:
        return {"schema": SCHEMA_VERSION, "run": dict(self.run), "cells": self.cells(), "errata": errata_of(self.matrix),
                "known_issues": self.known_issues()}

    def write(self, final: bool = False) -> Document:
        """Rewrite DIR/matrix.json; ``final`` stamps the run's end first. Returns the document."""
        if final:
            self.run["finished"] = utcnow()
        doc = self.document()
        atomic_write(self.dir / "matrix.json", dumps(doc))
        return doc
