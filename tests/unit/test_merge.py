"""Merging matrix.json documents: one test per rule (see glmverify.merge)."""
from __future__ import annotations

import json

import pytest

from glmverify.document import DocumentError, load_document, read_document
from glmverify.matrix import load
from glmverify.merge import Source, merge_documents, merge_files


@pytest.fixture(scope="module")
def matrix():
    return load()


@pytest.fixture(scope="module")
def rf(matrix):
    """A (row, feature) pair that matrix.yaml knows."""
    return matrix.rows[0].id, matrix.features[0]


def mkcell(row, feature, status, basis=None, checks=(), time=None, evidence=None, declared="not_run", **kw):
    c = {"row": row, "engine": "vllm", "image": "img", "hardware": "cpu", "feature": feature, "status": status,
         "declared": declared, "basis": basis if basis is not None else f"{status} basis",
         "checks": [dict(x) for x in checks], "evidence": evidence or {}}
    if time:
        c["time"] = time
    c.update(kw)
    return c


def mkdoc(run_id, finished, cells, started=None, launches=None, matrix_sha="0" * 64):
    return {"schema": 1,
            "run": {"id": run_id, "started": started or finished, "finished": finished, "launches": launches or {},
                    "selected_rows": sorted({c["row"] for c in cells}),
                    "matrix": {"path": "matrix.yaml", "sha256": matrix_sha}},
            "cells": cells}


PASS = {"id": "test_a", "outcome": "passed", "detail": ""}
FAIL = {"id": "test_a", "outcome": "failed", "detail": "AssertionError: no tool call"}


def merged_cell(doc, row, feature):
    [c] = [c for c in doc["cells"] if c["row"] == row and c["feature"] == feature]
    return c


def merge(*docs, matrix=None):
    return merge_documents([Source(f"in{i}/matrix.json", d, f"{i:064x}") for i, d in enumerate(docs)], matrix)


# ---- rule 1: live beats declared ------------------------------------------------------------------
@pytest.mark.parametrize("live", ["verified", "failed"])
@pytest.mark.parametrize("declared", ["inferred", "unsupported", "not_run"])
def test_live_result_beats_a_newer_declared_one(rf, live, declared):
    row, feat = rf
    old_live = mkdoc("run-A", "2025-01-01T10:00:00Z", [mkcell(row, feat, live, checks=[PASS if live == "verified" else FAIL])])
    new_decl = mkdoc("run-B", "2025-01-02T10:00:00Z", [mkcell(row, feat, declared, basis="recipe in the guide")])
    for order in ((old_live, new_decl), (new_decl, old_live)):
        c = merged_cell(merge(*order), row, feat)
        assert c["status"] == live
        assert c["run"] == "run-A"
        assert "history" not in c  # declarations are not results: nothing to keep


# ---- rule 3: newest live result wins, the older one stays in history -----------------------------------
def test_newest_live_result_wins_by_run_finished_time_and_older_goes_to_history(rf):
    row, feat = rf
    a = mkdoc("run-A", "2025-01-01T10:00:00Z", [mkcell(row, feat, "failed", checks=[FAIL])])
    b = mkdoc("run-B", "2025-01-01T11:00:00Z", [mkcell(row, feat, "verified", checks=[PASS])])
    for order in ((a, b), (b, a)):
        c = merged_cell(merge(*order), row, feat)
        # the newer result wins, but a failure before it is never erased: flaky, not verified
        assert c["status"] == "flaky" and c["run"] == "run-B"
        assert c["time"] == "2025-01-01T11:00:00Z"
        assert [(h["run"], h["status"]) for h in c["history"]] == [("run-A", "failed")]
        assert c["history"][0]["checks"][0]["detail"] == "AssertionError: no tool call"


def test_check_time_beats_run_finished_time(rf):
    row, feat = rf
    # run-A finished later, but its check ran earlier than run-B's
    a = mkdoc("run-A", "2025-01-03T00:00:00Z", [mkcell(row, feat, "verified", checks=[dict(PASS, time="2025-01-01T09:00:00Z")])])
    b = mkdoc("run-B", "2025-01-02T00:00:00Z", [mkcell(row, feat, "failed", checks=[dict(FAIL, time="2025-01-01T12:00:00Z")])])
    c = merged_cell(merge(a, b), row, feat)
    assert c["status"] == "failed" and c["run"] == "run-B"
    assert c["history"][0]["run"] == "run-A"


