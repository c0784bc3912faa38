"""The document model: one status rule, one tally, read back as written, used by every writer and
reader; the modules around it import only downward."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from glmverify import document
from glmverify.document import STATUSES, DocumentError, counts, decide_status, live_basis, parse_document, worst_status
from glmverify.matrix import load
from glmverify.merge import Source, merge_documents
from glmverify.results import CheckRecord, Recorder

PKG = Path(document.__file__).resolve().parent


@pytest.mark.parametrize("outcomes, declared, status", [
    ([], "inferred", "inferred"),
    ([], "unsupported", "unsupported"),
    (["skipped"], "not_run", "not_run"),
    (["passed", "skipped"], "inferred", "verified"),
    (["passed", "inconclusive"], "inferred", "inconclusive"),
    (["inconclusive", "failed"], "inferred", "failed"),
    (["passed", "error"], "unsupported", "failed"),
    (["inconclusive", "skipped"], "not_run", "inconclusive"),
])
def test_one_rule_decides_a_cell(outcomes, declared, status):
    assert decide_status([{"id": f"c{i}", "outcome": o} for i, o in enumerate(outcomes)], declared) == status


def test_worst_status_and_live_basis():
    assert worst_status(["verified", "inconclusive"]) == "inconclusive"
    assert worst_status(["inconclusive", "failed", "verified"]) == "failed"
    assert worst_status(["verified"]) == "verified"
    checks = [{"outcome": "failed"}, {"outcome": "error"}, {"outcome": "passed"}]
    assert live_basis("r1", "failed", checks) == "live run r1: 2 check(s) failed"
    assert live_basis("r1", "verified", checks) == "live run r1: 1 check(s) passed"
    assert "not verified" in live_basis("r1", "inconclusive", [{"outcome": "inconclusive"}])


def _mixed_recorder(tmp_path) -> Recorder:
    r = Recorder(load(), tmp_path, {"id": "run-doc"})
    r.add(CheckRecord(row="reference", feature="tool_calls", id="a", outcome="passed"))
    r.add(CheckRecord(row="reference", feature="non_think", id="b", outcome="failed", detail="boom"))
    r.add(CheckRecord(row="reference", feature="accuracy_smoke", id="c", outcome="inconclusive"))
    return r


def test_counts_agree_in_recorder_merge_signoff_report_and_cli(tmp_path, capsys):
    from glmverify import signoff
    from glmverify.cli import main
    from glmverify.report import render_markdown

    r = _mixed_recorder(tmp_path)
    doc = r.write(final=True)
    tally = counts(doc)
    assert list(tally) == list(STATUSES) and sum(tally.values()) == len(doc["cells"])
    assert (tally["verified"], tally["failed"], tally["inconclusive"]) == (1, 1, 1)
    # merge of the one document: the same cells, the same tally
    assert counts(merge_documents([Source("a", doc)], load())) == tally
    # the sign-off record
    assert signoff.sign(tmp_path, "Jane")["counts"] == tally
    # matrix.md's summary line
    md = render_markdown(doc)
    line = next(ln for ln in md.splitlines() if ln.startswith("**Cells:**"))
    assert [int(n) for n in re.findall(r"(\d+)(?= ·|$)", line)] == [tally[s] for s in STATUSES]
    # the command line's summary
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert ", ".join(f"{s} {n}" for s, n in tally.items() if n) in out


def test_a_written_document_reads_back_as_written(tmp_path):
    doc = _mixed_recorder(tmp_path).write(final=True)
    raw = (tmp_path / "matrix.json").read_bytes()
    assert raw.decode() == document.dumps(doc)
    assert parse_document(raw, "matrix.json") == json.loads(raw)
    with pytest.raises(DocumentError, match=r"x\.json: not a glmverify matrix.json: cells\[0\]\.status"):
        parse_document(json.dumps({"cells": [{"row": "r", "feature": "f", "status": "fine"}]}).encode(), "x.json")


def test_recorder_and_merge_build_declared_cells_alike(tmp_path):
    m = load()
    row = m.rows[-1]
    feature = m.features[-1]
    recorded = next(c for c in Recorder(m, tmp_path, {"id": "r"}).document()["cells"]
                    if (c["row"], c["feature"]) == (row.id, feature))
    merged = next(c for c in merge_documents([Source("a", {"schema": 1, "run": {"id": "x"}, "cells": []})], m)["cells"]
                  if (c["row"], c["feature"]) == (row.id, feature))
    assert list(recorded) == list(merged)  # the same keys in the same order
    assert {k: v for k, v in recorded.items() if k != "basis"} == {k: v for k, v in merged.items() if k != "basis"}


def test_merge_combines_shards_with_the_same_rule():
    """Shards whose checks decide nothing keep the worst live status; otherwise the checks decide."""
    def shard(status, outcome, cid):
        return {"schema": 1, "run": {"id": "run-S", "finished": "2025-01-01T00:00:00Z"},
                "cells": [{"row": "r", "feature": "tool_calls", "status": status, "basis": "",
                           "checks": [{"id": cid, "outcome": outcome, "detail": ""}], "evidence": {}}]}
    skipped = merge_documents([Source("a", shard("inconclusive", "skipped", "x")), Source("b", shard("verified", "skipped", "y"))])
    assert skipped["cells"][0]["status"] == "inconclusive"
    decided = merge_documents([Source("a", shard("verified", "passed", "x")), Source("b", shard("verified", "error", "y"))])
    cell = decided["cells"][0]
    assert cell["status"] == decide_status(cell["checks"], "not_run") == "failed"
    assert cell["basis"].startswith(live_basis("run-S", "failed", cell["checks"]))


# ---- layering --------------------------------------------------------------------------------------------
def _imports(path: Path) -> set[str]:
    """glmverify modules a file imports, at any depth of the file (function-level imports too)."""
    pkg = ["glmverify", *path.relative_to(PKG.parent).with_suffix("").parts[1:-1]]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = pkg[: len(pkg) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            names = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
            out.update(n for n in names if n.startswith("glmverify"))
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("glmverify"))
    return {n.split(".")[1] if n.count(".") else "" for n in out} - {""}


ALLOWED = {  # module -> what it may import (beside itself and the package root's __version__)
    "document": {"matrix"},
    "results": {"document", "matrix", "redact", "util", "inference", "perf_mtp", "knowledge", "diagnosis"},  # speed-up vs twin
    "inference": {"document", "matrix", "knowledge", "diagnosis", "degeneration"},
    "merge": {"document", "matrix", "util", "knowledge", "diagnosis", "perf_regimes", "perf_mtp"},  # cross-row decisions on merged results
    "signoff": {"document", "util", "accuracy_baseline"},  # the signed run's GSM8K outcomes kept as the baseline
    "report": {"document", "matrix", "util", "report"},
}


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_document_layer_imports_only_downward(module):
    files = sorted((PKG / module).glob("*.py")) if (PKG / module).is_dir() else [PKG / f"{module}.py"]
    for f in files:
        upward = _imports(f) - ALLOWED[module] - {module, "__version__"}
        assert not upward, f"{f.name} imports {sorted(upward)}"
