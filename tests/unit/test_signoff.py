"""Sign-off binds a signer, a UTC time and the sha256 of matrix.json; verify catches any change."""
from __future__ import annotations

import hashlib
import json
import re

import pytest

from glmverify.signoff import SignoffError, sign, verify

DOC = {"schema": 1, "run": {"id": "run-1", "started": "2025-01-01T00:00:00Z", "finished": "2025-01-01T01:00:00Z"},
       "cells": [{"row": "r", "feature": "tool_calls", "status": "verified", "checks": [], "evidence": {}, "basis": "b"},
                 {"row": "r", "feature": "context_1m", "status": "failed", "checks": [], "evidence": {}, "basis": "b"},
                 {"row": "r", "feature": "non_think", "status": "inferred", "checks": [], "evidence": {}, "basis": "b"}]}


@pytest.fixture
def results(tmp_path):
    (tmp_path / "matrix.json").write_text(json.dumps(DOC, indent=1) + "\n")
    return tmp_path


def test_sign_binds_signer_time_digest_and_counts(results):
    rec = sign(results, "Jane Doe <jane@example.com>", note="release 2025.1")
    on_disk = json.loads((results / "signoff.json").read_text())
    assert on_disk == rec
    assert rec["signed_by"] == "Jane Doe <jane@example.com>"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rec["signed_at"])
    raw = (results / "matrix.json").read_bytes()
    assert rec["matrix_json"] == {"file": "matrix.json", "sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}
    assert rec["counts"] == {"verified": 1, "failed": 1, "flaky": 0, "inconclusive": 0, "inferred": 1, "unsupported": 0,
                             "not_run": 0}
    assert rec["run"]["id"] == "run-1" and rec["note"] == "release 2025.1"


def test_verify_passes_then_fails_after_a_change(results):
    sign(results, "Jane Doe")
    v = verify(results)
    assert v.ok and "sign-off OK" in v.message and "Jane Doe" in v.message
    doc = json.loads((results / "matrix.json").read_text())
    doc["cells"][1]["status"] = "verified"  # someone "fixes" a failure by hand
    (results / "matrix.json").write_text(json.dumps(doc, indent=1) + "\n")
    v = verify(results)
    assert not v.ok
    assert "changed after sign-off" in v.message and "Jane Doe" in v.message
    assert "verified 1→2" in v.message and "failed 1→0" in v.message


def test_even_a_whitespace_change_fails(results):
    sign(results, "Jane Doe")
    (results / "matrix.json").write_bytes((results / "matrix.json").read_bytes() + b"\n")
    assert not verify(results).ok


def test_resigning_records_what_it_supersedes(results):
    first = sign(results, "Jane Doe")
    (results / "matrix.json").write_text(json.dumps(DOC) + "\n")
    second = sign(results, "John Roe")
    assert verify(results).ok
    assert second["supersedes"] == {"signed_by": "Jane Doe", "signed_at": first["signed_at"],
                                    "sha256": first["matrix_json"]["sha256"]}


def test_unsigned_or_deleted_matrix_fails_verification(results):
    v = verify(results)
    assert not v.ok and "not signed off" in v.message
    sign(results, "Jane Doe")
    (results / "matrix.json").unlink()
    v = verify(results)
    assert not v.ok and "missing" in v.message


def test_bad_input_raises_signoff_error(tmp_path, results):
    with pytest.raises(SignoffError, match="no such results directory"):
        sign(tmp_path / "nope", "Jane")
    with pytest.raises(SignoffError, match="no matrix.json to sign"):
        sign(_empty_dir(tmp_path), "Jane")
    for name in ("", "   ", "Jane\nDoe"):
        with pytest.raises(SignoffError, match="--by"):
            sign(results, name)
    (results / "signoff.json").write_text("{not json")
    with pytest.raises(SignoffError, match=r"signoff\.json: not valid JSON"):
        verify(results)
    (results / "signoff.json").write_text('{"signed_by": "x"}')
    with pytest.raises(SignoffError, match="not a glmverify sign-off record"):
        verify(results)


def test_corrupt_matrix_json_cannot_be_signed(results):
    (results / "matrix.json").write_text('{"cells": "nope"}')
    with pytest.raises(SignoffError, match=r"matrix\.json: not a glmverify matrix.json"):
        sign(results, "Jane")


def _empty_dir(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_signoff_state_is_what_the_reports_show(results):
    from glmverify.signoff import signoff_state

    assert signoff_state(results) is None  # never signed
    sign(results, "Jane Doe")
    state = signoff_state(results)
    assert state["ok"] and state["record"]["signed_by"] == "Jane Doe"
    (results / "matrix.json").write_text("{}")
    state = signoff_state(results)
    assert not state["ok"] and "changed after sign-off" in state["message"]
    (results / "signoff.json").write_text("{")
    assert signoff_state(results)["record"] is None and not signoff_state(results)["ok"]
    assert "not valid JSON" in signoff_state(results)["message"]


# ---- a flaky cell needs an explicit, recorded override ------------------------------------------------
FLAKY = {"row": "r", "feature": "tool_calls", "status": "flaky", "checks": [{"id": "t", "outcome": "passed"}],
         "evidence": {}, "basis": "FLAKY: verified in run run-B after failing in run run-A",
         "flaky": {"verified_run": "run-B", "verified_basis": "live run run-B: 1 check(s) passed",
                   "failed_runs": [{"run": "run-A", "time": "2025-01-01T00:00:00Z", "failed_checks": ["t"]}]}}


@pytest.fixture
def flaky_results(tmp_path):
    doc = dict(DOC, cells=[FLAKY, *DOC["cells"][1:]])
    (tmp_path / "matrix.json").write_text(json.dumps(doc, indent=1) + "\n")
    return tmp_path


def test_sign_refuses_a_flaky_cell_without_the_override(flaky_results):
    from glmverify.signoff import FlakyNotAccepted

    with pytest.raises(FlakyNotAccepted, match=r"r/tool_calls.*--accept-flaky r/tool_calls --reason"):
        sign(flaky_results, "Jane")
    assert not (flaky_results / "signoff.json").exists()


@pytest.mark.parametrize("accept, message", [
    ({"r/tool_calls": "  "}, "needs --reason"),            # an override without a reason
    ({"r/context_1m": "seen"}, "not a flaky cell"),         # a typo, or a failed cell: never an override
])
def test_sign_refuses_a_blank_or_misdirected_override(flaky_results, accept, message):
    with pytest.raises(SignoffError, match=message):
        sign(flaky_results, "Jane", accept_flaky=accept)
    assert not (flaky_results / "signoff.json").exists()


def test_sign_records_who_when_and_why_of_each_override(flaky_results):
    rec = sign(flaky_results, "Jane Doe", accept_flaky={"r/tool_calls": "run-A hit a runner OOM (INC-42)"})
    [a] = rec["accepted_flaky"]
    assert a == {"cell": "r/tool_calls", "reason": "run-A hit a runner OOM (INC-42)", "by": "Jane Doe",
                 "at": rec["signed_at"], "verified_run": "run-B", "failed_runs": FLAKY["flaky"]["failed_runs"]}
    assert json.loads((flaky_results / "signoff.json").read_text())["accepted_flaky"] == [a]
    assert rec["counts"]["flaky"] == 1 and verify(flaky_results).ok


def test_attached_verified_cells_are_counted_apart_with_what_was_declared(tmp_path):
    """A verified cell of an attached row says what was only declared (page, matrix.md, sign-off);
    a launched row's verified cell says nothing of the kind."""
    import json

    from glmverify import signoff
    from glmverify.report import cell_label, render_html, render_markdown

    def cell(row, launcher, declared):
        return {"row": row, "engine": "vllm", "image": "i", "hardware": "h200", "feature": "tool_calls",
                "status": "verified", "basis": "b", "checks": [{"id": "t", "outcome": "passed", "detail": ""}],
                "evidence": {"engine": {"launcher": launcher,
                                        "observed_vs_declared": {"declared_only": declared}}}}
    attached = cell("vllm-glm52-fp8-h200", "attach", ["--tensor-parallel-size 8", "--tool-call-parser glm47"])
    launched = cell("reference", "process", ["--tool-call-parser glm47"])
    assert cell_label(attached) == "verified, attached: hardware and 2 more declared"
    assert cell_label(launched) == "verified"
    doc = {"schema": 1, "run": {"id": "r"}, "cells": [attached, launched]}
    (tmp_path / "matrix.json").write_text(json.dumps(doc))
    rec = signoff.sign(tmp_path, "release engineer")
    assert rec["verified_attached"] == {"vllm-glm52-fp8-h200/tool_calls": ["hardware", "--tensor-parallel-size 8",
                                                                           "--tool-call-parser glm47"]}
    assert "verified, attached: hardware and 2 more declared" in render_markdown(doc)
    page = render_html(doc, figures=[])
    assert "attached: hardware and 2 more declared" in page and "--tensor-parallel-size 8" in page
