"""Accuracy baselines: per-question GSM8K outcomes recorded by a run, and the baseline a row is held to.

Design (issue #25: "this deployment answers as well as the one it replaces"):

* **What is recorded.** The paired check (suites/test_accuracy_smoke.py ``test_against_baseline``)
  answers GSM8K questions in the seeded order every row shares (``--accuracy-seed``), each request
  carrying a per-question ``seed`` (``request_seed``: the same for every row and run, so a
  reproducible engine answers a question the same way twice and the pairing compares deployments,
  not sampling noise). For each question it writes ``{id, correct, got, seed, status}`` (status:
  answered, truncated, error, unserved) to ``DIR/accuracy/<row>--<mode>.json`` (one file per row and
  mode, so xdist workers never share a file).
* **Where a baseline comes from**, in this order (``resolve``):

  1. the row's ``expect.accuracy_baseline``: another row of the matrix (the BF16 or bf16-KV twin,
     the vendor's signed build beside the floating tag) whose outcomes are in this run's results
     directory or in the ``--accuracy-baseline`` store (a merged run's recorded outcomes);
  2. the ``--accuracy-baseline=PATH`` store: a baseline file (``record``), a results directory
     (its ``accuracy/`` files) or a signed results directory (its ``accuracy-baseline.json``,
     written by ``glmverify signoff``): the same row's last recorded or signed run.

  None: the evidence says so and the absolute gate alone decides the cell. A declared twin must
  have answered first: in one run its outcomes are read once its own check wrote them (else the
  row says it found none); across runners, record the twin's run and pass it as the store.
* **Who records.** A row answers seeded questions beyond its paired check's needs only to record:
  ``--accuracy-record N``, or ``policy.paired_budget`` questions (512 where seeded answers
  are reproducible, else the whole test set) when another row of the matrix names
  it as its baseline (its twin will be held to it).
* **Recording.** ``record(DIR, OUT)`` gathers a run's outcome files into one baseline file
  (``python -m glmverify.accuracy_baseline record DIR... OUT [--if-missing]``; several
  directories for a merged run, so a GPU runner can be given its twin's outcomes); ``make verify``
  records ``results/accuracy-baseline.json`` after a run when none exists and passes it to the
  next run, so a second run is held to the first. ``glmverify signoff`` writes the signed run's
  outcomes beside signoff.json (``accuracy-baseline.json``, its sha256 in the record), so a run
  given that directory is held to the last signed run.

The decisions themselves are ``accuracy_decisions``'s.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from .util import atomic_write, utcnow

OUTCOMES_DIR = "accuracy"
BASELINE_FILE = "accuracy-baseline.json"
KIND = "glmverify.accuracy_outcomes"
SCHEMA = 1
MODES = ("think", "nonthink")


def request_seed(accuracy_seed: int, question_id: str) -> int:
    """The ``seed`` a question is always sent with (stable across rows, runs and processes)."""
    digest = hashlib.sha256(f"{accuracy_seed}:{question_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def outcome_file(results_dir: Path, row: str, mode: str) -> Path:
    return Path(results_dir) / OUTCOMES_DIR / f"{row}--{mode}.json"


def write_outcomes(results_dir: Path, row: str, mode: str, outcomes: list[dict], **meta) -> Path:
    """Write one row's outcomes of one mode (every question asked, in order) into the results dir."""
    f = outcome_file(results_dir, row, mode)
    f.parent.mkdir(parents=True, exist_ok=True)
    doc = {"kind": KIND, "schema": SCHEMA, "row": row, "mode": mode, "written": utcnow(), **meta,
           "outcomes": outcomes}
    atomic_write(f, json.dumps(doc, ensure_ascii=False, indent=0) + "\n")
    return f


def _read(f: Path) -> dict:
    try:
        doc = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{f}: not a readable accuracy baseline: {exc}") from None
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise ValueError(f"{f}: not a glmverify accuracy baseline (kind {doc.get('kind') if isinstance(doc, dict) else None!r})")
    return doc


def gather(results_dir: Path) -> dict[str, dict[str, dict]]:
    """{row: {mode: outcome document}} of a results directory's ``accuracy/`` files."""
    out: dict[str, dict[str, dict]] = {}
    for f in sorted((Path(results_dir) / OUTCOMES_DIR).glob("*--*.json")):
        doc = _read(f)
        out.setdefault(doc["row"], {})[doc["mode"]] = doc
    return out


def load_store(path: str | Path) -> tuple[dict[str, dict[str, dict]], str]:
    """({row: {mode: document}}, description) of a baseline file, a results directory, or a
    signed results directory (its ``accuracy-baseline.json`` first)."""
    p = Path(path)
    if p.is_dir():
        if (p / BASELINE_FILE).is_file():
            return load_store(p / BASELINE_FILE)
        return gather(p), f"results directory {p.name}"
    if not p.is_file():
        raise ValueError(f"--accuracy-baseline {p}: no such file or directory")
    doc = _read(p)
    where = doc.get("source") or {}
    desc = f"baseline file {p.name}" + (f" (run {where.get('run')}" + (f", signed by {where['signed_by']}"
                                                                          if where.get("signed_by") else "") + ")"
                                        if where.get("run") else "")
    return {r: dict(modes) for r, modes in (doc.get("rows") or {}).items()}, desc


