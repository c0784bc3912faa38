"""A run's verdict and exit status from its final document (``document.decide_run``), and the
parser-conformance cells that must be red: documents built by the real recorder over matrix.yaml."""
from __future__ import annotations

from glmverify import signoff
from glmverify.document import UNDECIDED_EXIT, decide_run, dumps
from glmverify.matrix import load
from glmverify.results import CheckRecord, Recorder

MATRIX = load()
REF = "reference"  # a CPU process row: every feature it serves is checked live
GPU = next(r for r in MATRIX.rows if r.hardware == "h200" and r.serves("tool_calls") and r.launcher == "container")


def recorder(tmp_path, selected: dict[str, dict[str, list[str]]] | None = None) -> Recorder:
    r = Recorder(MATRIX, tmp_path, {"id": "run-v"})
    r.select(selected or {})
    return r


def add(r: Recorder, row: str, feature: str, cid: str, outcome: str, phase: str = "call", detail: str = "") -> None:
    r.add(CheckRecord(row=row, feature=feature, id=cid, outcome=outcome, phase=phase, detail=detail))


def test_all_decided_and_verified_exits_0(tmp_path):
    r = recorder(tmp_path, {REF: {"tool_calls": ["test_a", "test_b"]}})
    add(r, REF, "tool_calls", "test_a", "passed")
    add(r, REF, "tool_calls", "test_b", "passed")
    v = decide_run(r.write(final=True))
    assert (v.status, v.exit_code, v.failed, v.undecided) == ("verified", 0, [], [])


def test_a_failed_cell_exits_1_and_beats_undecided(tmp_path):
    r = recorder(tmp_path, {REF: {"tool_calls": ["test_a"], "non_think": ["test_n"]}})
    add(r, REF, "tool_calls", "test_a", "failed", detail="no tool call")
    v = decide_run(r.document())  # non_think was selected and not reached: undecided too
    assert (v.status, v.exit_code) == ("failed", 1)
    assert v.failed == [f"{REF}/tool_calls: failed (test_a)"]
    assert v.undecided and v.undecided[0].startswith(f"{REF}/non_think: not reached")


def test_an_inconclusive_cell_exits_undecided(tmp_path):
    r = recorder(tmp_path, {REF: {"accuracy_smoke": ["test_gsm8k[think]"]}})
    add(r, REF, "accuracy_smoke", "test_gsm8k[think]", "inconclusive", detail="INCONCLUSIVE: 1319 drawn, bound 0.89..0.91")
    v = decide_run(r.document())
    assert (v.status, v.exit_code) == ("undecided", UNDECIDED_EXIT) and UNDECIDED_EXIT == 6
    assert v.undecided == [f"{REF}/accuracy_smoke: inconclusive: INCONCLUSIVE: 1319 drawn, bound 0.89..0.91"]


def test_a_gate_skipped_row_exits_undecided_with_the_gate_reason(tmp_path):
    why = f"Skipped: {GPU.id}: cannot identify NVIDIA H200 (141 GB): no nvidia-smi on the host"
    r = recorder(tmp_path, {GPU.id: {"tool_calls": ["test_named"]}})
    add(r, GPU.id, "tool_calls", "test_named", "skipped", phase="setup", detail=why)
    doc = r.document()
    assert next(c for c in doc["cells"] if c["row"] == GPU.id and c["feature"] == "tool_calls")["status"] == "inferred"
    v = decide_run(doc)
    assert v.exit_code == 6
    assert v.undecided == [f"{GPU.id}/tool_calls: not run: {why.removeprefix('Skipped: ')}"]


def test_a_selected_cell_not_reached_exits_undecided(tmp_path):
    r = recorder(tmp_path, {REF: {"tool_calls": ["test_a", "test_b", "test_c"]}})
    add(r, REF, "tool_calls", "test_a", "passed")  # the run ended (a worker died, ^C) before test_b and test_c
    v = decide_run(r.document())
    assert v.exit_code == 6
    assert v.undecided == [f"{REF}/tool_calls: not reached: 2 of 3 selected check(s) have no result (first: test_b)"]