def test_cell_time_beats_check_time(rf):
    row, feat = rf
    a = mkdoc("run-A", "2025-01-01T00:00:00Z", [mkcell(row, feat, "verified", checks=[PASS], time="2025-02-01T00:00:00Z")])
    b = mkdoc("run-B", "2025-01-09T00:00:00Z", [mkcell(row, feat, "failed", checks=[FAIL])])
    assert merged_cell(merge(a, b), row, feat)["run"] == "run-A"


def test_history_is_newest_first_and_keeps_every_older_result(rf):
    row, feat = rf
    docs = [mkdoc(f"run-{i}", f"2025-01-0{i}T00:00:00Z", [mkcell(row, feat, "verified", checks=[PASS])]) for i in (1, 2, 3)]
    c = merged_cell(merge(*docs), row, feat)
    assert c["run"] == "run-3"
    assert [h["run"] for h in c["history"]] == ["run-2", "run-1"]


# ---- rule 4: a failure is never hidden by an older (or equally old) verified result ------------------
def test_failed_is_not_hidden_by_an_older_verified_given_later(rf):
    row, feat = rf
    newer_failed = mkdoc("run-B", "2025-01-02T00:00:00Z", [mkcell(row, feat, "failed", checks=[FAIL])])
    older_verified = mkdoc("run-A", "2025-01-01T00:00:00Z", [mkcell(row, feat, "verified", checks=[PASS])])
    c = merged_cell(merge(newer_failed, older_verified), row, feat)
    assert c["status"] == "failed"
    assert c["history"][0]["status"] == "verified"


@pytest.mark.parametrize("t", ["2025-01-01T00:00:00Z", None])
def test_failed_wins_a_tie_or_unknown_times(rf, t):
    row, feat = rf
    f = mkdoc("run-F", t, [mkcell(row, feat, "failed", checks=[FAIL])])
    v = mkdoc("run-V", t, [mkcell(row, feat, "verified", checks=[PASS])])
    for order in ((f, v), (v, f)):
        assert merged_cell(merge(*order), row, feat)["status"] == "failed"


def test_newer_verified_that_did_not_rerun_a_failed_check_is_flagged(rf):
    row, feat = rf
    a = mkdoc("run-A", "2025-01-01T00:00:00Z", [mkcell(row, feat, "failed", checks=[dict(FAIL, id="test_weather")])])
    b = mkdoc("run-B", "2025-01-02T00:00:00Z", [mkcell(row, feat, "verified", checks=[dict(PASS, id="test_other")])])
    doc = merge(a, b)
    assert merged_cell(doc, row, feat)["status"] == "flaky"
    assert any("test_weather" in w and "not re-run" in w for w in doc["warnings"])


# ---- rule 2: files of the same run are combined ------------------------------------------------------
def test_shards_of_one_run_are_combined_check_by_check(rf):
    row, feat = rf
    gw0 = mkdoc("run-X", "2025-01-01T10:00:00Z", [mkcell(row, feat, "verified", checks=[dict(PASS, id="test_a")],
                                                        evidence={"checks": {"test_a": {"k": 1}}})])
    gw1 = mkdoc("run-X", "2025-01-01T10:05:00Z", [mkcell(row, feat, "failed", checks=[dict(FAIL, id="test_b")],
                                                        evidence={"checks": {"test_b": {"k": 2}}})])
    doc = merge(gw0, gw1)
    c = merged_cell(doc, row, feat)
    assert c["status"] == "failed"
    assert sorted(k["id"] for k in c["checks"]) == ["test_a", "test_b"]
    assert set(c["evidence"]["checks"]) == {"test_a", "test_b"}
    assert "history" not in c
    assert set(c["sources"]) == {"in0/matrix.json", "in1/matrix.json"}
    assert any("run-X" in w for w in doc["warnings"])


def test_same_file_twice_is_idempotent(rf):
    row, feat = rf
    d = mkdoc("run-A", "2025-01-01T00:00:00Z", [mkcell(row, feat, "verified", checks=[PASS])], launches={row: 1})
    doc = merge(d, json.loads(json.dumps(d)))
    c = merged_cell(doc, row, feat)
    assert c["status"] == "verified" and len(c["checks"]) == 1 and "history" not in c
    assert c["basis"] == "verified basis"  # kept as it was, not re-described as combined
    assert doc["run"]["launches"] == {row: 1}


