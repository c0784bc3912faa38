"""Results: check records in, DIR/matrix.json out, written atomically. This module records;
what the records mean for each cell is ``inference``'s.

Each check (one pytest test item for one row) produces a ``CheckRecord``. Records travel from
xdist workers to the controller inside ``report.user_properties``, so exactly one ``Recorder``
(in the controller) owns DIR/matrix.json. The last record per (row, feature, check id) wins. A
record's ``phase`` is the pytest phase that produced it: ``setup`` for a check skipped before it
ran (the row's launch gate: hardware, attach-only, Docker), which the run's verdict
(``document.decide_run``) reads as not run. The recorder also keeps parser-conformance results
(``add_parsers``), the engine evidence of each row, the launches per row and the checks the run
selected per cell (``select``: what ``decide_run`` calls not reached when it has no result).
A failed (or inconclusive) check's ``code`` and ``fields`` (``checks.Failure``) go into its entry
of the cell's checks next to the detail.

The document (``document``) is ``inference.cells`` and ``inference.known_issues`` of those
records, with the run and the matrix's errata; both are in it from its first write, before
anything ran. matrix.json is rewritten (write to a temp file, fsync, rename) after every record,
so an interrupted run keeps everything it finished and never leaves a half-written file. The
reports (matrix.md, matrix.html, junit.xml) are the caller's to write: this module knows no
renderer.
"""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import inference, knowledge, perf_mtp
from .diagnosis import diagnose, facts_of
from .document import SCHEMA_VERSION, Document, dumps, errata_of
from .matrix import FEATURES, Matrix
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
    phase: str = "call"  # the pytest phase: "setup" for a skip before the check ran (a launch gate)
    code: str | None = None  # a failure's stable code (``checks.Failure``, ``failure_codes``); None: uncoded
    fields: dict[str, Any] = field(default_factory=dict)  # its decisive values

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
        self.records = inference.Records(run_id=self.run.get("id"))
        self._launch_ids: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def select_rows(self, row_ids: list[str]) -> None:
        self.selected_rows = [r for r in dict.fromkeys(row_ids)]
        self.run["selected_rows"] = self.selected_rows

    def select(self, selected: dict[str, dict[str, list[str]]]) -> None:
        """Add to the checks the run selected per row and feature (``run.selected``; from the
        controller's collection, or each xdist worker's): the rows are ``selected_rows`` too."""
        with self._lock:
            mine = self.run.setdefault("selected", {})
            for row, features in selected.items():
                for feature, ids in features.items():
                    have = mine.setdefault(row, {}).setdefault(feature, [])
                    have.extend(i for i in ids if i not in have)
            self.select_rows(self.selected_rows + list(mine))

    def add(self, rec: CheckRecord) -> None:
        with self._lock:
            if rec.feature not in FEATURES:
                rec.detail = f"(unknown feature {rec.feature!r}) {rec.detail}"
            check = {"id": rec.id, "outcome": rec.outcome, "detail": REDACT(_clip(rec.detail)), "time": rec.time,
                     "duration": rec.duration, "evidence": sanitize(rec.evidence), "launch_id": rec.launch_id}
            if rec.phase != "call":
                check["phase"] = rec.phase
            if rec.code:  # what the diagnosis matches catalogue entries by (``diagnosis``)
                check["code"], check["fields"] = str(rec.code), sanitize(rec.fields or {})
            self.records.checks.setdefault((rec.row, rec.feature), {})[rec.id] = check
            if rec.engine:
                self.records.engines[rec.row] = sanitize(rec.engine)
            if rec.launch_id:
                self._launch_ids.setdefault(rec.row, set()).add(rec.launch_id)
                self.run["launches"] = {r: len(ids) for r, ids in sorted(self._launch_ids.items())}
            self.write()

    def add_parsers(self, result: dict) -> None:
        """A parser-conformance result for its rows' parsing features (``inference`` decides what
        it means for their cells)."""
        with self._lock:
            for row in result.get("rows", []):
                for feature, summ in result.get("features", {}).items():
                    self.records.parsers[(row["id"], feature)] = {
                        **{k: result[k] for k in ("engine", "version", "reasoning_parser", "tool_parser", "chunkings")},
                        "row_engine_version": row.get("engine_version"), "time": result.get("time") or utcnow(),
                        **summ}
            self.write()

    # ---- output -------------------------------------------------------------------------------
    def cells(self):
        return inference.cells(self.matrix, self.records)

    def known_issues(self) -> dict[str, list[dict]]:
        return inference.known_issues(self.matrix, self.records)

    def document(self) -> Document:
        self.records.run_id = self.run.get("id")
        cells = self.cells()
        # between rows of this run: a speculating row against its no-speculation twin (perf_mtp)
        for cell in perf_mtp.attach(cells, self.matrix.rows):
            cell["diagnosis"] = diagnose(cell, knowledge.catalogue(), facts_of(cell))
        return {"schema": SCHEMA_VERSION, "run": dict(self.run), "cells": cells, "errata": errata_of(self.matrix),
                "known_issues": self.known_issues()}

    def write(self, final: bool = False) -> Document:
        """Rewrite DIR/matrix.json; ``final`` stamps the run's end first. Returns the document."""
        if final:
            self.run["finished"] = utcnow()
        doc = self.document()
        atomic_write(self.dir / "matrix.json", dumps(doc))
        return doc