def test_skips_that_decide_are_not_undecided(tmp_path):
    """A check skipped by its own logic (call phase: e.g. no window claimed) and an unsupported
    feature skipped before it ran leave the run verified: nothing was left to decide."""
    unsupported = next(f for f in MATRIX.features if not MATRIX.row(REF).serves(f))
    r = recorder(tmp_path, {REF: {"tool_calls": ["test_a", "test_b"], unsupported: ["test_u"]}})
    add(r, REF, "tool_calls", "test_a", "passed")
    add(r, REF, "tool_calls", "test_b", "skipped", detail="engine exposes no rendered prompt")
    add(r, REF, unsupported, "test_u", "skipped", phase="setup", detail=f"{REF}: {unsupported} unsupported")
    assert decide_run(r.document()).exit_code == 0


def test_a_flaky_cell_is_undecided():
    doc = {"run": {}, "cells": [{"row": "r", "feature": "f", "status": "flaky", "basis": "FLAKY: failed in run A",
                                 "checks": [{"id": "t", "outcome": "passed"}]}]}
    v = decide_run(doc)
    assert v.exit_code == 6 and v.undecided == ["r/f: flaky: FLAKY: failed in run A"]


def test_summary_names_cells_and_the_exit_status():
    doc = {"run": {}, "cells": [{"row": f"r{i}", "feature": "f", "status": "inconclusive", "basis": "",
                                 "checks": [{"id": "t", "outcome": "inconclusive", "detail": f"budget {i}"}]}
                                for i in range(5)]}
    lines = decide_run(doc).summary(limit=3)
    assert lines[:3] == [f"  undecided: r{i}/f: inconclusive: budget {i}" for i in range(3)]
    assert "2 more undecided" in lines[3]
    assert lines[-1].startswith("glmverify verdict: undecided (exit 6)")
    assert decide_run(doc).summary(exit_status=2)[-1].startswith("glmverify verdict: undecided (exit 2)")


# ---- parser conformance: a failing case makes the cell red ---------------------------------------
def parser_result(failing: list[dict]) -> dict:
    return {"engine": "sglang", "version": "0.5.23", "reasoning_parser": "glm45", "tool_parser": "glm47",
            "chunkings": 50, "rows": [{"id": GPU.id, "engine_version": GPU.engine_version}],
            "features": {"tool_calls": {"nonstream": [12, 12], "stream": [12 - len(failing), 12], "failing": failing},
                         "reasoning_split": {"nonstream": [9, 9], "stream": [9, 9], "failing": []}}}


def test_a_failing_parser_cell_is_failed_with_the_cases_as_evidence(tmp_path):
    r = recorder(tmp_path)
    lost = {"id": "parallel_two_calls", "mode": "stream", "first_diff": {"field": "tool_calls.length", "expected": 2, "got": 1},
            "detail": "calls dropped at stream end"}
    r.add_parsers(parser_result([lost]))
    doc = r.write(final=True)
    tc = next(c for c in doc["cells"] if c["row"] == GPU.id and c["feature"] == "tool_calls")
    assert tc["status"] == "failed" and "FAILING" not in tc["basis"]
    assert tc["basis"].startswith("parser conformance failed in run run-v: parsers of sglang 0.5.23")
    [check] = tc["checks"]
    assert check["id"] == "parsers[sglang-0.5.23]" and check["outcome"] == "failed"
    assert "parallel_two_calls (stream)" in check["detail"] and "tool_calls.length" in check["detail"]
    assert tc["evidence"]["parsers"]["failing"] == [lost] and "diagnosis" in tc
    # the passing feature of the same result stays inferred, its basis says all pass
    split = next(c for c in doc["cells"] if c["row"] == GPU.id and c["feature"] == "reasoning_split")
    assert split["status"] == "inferred" and "all pass" in split["basis"] and split["checks"] == []
    # the run is red, and so is the sign-off's tally
    assert decide_run(doc).exit_code == 1
    (tmp_path / "matrix.json").write_text(dumps(doc))
    assert signoff.sign(tmp_path, "Jane")["counts"]["failed"] == 1


def test_a_passing_parser_result_never_verifies(tmp_path):
    r = recorder(tmp_path)
    r.add_parsers(parser_result([]))
    tc = next(c for c in r.document()["cells"] if c["row"] == GPU.id and c["feature"] == "tool_calls")
    assert tc["status"] == "inferred" and tc["checks"] == [] and "all pass" in tc["basis"]