# ---- rule 5: declared cells keep their basis -----------------------------------------------------------
def test_inferred_cell_keeps_its_basis_verbatim(rf):
    row, feat = rf
    basis = "recipe in the vLLM GLM-5.2 guide (--reasoning-parser glm45), not run"
    a = mkdoc("run-A", "2025-01-01T00:00:00Z", [mkcell(row, feat, "inferred", basis=basis, declared="inferred")])
    b = mkdoc("run-B", "2025-01-02T00:00:00Z", [mkcell(row, feat, "inferred", basis=basis, declared="inferred")])
    c = merged_cell(merge(a, b), row, feat)
    assert c["status"] == "inferred" and c["basis"] == basis and c["declared"] == "inferred"


def test_live_cell_shows_the_declaration_of_matrix_yaml(matrix):
    row = next(r for r in matrix.rows if any(c.status == "inferred" for c in r.declared.values()))
    feat, decl = next((f, c) for f, c in row.declared.items() if c.status == "inferred")
    d = mkdoc("run-A", "2025-01-01T00:00:00Z", [mkcell(row.id, feat, "verified", checks=[PASS])])
    c = merged_cell(merge(d, matrix=matrix), row.id, feat)
    assert c["status"] == "verified"
    assert c["declared"] == "inferred" and c["declared_basis"] == decl.basis


def test_disagreeing_declarations_are_reported(rf):
    row, feat = rf
    a = mkdoc("run-A", "2025-01-01T00:00:00Z", [mkcell(row, feat, "inferred", basis="old guide")])
    b = mkdoc("run-B", "2025-01-02T00:00:00Z", [mkcell(row, feat, "unsupported", basis="removed")])
    doc = merge(a, b)
    c = merged_cell(doc, row, feat)
    assert (c["status"], c["basis"]) == ("unsupported", "removed")
    assert any("different statuses" in w for w in doc["warnings"])


def test_cells_no_input_has_are_filled_from_matrix_yaml(matrix, rf):
    row, feat = rf
    doc = merge(mkdoc("run-A", "2025-01-01T00:00:00Z", [mkcell(row, feat, "verified", checks=[PASS])]), matrix=matrix)
    assert len(doc["cells"]) == len(matrix.rows) * len(matrix.features)
    other = matrix.rows[-1]
    c = merged_cell(doc, other.id, matrix.features[-1])
    assert c["status"] == other.declared_cell(matrix.features[-1]).status
    assert "no input has this cell" in c["basis"]
    # matrix order: rows x features
    assert [(c["row"], c["feature"]) for c in doc["cells"][:2]] == [(matrix.rows[0].id, f) for f in matrix.features[:2]]


# ---- rule 6: unknown rows and features are reported, not dropped -----------------------------------------
def test_unknown_rows_and_features_are_kept_and_reported(matrix, rf):
    row, feat = rf
    d = mkdoc("run-A", "2025-01-01T00:00:00Z", [
        mkcell(row, feat, "verified", checks=[PASS]),
        mkcell("row-from-the-future", feat, "verified", checks=[PASS]),
        mkcell(row, "teleportation", "failed", checks=[FAIL]),
    ])
    doc = merge(d, matrix=matrix)
    assert merged_cell(doc, "row-from-the-future", feat)["status"] == "verified"
    assert merged_cell(doc, row, "teleportation")["status"] == "failed"
    unknown = {(u["row"], u["feature"]): u for u in doc["unknown"]}
    assert set(unknown) == {("row-from-the-future", feat), (row, "teleportation")}
    assert "row 'row-from-the-future' is not in matrix.yaml" in unknown[("row-from-the-future", feat)]["reason"]
    assert "feature 'teleportation'" in unknown[(row, "teleportation")]["reason"]
    assert unknown[(row, "teleportation")]["sources"] == ["in0/matrix.json"]
    assert sum("not in matrix.yaml" in w for w in doc["warnings"]) == 2
    # unknown cells come after the matrix.yaml cells
    assert doc["cells"][-2:] == [merged_cell(doc, "row-from-the-future", feat), merged_cell(doc, row, "teleportation")]