@dataclass
class Baseline:
    """The outcomes a row is held to, for one mode, and where they come from."""

    row: str            # the row whose outcomes these are (the row itself, or its declared twin)
    mode: str
    source: str         # shown in the evidence
    outcomes: list[dict]

    def scored(self) -> dict[str, bool]:
        """question id -> correct, for questions the baseline scored (unserved ones left out)."""
        return {o["id"]: bool(o["correct"]) for o in self.outcomes if o.get("status") != "unserved"}

    def evidence(self) -> dict:
        s = self.scored()
        return {"row": self.row, "mode": self.mode, "source": self.source, "questions": len(s),
                "accuracy": round(sum(s.values()) / len(s), 4) if s else None}


def resolve(row, mode: str, results_dir: Path, store_path: str | Path | None) -> tuple[Baseline | None, str]:
    """The baseline of ``row`` in ``mode`` and why (see the module docstring): (None, why) when none."""
    declared = (row.expect or {}).get("accuracy_baseline")
    basis = (row.expect or {}).get("accuracy_baseline_basis")
    why_declared = "matrix: expect.accuracy_baseline" + (f"; {basis}" if basis else "")
    store, desc = ({}, "") if not store_path else load_store(store_path)
    if declared:
        here = outcome_file(results_dir, declared, mode)
        if here.is_file():
            doc = _read(here)
            return Baseline(declared, mode, f"row {declared} in this run ({why_declared})",
                            doc["outcomes"]), ""
        if declared in store and mode in store[declared]:
            return Baseline(declared, mode, f"row {declared} from {desc} ({why_declared})",
                            store[declared][mode]["outcomes"]), ""
        if not store_path:
            return None, (f"the matrix names row {declared} as the baseline, but it has no outcomes in this run "
                          "and no --accuracy-baseline store was given")
    if row.id in store and mode in store[row.id]:
        doc = store[row.id][mode]
        when = doc.get("run_id") or doc.get("written")
        return Baseline(row.id, mode, f"row {row.id}'s recorded run {when} from {desc}", doc["outcomes"]), ""
    if store_path:
        return None, f"{desc} holds no {mode} outcomes of row {row.id}" + (f" or {declared}" if declared else "")
    return None, ("no baseline: the matrix names none for this row (expect.accuracy_baseline) and no "
                  "--accuracy-baseline was given; the absolute gate alone decides")


def record(results_dir: str | Path | list, out: str | Path, rows: list[str] | None = None,
           keep: dict[str, dict[str, dict]] | None = None, **source) -> dict:
    """Gather the outcome files of one results directory, or several (a merged run's runners: a
    later directory's row replaces an earlier one's), into one baseline file ``out`` (the rows
    given, else all); ``keep``: a baseline's rows that stay as they are, the gathered outcomes only
    adding the rows and modes it lacks."""
    dirs = [Path(d) for d in (results_dir if isinstance(results_dir, list) else [results_dir])]
    found: dict[str, dict[str, dict]] = {}
    for d in dirs:
        found.update(gather(d))
    chosen = {r: m for r, m in found.items() if rows is None or r in rows}
    for r, modes in (keep or {}).items():
        chosen[r] = {**chosen.get(r, {}), **modes}
    doc = {"kind": KIND, "schema": SCHEMA, "recorded": utcnow(),
           "source": {"results": ", ".join(d.name for d in dirs), **source}, "rows": chosen}
    atomic_write(Path(out), json.dumps(doc, ensure_ascii=False, indent=0) + "\n")
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m glmverify.accuracy_baseline",
                                 description="record a run's per-question GSM8K outcomes as an accuracy baseline")
    sub = ap.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record", help="gather RESULTS_DIR/accuracy/*.json (one or several directories) into OUT")
    rec.add_argument("results_dir", nargs="+", help="results directories, e.g. each runner's of a merged run")
    rec.add_argument("out")
    rec.add_argument("--if-missing", action="store_true", help="keep an existing OUT (a baseline is replaced on purpose)")
    rec.add_argument("--add-missing", action="store_true",
                     help="keep an existing OUT's rows as they are, adding the rows and modes it lacks (make verify: "
                          "a row first run after the baseline was recorded gets one; none is replaced)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.if_missing and out.exists():
        print(f"accuracy baseline {out} kept (it exists; delete it or sign off a run to replace it)")
        return 0
    keep = _read(out).get("rows") or {} if args.add_missing and out.exists() else None
    srcs = [Path(d).resolve() for d in args.results_dir]
    doc = record(srcs, out, keep=keep, run=", ".join(s.name for s in srcs))
    if not doc["rows"]:
        out.unlink(missing_ok=True)
        print(f"no accuracy outcomes in {', '.join(args.results_dir)}: no baseline recorded")
        return 0
    summary = ", ".join(f"{r} (" + ", ".join(f"{m} {len(d['outcomes'])}" for m, d in modes.items()) + ")"
                        for r, modes in doc["rows"].items())
    print(f"accuracy baseline {out}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
