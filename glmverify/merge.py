"""Merge many matrix.json documents (one per runner, shard or re-run) into one.

Each input is a document written by ``results.Recorder`` (or an earlier merge). Every
(row, feature) cell of every input is a *candidate*; a cell's ``history`` entries (from an
earlier merge) are candidates too, so merging merged documents is stable. Rules:

1. A live result (``verified``/``failed``/``inconclusive``) beats a declared one (``inferred``/
   ``unsupported``/``not_run``), whatever their times.
2. Live results of the *same run id* (shards of one run, e.g. one file per xdist worker) are
   combined: their checks are united (per check id the newer record wins, a failed one on a tie)
   and the status is recomputed by ``document.decide_status``, so a failed check on one shard fails
   the cell (checks that decide nothing leave the worst of the shards' live statuses).
3. Among live results of different runs the newest wins (cell ``time``, else its newest check
   ``time``, else the run's ``finished``/``started`` time). The losers stay, newest first, in the
   cell's ``history``.
4. A failed result is never hidden by a verified one of the same age or older: on equal (or
   unknown) times failed wins. A *newer* verified result after a failure does not erase it either:
   the cell is ``flaky`` (its ``flaky`` entry names the failed runs and their failing checks, its
   history keeps them, marked, on the page and in matrix.md), never plain ``verified``; sign-off
   needs a recorded ``--accept-flaky`` for it. A flaky input cell is read back as the verified
   result of its run, so re-merging finds its failure in its history again. When the newer
   verified result did not re-run a check that failed before, the merge also says so in
   ``warnings``.
5. Without any live result the newest declaration wins and is kept verbatim (an ``inferred``
   cell keeps its basis); disagreeing declarations are reported in ``warnings``.
6. Rows and features unknown to matrix.yaml are kept and listed in ``unknown`` and
   ``warnings`` (the command line also prints them on stderr); cells of matrix.yaml that no input
   has are filled from their declaration.

7. With matrix.yaml, serving_performance is then decided between regimes of one build on the same
   hardware (``perf_regimes.attach``): every comparison goes into the cells' ``evidence.regimes``,
   and a confidently broken promise fails the promising row's cell. Inputs are read through
   ``perf_regimes.strip``, so a merged document merged again is decided again. A speculating row
   is held to its no-speculation twin the same way (``perf_mtp.attach`` / ``strip``; a single run's
   document already carries it when both rows ran in it, and merge decides it again on every window).

A failed cell keeps its ``diagnosis``; one whose status the combination of shards changed gets
it recomputed from its checks (``diagnosis.diagnose``). ``known_issues`` are united per row (by
entry id; an observed basis beats a declared one, and a later input an earlier one).

The merged ``run`` lists every source run (file, sha256, id, times, matrix digest). Reading and
validating inputs is ``document``'s; this module only decides between candidates.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from . import knowledge, perf_mtp, perf_regimes
from .diagnosis import diagnose, facts_of
from .document import (FAILED_OUTCOMES, LIVE, SCHEMA_VERSION, STATUSES, Document, decide_status, errata_of, live_basis,
                       new_cell, read_document, worst_status)
from .matrix import Matrix
from .util import utcnow


# ---- time ----------------------------------------------------------------------------------------
def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


_OLDEST = datetime.min.replace(tzinfo=timezone.utc)


def _fmt(t: datetime | None) -> str | None:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if t else None


def cell_time(cell: dict, run: dict) -> datetime | None:
    """When a cell's result was produced: its own time, its newest check, else its run's end/start."""
    t = parse_time(cell.get("time"))
    if t:
        return t
    times = [parse_time(c.get("time")) for c in cell.get("checks", []) if isinstance(c, dict)]
    times = [x for x in times if x]
    if times:
        return max(times)
    return parse_time(run.get("finished")) or parse_time(run.get("started"))


# ---- merging -------------------------------------------------------------------------------------
@dataclass
class Source:
    label: str  # the path as given on the command line
    doc: dict
    sha256: str = ""

    @property
    def run(self) -> dict:
        return self.doc.get("run") or {}


@dataclass
class Candidate:
    cell: dict
    run_id: str
    source: str
    time: datetime | None
    order: int  # input position: later inputs win exact ties between declarations
    extra_sources: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.cell["status"]

    @property
    def live(self) -> bool:
        return self.status in LIVE

    def sort_key(self) -> tuple:
        # newest first; on a tie a failed result first (never hidden by an equally old verified)
        return (self.time or _OLDEST, self.status == "failed", self.order)


def _candidates(src: Source, index: int) -> Iterable[tuple[tuple[str, str], Candidate]]:
    run = src.run
    run_id = str(run.get("id") or f"{src.label}#{index}")
    for cell in src.doc["cells"]:
        key = (cell["row"], cell["feature"])
        cell = perf_mtp.strip(perf_regimes.strip(cell))  # a merged input's cross-row decisions are decided again
        if cell.get("status") == "flaky":  # its own run verified it; the failure is in its history
            flaky = cell.get("flaky") or {}
            cell = {k: v for k, v in cell.items() if k != "flaky"}
            cell.update(status="verified", basis=flaky.get("verified_basis", cell.get("basis", "")))
        # a merged input names each cell's own run; a Recorder document has one run for all
        yield key, Candidate(cell, str(cell.get("run") or run_id), cell.get("source") or src.label,
                             cell_time(cell, run), index)
        for h in cell.get("history", []) or []:
            if not isinstance(h, dict) or h.get("status") not in STATUSES:
                continue
            hcell = {k: v for k, v in cell.items() if k not in ("history", "status", "basis", "checks", "evidence",
                                                                 "run", "time", "source")}
            hcell.update({k: h.get(k) for k in ("status", "basis") if k in h})
            hcell["checks"] = h.get("checks") or []
            hcell["evidence"] = h.get("evidence") or {}
            yield key, Candidate(hcell, str(h.get("run") or run_id), str(h.get("source") or src.label),
                                 parse_time(h.get("time")), index)


def _combine_same_run(cands: list[Candidate]) -> Candidate:
    """One live result out of several files of the same run (shards/workers)."""
    if len(cands) == 1:
        return cands[0]
    signatures = {(c.status, json.dumps(c.cell.get("checks", []), sort_keys=True)) for c in cands}
    if len(signatures) == 1:  # the same result twice (a file given twice, a re-merged history entry)
        return max(cands, key=lambda c: c.sort_key())
    cands = sorted(cands, key=lambda c: c.sort_key())  # oldest first: newer records overwrite
    checks: dict[str, dict] = {}
    check_rank: dict[str, tuple] = {}
    evidence_checks: dict[str, Any] = {}
    engine: dict = {}
    for c in cands:
        for chk in c.cell.get("checks", []):
            rank = (parse_time(chk.get("time")) or c.time or _OLDEST, chk.get("outcome") in FAILED_OUTCOMES)
            if chk["id"] not in checks or rank >= check_rank[chk["id"]]:
                checks[chk["id"]] = chk
                check_rank[chk["id"]] = rank
        ev = c.cell.get("evidence") or {}
        evidence_checks.update(ev.get("checks") or {})
        engine = ev.get("engine") or engine
    newest = cands[-1]
    # checks that decide nothing (all skipped, or none) leave the worst live status of the files
    status = decide_status(checks.values(), worst_status(c.status for c in cands))
    basis = live_basis(newest.run_id, status, checks.values())
    basis += f" (combined from {len({c.source for c in cands})} result files)"
    cell = dict(newest.cell)
    cell.update(status=status, basis=basis, checks=list(checks.values()),
                evidence={k: v for k, v in (("engine", engine), ("checks", evidence_checks)) if v})
    cell.pop("diagnosis", None)  # the shards' checks together: diagnosed again
    if status == "failed":
        cell["diagnosis"] = diagnose(cell, knowledge.catalogue(), facts_of(cell))
    times = [c.time for c in cands if c.time]
    sources = list(dict.fromkeys(c.source for c in cands))
    return Candidate(cell, newest.run_id, sources[-1], max(times) if times else None, newest.order, sources[:-1])


def _history_entry(c: Candidate) -> dict:
    entry = {"run": c.run_id, "source": c.source, "time": _fmt(c.time), "status": c.status,
             "basis": c.cell.get("basis", ""), "checks": c.cell.get("checks", [])}
    if c.cell.get("evidence"):
        entry["evidence"] = c.cell["evidence"]
    return entry


def _failed_ids(cell: dict) -> set[str]:
    return {k["id"] for k in cell.get("checks", []) if k.get("outcome") in FAILED_OUTCOMES}


def merge_cell(key: tuple[str, str], cands: list[Candidate], warnings: list[str]) -> dict:
    row, feature = key
    live = [c for c in cands if c.live]
    if live:
        by_run: dict[str, list[Candidate]] = {}
        for c in live:
            by_run.setdefault(c.run_id, []).append(c)
        results = sorted((_combine_same_run(g) for g in by_run.values()), key=lambda c: c.sort_key(), reverse=True)
        winner, older = results[0], results[1:]
        cell = dict(winner.cell)
        if winner.status == "verified":
            rerun = {k["id"] for k in cell.get("checks", [])}
            for o in older:
                missed = sorted(_failed_ids(o.cell) - rerun)
                if o.status == "failed" and missed:
                    warnings.append(
                        f"{row}/{feature}: verified in run {winner.run_id}, but check(s) {', '.join(missed)} "
                        f"that failed in older run {o.run_id} were not re-run")
            failures = [o for o in older if o.status == "failed"]
            if failures:
                _mark_flaky(cell, winner, failures)
        declared = [c for c in cands if not c.live]
        if declared and "declared_basis" not in cell:
            d = max(declared, key=lambda c: c.sort_key())
            if d.status in ("inferred", "unsupported"):
                cell["declared_basis"] = d.cell.get("basis", "")
    else:
        winner = max(cands, key=lambda c: c.sort_key())
        older = []
        cell = dict(winner.cell)
        statuses = {c.status for c in cands}
        if len(statuses) > 1:
            warnings.append(f"{row}/{feature}: inputs declare different statuses ({', '.join(sorted(statuses))}); "
                            f"kept {winner.status} from run {winner.run_id}")
    cell["run"] = winner.run_id
    cell["source"] = winner.source
    if winner.extra_sources:
        cell["sources"] = winner.extra_sources + [winner.source]
    else:
        cell.pop("sources", None)
    t = _fmt(winner.time)
    if t:
        cell["time"] = t
    history = [_history_entry(o) for o in older]
    if history:
        cell["history"] = history
    else:
        cell.pop("history", None)
    return cell


def _mark_flaky(cell: dict, winner: Candidate, failures: list[Candidate]) -> None:
    """A verified result after failed ones: status ``flaky``, the failures named in its basis."""
    runs = [{"run": f.run_id, "time": _fmt(f.time), "failed_checks": sorted(_failed_ids(f.cell))} for f in failures]
    said = "; ".join(f"run {r['run']} ({r['time'] or 'time unknown'}): {', '.join(r['failed_checks']) or 'failed'}"
                     for r in runs)
    cell["flaky"] = {"verified_run": winner.run_id, "verified_basis": cell.get("basis", ""), "failed_runs": runs}
    cell["status"] = "flaky"
    cell["basis"] = f"FLAKY: verified in run {winner.run_id} after failing in {said}; not verified"


def _declared_cell(matrix: Matrix, row_id: str, feature: str) -> dict:
    row = matrix.row(row_id)
    d = row.declared_cell(feature)
    return new_cell(row, feature, d.status, f"{d.basis} (filled from {Path(matrix.source).name}: no input has this cell)")


def merge_documents(sources: list[Source], matrix: Matrix | None = None) -> Document:
    """The merged document of ``sources`` (oldest input first on exact ties), see module doc."""
    if not sources:
        raise ValueError("nothing to merge")
    warnings: list[str] = []
    grouped: dict[tuple[str, str], list[Candidate]] = {}
    for i, src in enumerate(sources):
        for key, cand in _candidates(src, i):
            grouped.setdefault(key, []).append(cand)

    merged: dict[tuple[str, str], dict] = {k: merge_cell(k, v, warnings) for k, v in grouped.items()}
    if matrix is not None:  # a live cell shows what matrix.yaml declares for it
        rows = {r.id: r for r in matrix.rows}
        for (row, feature), cell in merged.items():
            if cell["status"] in (*LIVE, "flaky") and row in rows and feature in matrix.features:
                d = rows[row].declared_cell(feature)
                cell["declared"] = d.status
                cell["declared_basis"] = d.basis

    order: list[tuple[str, str]] = []
    unknown: list[dict] = []
    if matrix is not None:
        for r in matrix.rows:
            for f in matrix.features:
                order.append((r.id, f))
                if (r.id, f) not in merged:
                    merged[(r.id, f)] = _declared_cell(matrix, r.id, f)
        known_rows = {r.id for r in matrix.rows}
        for (row, feature), cell in merged.items():
            reasons = []
            if row not in known_rows:
                reasons.append(f"row {row!r} is not in {Path(matrix.source).name}")
            if feature not in matrix.features:
                reasons.append(f"feature {feature!r} is not in {Path(matrix.source).name}")
            if reasons:
                srcs = sorted({c.source for c in grouped.get((row, feature), [])})
                unknown.append({"row": row, "feature": feature, "status": cell["status"],
                                "reason": "; ".join(reasons), "sources": srcs})
                warnings.append(f"{row}/{feature} ({cell['status']}): {'; '.join(reasons)}; kept, from {', '.join(srcs)}")
        digests = {s.run.get("matrix", {}).get("sha256") for s in sources if isinstance(s.run.get("matrix"), dict)}
        digests.discard(None)
        if len(digests) > 1:
            warnings.append(f"inputs were run against {len(digests)} different matrix.yaml versions")
        turned = perf_regimes.attach(merged.values(), matrix.rows)  # between regimes (7.)
        turned += perf_mtp.attach(merged.values(), matrix.rows)    # speculation against its twin (7.)
        for cell in turned:
            cell["diagnosis"] = diagnose(cell, knowledge.catalogue(), facts_of(cell))
    placed = set(order)
    order += [k for k in merged if k not in placed]

    runs = [s.run for s in sources]
    started = [t for t in (parse_time(r.get("started")) for r in runs) if t]
    finished = [t for t in (parse_time(r.get("finished")) for r in runs) if t]
    launches: dict[str, dict[str, int]] = {}
    for r in runs:
        rid = str(r.get("id"))
        for row, n in (r.get("launches") or {}).items():
            if isinstance(n, int):
                per_run = launches.setdefault(row, {})
                per_run[rid] = max(per_run.get(rid, 0), n)  # the same run given twice counts once
    selected = list(dict.fromkeys(x for r in runs for x in (r.get("selected_rows") or [])))
    source_info = []
    for s in sources:
        r = s.run
        info = {"file": s.label, "sha256": s.sha256, "id": r.get("id"), "started": r.get("started"),
                "finished": r.get("finished")}
        for k in ("matrix", "harness", "endpoint", "interrupted", "exit_status", "merged", "sources"):
            if k in r:
                info[k] = r[k]
        source_info.append(info)
    seen_ids = [r.get("id") for r in runs]
    for rid in {x for x in seen_ids if x and seen_ids.count(x) > 1}:
        warnings.append(f"run {rid} appears in {seen_ids.count(rid)} inputs; its results were combined")

    run: dict[str, Any] = {
        "id": "merge-" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3),
        "merged": True,
        "merged_at": utcnow(),
        "started": _fmt(min(started)) if started else None,
        "finished": _fmt(max(finished)) if finished else None,
        "launches": {row: sum(v.values()) for row, v in sorted(launches.items())},
        "selected_rows": selected,
        "sources": source_info,
    }
    if matrix is not None:
        p = Path(matrix.source)
        run["matrix"] = {"path": p.name,
                         "sha256": hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None}
    doc = {"schema": SCHEMA_VERSION, "run": run, "cells": [merged[k] for k in order]}
    doc["warnings"] = warnings
    doc["unknown"] = unknown
    errata: dict[str, list] = {}
    for s in sources:  # the inputs' errata, then matrix.yaml's (the current wording wins)
        errata.update(s.doc.get("errata") or {})
    if matrix is not None:
        errata.update(errata_of(matrix))
    doc["errata"] = errata
    doc["known_issues"] = merge_known_issues([s.doc.get("known_issues") or {} for s in sources])
    return doc


def merge_known_issues(inputs: list[dict]) -> dict[str, list[dict]]:
    """The inputs' ``known_issues`` united per row and entry id: an observed basis beats a declared
    one; on equal bases the later input wins (rows and entries in order of first appearance)."""
    out: dict[str, dict[str, dict]] = {}
    for issues in inputs:
        for row, items in issues.items():
            mine = out.setdefault(row, {})
            for it in items if isinstance(items, list) else []:
                old = mine.get(it.get("id"))
                if old is None or not (old.get("basis") == "observed" and it.get("basis") != "observed"):
                    mine[it.get("id")] = it
    return {row: list(items.values()) for row, items in out.items() if items}


def merge_files(paths: list[str | Path], matrix: Matrix | None = None) -> Document:
    """Read every input (DocumentError names a bad one) and merge them."""
    sources = []
    for p in paths:
        _, raw, doc = read_document(p)
        sources.append(Source(str(p), doc, hashlib.sha256(raw).hexdigest()))
    return merge_documents(sources, matrix)