# ---- the merged run ---------------------------------------------------------------------------------------
def test_merged_run_lists_its_source_runs(rf):
    row, feat = rf
    a = mkdoc("run-A", "2025-01-01T10:00:00Z", [mkcell(row, feat, "verified", checks=[PASS])],
              started="2025-01-01T09:00:00Z", launches={row: 1})
    b = mkdoc("run-B", "2025-01-02T10:00:00Z", [mkcell(row, feat, "verified", checks=[PASS])],
              started="2025-01-02T09:00:00Z", launches={row: 2, "other": 1})
    doc = merge(a, b)
    run = doc["run"]
    assert run["merged"] is True and run["id"].startswith("merge-")
    assert [s["id"] for s in run["sources"]] == ["run-A", "run-B"]
    assert [s["file"] for s in run["sources"]] == ["in0/matrix.json", "in1/matrix.json"]
    assert all(len(s["sha256"]) == 64 for s in run["sources"])
    assert run["sources"][0]["matrix"]["sha256"] == "0" * 64
    assert (run["started"], run["finished"]) == ("2025-01-01T09:00:00Z", "2025-01-02T10:00:00Z")
    assert run["launches"] == {row: 3, "other": 1}


def test_merging_a_merged_document_is_stable(rf):
    row, feat = rf
    a = mkdoc("run-A", "2025-01-01T00:00:00Z", [mkcell(row, feat, "failed", checks=[FAIL])])
    b = mkdoc("run-B", "2025-01-02T00:00:00Z", [mkcell(row, feat, "verified", checks=[PASS])])
    c = mkdoc("run-C", "2025-01-03T00:00:00Z", [mkcell(row, feat, "inferred", basis="guide")])
    ab = merge(a, b)
    again = merged_cell(merge(ab, c), row, feat)
    at_once = merged_cell(merge(a, b, c), row, feat)
    assert again["status"] == at_once["status"] == "flaky"
    assert again["flaky"] == at_once["flaky"] and again["basis"] == at_once["basis"]
    assert again["run"] == at_once["run"] == "run-B"
    assert [h["run"] for h in again["history"]] == [h["run"] for h in at_once["history"]] == ["run-A"]
    # a newer failure still beats the merged verified result
    d = mkdoc("run-D", "2025-01-04T00:00:00Z", [mkcell(row, feat, "failed", checks=[FAIL])])
    c2 = merged_cell(merge(ab, d), row, feat)
    assert c2["status"] == "failed" and [h["run"] for h in c2["history"]] == ["run-B", "run-A"]


def test_matrix_json_of_a_recorder_merges(tmp_path, matrix):
    """End to end with real Recorder output: two runners, each live on a different row."""
    from glmverify.results import CheckRecord, Recorder

    feat = matrix.features[0]
    paths = []
    for i, row in enumerate(matrix.rows[:2]):
        rec = Recorder(matrix, tmp_path / f"runner{i}", {"id": f"run-{i}"})
        rec.add(CheckRecord(row=row.id, feature=feat, id="test_x", outcome="passed" if i == 0 else "failed",
                            detail="" if i == 0 else "boom", evidence={"seen": i}))
        rec.write(final=True)
        paths.append(tmp_path / f"runner{i}")
    doc = merge_files(paths, matrix)
    assert merged_cell(doc, matrix.rows[0].id, feat)["status"] == "verified"
    assert merged_cell(doc, matrix.rows[1].id, feat)["status"] == "failed"
    assert merged_cell(doc, matrix.rows[1].id, feat)["evidence"]["checks"]["test_x"] == {"seen": 1}
    assert doc["unknown"] == []


# ---- reading inputs ---------------------------------------------------------------------------------------
def test_bad_inputs_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(DocumentError, match="no such file or directory"):
        load_document(tmp_path / "missing")
    with pytest.raises(DocumentError, match="has no matrix.json"):
        load_document(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": 1, "cells": [')
    with pytest.raises(DocumentError, match=r"bad\.json: not valid JSON: .* line 1, column"):
        load_document(bad)
    bad.write_text("")
    with pytest.raises(DocumentError, match="empty file"):
        load_document(bad)
    bad.write_text('{"schema": 1, "cells": [{"row": "r", "feature": "f", "status": "great"}]}')
    with pytest.raises(DocumentError, match=r"cells\[0\]\.status is 'great'"):
        load_document(bad)
    bad.write_text('[1, 2]')
    with pytest.raises(DocumentError, match="top level is a JSON list"):
        load_document(bad)
    bad.write_bytes(b'\xff\xfe{}')
    with pytest.raises(DocumentError, match="not UTF-8"):
        read_document(bad)


def test_inconclusive_is_live_and_a_newer_run_replaces_it(rf):
    row, feature = rf
    OPEN = {"id": "test_a", "outcome": "inconclusive", "detail": "INCONCLUSIVE: budget spent"}
    a = mkdoc("r1", "2026-01-01T00:00:00Z", [mkcell(row, feature, "inconclusive", checks=[dict(OPEN, time="2026-01-01T00:00:00Z")])])
    b = mkdoc("r0", "2025-12-01T00:00:00Z", [mkcell(row, feature, "inferred")])
    c = merged_cell(merge(a, b), row, feature)
    assert c["status"] == "inconclusive" and "inconclusive" in c["basis"]   # live beats declared
    newer = mkdoc("r2", "2026-02-01T00:00:00Z", [mkcell(row, feature, "verified", checks=[dict(PASS, time="2026-02-01T00:00:00Z")])])
    assert merged_cell(merge(a, newer), row, feature)["status"] == "verified"


# ---- a failure followed by a green re-run: flaky, never plain verified ------------------------------
def test_failure_then_green_rerun_is_flaky_on_the_page_and_in_matrix_md(rf, matrix):
    from glmverify.report import render_html, render_markdown

    row, feat = rf
    a = mkdoc("run-A", "2025-01-01T10:00:00Z", [mkcell(row, feat, "failed", checks=[FAIL])])
    b = mkdoc("run-B", "2025-01-01T11:00:00Z", [mkcell(row, feat, "verified", checks=[PASS])])
    doc = merge(a, b, matrix=matrix)
    c = merged_cell(doc, row, feat)
    assert c["status"] == "flaky" and c["status"] != "verified"
    assert c["flaky"]["verified_run"] == "run-B"
    assert c["flaky"]["failed_runs"] == [{"run": "run-A", "time": "2025-01-01T10:00:00Z", "failed_checks": ["test_a"]}]
    assert c["basis"].startswith("FLAKY: verified in run run-B after failing in run run-A")
    md = render_markdown(doc)
    assert "## Flaky: failed, then verified on a re-run (not verified)" in md
    assert "⚠️ flaky" in md and "⚠ failed in run `run-A`" in md and "--accept-flaky ROW/FEATURE" in md
    page = render_html(doc)
    assert "st-flaky" in page and "1 flaky cell(s)" in page and "⚠ failed" in page


def test_inconclusive_then_verified_is_verified_and_failure_after_green_is_failed(rf):
    row, feat = rf
    OPEN = {"id": "test_a", "outcome": "inconclusive", "detail": "INCONCLUSIVE"}
    a = mkdoc("run-A", "2025-01-01T10:00:00Z", [mkcell(row, feat, "inconclusive", checks=[OPEN])])
    b = mkdoc("run-B", "2025-01-01T11:00:00Z", [mkcell(row, feat, "verified", checks=[PASS])])
    assert merged_cell(merge(a, b), row, feat)["status"] == "verified"  # undecided before is no failure
    c = mkdoc("run-C", "2025-01-01T12:00:00Z", [mkcell(row, feat, "failed", checks=[FAIL])])
    assert merged_cell(merge(b, c), row, feat)["status"] == "failed"


def test_a_flaky_cell_stays_flaky_when_a_newer_green_run_is_merged_in(rf):
    row, feat = rf
    a = mkdoc("run-A", "2025-01-01T10:00:00Z", [mkcell(row, feat, "failed", checks=[FAIL])])
    b = mkdoc("run-B", "2025-01-01T11:00:00Z", [mkcell(row, feat, "verified", checks=[PASS])])
    c = mkdoc("run-C", "2025-01-01T12:00:00Z", [mkcell(row, feat, "verified", checks=[PASS])])
    again = merged_cell(merge(merge(a, b), c), row, feat)
    assert again["status"] == "flaky" and again["run"] == "run-C"
    assert [(h["run"], h["status"]) for h in again["history"]] == [("run-B", "verified"), ("run-A", "failed")]
    assert [r["run"] for r in again["flaky"]["failed_runs"]] == ["run-A"]
